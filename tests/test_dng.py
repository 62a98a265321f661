"""The DNG writer, read back by LibRaw (rawpy), exifread and tifffile: independent readers."""

from __future__ import annotations


import numpy as np
import pytest
import rawpy
import tifffile

from exposed.io import dng
from exposed.imaging.bayer import PATTERNS
from exposed.imaging.color import CAMERA_XYZ, D65, STANDARD_A, Calibration, calibration_from_srgb
from exposed.io.dng import DngMetadata, write_dng
from exposed.io.orientation import TIFF_ORIENTATION
from exposed.io.exif import ExifInfo, read_exif
from exposed.io.raw import read_raw
from conftest import shared_file

SONY = CAMERA_XYZ["Sony ILCE-7S / 7S II"]
CANON = CAMERA_XYZ["Canon EOS 70D / 6D"]
SHOT = ExifInfo(exposure_time=1 / 250, f_number=1.8, iso=12800, exposure_bias=-0.7, make="Sony", model="ILCE-7SM2",
                lens="FE 35mm F1.8", focal_length=35.0, datetime="2026:11:23 21:04:05")


def _proportional(a: np.ndarray, b: np.ndarray) -> bool:
    """Colour matrices mean the same up to scale (DNG readers normalise them)."""
    return np.allclose(a / np.abs(a).sum(), b / np.abs(b).sum(), atol=1e-6)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_cfa_dng_reads_back_in_libraw_exactly(tmp_path, pattern):
    rng = np.random.default_rng(PATTERNS.index(pattern))
    pixels = rng.integers(0, 16384, (48, 70)).astype(np.uint16)
    black = np.array([[510.0, 512.0], [514.0, 516.0]])
    neutral = np.array([0.5, 1.0, 0.625])
    meta = DngMetadata(pattern=pattern, black=black, white=16383, as_shot_neutral=neutral, exif=SHOT,
                       calibrations=(Calibration(STANDARD_A, CANON), Calibration(D65, SONY, np.eye(3))))
    path = write_dng(tmp_path / "x.dng", pixels, meta)
    with rawpy.imread(str(path)) as raw:
        assert np.array_equal(raw.raw_image, pixels)
        letters = "".join(chr(raw.color_desc[i]) for i in raw.raw_pattern.flatten())
        assert letters == pattern and raw.num_colors == 3
        cell = raw.raw_pattern[:2, :2]
        assert np.array_equal(np.asarray(raw.black_level_per_channel)[cell], black)
        assert raw.white_level == 16383
        wb = np.asarray(raw.camera_whitebalance[:3])
        assert np.allclose(wb / wb[1], 1 / neutral, rtol=1e-5)
    # exposed's reader (exifread) gets both calibrations back; LibRaw's own colour conversion, built
    # from the D65 matrix, inverts to the same matrix.
    image = read_raw(path)
    assert [c.illuminant for c in image.calibrations] == [STANDARD_A, D65]
    assert np.allclose(image.calibrations[0].colour_matrix, CANON, atol=1e-4)
    assert np.allclose(image.calibrations[1].colour_matrix, SONY, atol=1e-4)
    assert np.allclose(image.calibrations[1].forward_matrix, np.eye(3)) and image.calibrations[0].forward_matrix is None
    assert _proportional(calibration_from_srgb(image.cam_to_srgb, image.daylight_wb).colour_matrix, SONY)


@pytest.mark.parametrize("flip", sorted(TIFF_ORIENTATION))
def test_orientation_round_trips_through_libraw(tmp_path, flip):
    meta = DngMetadata(calibrations=(Calibration(D65, SONY),), orientation=TIFF_ORIENTATION[flip])
    path = write_dng(tmp_path / "o.dng", np.arange(32 * 48, dtype=np.uint16).reshape(32, 48), meta)
    with rawpy.imread(str(path)) as raw:
        assert raw.sizes.flip == flip


