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


def reference(noisy, pilot, variance, block, stride, error=None, residual=0.0, quincunx=False):
    """Block by block in float64: every block starting a stride apart in the mirrored frame, its
    2-D DCT, gains (P^2 + e) / (P^2 + e + s2) with s2 the block's mean noise variance and e the
    image's pilot error (or the block's mean of a map of it) plus ``residual`` times the block's
    mean squared difference of noisy and pilot beyond s2 (over the image's planes, at least 0), the
    block's estimate weighted by 1 / (s2 * sum of squared gains), and each pixel the weighted mean
    of its blocks'. ``quincunx``: only the blocks whose start row and column, in strides, sum to
    an even number."""
    b, c, h, w = noisy.shape
    pad = block - stride
    pads = (pad, pad + (-w % stride), pad, pad + (-h % stride))
    if error is None:
        error = torch.zeros(b)
    if error.dim() == 1:  # one per image: a constant map
        error = error.reshape(b, 1, 1, 1).expand(b, 1, h, w)
    error = error.expand(b, c, h, w)
    x, p, v, e = (F.pad(t.double().reshape(b * c, 1, h, w), pads, mode="reflect")[:, 0]
                  for t in (noisy, pilot, variance, error))
    d = dct_matrix(block, torch.float64)
    out, weight = torch.zeros_like(x), torch.zeros_like(x)
    for n in range(x.shape[0]):
        for top in range(0, x.shape[1] - block + 1, stride):
            for left in range(0, x.shape[2] - block + 1, stride):
                if quincunx and (top // stride + left // stride) % 2:
                    continue
                window = (n, slice(top, top + block), slice(left, left + block))
                s2 = v[window].mean()
                planes = (slice(n // c * c, n // c * c + c), window[1], window[2])
                excess = ((x[planes] - p[planes]).square() - v[planes]).mean().clamp_min(0.0)
                power = (d @ p[window] @ d.T) ** 2 + e[window].mean() + residual * excess
                gain = power / (power + s2)
                share = 1.0 / (s2 * (gain**2).sum())
                out[window] += share * (d.T @ (gain * (d @ x[window] @ d.T)) @ d)
                weight[window] += share
    return (out / weight)[:, pad:pad + h, pad:pad + w].reshape(b, c, h, w)


@pytest.mark.parametrize("stride,shape,error", [(4, (1, 1, 24, 28), None), (2, (2, 3, 19, 17), None),
                                                (8, (1, 2, 21, 30), None), (4, (1, 1, 41, 26), None),
                                                (4, (2, 2, 20, 18), torch.tensor([3e-3, 1e-4])),
                                                (4, (2, 3, 22, 19), "map")])
@pytest.mark.parametrize("residual", [0.0, 1.0])
def test_dct_wiener_matches_the_block_by_block_reference(stride, shape, error, residual):
    if error == "map":  # a pilot trusted less in a corner of each image, by a different amount
        error = torch.zeros(shape[0], 1, *shape[2:])
        error[0, :, :7, :5], error[1, :, 9:, 12:] = 3e-3, 1e-2
    g = torch.Generator().manual_seed(stride)
    truth = torch.rand(shape, generator=g)
    noisy = truth + 0.05 * torch.randn(shape, generator=g)
    pilot = truth + 0.02 * torch.randn(shape, generator=g)
    variance = 0.0025 * (0.5 + torch.rand(shape, generator=g))  # varies within blocks: their mean counts
    pilot[..., :6, :6] += 0.2  # wrong in one corner: evidence of the pilot's error there
    got = dct_wiener(noisy, pilot, variance, 0.0 if error is None else error, 8, stride, residual)
    assert got.shape == shape and got.dtype == torch.float32
    expected = reference(noisy, pilot, variance, 8, stride, error, residual)
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("stride,shape", [(2, (1, 2, 23, 30)), (4, (2, 1, 19, 26)), (1, (1, 1, 13, 11))])
def test_dct_wiener_on_a_quincunx_matches_the_block_by_block_reference(stride, shape):
    g = torch.Generator().manual_seed(11 + stride)
    truth = torch.rand(shape, generator=g)
    noisy = truth + 0.05 * torch.randn(shape, generator=g)
    pilot = truth + 0.02 * torch.randn(shape, generator=g)
    variance = 0.0025 * (0.5 + torch.rand(shape, generator=g))
    got = dct_wiener(noisy, pilot, variance, 1e-4, 8, stride, quincunx=True)
    expected = reference(noisy, pilot, variance, 8, stride, torch.full((shape[0],), 1e-4), quincunx=True)
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=2e-6)


def test_a_quincunx_denoises_better_than_its_sparse_lattice_and_nearly_as_well_as_the_full_one():
    g = torch.Generator().manual_seed(5)
    y, x = torch.meshgrid(torch.arange(96.0), torch.arange(96.0), indexing="ij")
    truth = (0.5 + 0.3 * torch.sin(x / 3.0) * torch.cos(y / 5.0))[None, None].repeat(1, 2, 1, 1)
    noisy = truth + 0.05 * torch.randn(truth.shape, generator=g)
    pilot = truth + 0.03 * torch.randn(truth.shape, generator=g)  # a rough pilot: averaging more blocks pays
    variance = torch.full(truth.shape, 0.0025)
    error = {name: (dct_wiener(noisy, pilot, variance, 1e-4, 8, stride, quincunx=name == "quincunx")
                    - truth).square().mean().item()
             for name, stride in (("sparse", 4), ("quincunx", 2), ("full", 2))}
    assert error["full"] <= error["quincunx"] < error["sparse"] < 0.05**2
    assert error["quincunx"] - error["full"] < (error["sparse"] - error["full"]) / 2  # most of the full's gain


def test_a_quincunx_wants_an_even_number_of_strides_to_a_block():
    x = torch.zeros(1, 1, 16, 16)
    with pytest.raises(ValueError, match="quincunx"):
        dct_wiener(x, x, x, stride=8, quincunx=True)


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


def test_dct_wiener_with_residual_error_distrusts_the_pilot_only_where_the_measurement_disproves_it():
    """A good pilot but for one patch where it shows a flat wrong tone (a network's blotch): with
    the blocks' own evidence weighted in, the patch comes back near the measurement's texture,
    and far from the patch (more than a block away) about as good as without it (there the
    evidence is noise alone, and now and then says a little error)."""
    g = torch.Generator().manual_seed(2)
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    truth = (0.4 + 0.2 * torch.sin(x / 2) * torch.cos(y / 3)).expand(1, 2, 64, 64).clone()
    sigma = 0.02
    noisy = truth + sigma * torch.randn(truth.shape, generator=g)
    pilot = truth.clone()
    pilot[..., 16:32, 16:32] = 0.6  # flat and wrong
    variance = torch.full_like(noisy, sigma**2)
    plain, checked = (dct_wiener(noisy, pilot, variance, residual_error=k) for k in (0.0, 1.0))
    patch = (..., slice(16, 32), slice(16, 32))

    far = torch.ones(64, 64, dtype=torch.bool)
    far[8:40, 8:40] = False

    def mse(a, where=patch):
        return (a[where] - truth[where]).square().mean().item()

    assert mse(checked) < 0.1 * mse(plain)
    assert mse(checked) < 2 * sigma**2
    assert mse(checked, (..., far)) < 1.2 * mse(plain, (..., far))
    assert mse(checked, (..., far)) < 0.25 * mse(noisy, (..., far))
