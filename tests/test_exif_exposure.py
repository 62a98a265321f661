import math
from types import SimpleNamespace

import numpy as np
import pytest
import rawpy
import torch

from exposed.io.exif import ExifInfo, iso_from_tags, read_exif
from exposed.exposure import METERED_GREY, brighten, choose_ratio, meter_ratio, signal_ratio, statistics_ratio

from conftest import shared_file, synthetic_dng


def test_iso_fallback_chain_past_65535():
    assert iso_from_tags({}) == (None, None)
    assert iso_from_tags({"a": SimpleNamespace(tag=0x8827, values=[800])}) == (800, "ISOSpeedRatings")
    tags = {"a": SimpleNamespace(tag=0x8827, values=[65535]), "b": SimpleNamespace(tag=0x8830, values=[2]),
            "c": SimpleNamespace(tag=0x8832, values=[102400])}
    assert iso_from_tags(tags) == (102400, "RecommendedExposureIndex")
    tags["b"] = SimpleNamespace(tag=0x8830, values=[3])
    tags["d"] = SimpleNamespace(tag=0x8833, values=[204800])
    assert iso_from_tags(tags) == (204800, "ISOSpeed")


def test_exif_agrees_with_libraw_on_a_real_file():
    path = shared_file("raw", "pixel7-dark-frame.dng")
    exif = read_exif(path)
    with rawpy.imread(str(path)) as raw:
        other = raw.other
    assert exif.iso == other.iso_speed
    assert exif.exposure_time == pytest.approx(other.shutter_speed, rel=1e-6)
    assert exif.f_number == pytest.approx(other.aperture, rel=1e-6)
    assert (exif.make, exif.model) == ("Google", "Pixel 7")


def test_missing_exif_is_normal(tmp_path):
    empty = read_exif(shared_file("raw", "blackmagic-pocket-4k.dng"))
    assert empty.iso is None and empty.exposure_time is None
    garbage = tmp_path / "x.bin"
    garbage.write_bytes(b"\x00" * 100)
    assert read_exif(garbage) == ExifInfo()


def test_generated_dng_exif_is_read_back(tmp_path):
    exif = read_exif(synthetic_dng(tmp_path / "a.dng", exposure_time=1 / 60, f_number=2.8, iso=6400))
    assert (exif.exposure_time, exif.f_number, exif.iso) == (pytest.approx(1 / 60), 2.8, 6400)


def test_ratio_from_an_exif_pair():
    shot = ExifInfo(exposure_time=1 / 30, f_number=2.8, iso=800)
    # Raw signal goes with time x ISO / N^2: 1 s at ISO 3200, f/5.6 is 30 x 4 / 4 = 30 times the light.
    expected = (1.0 * 3200 / 5.6**2) / ((1 / 30) * 800 / 2.8**2)
    assert signal_ratio(shot, 1.0, 3200, 5.6) == pytest.approx(expected)
    assert signal_ratio(shot, 1.0) == pytest.approx(30.0)
    with pytest.raises(ValueError, match="exposure time"):
        signal_ratio(ExifInfo(), 1.0)


def test_meter_ratio_follows_apex():
    # A shot exactly at the meter's exposure: Bv + Sv = Av + Tv.
    exif = ExifInfo(exposure_time=1 / 8, f_number=2.0, iso=100, brightness=0.0)
    sv, av, tv = math.log2(100 / 3.125), 2.0, 3.0
    assert meter_ratio(exif) == pytest.approx(2 ** (0 + sv - av - tv))
    assert meter_ratio(ExifInfo(iso=100)) is None


def _flat(level, shape=(1, 4, 64, 64)):
    return torch.full(shape, level)


def test_statistics_ratio_brings_the_average_to_metered_grey():
    ratio, _ = statistics_ratio(_flat(0.001), torch.ones(3))
    assert ratio == pytest.approx(METERED_GREY / 0.001, rel=1e-4)
    noise = torch.randn(1, 4, 256, 256, generator=torch.Generator().manual_seed(0))
    noisy = _flat(0.001, (1, 4, 256, 256)) + 0.002 * noise
    assert statistics_ratio(noisy, torch.ones(3))[0] == pytest.approx(METERED_GREY / 0.001, rel=0.05)


def test_hot_pixels_do_not_move_the_ratio_but_large_highlights_hold_it_back():
    image = _flat(0.001, (1, 4, 256, 256)).clone()
    hot = torch.rand(1, 4, 256, 256, generator=torch.Generator().manual_seed(0)) < 0.001
    image[hot] = 1.0
    assert statistics_ratio(image, torch.ones(3))[0] == pytest.approx(METERED_GREY / 0.001, rel=0.05)
    lamps = _flat(0.0005, (1, 4, 256, 256)).clone()
    lamps[..., :16, :80] = 1.0  # 2% of the frame is burnt-out lamps: the average alone would clip them by 3 stops
    ratio, reason = statistics_ratio(lamps, torch.ones(3))
    assert ratio == pytest.approx(4.0, rel=0.01) and "held back" in reason


def test_choices_and_clamping():
    packed, wb, exif = _flat(0.01), torch.ones(3), ExifInfo(exposure_time=0.01, iso=100, f_number=2)
    assert choose_ratio(packed, wb, exif, (1, 300), ev=3).ratio == pytest.approx(8)
    assert choose_ratio(packed, wb, exif, (1, 300), target_exposure=1.0).ratio == pytest.approx(100)
    clamped = choose_ratio(packed, wb, exif, (1, 300), ratio=1000)
    assert clamped.ratio == 300 and "outside" in clamped.warning
    assert choose_ratio(packed, wb, exif, (1, 300)).source == "auto"


def test_brighten_is_the_ratio_times_the_frame_with_clipped_photosites_white_for_arrays_and_tensors():
    """Against the float64 formula, per image of a batch; the default mask is the dark frame at or
    above white; numpy arrays and torch tensors give the same float32 result."""

    dark = np.random.default_rng(3).random((2, 4, 6, 8)) * 1.1  # some photosites above white
    ratio = np.array([3.0, 50.0])
    clipped = dark >= 1.0
    expected = np.where(clipped, 1.0, dark * ratio[:, None, None, None])
    as_array = brighten(dark.astype(np.float32), ratio)
    as_tensor = brighten(torch.from_numpy(dark.astype(np.float32)), torch.from_numpy(ratio))
    assert as_array.dtype == np.float32 and as_tensor.dtype == torch.float32
    np.testing.assert_allclose(as_array, expected, rtol=1e-6)
    np.testing.assert_allclose(as_tensor.numpy(), expected, rtol=1e-6)
    mask = np.zeros_like(clipped)
    mask[0, 0, 0, 0] = True  # a mask given: only it is held white
    held = brighten(dark.astype(np.float32), ratio, mask)
    assert held[0, 0, 0, 0] == 1.0
    np.testing.assert_allclose(held[~mask], (dark * ratio[:, None, None, None])[~mask], rtol=1e-6)
