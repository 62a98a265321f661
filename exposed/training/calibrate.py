"""Fitting the signal-independent noise of a sensor to a dark frame, and checking a fit against it.

A dark frame (lens capped, or a black scene) holds only read, row and quantisation noise, so it
calibrates the P+G and ELD read-noise terms of a camera; the shot-noise gain K needs lit frames or
a DNG NoiseProfile. The fits use plain moments and, for the Tukey-lambda shape, the probability-plot
correlation (PPCC) method that ELD used: the shape whose quantiles line up best with the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from exposed.sensor.noise import NoiseParams, add_noise, tukey_lambda_quantile

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
