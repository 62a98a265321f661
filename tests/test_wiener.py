"""The empirical Wiener filter in sliding DCT blocks, against a plain float64 reference and scipy."""

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import DEVICES
from exposed.imaging.wiener import dct_matrix, dct_wiener


def test_the_dct_matrix_is_scipys_orthonormal_dct_ii():
    fft = pytest.importorskip("scipy.fft")
    x = torch.randn(8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    d = dct_matrix(8, torch.float64)
    torch.testing.assert_close(d @ x, torch.from_numpy(fft.dct(x.numpy(), axis=0, norm="ortho")))
    torch.testing.assert_close(d @ d.T, torch.eye(8, dtype=torch.float64))


def reference(noisy, pilot, variance, block, stride, error=None):
    """Block by block in float64: every block starting a stride apart in the mirrored frame, its
    2-D DCT, gains (P^2 + e) / (P^2 + e + s2) with s2 the block's mean noise variance and e the
    image's pilot error, the block's estimate weighted by 1 / (s2 * sum of squared gains), and each
    pixel the weighted mean of its blocks'."""
    b, c, h, w = noisy.shape
    pad = block - stride
    pads = (pad, pad + (-w % stride), pad, pad + (-h % stride))
    x, p, v = (F.pad(t.double().reshape(b * c, 1, h, w), pads, mode="reflect")[:, 0] for t in (noisy, pilot, variance))
    d = dct_matrix(block, torch.float64)
    out, weight = torch.zeros_like(x), torch.zeros_like(x)
    errors = torch.zeros(b, dtype=torch.float64) if error is None else error.double()
    for n in range(x.shape[0]):
        for top in range(0, x.shape[1] - block + 1, stride):
            for left in range(0, x.shape[2] - block + 1, stride):
                window = (n, slice(top, top + block), slice(left, left + block))
                s2 = v[window].mean()
                power = (d @ p[window] @ d.T) ** 2 + errors[n // c]
                gain = power / (power + s2)
                share = 1.0 / (s2 * (gain**2).sum())
                out[window] += share * (d.T @ (gain * (d @ x[window] @ d.T)) @ d)
                weight[window] += share
    return (out / weight)[:, pad:pad + h, pad:pad + w].reshape(b, c, h, w)


@pytest.mark.parametrize("stride,shape,error", [(4, (1, 1, 24, 28), None), (2, (2, 3, 19, 17), None),
                                                (8, (1, 2, 21, 30), None), (4, (1, 1, 41, 26), None),
                                                (4, (2, 2, 20, 18), torch.tensor([3e-3, 1e-4]))])
def test_dct_wiener_matches_the_block_by_block_reference(stride, shape, error):
    g = torch.Generator().manual_seed(stride)
    truth = torch.rand(shape, generator=g)
    noisy = truth + 0.05 * torch.randn(shape, generator=g)
    pilot = truth + 0.02 * torch.randn(shape, generator=g)
    variance = 0.0025 * (0.5 + torch.rand(shape, generator=g))  # varies within blocks: their mean counts
    got = dct_wiener(noisy, pilot, variance, 0.0 if error is None else error, 8, stride)
    assert got.shape == shape and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), reference(noisy, pilot, variance, 8, stride, error), rtol=0, atol=2e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_dct_wiener_keeps_what_the_pilot_calls_signal_and_drops_what_it_calls_noise(device):
    """Its limits, no noise keeps the measurement and a pilot of nothing keeps nothing, and, the
    gains being the pilot's, the filter is linear in the measurement; on every device."""
    g = torch.Generator().manual_seed(0)
    noisy = torch.rand(1, 2, 20, 24, generator=g).to(device)
    pilot = torch.rand(1, 2, 20, 24, generator=g).to(device)
    quiet = torch.full_like(noisy, 1e-20)
    torch.testing.assert_close(dct_wiener(noisy, pilot, quiet), noisy, rtol=0, atol=1e-5)
    assert dct_wiener(noisy, torch.zeros_like(noisy), torch.full_like(noisy, 1e-3)).abs().max() == 0
    variance, other = torch.full_like(noisy, 1e-2), torch.rand(noisy.shape, generator=g).to(device)
    torch.testing.assert_close(dct_wiener(2 * noisy - other, pilot, variance),
                               2 * dct_wiener(noisy, pilot, variance) - dct_wiener(other, pilot, variance),
                               rtol=0, atol=1e-5)


def test_dct_wiener_denoises_texture_better_than_its_noisy_input_or_its_blurred_pilot():
    """A textured scene, Gaussian noise of known variance, and a pilot that is the noisy frame
    blurred (smooth, a little biased, like a small network's estimate): the filter keeps the
    texture the pilot shows and removes the noise, beating both of its inputs."""
    g = torch.Generator().manual_seed(1)
    y, x = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    truth = (0.4 + 0.2 * torch.sin(x / 3) * torch.cos(y / 5) + 0.1 * (x > 48)).expand(1, 1, 96, 96)
    sigma = 0.05
    noisy = truth + sigma * torch.randn(truth.shape, generator=g)
    pilot = F.avg_pool2d(noisy, 3, 1, 1, count_include_pad=False)
    out = dct_wiener(noisy, pilot, torch.full_like(noisy, sigma**2))

    def mse(a):
        return (a - truth).square().mean().item()

    assert mse(out) < 0.5 * mse(noisy)
    assert mse(out) < 0.9 * mse(pilot)
    assert math.isfinite(mse(out))
    # Told the pilot is rough, it keeps more of the measurement: between the two, nearer the noisy frame.
    rough = dct_wiener(noisy, pilot, torch.full_like(noisy, sigma**2), 1.0)
    assert mse(noisy) > mse(rough) > mse(out)
    assert (rough - noisy).abs().max() < 0.1 * sigma


def test_dct_wiener_wants_a_block_the_stride_divides():
    with pytest.raises(ValueError, match="multiple of stride"):
        dct_wiener(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16), torch.ones(1, 1, 16, 16), 0.0, 8, 3)
