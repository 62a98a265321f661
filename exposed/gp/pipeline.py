"""GP mode's pipeline: an sRGB photo (or a raw developed as shot) in, the enhanced photo out.

    from exposed.gp.pipeline import PhotoEnhancer
    from exposed.pipeline import Settings
    image, exif = PhotoEnhancer(Settings(mode="gp")).enhance("dim.jpg")   # (H, W, 3) uint8, upright

One enhancer per reference network (loaded on first use), as a session object: the same settings
for every file of a batch.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from exposed.denoise.infer import pick_device
from exposed.gp.enhance import enhance_image
from exposed.gp.reference import ReferenceNet, load_reference
from exposed.io.exif import ExifInfo
from exposed.io.photo import PHOTO_SUFFIXES, read_photo
from exposed.io.raw import read_raw
from exposed.modes import MODES, default_model, default_model_path
from exposed.pipeline import Enhancer, Settings


class PhotoEnhancer:
    """Enhances photos one after another with the same settings (``mode`` must be a photo mode)."""

    def __init__(self, settings: Settings | None = None):
        settings = settings or Settings(mode="gp")
        if not MODES[settings.mode].photos:
            raise ValueError(f"mode {settings.mode} enhances raw files: use exposed.Enhancer")
        self.settings = settings
        self.device = pick_device(settings.device)
        self._reference: ReferenceNet | None = None
        # Raw inputs are developed as shot (x1, not denoised) by the raw pipeline, then enhanced as photos.
        self._developer = Enhancer(replace(settings, mode="amplify", model=None, bits=16, ratio=1.0))

    @property
    def reference(self) -> ReferenceNet:
        """The reference CNN, loaded on first use."""
        if self._reference is None:
            path = self.settings.model or default_model_path(default_model(self.settings.mode))
            self._reference = load_reference(path, self.device)
        return self._reference

    def enhance(self, path: str | Path) -> tuple[np.ndarray, ExifInfo]:
        """A JPEG, PNG or TIFF photo, or a raw developed as shot, enhanced by the Gaussian process of
        :mod:`exposed.gp.enhance`; (H, W, 3) uint8 or uint16, upright, and its EXIF."""
        s = self.settings
        path = Path(path)
        if path.suffix.lower() in PHOTO_SUFFIXES:
            dark, exif = read_photo(path)
        else:
            plan = self._developer.plan(read_raw(path))
            developed = self._developer.render(plan, plan.mosaic).astype(np.float32) / np.float32(65535)
            dark, exif = torch.from_numpy(developed).permute(2, 0, 1)[None], plan.raw.exif
        generator = torch.Generator(device=self.device).manual_seed(s.seed)
        out = enhance_image(dark.to(self.device), self.reference, s.gp_k, s.gp_patch, smoothing=s.gp_smoothing,
                           generator=generator)
        peak, dtype = (65535.0, np.uint16) if s.bits == 16 else (255.0, np.uint8)
        return (out[0].permute(1, 2, 0).cpu().numpy() * peak).round().astype(dtype), exif
