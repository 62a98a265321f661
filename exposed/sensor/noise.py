"""Physics-based raw noise: Poisson-Gaussian (P+G) and the ELD model.

Everything here works in digital numbers (DN) above the black level, in each frame's own scale
(white minus black), so 12-, 14- and 16-bit sensors share one code path. Functions are batched:
every field of :class:`NoiseParams` holds one value per image, and all randomness comes from an
explicit ``torch.Generator`` so a seed reproduces a sample exactly.

Order of synthesis (ELD family): expected signal -> Poisson photon count times K -> row noise
(one value per sensor row) -> read noise (Gaussian or Tukey-lambda) -> uniform quantisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from collections.abc import Sequence

import torch
from torch import Tensor

from exposed.sensor.noise_kinds import NOISE_MODELS, NoiseModel


@dataclass(frozen=True)
class NoiseParams:
    """Noise of a batch of raw frames, one value per frame in each field.

    K: system gain in DN per photo-electron (shot noise variance is K * signal).
    read_sigma: Gaussian read-noise sigma (``pg``) or Tukey-lambda scale (``eld``), in DN.
    row_sigma: sigma of the per-row offset in DN (``eld`` only).
    tukey_lambda: Tukey-lambda shape (``eld`` only; 0 is the logistic distribution).
    black, white: the frame's levels in DN; white - black is the normalisation scale.
    model: ``pg`` (Poisson + Gaussian) or ``eld`` (Poisson + row + Tukey-lambda + quantisation).
    """

    K: Tensor
    read_sigma: Tensor
    row_sigma: Tensor
    tukey_lambda: Tensor
    black: Tensor
    white: Tensor
    model: NoiseModel = "pg"

    _TENSOR_FIELDS = ("K", "read_sigma", "row_sigma", "tukey_lambda", "black", "white")

    @classmethod
    def create(
        cls,
        K: float | Sequence[float] | Tensor,
        read_sigma: float | Sequence[float] | Tensor,
        row_sigma: float | Sequence[float] | Tensor = 0.0,
        tukey_lambda: float | Sequence[float] | Tensor = 0.0,
        black: float | Sequence[float] | Tensor = 512.0,
        white: float | Sequence[float] | Tensor = 16383.0,
        model: NoiseModel = "pg",
    ) -> NoiseParams:
        """Build from scalars or per-frame sequences; scalars are broadcast to the batch."""
        if model not in NOISE_MODELS:
            raise ValueError(f"unknown noise model {model!r}; expected one of {', '.join(NOISE_MODELS)}")
        values = [torch.as_tensor(v, dtype=torch.float32).reshape(-1) for v in
                  (K, read_sigma, row_sigma, tukey_lambda, black, white)]
        n = max(v.numel() for v in values)
        values = [v.expand(n).clone() if v.numel() == 1 else v for v in values]
        if any(v.numel() != n for v in values):
            raise ValueError("noise parameter sequences must all have the same length")
        if (values[0] <= 0).any():
            raise ValueError("system gain K must be positive")
        return cls._of(values, model)

    @classmethod
    def _of(cls, values: Sequence[Tensor], model: NoiseModel) -> NoiseParams:
        """From the tensors in ``_TENSOR_FIELDS`` order."""
        k, read, row, lam, black, white = values
        return cls(k, read, row, lam, black, white, model)

    @property
    def batch_size(self) -> int:
        return self.K.numel()

    @property
    def scale(self) -> Tensor:
        """White minus black: the DN value of a normalised 1.0."""
        return self.white - self.black

    def to(self, device: torch.device | str) -> NoiseParams:
        return self._map(lambda t: t.to(device))

    @staticmethod
    def cat(items: Sequence[NoiseParams]) -> NoiseParams:
        models = {p.model for p in items}
        if len(models) != 1:
            raise ValueError("cannot concatenate noise parameters of different models")
        return NoiseParams._of([torch.cat([getattr(p, f) for p in items]) for f in NoiseParams._TENSOR_FIELDS],
                               models.pop())

    def read_variance(self) -> Tensor:
        """Signal-independent variance in DN^2 (read, row and quantisation noise), per frame."""
        if self.model == "pg":
            return self.read_sigma**2
        return self.read_sigma**2 * tukey_lambda_variance(self.tukey_lambda) + self.row_sigma**2 + 1.0 / 12.0

    def variance(self, signal_dn: Tensor) -> Tensor:
        """Expected noise variance in DN^2 at a signal level in DN: K * signal + read variance.

        signal_dn: (B, ...) with B the batch size of these parameters.
        """
        shape = (-1,) + (1,) * (signal_dn.dim() - 1)
        return self.K.view(shape) * signal_dn + self.read_variance().view(shape)

    def _map(self, fn: Any) -> NoiseParams:
        return NoiseParams._of([fn(getattr(self, f)) for f in self._TENSOR_FIELDS], self.model)


def tukey_lambda_variance(lam: Tensor) -> Tensor:
    """Variance of the standard Tukey-lambda distribution (defined for lambda > -1/2)."""
    lam = torch.as_tensor(lam, dtype=torch.float64)
    small = lam.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(lam), lam)
    var = 2.0 / safe**2 * (1.0 / (1.0 + 2.0 * safe)
                           - torch.exp(2.0 * torch.lgamma(safe + 1.0) - torch.lgamma(2.0 * safe + 2.0)))
    return torch.where(small, torch.full_like(lam, math.pi**2 / 3.0), var).float()


def tukey_lambda_quantile(p: Tensor, lam: Tensor) -> Tensor:
    """Quantile function of the standard Tukey-lambda distribution, Q(p) = (p^l - (1-p)^l) / l
    (the logistic log(p / (1 - p)) at l = 0), in float64; p and lam broadcast."""
    p, lam = p.to(torch.float64), lam.to(torch.float64)
    small = lam.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(lam), lam)
    q = (p.pow(safe) - (1.0 - p).pow(safe)) / safe
    return torch.where(small, torch.log(p) - torch.log1p(-p), q)


def sample_tukey_lambda(shape: Sequence[int], lam: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Standard Tukey-lambda samples by inverting the quantile function; lam broadcasts against
    ``shape`` and sets the device."""
    u = torch.rand(shape, generator=generator, device=lam.device, dtype=torch.float64)
    return tukey_lambda_quantile(u.clamp(1e-12, 1.0 - 1e-12), lam).float()


