"""Calibrated camera noise profiles and a camera-agnostic "virtual camera".

The five profiles are the ELD calibrations (CVPR 2020; the same figures drive ExposureDiffusion),
in 14-bit DN with natural logarithms. For each noise kind the scale follows the log-linear relation
``log(sigma) ~ Normal(slope * log(K) + bias, sigma_fit)``: read and row noise grow with the gain,
with a camera-to-camera and shot-to-shot spread. A photographer's camera is rarely one of these
five, so training defaults to the virtual camera, which samples the whole envelope of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from exposed.sensor.calibration import SensorCalibration

if TYPE_CHECKING:  # drawing noise needs torch; the figures themselves do not (a real file's plan)
    import torch

    from exposed.sensor.noise import NoiseModel, NoiseParams

# ISO 100 to ISO 6400 spans K_min to K_max in every released ELD file (K_min = K_max / 64).
ISO_AT_K_MAX = 6400.0


@dataclass(frozen=True)
class LogLinear:
    """log(sigma) = slope * log(K) + bias, with residual standard deviation ``spread``."""

    slope: float | torch.Tensor  # a calibration's figure, or one per sampled frame (B,)
    bias: float | torch.Tensor
    spread: float

    def mean_log(self, log_k: torch.Tensor) -> torch.Tensor:
        return self.slope * log_k + self.bias


@dataclass(frozen=True)
class CameraProfile:
    name: str
    k_min: float
    k_max: float
    gaussian: LogLinear
    tukey: LogLinear
    row: LogLinear
    tukey_lambda: tuple[float, float]

    def k_at_iso(self, iso: float) -> float:
        """System gain at an ISO setting: linear in ISO, K_max at ISO 6400."""
        return self.k_max * iso / ISO_AT_K_MAX

    def pg_at_iso(self, iso: float, black: float = 512.0, white: float = 16383.0) -> tuple[float, float]:
        """The calibration's central Poisson-Gaussian noise at one ISO, normalised (white - black = 1):
        (gain, read variance), what :meth:`at_iso` gives for ``pg``, in plain floats."""
        k = self.k_at_iso(iso)
        read_sigma = math.exp(float(self.gaussian.slope) * math.log(k) + float(self.gaussian.bias))
        scale = white - black
        return k / scale, read_sigma**2 / scale**2

    def at_iso(self, iso: float, model: NoiseModel = "pg", black: float = 512.0,
               white: float = 16383.0) -> NoiseParams:
        """The calibration's central noise at one ISO (no random spread): what a tool uses for a real file."""
        import torch

        from exposed.sensor.noise import NoiseParams

        log_k = torch.tensor([math.log(self.k_at_iso(iso))])
        read = self.gaussian if model == "pg" else self.tukey
        return NoiseParams.create(
            K=log_k.exp(), read_sigma=read.mean_log(log_k).exp(),
            row_sigma=self.row.mean_log(log_k).exp() if model == "eld" else 0.0,
            tukey_lambda=sum(self.tukey_lambda) / 2 if model == "eld" else 0.0,
            black=black, white=white, model=model)

    def sample(self, n: int, model: NoiseModel = "pg", generator: torch.Generator | None = None,
               black: float = 512.0, white: float = 16383.0) -> NoiseParams:
        """n random noise settings of this camera: log K uniform over its range, scales from the fits."""
        log_k = _uniform(n, math.log(self.k_min), math.log(self.k_max), generator)
        return _draw(log_k, self.gaussian, self.tukey, self.row, self.tukey_lambda, model, generator, black, white)


def _uniform(n: int, low: float | torch.Tensor, high: float | torch.Tensor,
             generator: torch.Generator | None) -> torch.Tensor:
    import torch

    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def _draw(log_k: torch.Tensor, gaussian: LogLinear, tukey: LogLinear, row: LogLinear,
          lam_range: tuple[float, float], model: NoiseModel, generator: torch.Generator | None,
          black: float, white: float) -> NoiseParams:
    import torch

    from exposed.sensor.noise import NoiseParams

    n = log_k.numel()

    def scale(fit: LogLinear) -> torch.Tensor:
        return (fit.mean_log(log_k) + fit.spread * torch.randn(n, generator=generator, dtype=torch.float64)).exp()

    if model == "pg":
        return NoiseParams.create(K=log_k.exp(), read_sigma=scale(gaussian), black=black, white=white, model="pg")
    return NoiseParams.create(
        K=log_k.exp(), read_sigma=scale(tukey), row_sigma=scale(row),
        tukey_lambda=_uniform(n, lam_range[0], lam_range[1], generator), black=black, white=white, model="eld")


