import numpy as np
import pytest
import rawpy
import torch

from conftest import shared_file
from exposed.imaging.bayer import pack
from exposed.sensor.cameras import CAMERAS
from exposed.sensor.noise import NoiseParams, synthesize_dark
from exposed.sensor.estimate import estimate_noise, noise_level, parse_noise_profile


def _dark(K, sigma, level=0.3, ratio=20.0):
    y = torch.linspace(0.05, 1, 512)[:, None].expand(512, 512)
    clean = (level * y)[None, None]  # smooth: every level from dark to bright, no texture
    params = NoiseParams.create(K=K, read_sigma=sigma)
    dark = synthesize_dark(clean, torch.tensor([ratio]), params, torch.Generator().manual_seed(0))
    return pack(dark, "RGGB"), params


@pytest.mark.parametrize("K,sigma", [(3.0, 6.0), (1.0, 3.0), (8.0, 20.0)])
def test_single_image_estimate_recovers_poisson_gaussian_parameters(K, sigma):
    packed, params = _dark(K, sigma)
    scale = params.scale.item()
    fits = estimate_noise(packed, scale)
    assert np.mean([f.gain for f in fits]) == pytest.approx(K / scale, rel=0.1)
    assert np.mean([f.read_var for f in fits]) == pytest.approx(sigma**2 / scale**2, rel=0.2)
    for fit in fits:  # each site from a quarter of the photosites: its variance over the frame's levels
        assert fit.gain == pytest.approx(K / scale, rel=0.15)
        for x in (0.3 * 0.05 / 20, 0.3 * 0.5 / 20, 0.3 / 20):
            assert fit.gain * x + fit.read_var == pytest.approx((K * x * scale + sigma**2) / scale**2, rel=0.15)


def _frame(bits, black, iso, ratio, seed=0, site_sigma=(1.0, 1.0, 1.0, 1.0)):
    """A smooth ramp shot at ``ratio`` with the A7S II's noise at ``iso``, in whole DN of a
    ``bits``-bit file: the same electrons as the 14-bit calibration, 2^(bits - 14) DN each."""
    dn = 2.0 ** (bits - 14)
    cal = CAMERAS["sony-a7s2"].at_iso(iso)
    white = 2.0**bits - 1
    y = torch.linspace(0.0, 1.0, 768)[:, None].expand(768, 768)
    clean = (0.9 * y)[None, None]
    mosaics = []
    for site, factor in enumerate(site_sigma):  # each CFA site with its own read noise
        noise = NoiseParams.create(K=cal.K * dn, read_sigma=cal.read_sigma * dn * factor, black=black, white=white)
        mosaics.append(synthesize_dark(clean, torch.tensor([ratio]), noise, torch.Generator().manual_seed(seed + site),
                                       round_dn=True))
    full = torch.stack([pack(m, "RGGB")[:, i] for i, m in enumerate(mosaics)], dim=1)
    scale = white - black
    gain = (cal.K * dn / scale).item()
    read = [((cal.read_sigma * dn * f) ** 2 / scale**2).item() + 1 / (12 * scale**2) for f in site_sigma]
    return full, scale, -black / scale, gain, read


CASES = [(bits, black, iso, ratio) for bits, ratios in ((8, (1, 4, 16)), (12, (1, 10, 100)), (14, (1, 10, 100)))
         for black in (0, 2 ** (bits - 5)) for iso in (800, 6400) for ratio in ratios]


@pytest.mark.parametrize("bits,black,iso,ratio", CASES)
def test_the_estimate_is_within_a_quarter_of_the_true_variance_at_8_to_14_bits(bits, black, iso, ratio):
    """Over the levels the frame holds, from the middle of its darkest sixteenth to its brightest
    (0.9 / ratio of white), the clipped floor of black-0 files and the rounding to whole DN
    included: the variance the process is told is the one the frame has. (Below that, in a bright
    frame, read noise is too small beside shot noise for any fit to see, or to matter.)"""
    packed, scale, floor, gain, read = _frame(bits, black, iso, ratio)
    level = noise_level(packed, None, None, iso, scale, floor)
    assert level.source.startswith("estimated from the picture"), level.notes
    for x in torch.linspace(0.9 / ratio / 32, 0.9 / ratio, 5).tolist():
        for site in range(4):
            estimate = level.site_gain[site] * x + level.site_read_var[site]
            assert estimate == pytest.approx(gain * x + read[site], rel=0.25), (x, site)


