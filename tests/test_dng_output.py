"""``exposed enhance --format dng``: the enhanced raw, read back as a raw editor would."""

from __future__ import annotations

import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import rawpy
import tifffile

from conftest import shared_file, synthetic_dng, tiny_model
from exposed.imaging.isp import demosaic
from exposed.io.raw import read_raw


def run(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "exposed", *map(str, args)], capture_output=True, timeout=300,
                          **kwargs)


@pytest.fixture
def shot(tmp_path):
    return synthetic_dng(tmp_path / "a.dng", pattern="GRBG", exposure_time=1 / 50, iso=6400, f_number=2.8,
                         orientation=6, lens="FE 24mm F1.4 GM", datetime="2026:11:23 18:30:00")


def _tags(path):
    with tifffile.TiffFile(path) as tif:
        return {tag.name: tag.value for tag in tif.pages[0].tags.values()}


def test_the_dng_is_the_brightened_mosaic_with_the_sources_metadata(shot, tmp_path):
    done = run("enhance", shot, "-f", "dng", "--mode", "amplify", "--ratio", "20", "-o", f"{tmp_path}/out/")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out" / "a-exposed.dng"
    source, back = read_raw(shot), read_raw(out)
    expected = np.round(np.clip(source.normalised() * np.float32(20), 0, 1) * np.float32(65535))
    assert back.pattern == "GRBG" and back.white == 65535 and np.all(back.black == 0)
    assert np.abs(back.mosaic.astype(np.int64) - expected).max() <= 1
    assert back.orientation == source.orientation == 6
    assert np.allclose(back.wb, source.wb, rtol=1e-5)
    assert np.allclose(back.calibrations[0].colour_matrix, source.calibrations[0].colour_matrix, atol=1e-4)
    assert (back.exif.iso, back.exif.lens, back.exif.datetime) == (6400, "FE 24mm F1.4 GM", "2026:11:23 18:30:00")
    assert back.exif.exposure_time == pytest.approx(1 / 50) and back.unique_camera_model == "Sony ILCE-7SM2"
    tags = _tags(out)
    assert tags["NoiseReductionApplied"] == (0, 1) and tags["BaselineExposure"] == (0, 1)
    assert "x20 " in tags["ImageDescription"] and "not denoised" in tags["ImageDescription"]
    assert tags["OriginalRawFileName"] == "a.dng"


def test_the_dng_developed_as_is_gives_exposeds_own_picture(shot, tmp_path):
    """White balance, colour matrix and orientation in the DNG mean what exposed meant by them."""
    assert run("enhance", shot, "-f", "dng", "--mode", "amplify", "--ratio", "20").returncode == 0
    direct = run("enhance", shot, "-o", tmp_path / "direct.png", "--bits", "16", "--mode", "amplify", "--ratio", "20")
    via = run("enhance", tmp_path / "a-exposed.dng", "-o", tmp_path / "via.png", "--bits", "16", "--mode", "amplify",
              "--ratio", "1")
    assert direct.returncode == 0 and via.returncode == 0, via.stderr
    a, b = iio.imread(tmp_path / "direct.png").astype(float), iio.imread(tmp_path / "via.png").astype(float)
    assert a.shape == b.shape == (96, 64, 3)
    assert np.abs(a - b).max() < 0.002 * 65535


def test_a_denoised_dng_says_so(shot, tmp_path):
    model = tiny_model(tmp_path / "tiny.pt")
    done = run("enhance", shot, "-f", "dng", "--model", model, "--ratio", "20")
    assert done.returncode == 0, done.stderr
    tags = _tags(tmp_path / "a-exposed.dng")
    assert tags["NoiseReductionApplied"] == (1, 1) and "denoised (diffusion, T=1)" in tags["ImageDescription"]


def test_linear_dng_is_the_demosaiced_mosaic(shot, tmp_path):
    assert run("enhance", shot, "-f", "dng", "--mode", "amplify", "--ratio", "20").returncode == 0
    assert run("enhance", shot, "-o", tmp_path / "l.dng", "--dng", "linear", "--mode", "amplify",
               "--ratio", "20").returncode == 0
    cfa = read_raw(tmp_path / "a-exposed.dng")
    expected = demosaic(cfa.mosaic / 65535.0, "GRBG")
    with rawpy.imread(str(tmp_path / "l.dng")) as raw:
        assert raw.raw_pattern is None and raw.sizes.flip == 6
        linear = raw.raw_image[..., :3].astype(float)
    assert np.abs(linear - np.clip(expected, 0, 1) * 65535).max() <= 1.5


def test_standard_output_carries_the_same_dng(shot, tmp_path):
    piped = run("enhance", shot, "-f", "dng", "-o", "-", "--mode", "amplify", "--ratio", "20")
    assert piped.returncode == 0 and run("enhance", shot, "-o", tmp_path / "f.dng", "--mode", "amplify",
                                         "--ratio", "20").returncode == 0
    assert piped.stdout == (tmp_path / "f.dng").read_bytes()


def test_dng_names_never_take_the_inputs_place(shot, tmp_path):
    same = run("enhance", shot, "-f", "dng", "--suffix", "", "--mode", "amplify")
    named = run("enhance", shot, "-o", shot, "--mode", "amplify")
    assert same.returncode == 1 and named.returncode == 2  # the file is skipped; -o naming it is a usage error
    assert b"input itself" in same.stderr and b"input itself" in named.stderr
    assert read_raw(shot).white == 16383  # untouched
    assert run("enhance", shot, "-f", "dng", "--bits", "8").returncode == 2


def test_a_non_bayer_input_gets_one_line_and_no_dng(tmp_path):
    linear = shared_file("raw", "canon-eos-6d-linear.dng")
    done = run("enhance", linear, "-f", "dng", "-o", f"{tmp_path}/", "--mode", "amplify")
    assert done.returncode == 1 and list(tmp_path.iterdir()) == []
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "linear DNG" in lines[0] and "Traceback" not in done.stderr.decode()


@pytest.mark.parametrize("name, pattern", [("kodak-dc50.kdc", "GRBG"), ("blackmagic-pocket-4k.dng", "RGGB")])
def test_real_raws_keep_their_bayer_order_and_colour(tmp_path, name, pattern):
    path = shared_file("raw", name)
    done = run("enhance", path, "-f", "dng", "-o", tmp_path / "x.dng", "--mode", "amplify", "--ratio", "2")
    assert done.returncode == 0, done.stderr
    source, back = read_raw(path), read_raw(tmp_path / "x.dng")
    assert back.pattern == source.pattern == pattern and back.mosaic.shape == source.mosaic.shape
    assert [c.illuminant for c in back.calibrations] == [c.illuminant for c in source.calibrations]
    for a, b in zip(back.calibrations, source.calibrations):
        assert np.allclose(a.colour_matrix, b.colour_matrix, atol=1e-4)
    assert np.allclose(back.cam_to_srgb, source.cam_to_srgb, atol=1e-3)
    assert back.exif.make == source.exif.make or back.unique_camera_model == source.unique_camera_model