# Philox numbers to step a CUDA generator past after torch.poisson: far more than one element's
# sampler can take (curand draws about one uniform per photon below a rate of 64, a few above).
POISSON_SKIP = 1 << 20


def sample_poisson(rate: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Poisson counts of the given rates, independent of every later draw from ``generator``.

    On CUDA torch.poisson steps the generator by a fixed few numbers per element while the sampler
    takes about one per photon, so the next draw (read noise, the next exposure step's photons)
    reuses them and correlates with the shot noise (pytorch/pytorch#136750): a synthetic frame at
    a rate of 40 had 14% more variance than its formula. The generator is stepped past them here.
    """
    photons = torch.poisson(rate, generator=generator)
    if rate.is_cuda:
        used = generator if generator is not None else torch.cuda.default_generators[rate.get_device()]
        used.set_offset(used.get_offset() + POISSON_SKIP)
    return photons


def add_noise(signal_dn: Tensor, params: NoiseParams, generator: torch.Generator | None = None,
              round_dn: bool = False) -> Tensor:
    """A noisy raw frame, in DN above black, whose expected value is ``signal_dn``.

    signal_dn: (B, 1, H, W) Bayer mosaic in DN (rows along dim -2 are sensor rows).
    ``round_dn`` rounds to whole DN, as a real converter does (the black level is a whole number), in
    place of the ELD model's uniform quantisation noise: at 8 or 10 bits the steps themselves show.
    Returns the same shape, unclipped: clipping to the sensor's range is the caller's business.
    """
    if signal_dn.dim() != 4 or signal_dn.shape[0] != params.batch_size:
        raise ValueError(f"expected (B, 1, H, W) with B = {params.batch_size}, got {tuple(signal_dn.shape)}")
    p = params.to(signal_dn.device)
    b, c, h, w = signal_dn.shape
    per_frame = (b, 1, 1, 1)
    K = p.K.view(per_frame)
    photons = sample_poisson((signal_dn / K).clamp_min(0.0), generator)
    noisy = photons * K
    if p.model == "pg":
        gaussian = torch.randn(signal_dn.shape, generator=generator, device=signal_dn.device)
        noisy = noisy + gaussian * p.read_sigma.view(per_frame)
        return noisy.round() if round_dn else noisy
    rows = torch.randn((b, 1, h, 1), generator=generator, device=signal_dn.device) * p.row_sigma.view(per_frame)
    read = sample_tukey_lambda(signal_dn.shape, p.tukey_lambda.view(per_frame), generator)
    read = read * p.read_sigma.view(per_frame)
    if round_dn:
        return (noisy + rows + read).round()
    quant = torch.rand(signal_dn.shape, generator=generator, device=signal_dn.device) - 0.5
    return noisy + rows + read + quant


def synthesize_dark(clean: Tensor, ratio: Tensor, params: NoiseParams,
                    generator: torch.Generator | None = None, round_dn: bool = False,
                    offset_dn: Tensor | None = None) -> Tensor:
    """Simulate the short exposure of a clean raw: divide the light by ``ratio``, add sensor noise.

    clean: (B, 1, H, W) mosaic normalised to black 0 and white 1: the reference exposure. Values
    above 1 are light the reference could not hold (lamps): the dark frame clips them at white too.
    ``round_dn``: whole DN, see :func:`add_noise`. offset_dn: (B,) a black level error, added before
    clipping: the frame's true black lies this many DN above the black its metadata states.
    ratio: (B,) exposure ratios (reference / short exposure), any positive value.
    Returns the dark frame in the same normalised units, NOT multiplied back by the ratio, clipped to
    what a sensor can record: [-black, white - black] in DN. Values below black are kept, as a real
    raw file keeps them, so the noise stays unbiased in the shadows.
    """
    p = params.to(clean.device)
    scale = p.scale.view(-1, 1, 1, 1)
    ratio = torch.as_tensor(ratio, dtype=clean.dtype, device=clean.device).reshape(-1, 1, 1, 1)
    noisy_dn = add_noise(clean * scale / ratio, p, generator, round_dn)
    if offset_dn is not None:
        noisy_dn = noisy_dn + offset_dn.to(noisy_dn).view(-1, 1, 1, 1)
    low = -p.black.view(-1, 1, 1, 1) / scale
    return torch.maximum(noisy_dn / scale, low).clamp_max(1.0)


@dataclass(frozen=True)
class SensorScale:
    """The noise figures the process needs, per image, in normalised units.

    gain: K / S, the normalised signal of one photo-electron. read_var: read variance / S^2.
    Each is (B,), or (B, 4) for figures that differ between the CFA sites (packed order).
    """

    gain: Tensor
    read_var: Tensor

    @classmethod
    def from_noise(cls, noise: NoiseParams, quantised: bool = False) -> SensorScale:
        """``quantised``: the frame was rounded to whole DN, which adds 1/12 DN^2 to P+G's read
        variance (the ELD model counts its quantisation already)."""
        rounding = 1.0 / 12.0 if quantised and noise.model == "pg" else 0.0
        return cls(noise.K / noise.scale, (noise.read_variance() + rounding) / noise.scale**2)

    def to(self, device: torch.device | str) -> SensorScale:
        return SensorScale(self.gain.to(device), self.read_var.to(device))