def test_exif_reads_back_with_exifread_and_tifffile(tmp_path):
    path = write_dng(tmp_path / "e.dng", np.ones((16, 16), np.uint16),
                     DngMetadata(calibrations=(Calibration(D65, SONY),), exif=SHOT))
    back = read_exif(path)
    assert back.exposure_time == pytest.approx(SHOT.exposure_time)
    assert back.f_number == pytest.approx(1.8) and back.iso == 12800 and back.iso_source == "ISOSpeedRatings"
    assert back.exposure_bias == pytest.approx(-0.7, abs=1e-4) and back.focal_length == pytest.approx(35.0)
    assert (back.make, back.model, back.lens, back.datetime) == ("Sony", "ILCE-7SM2", "FE 35mm F1.8",
                                                                "2026:11:23 21:04:05")
    with tifffile.TiffFile(path) as tif:
        exif = tif.pages[0].tags["ExifTag"].value
        assert exif["ISOSpeedRatings"] == 12800 and exif["LensModel"] == "FE 35mm F1.8"
        assert tif.pages[0].tags["UniqueCameraModel"].value == "Sony ILCE-7SM2"


def test_iso_above_the_short_range_goes_to_recommended_exposure_index(tmp_path):
    shot = ExifInfo(iso=204800, make="Sony", model="ILCE-7SM3")
    path = write_dng(tmp_path / "hi.dng", np.ones((16, 16), np.uint16),
                     DngMetadata(calibrations=(Calibration(D65, SONY),), exif=shot))
    back = read_exif(path)
    assert back.iso == 204800 and back.iso_source == "RecommendedExposureIndex"


def test_linear_dng_reads_back_in_libraw_exactly(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 65536, (30, 44, 3)).astype(np.uint16)
    path = write_dng(tmp_path / "l.dng", pixels, DngMetadata(calibrations=(Calibration(D65, SONY),)))
    with rawpy.imread(str(path)) as raw:
        assert raw.raw_pattern is None and raw.num_colors == 3 and raw.white_level == 65535
        assert np.array_equal(raw.raw_image[..., :3], pixels)


def test_a_camera_known_by_its_unique_model_only_gets_make_and_model_as_libraw_reads_them(tmp_path):
    meta = DngMetadata(calibrations=(Calibration(D65, SONY),), unique_camera_model="Blackmagic Pocket Cinema Camera 4K")
    path = write_dng(tmp_path / "b.dng", np.ones((16, 16), np.uint16), meta)
    back = read_exif(path)
    assert (back.make, back.model) == ("Blackmagic", "Pocket Cinema Camera 4K")


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    meta = DngMetadata(calibrations=(Calibration(D65, SONY),))

    def fail(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dng, "append_exif_ifd", fail)
    with pytest.raises(OSError):
        write_dng(tmp_path / "f.dng", np.ones((16, 16), np.uint16), meta)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("pixels, meta, words", [
    (np.ones((16, 16), np.float32), DngMetadata(calibrations=(Calibration(D65, SONY),)), "uint16"),
    (np.ones((16, 16), np.uint16), DngMetadata(pattern="RGBG", calibrations=(Calibration(D65, SONY),)), "pattern"),
    (np.ones((16, 16), np.uint16), DngMetadata(), "colour calibration"),
])
def test_bad_requests_are_refused_before_anything_is_written(tmp_path, pixels, meta, words):
    with pytest.raises(ValueError, match=words):
        write_dng(tmp_path / "bad.dng", pixels, meta)
    assert list(tmp_path.iterdir()) == []


def test_calibration_derived_from_libraws_matrix_maps_white_to_the_daylight_neutral():
    srgb_to_cam = np.array([[0.7, 0.25, 0.05], [0.1, 0.8, 0.1], [0.02, 0.18, 0.8]])
    wb = np.array([2.1, 1.0, 1.6])
    derived = calibration_from_srgb(np.linalg.inv(srgb_to_cam), wb)
    d65_white = np.array([0.95047, 1.0, 1.08883])
    neutral = derived.colour_matrix @ d65_white
    assert derived.illuminant == D65
    assert np.allclose(neutral, 1 / wb, rtol=1e-4)


def test_written_files_get_ordinary_permissions(tmp_path):
    import os

    path = write_dng(tmp_path / "p.dng", np.ones((16, 16), np.uint16),
                     DngMetadata(calibrations=(Calibration(D65, SONY),)))
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_blackmagic_calibrations_and_camera_name_come_from_the_file():
    image = read_raw(shared_file("raw", "blackmagic-pocket-4k.dng"))
    assert image.unique_camera_model == "Blackmagic Pocket Cinema Camera 4K"
    assert [c.illuminant for c in image.calibrations] == [STANDARD_A, D65]
    assert all(c.forward_matrix is not None for c in image.calibrations)
    assert _proportional(calibration_from_srgb(image.cam_to_srgb, image.daylight_wb).colour_matrix,
                         image.calibrations[1].colour_matrix)
