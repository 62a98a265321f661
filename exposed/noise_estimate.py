"""The noise level of a real file, which the exposure process needs (its K and read noise).

Sources, in order of trust: the user's ``--noise-profile``, the file's DNG NoiseProfile tag, an
estimate from the picture itself (a Poisson-Gaussian fit after Foi et al., IEEE TIP 2008), and
finally a default from the ISO through the Sony A7S II calibration. All figures are in normalised
units (black 0, white 1): variance(x) = gain * x + read_var.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from exposed.cameras import CAMERAS
from exposed.process import SensorScale

MIN_SAMPLES_PER_LEVEL = 200
ISO_DEFAULT_CAMERA = "sony-a7s2"
FALLBACK_ISO = 3200.0


@dataclass(frozen=True)
class NoiseLevel:
    gain: float
    read_var: float
    source: str

    def sensor(self) -> SensorScale:
        return SensorScale(torch.tensor([self.gain]), torch.tensor([self.read_var]))


def parse_noise_profile(text: str) -> tuple[float, float]:
    """'S,O' (the DNG NoiseProfile convention) to floats; ValueError with a reason otherwise."""
    try:
        gain, read_var = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"noise profile {text!r} must be two numbers 'S,O' (variance = S * x + O)") from None
    if gain <= 0 or read_var < 0:
        raise ValueError("noise profile needs S > 0 and O >= 0")
    return gain, read_var


def estimate_noise(packed: Tensor) -> tuple[float, float] | None:
    """Fit variance = a * x + b to one image's own noise (Foi et al. 2008, simplified).

    packed: (1, 4, H, W) normalised raw. In every 2 x 2 block of each channel, the diagonal Haar
    detail (a - b - c + d) / 2 has the pixel noise variance and almost no signal, and the block mean
    gives the level. Levels are binned by quantiles, each bin's variance is taken robustly (median
    absolute deviation), and a line is fitted by weighted least squares. None when the picture is too
    small or the fit is not physical.
    """
    x = packed[0].double()
    h, w = x.shape[-2:] if x.dim() == 3 else x.shape
    x = x[:, : h & ~1, : w & ~1]
    a, b, c, d = x[:, 0::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 0::2], x[:, 1::2, 1::2]
    detail = ((a - b - c + d) / 2).flatten()
    level = ((a + b + c + d) / 4).flatten()
    n = level.numel()
    bins = min(16, n // MIN_SAMPLES_PER_LEVEL)
    if bins < 2:
        return None
    order = level.argsort()
    levels, variances, weights = [], [], []
    for chunk in order.chunk(bins):
        dev = detail[chunk]
        mad = (dev - dev.median()).abs().median()
        levels.append(level[chunk].mean())
        variances.append((1.4826 * mad) ** 2)
        weights.append(chunk.numel() / max((1.4826 * mad).item() ** 4, 1e-30))
    X = torch.stack([torch.stack(levels), torch.ones(bins, dtype=torch.float64)], dim=1)
    W = torch.tensor(weights, dtype=torch.float64)
    y = torch.stack(variances)
    coef = torch.linalg.lstsq(X * W.sqrt()[:, None], y * W.sqrt()).solution
    gain, read_var = coef[0].item(), coef[1].item()
    if gain <= 0:
        return None
    return gain, max(read_var, 0.0)


def iso_default(iso: float | None) -> tuple[float, float]:
    """Noise of the Sony A7S II calibration at this ISO, relative to its full scale.

    In normalised units this carries over to any bit depth: it assumes a sensor whose full well and
    read noise, relative to white, are like the A7S II's.
    """
    profile = CAMERAS[ISO_DEFAULT_CAMERA].at_iso(iso or FALLBACK_ISO)
    return (profile.K / profile.scale).item(), (profile.read_variance() / profile.scale**2).item()


def noise_level(packed: Tensor, profile: str | None, tag: list[tuple[float, float]] | None,
                iso: float | None) -> NoiseLevel:
    """The noise level to use, from the first source that gives one."""
    if profile:
        gain, read_var = parse_noise_profile(profile)
        return NoiseLevel(gain, read_var, "--noise-profile")
    if tag:
        return NoiseLevel(sum(s for s, _ in tag) / len(tag), sum(o for _, o in tag) / len(tag), "DNG NoiseProfile tag")
    estimate = estimate_noise(packed)
    if estimate is not None:
        return NoiseLevel(*estimate, "estimated from the picture")
    gain, read_var = iso_default(iso)
    return NoiseLevel(gain, read_var, f"default for ISO {iso:g}" if iso else f"default (no ISO; ISO {FALLBACK_ISO:g} assumed)")
