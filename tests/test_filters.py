"""The guided filter against its definition computed window by window in float64, and the noise
level estimate against noise of known standard deviation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exposed.imaging.filters import box_mean, guided_filter, noise_sigma


def _guided_reference(x: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al.'s filter for one channel, by loops: each window's least-squares a, b (guide = input),
    then each pixel's mean of the a, b of the windows covering it; borders reflected."""
    padded = np.pad(x, r, mode="reflect")
    h, w = x.shape
    a = np.empty((h, w))
    b = np.empty((h, w))
    for i in range(h):
        for j in range(w):
            window = padded[i:i + 2 * r + 1, j:j + 2 * r + 1]
            mean, var = window.mean(), window.var()
            a[i, j] = var / (var + eps)
            b[i, j] = mean - a[i, j] * mean
    pa, pb = np.pad(a, r, mode="reflect"), np.pad(b, r, mode="reflect")
    mean_a = np.array([[pa[i:i + 2 * r + 1, j:j + 2 * r + 1].mean() for j in range(w)] for i in range(h)])
    mean_b = np.array([[pb[i:i + 2 * r + 1, j:j + 2 * r + 1].mean() for j in range(w)] for i in range(h)])
    return mean_a * x + mean_b


@pytest.mark.parametrize("radius", [1, 2])
def test_guided_filter_matches_its_definition(radius: int) -> None:
    rng = np.random.default_rng(0)
    image = rng.random((2, 3, 9, 11))
    eps = np.array([1e-3, 3e-2])
    out = guided_filter(torch.from_numpy(image), radius, torch.from_numpy(eps)).numpy()
    for n in range(2):
        for c in range(3):
            np.testing.assert_allclose(out[n, c], _guided_reference(image[n, c], radius, eps[n]), atol=1e-12)


def test_guided_filter_limits_keep_edges_and_flatten_noise() -> None:
    """eps far below every window's variance: the image unchanged; far above: a mean of means."""
    image = torch.rand(1, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(guided_filter(image, 1, 1e-12), image, atol=1e-8, rtol=0)
    torch.testing.assert_close(guided_filter(image, 1, 1e12), box_mean(box_mean(image, 1), 1), atol=1e-10, rtol=0)
    step = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    step[..., 8:] = 1.0  # an edge of variance 0.25 in its windows against eps 1e-4: kept
    assert float((guided_filter(step, 1, 1e-4) - step).abs().max()) < 1e-3


@pytest.mark.parametrize("sigma", [0.004, 0.02, 0.05])
def test_noise_sigma_reads_known_white_noise(sigma: float) -> None:
    """A smooth scene (a ramp and a slow wave, which the mask cancels almost exactly) plus white noise."""
    generator = torch.Generator().manual_seed(2)
    y, x = torch.meshgrid(torch.linspace(0, 1, 256, dtype=torch.float64),
                          torch.linspace(0, 1, 320, dtype=torch.float64), indexing="ij")
    scene = (0.3 + 0.4 * x + 0.1 * torch.sin(3 * y)).expand(2, 3, -1, -1)
    noisy = scene + sigma * torch.randn(scene.shape, generator=generator, dtype=torch.float64)
    estimate = noise_sigma(noisy)
    assert estimate.shape == (2,)
    np.testing.assert_allclose(estimate.numpy(), sigma, rtol=0.05)
    assert float(noise_sigma(scene).max()) < 1e-3 * sigma


def test_guided_filter_with_eps_zero_keeps_flat_and_detailed_areas() -> None:
    """A noise-free photo reads noise 0, so eps is 0: flat windows (variance 0) must not divide 0 by 0."""
    image = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    image[..., 4:] = 0.5
    image[..., 0, 0] = 0.25
    out = guided_filter(image, 1, 0.0)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, image, atol=1e-12, rtol=0)


def test_guided_filter_in_bands_equals_one_pass() -> None:
    image = torch.rand(1, 3, 37, 23, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    for radius in (1, 2):
        whole = torch.from_numpy(np.stack([_guided_reference(c.numpy(), radius, 1e-2) for c in image[0]]))[None]
        for rows in (1, 5, 16):
            torch.testing.assert_close(guided_filter(image, radius, 1e-2, rows=rows), whole, atol=1e-12, rtol=0)


def test_noise_sigma_is_the_median_response_to_immerkaers_mask() -> None:
    """Every row (samples above the pixel count) against the mask applied by float64 loops."""
    rng = np.random.default_rng(5)
    image = rng.random((1, 2, 12, 15))
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    medians = []
    for channel in image[0]:
        response = [abs((channel[i - 1:i + 2, j - 1:j + 2] * mask).sum()) for i in range(1, 11) for j in range(1, 14)]
        medians.append(np.sort(response)[(len(response) - 1) // 2])  # torch's median: the lower middle value
    expected = np.mean(medians) / (0.6745 * 6)
    assert float(noise_sigma(torch.from_numpy(image), samples=10**6)[0]) == pytest.approx(expected, rel=1e-12)
