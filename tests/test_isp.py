import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from exposed.imaging.bayer import PATTERNS, mosaic
from exposed.imaging.isp import demosaic, render, tone_curve, white_balance
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
    out = demosaic(raw, pattern)
    assert torch.equal(mosaic(out, pattern), raw)
    torch.testing.assert_close(out[..., 3:-3, 3:-3], ramps[..., 3:-3, 3:-3], rtol=0, atol=1e-12)


def test_demosaic_beats_bilinear_on_a_photograph():
    from exposed.training.data import read_rgb8

    folder = shared_file("images", "val", "CBSD68")
    images = torch.stack([read_rgb8(p)[:, :320, :320].float() / 255 for p in sorted(folder.glob("*.png"))[:4]])
    for pattern in PATTERNS:
        raw = mosaic(images, pattern)
        def psnr(z):
            return 10 * math.log10(1 / ((z - images)[..., 4:-4, 4:-4] ** 2).mean().item())
        assert psnr(demosaic(raw, pattern)) > psnr(_bilinear(raw, pattern)) + 1.0


def test_white_balance_keeps_saturated_highlights_neutral():
    image = torch.ones(1, 3, 2, 2)
    assert torch.equal(white_balance(image, torch.tensor([[2.0, 1.0, 1.5]])), image)
    grey = torch.full((1, 3, 1, 1), 0.2)
    torch.testing.assert_close(white_balance(grey, torch.tensor([[2.0, 1.0, 1.5]]))[0, :, 0, 0],
                               torch.tensor([0.4, 0.2, 0.3]))


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
    out = render(raw, "RGGB", torch.tensor([[2.0, 1.0, 1.5]]), torch.eye(3))
    torch.testing.assert_close(out, torch.full_like(out, out[0, 0, 0, 0].item()))
    assert out[0, 0, 0, 0].item() == pytest.approx(1.055 * 0.18 ** (1 / 2.4) - 0.055, rel=1e-5)


def test_srgb_to_lab_matches_the_published_values_of_the_primaries():
    from exposed.imaging.color import srgb_to_lab

    colours = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]],
                           dtype=torch.float64)
    lab = srgb_to_lab(colours.T[None, :, :, None])[0, :, :, 0].T
    expected = torch.tensor([[100.0, 0.0, 0.0], [53.2408, 80.0925, 67.2032], [87.7347, -86.1827, 83.1793],
                             [32.2970, 79.1875, -107.8602], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(lab, expected, atol=2e-3, rtol=0)
