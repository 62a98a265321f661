"""exposed: brighten and denoise dark raw photos with a physics-based progressive model.

    import exposed
    image = exposed.enhance("night.ARW", steps=2)      # (H, W, 3) uint8 sRGB

``exposed.enhance``, ``exposed.Enhancer`` and ``exposed.Settings`` come from
:mod:`exposed.pipeline` (raw files), ``exposed.PhotoEnhancer`` from :mod:`exposed.gp.pipeline` (GP
mode's photos); they are loaded on first use, so ``import exposed`` (and the command line's
``--help``) stays quick.
"""

from importlib import metadata
from pathlib import Path
from typing import Any


def _version() -> str:
    """The installed package's version; from a source checkout that is not installed (a device
    machine running it with PYTHONPATH), pyproject.toml's, its one written place."""
    try:
        return metadata.version("exposed")
    except metadata.PackageNotFoundError:
        import tomllib

        with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as f:
            return str(tomllib.load(f)["project"]["version"])


__version__ = _version()
__all__ = ["Enhancer", "PhotoEnhancer", "Settings", "enhance", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Enhancer", "Settings", "enhance"):
        from exposed import pipeline

        return getattr(pipeline, name)
    if name == "PhotoEnhancer":
        from exposed.gp.pipeline import PhotoEnhancer

        return PhotoEnhancer
    raise AttributeError(f"module 'exposed' has no attribute {name!r}")
