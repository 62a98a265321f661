"""exposed: brighten and denoise dark raw photos with a physics-based progressive model.

    import exposed
    image = exposed.enhance("night.ARW", steps=2)      # (H, W, 3) uint8 sRGB

``exposed.enhance``, ``exposed.Enhancer`` and ``exposed.Settings`` come from
:mod:`exposed.pipeline`; they are loaded on first use, so ``import exposed`` (and the command line's
``--help``) stays quick.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Enhancer", "Settings", "enhance", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Enhancer", "Settings", "enhance"):
        from exposed import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'exposed' has no attribute {name!r}")
