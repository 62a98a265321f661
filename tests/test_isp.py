import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from exposed.imaging.bayer import PATTERNS, mosaic
from exposed.imaging.color import linear_to_srgb
from exposed.imaging.isp import demosaic, encode, render, tone_curve
from exposed.io.orientation import orient

from conftest import shared_file


def _bilinear(raw: torch.Tensor, pattern: str) -> torch.Tensor:
    """Reference: plain bilinear demosaicing by normalised convolution of each colour's samples."""
    masks = mosaic(torch.ones(1, 3, *raw.shape[-2:]).expand(3, -1, -1, -1) * torch.eye(3)[:, :, None, None], pattern)
    kernel = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]])[None, None] / 4
    out = []
    for c in range(3):
        m = masks[c:c + 1]
        num = F.conv2d(F.pad(raw * m, (1, 1, 1, 1), mode="reflect"), kernel)
        den = F.conv2d(F.pad(m, (1, 1, 1, 1), mode="reflect"), kernel)
        out.append(num / den)
    return torch.cat(out, dim=1)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_demosaic_keeps_measured_values_and_is_exact_on_linear_ramps(pattern):
    y, x = torch.meshgrid(torch.arange(32, dtype=torch.float64), torch.arange(48, dtype=torch.float64), indexing="ij")
    ramps = torch.stack([0.01 * x + 0.005 * y, 0.02 * y + 0.1, 0.3 - 0.003 * x + 0.004 * y])[None]
    raw = mosaic(ramps, pattern)
    out = torch.from_numpy(demosaic(raw[0, 0].numpy(), pattern)).double().permute(2, 0, 1)[None]
    torch.testing.assert_close(mosaic(out, pattern), raw, rtol=0, atol=1e-6)  # float32: the measured values kept
    torch.testing.assert_close(out[..., 3:-3, 3:-3], ramps[..., 3:-3, 3:-3], rtol=0, atol=2e-6)


def test_demosaic_beats_bilinear_on_a_photograph():
    from exposed.training.data import read_rgb8

    folder = shared_file("images", "val", "CBSD68")
    images = torch.stack([read_rgb8(p)[:, :320, :320].float() / 255 for p in sorted(folder.glob("*.png"))[:4]])
    for pattern in PATTERNS:
        raw = mosaic(images, pattern)
        def psnr(z):
            return 10 * math.log10(1 / ((z - images)[..., 4:-4, 4:-4] ** 2).mean().item())
        ours = torch.stack([torch.from_numpy(demosaic(r[0].numpy(), pattern)).permute(2, 0, 1) for r in raw])
        assert psnr(ours) > psnr(_bilinear(raw, pattern)) + 1.0


def test_white_balance_keeps_saturated_highlights_neutral():
    white = np.ones((8, 8), dtype=np.float32)  # a clipped highlight: every site at white
    out = render(white, "RGGB", np.array([2.0, 1.0, 1.5]), np.eye(3))
    assert (out == 255).all()
    grey = mosaic(torch.full((1, 3, 8, 8), 0.2), "RGGB")[0, 0].numpy()
    out = render(grey, "RGGB", np.array([2.0, 1.0, 1.5]), np.eye(3), bits=16)
    expected = np.round(65535 * linear_to_srgb(np.array([0.4, 0.2, 0.3])))
    np.testing.assert_allclose(out[4, 4], expected, atol=1)


@pytest.mark.parametrize("tone", [False, True])
def test_encoding_matches_the_exact_curves_in_float64(tone):
    linear = np.random.default_rng(0).random((1000, 3)).astype(np.float32) ** 3
    exact = linear_to_srgb(linear.astype(np.float64))
    exact = tone_curve(exact) if tone else exact
    assert np.abs(encode(linear, 8, tone).astype(int) - np.round(255 * exact)).max() <= 1
    assert np.abs(encode(linear, 16, tone).astype(int) - np.round(65535 * exact)).max() <= 1


def test_tone_curve_keeps_black_grey_white_and_order():
    x = torch.linspace(0, 1, 1001)
    y = tone_curve(x)
    assert y[0] == 0 and y[500] == pytest.approx(0.5) and y[-1] == 1
    assert (y[1:] >= y[:-1]).all() and y[250] < x[250] and y[750] > x[750]


@pytest.mark.parametrize("flip,k", [(0, 0), (3, 2), (5, 1), (6, -1)])
def test_orientation_codes_match_numpy_rotations(flip, k):
    image = torch.arange(2 * 3 * 4 * 5.0).view(2, 3, 4, 5)
    np.testing.assert_array_equal(orient(image, flip).numpy(), np.rot90(image.numpy(), k, axes=(-2, -1)))


def test_render_gives_display_values_and_grey_stays_grey():
    raw = mosaic(torch.full((1, 3, 8, 8), 0.18) / torch.tensor([2.0, 1.0, 1.5])[None, :, None, None], "RGGB")
    out = render(raw[0, 0].numpy(), "RGGB", np.array([2.0, 1.0, 1.5]), np.eye(3), bits=16)
    assert (out == out[0, 0, 0]).all()
    assert out[0, 0, 0] == pytest.approx(65535 * (1.055 * 0.18 ** (1 / 2.4) - 0.055), abs=1)


def test_render_is_one_pass_of_the_float64_pipeline():
    """Strips and threads change nothing: a frame taller than many strips against demosaicing,
    white balance, matrix and curve in float64 on the whole frame."""
    rng = np.random.default_rng(1)
    raw = rng.random((300, 64)).astype(np.float32) ** 2 * 1.2
    wb, matrix = np.array([1.9, 1.0, 1.4]), np.array([[1.5, -0.4, -0.1], [-0.2, 1.3, -0.1], [0.0, -0.5, 1.5]])
    rgb = demosaic(raw.clip(0, 1).astype(np.float64), "GBRG").astype(np.float64)  # linear: exact in float32 to 1e-6
    expected = np.round(65535 * linear_to_srgb((rgb * wb).clip(0, 1) @ matrix.T))
    assert np.abs(render(raw, "GBRG", wb, matrix, bits=16).astype(int) - expected).max() <= 2


def test_srgb_to_lab_matches_the_published_values_of_the_primaries():
    from exposed.imaging.color import srgb_to_lab

    colours = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]],
                           dtype=torch.float64)
    lab = srgb_to_lab(colours.T[None, :, :, None])[0, :, :, 0].T
    expected = torch.tensor([[100.0, 0.0, 0.0], [53.2408, 80.0925, 67.2032], [87.7347, -86.1827, 83.1793],
                             [32.2970, 79.1875, -107.8602], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(lab, expected, atol=2e-3, rtol=0)


@pytest.mark.parametrize("shape", [(6, 8), (2, 8), (6, 2), (2, 2)])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_padded_planes_are_the_packed_raw_reflected_as_numpy_pads_it(shape, pattern):
    """The demosaicing's input: one cell of reflection around the packed planes (an edge that is
    the only row or column mirrors onto itself), clipped to [0, 1] when asked."""
    from exposed.imaging.bayer import cell_offsets
    from exposed.imaging.isp import _padded_planes

    raw = np.random.default_rng(len(pattern) + shape[0]).uniform(-0.2, 1.3, shape).astype(np.float32)
    planes = np.stack([raw[r::2, c::2] for r, c in cell_offsets(pattern)])
    for clip in (False, True):
        expected = np.pad(planes.clip(0.0, 1.0) if clip else planes, ((0, 0), (1, 1), (1, 1)), mode="reflect")
        np.testing.assert_array_equal(_padded_planes(raw, pattern, clip), expected)
