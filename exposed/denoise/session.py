"""One exposure model, loaded once, where it runs and at what precision: the network half of
:class:`exposed.pipeline.Enhancer`, taking and giving numpy arrays.

Importing this module imports torch. The pipeline imports it only for a mode with a network, so
plain brightening starts without torch's second of start-up (issue 18); everything torch does for
a photo (the noise estimate, the exposure process, the uncertainty map) goes through here. One
session per model, as rembg has one per network: a batch loads the weights once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from exposed.denoise.checkpoint import load_model
from exposed.denoise.infer import (Precision, channels_last, choose_precision, default_steps, denoise, frame_snr,
                                   pick_device)
from exposed.denoise.model import ExposureModel
from exposed.denoise.uncertainty import spread, varied_steps
from exposed.sensor.calibration import IsoNoise
from exposed.sensor.darktable import DarktableNoise
from exposed.sensor.estimate import NoiseLevel, noise_level


class DenoiseSession:
    """The model file at ``path`` on ``device`` (``auto``: CUDA, MPS or the CPU) at ``precision``
    (``auto``: bf16 where the hardware makes it fast). The weights are read on first use, so an
    unknown precision is refused at once and a batch can choose when to pay for the loading."""

    def __init__(self, path: Path, device: str = "auto", precision: str = "auto"):
        self.path = path
        self.device = pick_device(device)
        self.precision: Precision = choose_precision(precision, self.device)
        self._model: ExposureModel | None = None

    @property
    def model(self) -> ExposureModel:
        if self._model is None:
            model = load_model(self.path, self.device)
            if self.device.type == "cpu":
                model = channels_last(model)
                if self.precision == "bf16":  # autocast would cast every weight at every call
                    model.backbone.to(torch.bfloat16)
            self._model = model
        return self._model

    def noise_level(self, packed: np.ndarray, profile: str | None, tag: list[tuple[float, float]] | None,
                    iso: float | None, scale: float, floor: float, camera: IsoNoise | None,
                    darktable: DarktableNoise | None) -> NoiseLevel:
        """:func:`exposed.sensor.estimate.noise_level` of a (1, 4, H, W) normalised packed raw."""
        return noise_level(torch.from_numpy(packed), profile, tag, iso, scale, floor, camera=camera,
                           darktable=darktable)

    def steps(self, packed: np.ndarray, ratio: float, noise: NoiseLevel) -> int:
        """The model's own exposure steps T for this (1, 4, H, W) dark frame at ``ratio``, by its
        ratio and signal-to-noise ratio (what :func:`exposed.denoise.infer.denoise` chooses)."""
        snr = frame_snr(torch.from_numpy(packed), noise.sensor())
        return default_steps(self.model, ratio, snr)

    def denoise(self, packed: np.ndarray, saturated: np.ndarray, ratio: float, noise: NoiseLevel,
                steps: int | None, seed: int, tile: int | None,
                on_step: Callable[[int, int], None] | None = None) -> np.ndarray:
        """The brightened, denoised (1, 4, H, W) float32 packed raw in [0, 1]. packed: the dark frame,
        normalised; saturated: its photosites at the white level, held white; steps: None for the
        model's own (:func:`exposed.denoise.infer.denoise`)."""
        # MPS has no Poisson sampler: its photons are drawn on the CPU (see exposed.denoise.process.expose).
        generator = torch.Generator(device="cpu" if self.device.type == "mps" else self.device)
        generator.manual_seed(seed)
        out = denoise(self.model, torch.from_numpy(packed).to(self.device), torch.tensor([ratio], device=self.device),
                      noise.sensor(), steps, generator, self.precision, tile, on_step=on_step,
                      saturated=torch.from_numpy(saturated).to(self.device))
        return out.float().cpu().numpy()

    @staticmethod
    def varied_steps(steps: int) -> int:
        """The steps an uncertainty map's runs take (:func:`exposed.denoise.uncertainty.varied_steps`)."""
        return varied_steps(steps)

    @staticmethod
    def spread(runs: list[np.ndarray], wb: np.ndarray) -> np.ndarray:
        """(H / 2, W / 2) float32: :func:`exposed.denoise.uncertainty.spread` of (1, 4, H/2, W/2)
        packed results under white balance ``wb`` (3,)."""
        cells = spread([torch.from_numpy(run) for run in runs], torch.from_numpy(wb)[None].float())
        return cells[0, 0].numpy().astype(np.float32)
