"""exposed: brighten and denoise dark raw photos with a physics-based progressive model."""

__version__ = "0.1.0"
