"""One exposure model in torch, loaded once, where it runs and at what precision: the network half
of :class:`exposed.pipeline.Enhancer` on a GPU (or with ``--runtime torch``), taking and giving
numpy arrays; on the CPU :class:`exposed.denoise.openvino.OpenVinoSession` has the same interface.

Importing this module imports torch. The pipeline imports it only for a mode with a network on
torch, so other runs start without torch's second of start-up (issue 18); everything torch does
for a photo (the exposure process, the uncertainty map) goes through here. One session per
model, as rembg has one per network: a batch loads the weights once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from exposed.denoise.checkpoint import load_model
from exposed.denoise.infer import Precision, channels_last, choose_precision, denoise, pick_device
from exposed.denoise.config import ModelConfig
from exposed.denoise.model import ExposureModel
from exposed.sensor.estimate import NoiseLevel
from exposed.sensor.noise import SensorScale


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

    def describe(self) -> str:
        """Where and how the network runs, for ``-v``."""
        return f"torch {torch.__version__} on {self.device}, {self.precision}"

    def share_cores(self, jobs: int) -> None:
        """Give torch 1/jobs of the cores, for ``jobs`` files at once."""
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))

    def prepare(self, height: int, width: int, tile: int | None) -> None:
        """Nothing: torch's kernels need no compiling for a frame's size (the CPU runtime's network
        does, :meth:`exposed.denoise.openvino.OpenVinoSession.prepare`)."""

    @property
    def config(self) -> ModelConfig:
        """The model's settings (loading it if need be)."""
        return self.model.config

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
                      sensor_scale(noise), steps, generator, self.precision, tile, on_step=on_step,
                      saturated=torch.from_numpy(saturated).to(self.device))
        return out.float().cpu().numpy()


def sensor_scale(noise: NoiseLevel) -> SensorScale:
    """A noise level's figures as the exposure process takes them: (1, 4), one per packed channel."""
    return SensorScale(torch.tensor([noise.site_gain]), torch.tensor([noise.site_read_var]))