def test_each_cfa_site_gets_its_own_read_noise():
    packed, scale, floor, gain, read = _frame(14, 512, 3200, 100, site_sigma=(1.3, 1.0, 1.0, 1.25))
    level = noise_level(packed, None, None, 3200, scale, floor)
    np.testing.assert_allclose(level.site_read_var, read, rtol=0.15)
    assert level.site_read_var[0] > 1.3 * level.site_read_var[1]


def test_a_clean_8_bit_file_is_never_said_to_be_quieter_than_its_quantisation():
    # A machine-vision camera, well lit: read noise and shot noise far below one DN.
    noise = NoiseParams.create(K=0.002, read_sigma=0.05, black=0.0, white=255.0)
    y = torch.linspace(0.0, 1.0, 512)[:, None].expand(512, 512)
    dark = synthesize_dark((0.2 * y)[None, None], torch.tensor([1.0]), noise, torch.Generator().manual_seed(0),
                           round_dn=True)
    level = noise_level(pack(dark, "RGGB"), None, None, None, 255.0, 0.0)
    assert min(level.site_read_var) >= 1 / (12 * 255.0**2)
    assert level.gain * 0.1 + level.read_var == pytest.approx(0.002 * 0.1 / 255 + (0.05**2 + 1 / 12) / 255**2, rel=0.3)


def test_sources_in_order_of_trust_and_why_one_is_passed_over():
    packed, _ = _dark(3.0, 6.0)
    assert noise_level(packed, "1e-4,2e-7", [(5e-5, 1e-7)], 800).source == "--noise-profile"
    tagged = noise_level(packed, None, [(5e-5, 1e-7), (7e-5, 3e-7)], 800)
    assert tagged.source == "DNG NoiseProfile tag" and tagged.gain == pytest.approx(6e-5)
    per_plane = noise_level(packed, None, [(5e-5, 1e-7), (6e-5, 2e-7), (7e-5, 3e-7)], 800)
    assert per_plane.site_gain == (5e-5, 6e-5, 6e-5, 7e-5)
    assert noise_level(packed, None, None, 800).source == "estimated from the picture"
    nonsense = noise_level(packed, None, [(1.4e-22, 0.0)], 800)  # a tag no sensor could have
    assert nonsense.source == "estimated from the picture"
    assert "NoiseProfile tag passed over: gain 1.4e-22 is outside" in nonsense.notes[0]
    tiny = torch.zeros(1, 4, 4, 4)
    level = noise_level(tiny, None, None, 800)
    assert level.source == "default for ISO 800" and "too few photosites" in level.notes[0]
    assert "no ISO" in noise_level(tiny, None, None, None).source


def test_the_pixel_7_dark_frame_gives_its_read_noise_per_site():
    """A real dark frame: its shot noise cannot be seen (no light), its read noise per CFA site can.
    The reference is the plain standard deviation of each site's photosites."""
    with rawpy.imread(str(shared_file("raw", "pixel7-dark-frame.dng"))) as raw:
        values = raw.raw_image_visible.astype(np.float64)
        black = np.asarray(raw.black_level_per_channel, dtype=np.float64)[raw.raw_pattern[:2, :2]]
        white = float(raw.white_level)
        assert raw.raw_pattern[0, 0] == 0  # RGGB, so the packed order is the cell order
    h, w = values.shape
    values = values[: h & ~1, : w & ~1]
    scale = white - black.mean()
    cells = [values[r::2, c::2] - black[r, c] for r, c in ((0, 0), (0, 1), (1, 0), (1, 1))]
    packed = torch.from_numpy(np.stack(cells) / scale)[None].float()
    fits = estimate_noise(packed, scale, float(-black.min() / scale))
    measured = [c.std() for c in cells]  # 8.8 / 7.6 / 7.7 / 8.7 DN
    for fit, sigma in zip(fits, measured):
        assert fit.gain is None
        assert np.sqrt(fit.read_var) * scale == pytest.approx(sigma, rel=0.1)


def test_bad_profiles_are_explained():
    with pytest.raises(ValueError, match="S,O"):
        parse_noise_profile("0.1")
    with pytest.raises(ValueError, match="S > 0"):
        parse_noise_profile("-1,0")
