"""``exposed enhance --mode gp``: sRGB photos (and raws developed as shot) through the same batch rules."""

from __future__ import annotations

import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from conftest import synthetic_dng, tiny_reference
from exposed.io.exif import read_exif
from exposed.gp.pipeline import PhotoEnhancer
from exposed.pipeline import Settings
from exposed.io.photo import read_photo
from exposed.gp.reference import darken


def run(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "exposed", *map(str, args)], capture_output=True, timeout=300,
                          **kwargs)


def _dark_photo(path, height=48, width=80, orientation=1, seed=0):
    """A dark JPEG or PNG of a smooth colourful scene, with camera EXIF and an orientation."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    scene = np.stack([0.3 + 0.6 * x, 0.2 + 0.7 * y, 0.8 - 0.5 * x], -1) + rng.normal(0, 0.02, (height, width, 3))
    dark = (np.clip(scene, 0, 1) ** 3 * 255).round().astype(np.uint8)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Canon", "EOS 6D", orientation
    Image.fromarray(dark).save(path, exif=exif.tobytes(), quality=95)
    return path


@pytest.fixture
def reference(tmp_path):
    return tiny_reference(tmp_path / "ref.pt")


def test_a_jpeg_is_enhanced_upright_beside_itself_with_its_exif(tmp_path, reference):
    photo = _dark_photo(tmp_path / "night.jpg", orientation=6)
    done = run("enhance", photo, "--mode", "gp", "--model", reference, "--gp-k", 10)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "night-exposed.jpg"
    assert iio.imread(out).shape == (80, 48, 3)  # a quarter turn, as the EXIF said
    assert read_exif(out).make == "Canon" and read_exif(out).orientation == 1
    assert iio.imread(photo).shape == (48, 80, 3)  # the input is untouched


def test_api_and_command_line_agree_and_png_photos_and_raws_work(tmp_path, reference):
    photo = _dark_photo(tmp_path / "a.png")
    raw = synthetic_dng(tmp_path / "b.dng", ratio=8.0)
    done = run("enhance", photo, raw, "--mode", "gp", "--model", reference, "-o", f"{tmp_path}/out/", "-f", "tiff")
    assert done.returncode == 0, done.stderr
    api, _ = PhotoEnhancer(Settings(mode="gp", model=reference, bits=16)).enhance(photo)
    assert api.dtype == np.uint16 and np.array_equal(tifffile.imread(tmp_path / "out" / "a-exposed.tif"), api)
    assert tifffile.imread(tmp_path / "out" / "b-exposed.tif").shape == (64, 96, 3)


def test_a_folder_in_gp_mode_takes_photos_and_reports_a_broken_one(tmp_path, reference):
    folder = tmp_path / "shots"
    folder.mkdir()
    _dark_photo(folder / "one.jpg")
    _dark_photo(folder / "two.png", seed=1)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "notes.txt").write_text("not a picture")
    done = run("enhance", folder, "--mode", "gp", "--model", reference, "-o", f"{tmp_path}/out/")
    assert done.returncode == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["one-exposed.jpg", "two-exposed.jpg"]
    errors = [line for line in done.stderr.decode().splitlines() if "error" in line]
    assert len(errors) == 1 and "broken.jpg" in errors[0] and "decoded" in errors[0]
    assert b"Traceback" not in done.stderr


def test_standard_input_takes_a_jpeg(tmp_path, reference):
    photo = _dark_photo(tmp_path / "p.jpg")
    piped = run("enhance", "-", "-o", "-", "--mode", "gp", "--model", reference, "-f", "png", input=photo.read_bytes())
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith(b"\x89PNG")


def test_raw_modes_point_photos_to_gp_mode(tmp_path):
    photo = _dark_photo(tmp_path / "p.jpg")
    done = run("enhance", photo, "--mode", "amplify", "-o", f"{tmp_path}/out/")
    assert done.returncode == 1 and b"use --mode gp" in done.stderr


@pytest.mark.parametrize("args, words", [
    (["-f", "dng"], b"sRGB"), (["--ratio", "10"], b"own brightness"), (["--gp-patch", "4"], b"odd")])
def test_gp_usage_errors(tmp_path, args, words):
    photo = _dark_photo(tmp_path / "p.jpg")
    done = run("enhance", photo, "--mode", "gp", *args)
    assert done.returncode == 2 and words in done.stderr


def test_sixteen_bit_tiffs_keep_their_precision(tmp_path):
    values = np.arange(48 * 80 * 3, dtype=np.uint16).reshape(48, 80, 3) * 5
    tifffile.imwrite(tmp_path / "deep.tif", values, photometric="rgb")
    image, _ = read_photo(tmp_path / "deep.tif")
    assert image.shape == (1, 3, 48, 80)
    assert torch.allclose(image[0].permute(1, 2, 0), torch.from_numpy(values / 65535.0).float(), atol=1e-7)


def test_darkening_has_the_stated_mean_and_noise():
    """Mean clean^gamma and variance shot * x + read (+ the 8-bit rounding's 1/12 level^2)."""
    n = 200_000
    clean = torch.full((1, 3, 1, n), 0.6, dtype=torch.float64)
    gamma, shot, read = torch.tensor([2.0]), torch.tensor([2e-3]), torch.tensor([1e-5])
    dark = darken(clean, gamma, shot, read, torch.Generator().manual_seed(0))
    x = 0.6**2
    assert dark.mean().item() == pytest.approx(x, abs=2e-4)
    expected = shot.item() * x + read.item() + (1 / 255) ** 2 / 12
    assert dark.var().item() == pytest.approx(expected, rel=0.03)
    assert torch.equal(dark, (dark * 255).round() / 255)  # whole 8-bit levels