# Tukey-lambda shapes: facts.md gives ranges for the Sony and the Nikon; for the Canons, which it
# does not give, the envelope of all calibrated cameras is used.
_LAMBDA_ENVELOPE = (-0.243, 0.2)

CAMERAS: dict[str, CameraProfile] = {p.name: p for p in (
    CameraProfile("canon-eos-5d4", 0.2182, 13.964, LogLinear(0.6771, 1.5122, 0.2464),
                  LogLinear(0.6559, 1.0927, 0.2860), LogLinear(0.4713, -0.8079, 0.2436), _LAMBDA_ENVELOPE),
    CameraProfile("canon-eos-70d", 0.4075, 26.080, LogLinear(0.5681, 1.9983, 0.2487),
                  LogLinear(0.4868, 1.4643, 0.3820), LogLinear(0.7292, -0.9371, 0.2502), _LAMBDA_ENVELOPE),
    CameraProfile("canon-eos-700d", 0.4476, 28.648, LogLinear(0.6525, 2.0799, 0.2578),
                  LogLinear(0.5982, 1.5370, 0.3888), LogLinear(0.6221, -0.7756, 0.2485), _LAMBDA_ENVELOPE),
    CameraProfile("nikon-d850", 0.4150, 26.563, LogLinear(0.5635, 0.7994, 0.2141),
                  LogLinear(0.4774, -0.0904, 0.2392), LogLinear(0.4483, -1.7977, 0.2322), (-0.24, -0.10)),
    CameraProfile("sony-a7s2", 0.0939, 6.0106, LogLinear(0.5407, 1.2182, 0.2675),
                  LogLinear(0.4621, 0.5657, 0.2634), LogLinear(0.5275, -0.5917, 0.2943), (-0.14, 0.13)),
)}


@dataclass(frozen=True)
class VirtualCamera:
    """Cameras nobody calibrated: slopes and biases drawn inside the envelope of the calibrated ones.

    Each draw is a plausible sensor (LED, ICCV 2023): log K uniform over [log 0.1, log 30], then each
    noise line's slope and bias uniform over the calibrated cameras' range, plus the average
    calibrated spread around the line.
    """

    k_min: float = 0.1
    k_max: float = 30.0

    def sample(self, n: int, model: NoiseModel = "pg", generator: torch.Generator | None = None,
               black: float = 512.0, white: float = 16383.0) -> NoiseParams:
        log_k = _uniform(n, math.log(self.k_min), math.log(self.k_max), generator)
        profiles = list(CAMERAS.values())

        def envelope(kind: str) -> LogLinear:
            lines = [getattr(p, kind) for p in profiles]
            slope = _uniform(n, min(fit.slope for fit in lines), max(fit.slope for fit in lines), generator)
            bias = _uniform(n, min(fit.bias for fit in lines), max(fit.bias for fit in lines), generator)
            return LogLinear(slope, bias, sum(fit.spread for fit in lines) / len(lines))

        lam = (min(p.tukey_lambda[0] for p in profiles), max(p.tukey_lambda[1] for p in profiles))
        return _draw(log_k, envelope("gaussian"), envelope("tukey"), envelope("row"), lam, model, generator,
                     black, white)


VIRTUAL_CAMERA = VirtualCamera()


NoiseSource = CameraProfile | VirtualCamera | SensorCalibration


def noise_source(name: str) -> NoiseSource:
    """A calibrated camera by name, ``virtual`` for the camera-agnostic sampler, or the path of a
    camera profile (``.json``, from ``exposed calibrate``)."""
    if name == "virtual":
        return VIRTUAL_CAMERA
    if name.lower().endswith(".json"):
        return _calibration(name)
    try:
        return CAMERAS[name]
    except KeyError:
        raise ValueError(f"unknown camera {name!r}; expected 'virtual', a profile .json file, or one of "
                         f"{', '.join(CAMERAS)}") from None


@lru_cache(maxsize=8)
def _calibration(path: str) -> SensorCalibration:
    """A profile read once however many samples are drawn from it."""
    return SensorCalibration.load(path)
