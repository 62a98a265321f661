import pytest
import torch

from exposed.imaging.bayer import PATTERNS, cell_offsets, mosaic, pack, unpack


@pytest.mark.parametrize("pattern", PATTERNS)
def test_pack_then_unpack_is_exact(pattern):
    raw = torch.randint(0, 65536, (3, 1, 6, 10)).float()
    packed = pack(raw, pattern)
    assert packed.shape == (3, 4, 3, 5)
    assert torch.equal(unpack(packed, pattern), raw)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_packed_channels_are_red_green_green_blue_for_every_order(pattern):
    rgb = torch.tensor([0.1, 0.5, 0.9])[None, :, None, None].expand(2, 3, 8, 8)
    packed = pack(mosaic(rgb, pattern), pattern)
    for channel, value in enumerate([0.1, 0.5, 0.5, 0.9]):
        assert torch.all(packed[:, channel] == value)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_mosaic_keeps_the_filter_colour_at_each_photosite(pattern):
    rgb = torch.rand(1, 3, 4, 6)
    raw = mosaic(rgb, pattern)
    index = {"R": 0, "G": 1, "B": 2}
    for y in range(4):
        for x in range(6):
            colour = pattern[2 * (y % 2) + x % 2]
            assert raw[0, 0, y, x] == rgb[0, index[colour], y, x]


def test_greens_sharing_a_row_with_red_come_first():
    # RGGB: G1 is at (0, 1) beside red; BGGR: red is at (1, 1), so G1 is at (1, 0).
    assert cell_offsets("RGGB") == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert cell_offsets("BGGR") == [(1, 1), (1, 0), (0, 1), (0, 0)]
    assert cell_offsets("GRBG") == [(0, 1), (0, 0), (1, 1), (1, 0)]


def test_odd_sizes_and_unknown_patterns_are_refused():
    with pytest.raises(ValueError, match="even"):
        pack(torch.zeros(1, 1, 5, 4), "RGGB")
    with pytest.raises(ValueError, match="unsupported Bayer pattern"):
        pack(torch.zeros(1, 1, 4, 4), "RGBG")
