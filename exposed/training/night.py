"""Night scenes for training: photographs made brighter than white, with light sources far above it.

The clean photographs of the training set are well exposed: nothing in them is brighter than
white. Night photography is the opposite: street lamps, windows, headlights and their glow are tens
to hundreds of times brighter than the scene, and clip in the dark frame itself. A network that
never saw such light invents colour blobs around every lamp. This module turns a linear camera-RGB
crop into such a scene: the photograph's own light multiplied by up to a few stops (so its
highlights pass white), plus a few small sources of four shapes. The caller clips the reference at
white and lets the dark frame clip where the sensor would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

SHAPES = ("disc", "blob", "streak", "glow")


@dataclass(frozen=True)
class NightScenes:
    """How often, and how, a training crop becomes a night scene.

    share: the fraction of crops changed. exposure: the photograph's light is multiplied by a
    log-uniform factor in this range. lights: how many sources per crop (uniform, inclusive). peak:
    a source's brightness relative to white (log-uniform): from a lit window (2) to a bare bulb (300).
    """

    share: float = 0.5
    exposure: tuple[float, float] = (1.0, 4.0)
    lights: tuple[int, int] = (1, 6)
    peak: tuple[float, float] = (2.0, 300.0)

    def apply(self, camera: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(B, 3, H, W) linear camera RGB in [0, 1] -> the same scenes, a ``share`` of them night
        scenes with values above 1. ``generator`` is a CPU one: it draws only the scenes' few
        parameters, so they do not depend on the device the images are on."""
        b, _, h, w = camera.shape
        chosen = torch.rand(b, generator=generator) < self.share
        out = camera.clone()
        for i in torch.nonzero(chosen).flatten().tolist():
            gain = _log_uniform(*self.exposure, generator)
            count = int(torch.randint(self.lights[0], self.lights[1] + 1, (1,), generator=generator))
            light = torch.zeros(3, h, w, device=camera.device)
            for _ in range(count):
                light += light_source(h, w, _log_uniform(*self.peak, generator), generator, camera.device)
            out[i] = camera[i] * gain + light
        return out


def _log_uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    u = float(torch.rand(1, generator=generator, dtype=torch.float64))
    return math.exp(math.log(low) + (math.log(high) - math.log(low)) * u)


def light_source(h: int, w: int, peak: float, generator: torch.Generator | None = None,
                 device: torch.device | str = "cpu") -> Tensor:
    """One light source of a random shape, colour and place: (3, H, W), ``peak`` times white at most.

    disc: a lamp seen directly (radius 0.7 to 10 pixels, anti-aliased edge); blob: a Gaussian spot
    (sigma 1 to 6); streak: a thin line (a moving light, a lit edge; 8 to 100 pixels long); glow: a
    wide, soft halo (exponential fall-off over 5 to 40 pixels) at a tenth to the whole of ``peak``,
    capped at 3 times white, as haze around a lamp is. Colours are those of lamps in unbalanced camera RGB:
    green 1, red 0.3 to 1.6, blue 0.1 to 1 (sodium and tungsten are red-heavy, LEDs nearly neutral).
    """
    u = torch.rand(8, generator=generator, dtype=torch.float64).tolist()
    shape = SHAPES[int(torch.randint(0, len(SHAPES), (1,), generator=generator))]
    cy, cx = u[0] * h, u[1] * w
    y = torch.arange(h, dtype=torch.float32, device=device)[:, None] + 0.5
    x = torch.arange(w, dtype=torch.float32, device=device)[None, :] + 0.5
    if shape == "disc":
        radius = 0.7 + 9.3 * u[2] ** 2
        profile = (radius + 0.5 - torch.hypot(y - cy, x - cx)).clamp(0.0, 1.0)
    elif shape == "blob":
        sigma = 1.0 + 5.0 * u[2]
        profile = torch.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * sigma**2))
    elif shape == "streak":
        length, angle, width = 8.0 + 92.0 * u[2], math.pi * u[3], 0.7 + 1.3 * u[4]
        dy, dx = math.sin(angle), math.cos(angle)
        along = ((y - cy) * dy + (x - cx) * dx).clamp(-length / 2, length / 2)
        dist2 = (y - cy - along * dy) ** 2 + (x - cx - along * dx) ** 2
        profile = torch.exp(-dist2 / (2 * width**2))
    else:
        scale = 5.0 + 35.0 * u[2]
        profile = torch.exp(-torch.hypot(y - cy, x - cx) / scale)
        peak = min(peak * (0.1 + 0.9 * u[3]), 3.0)
    colour = torch.tensor([0.3 + 1.3 * u[5], 1.0, 0.1 + 0.9 * u[6]], device=device)
    colour = colour / colour.max()
    return colour[:, None, None] * (peak * profile)[None]
