"""Fitting a sensor's noise to dark and flat frames (what ``exposed calibrate`` does), and checking
a fit against a dark frame.

A dark frame (lens capped) holds only read, row and quantisation noise and the black level's true
offset, so it calibrates the read-noise terms; the shot-noise gain K needs light: pairs of flat
frames (same ISO and exposure), whose difference cancels the scene and the pixels' fixed pattern and
leaves twice the temporal noise, K * level + read variance (the photon-transfer method). The fits use
plain moments and, for the Tukey-lambda shape, the probability-plot correlation (PPCC) method that
ELD used: the shape whose quantiles line up best with the data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from exposed.imaging.bayer import cell_offsets
from exposed.sensor.calibration import IsoFit, SensorCalibration
from exposed.sensor.noise import NoiseParams, add_noise, tukey_lambda_quantile

HOT_SIGMAS = 6.0  # a photosite this many read-noise sigmas above black in every dark frame is hot
QUANTISATION_VAR = 1.0 / 12.0  # of whole-DN values, DN^2

PPCC_LAMBDAS = torch.linspace(-0.5, 0.5, 201, dtype=torch.float64)


@dataclass(frozen=True)
class DarkFrameFit:
    """Read-noise figures of one dark frame, in DN.

    offset: (2, 2) mean of each Bayer cell position above the stated black level.
    gaussian_sigma: standard deviation of all noise (the P+G read term).
    row_sigma: standard deviation of the per-row offset, after removing its share of pixel noise.
    tukey_lambda, tukey_scale: Tukey-lambda fit of what is left once row offsets are removed.
    ppcc: the probability-plot correlation of that Tukey-lambda fit (1 is a perfect line).
    """

    offset: Tensor
    gaussian_sigma: float
    row_sigma: float
    tukey_lambda: float
    tukey_scale: float
    ppcc: float

    def noise_params(self, model: str, K: float, black: float, white: float) -> NoiseParams:
        if model == "pg":
            return NoiseParams.create(K=K, read_sigma=self.gaussian_sigma, black=black, white=white, model="pg")
        return NoiseParams.create(K=K, read_sigma=self.tukey_scale, row_sigma=self.row_sigma,
                                  tukey_lambda=self.tukey_lambda, black=black, white=white, model="eld")


def fit_dark_frame(dark: Tensor) -> DarkFrameFit:
    """Fit read noise to a dark frame. dark: (H, W) mosaic in DN minus the stated black level."""
    x = dark.to(torch.float64)
    offset = torch.stack([torch.stack([x[r::2, c::2].mean() for c in range(2)]) for r in range(2)])
    x = x - offset.repeat(x.shape[0] // 2, x.shape[1] // 2)
    sigma = x.std().item()
    row_means = x.mean(dim=1)
    row_var = row_means.var().item() - sigma**2 / x.shape[1]
    residual = (x - row_means[:, None]).flatten()
    lam, scale, ppcc = _ppcc_fit(residual)
    return DarkFrameFit(offset, sigma, max(row_var, 0.0) ** 0.5, lam, scale, ppcc)


def _ppcc_fit(samples: Tensor, max_points: int = 200_000) -> tuple[float, float, float]:
    data = samples.sort().values
    if data.numel() > max_points:
        data = data[torch.linspace(0, data.numel() - 1, max_points).long()]
    n = data.numel()
    p = (torch.arange(1, n + 1, dtype=torch.float64) - 0.5) / n
    q = tukey_lambda_quantile(p[None, :], PPCC_LAMBDAS[:, None])  # (L, n)
    qc = q - q.mean(dim=1, keepdim=True)
    dc = data - data.mean()
    corr = (qc * dc).sum(dim=1) / (qc.norm(dim=1) * dc.norm())
    best = int(corr.argmax())
    scale = (qc[best] * dc).sum() / (qc[best] ** 2).sum()
    return PPCC_LAMBDAS[best].item(), scale.item(), corr[best].item()


def compare_to_dark_frame(dark: Tensor, params: NoiseParams, offset: Tensor, draws: int = 40,
                          generator: torch.Generator | None = None) -> dict[str, float]:
    """How well a noise model explains a dark frame, on the integer values the sensor recorded.

    The model's own sampler (:func:`exposed.sensor.noise.add_noise`) draws ``draws`` frames of the same size
    at zero signal, plus the measured offsets, rounded as an ADC rounds. Returns the Kolmogorov-Smirnov
    distance between the two distributions of values and the data's mean log-likelihood per pixel
    (nats) under the model's histogram.
    """
    h, w = dark.shape
    data = dark.to(torch.float64).round().flatten()
    signal = torch.zeros(draws, 1, h, w)
    model = add_noise(signal, NoiseParams.cat([params] * draws), generator).to(torch.float64)
    model = (model[:, 0] + offset.repeat(h // 2, w // 2)).round().flatten()
    low = int(min(data.min(), model.min())) - 1
    high = int(max(data.max(), model.max())) + 1
    bins = high - low + 1
    data_hist = torch.bincount((data - low).long(), minlength=bins).double()
    model_hist = torch.bincount((model - low).long(), minlength=bins).double()
    data_cdf = data_hist.cumsum(0) / data_hist.sum()
    model_cdf = model_hist.cumsum(0) / model_hist.sum()
    pmf = (model_hist + 0.5) / (model_hist.sum() + 0.5 * bins)
    return {
        "ks": (data_cdf - model_cdf).abs().max().item(),
        "loglik_per_pixel": (data_hist * pmf.log()).sum().item() / data.numel(),
    }


@dataclass(frozen=True)
class Shot:
    """One calibration frame: its mosaic in DN minus the stated black level, (H, W) float64."""

    mosaic: Tensor
    iso: float
    exposure_time: float | None = None


def _sites(x: Tensor, pattern: str) -> list[Tensor]:
    """The photosites of each CFA site of an (H, W) mosaic, in packed order."""
    return [x[r::2, c::2] for r, c in cell_offsets(pattern)]


def _offsets(x: Tensor, pattern: str) -> Tensor:
    """(H, W) map of each site's mean, to subtract."""
    means = torch.zeros(2, 2, dtype=x.dtype)
    for (r, c), site in zip(cell_offsets(pattern), _sites(x, pattern)):
        means[r, c] = site.mean()
    return means.repeat(x.shape[0] // 2, x.shape[1] // 2)


def fit_iso(darks: Sequence[Tensor], flats: Sequence[tuple[Tensor, Tensor]], pattern: str, iso: float,
            clip_dn: float) -> tuple[IsoFit, Tensor]:
    """The noise of one ISO from its dark frames and flat pairs (each (H, W), DN minus stated black).

    Returns the fit and the (H, W) boolean map of hot photosites, which are left out of every other
    figure (none with a single dark frame: one frame cannot tell a hot pixel from a spike of
    heavy-tailed read noise). ``clip_dn``: white minus the stated black; flat photosites within 2%
    of it are left out (clipping squeezes their noise).
    """
    centred = [d.to(torch.float64) - _offsets(d.to(torch.float64), pattern) for d in darks]
    hot = torch.zeros(centred[0].shape, dtype=torch.bool)
    if len(darks) > 1:
        hot = torch.stack([x > HOT_SIGMAS * x.std() for x in centred]).all(0)
    offsets, site_vars, row_vars, lams, scales = [], [], [], [], []
    for dark, x in zip(darks, centred):
        offsets.append(torch.stack([s[~h].mean() for s, h in zip(_sites(dark.to(torch.float64), pattern),
                                                                   _sites(hot, pattern))]))
        row_means = x.mean(dim=1)
        residual = x - row_means[:, None]
        row_vars.append(max(row_means.var().item() - x[~hot].var().item() / x.shape[1], 0.0))
        site_vars.append(torch.stack([s[~h].var() for s, h in zip(_sites(residual, pattern), _sites(hot, pattern))]))
        lam, scale, _ = _ppcc_fit(residual[~hot])
        lams.append(lam)
        scales.append(scale)
    read_var = (torch.stack(site_vars).mean(0) - QUANTISATION_VAR).clamp_min(0.0)
    offset = torch.stack(offsets).mean(0)
    gains = [_pair_gain(a, b, pattern, offset, read_var, hot, clip_dn) for a, b in flats]
    K = tuple(float(v) for v in torch.stack(gains).mean(0)) if gains else None
    fit = IsoFit(iso, tuple(offset.tolist()), tuple(read_var.sqrt().tolist()), math.sqrt(sum(row_vars) / len(row_vars)),
                 sum(lams) / len(lams), sum(scales) / len(scales), K, len(darks), len(flats))
    return fit, hot


def _pair_gain(a: Tensor, b: Tensor, pattern: str, offset: Tensor, read_var: Tensor, hot: Tensor,
               clip_dn: float) -> Tensor:
    """K per site (DN per electron) from two flat frames of one exposure: half the variance of their
    difference (row offsets removed) is K * level + read variance + rounding."""
    a, b = a.to(torch.float64), b.to(torch.float64)
    diff = a - b
    diff = diff - diff.mean(dim=1, keepdim=True)
    usable = (a < 0.98 * clip_dn) & (b < 0.98 * clip_dn) & ~hot
    level = (a + b) / 2
    gains = []
    for i, (d, m, u) in enumerate(zip(_sites(diff, pattern), _sites(level, pattern), _sites(usable, pattern))):
        signal = m[u].mean() - offset[i]
        if u.sum() < 100 or signal <= 0:
            raise ValueError("a flat pair needs light well above black and below white")
        gains.append((d[u].var() / 2 - read_var[i] - QUANTISATION_VAR) / signal)
    return torch.stack(gains)


def gain_fit(fits: Sequence[IsoFit]) -> tuple[float, float] | None:
    """(slope, intercept) of log K against log ISO over the ISOs with flats; with one such ISO, K is
    taken proportional to ISO (slope 1)."""
    points = [(math.log(f.iso), math.log(sum(f.K) / 4)) for f in fits if f.K is not None and min(f.K) > 0]
    if not points:
        return None
    if len(points) == 1:
        return 1.0, points[0][1] - points[0][0]
    x = torch.tensor([p[0] for p in points], dtype=torch.float64)
    y = torch.tensor([p[1] for p in points], dtype=torch.float64)
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    return float(slope), float(y.mean() - slope * x.mean())


def calibrate(darks: Sequence[Shot], flats: Sequence[Shot], pattern: str, white: float,
              black: Sequence[float], make: str | None = None, model: str | None = None) -> SensorCalibration:
    """A camera's calibration from dark frames (one or more per ISO) and flat frames (pairs of the same
    ISO and exposure time, paired in the order given). ``black``: the stated level per site (packed
    order), ``white`` the stated white, both in DN."""
    if not darks:
        raise ValueError("calibration needs at least one dark frame")
    shape = darks[0].mosaic.shape
    if any(s.mosaic.shape != shape for s in (*darks, *flats)):
        raise ValueError("all calibration frames must be the same size")
    clip_dn = white - max(black)
    fits, hot = [], torch.zeros(shape, dtype=torch.bool)
    for iso in sorted({s.iso for s in darks}):
        frames = [s.mosaic for s in darks if s.iso == iso]
        lit = [s for s in flats if s.iso == iso]
        pairs = []
        for time in dict.fromkeys(s.exposure_time for s in lit):
            same = [s.mosaic for s in lit if s.exposure_time == time]
            pairs += list(zip(same[0::2], same[1::2]))
        fit, hot_here = fit_iso(frames, pairs, pattern, iso, clip_dn)
        fits.append(fit)
        hot |= hot_here
    if any(s.iso not in {d.iso for d in darks} for s in flats):
        raise ValueError("flat frames need dark frames of the same ISO (for their read noise)")
    where = hot.nonzero().tolist()
    return SensorCalibration(make, model, float(white), tuple(float(b) for b in black), int(shape[1]), int(shape[0]),
                             tuple(fits), gain_fit(fits), tuple((int(r), int(c)) for r, c in where))
