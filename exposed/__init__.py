"""exposed: brighten and denoise dark raw photos with a physics-based progressive model.

    import exposed
    image = exposed.enhance("night.ARW", steps=2)      # (H, W, 3) uint8 sRGB

``exposed.enhance``, ``exposed.Enhancer`` and ``exposed.Settings`` come from
:mod:`exposed.pipeline` (raw files), ``exposed.PhotoEnhancer`` from :mod:`exposed.gp.pipeline` (GP
mode's photos); they are loaded on first use, so ``import exposed`` (and the command line's
``--help``) stays quick.
"""

from typing import Any

# The one written place of the version: pyproject.toml reads it (setuptools' dynamic version),
# so ``import exposed`` needs no package metadata lookup (importlib.metadata costs 40 ms a start).
__version__ = "0.1.0"
__all__ = ["Enhancer", "PhotoEnhancer", "Settings", "enhance", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Enhancer", "Settings", "enhance"):
        from exposed import pipeline

        return getattr(pipeline, name)
    if name == "PhotoEnhancer":
        from exposed.gp.pipeline import PhotoEnhancer

        return PhotoEnhancer
    raise AttributeError(f"module 'exposed' has no attribute {name!r}")
