"""exposed's DNGs in the real readers photographers use: exiftool's validator, LibRaw's raw-identify,
darktable and RawTherapee (Debian packages libimage-exiftool-perl, libraw-bin, darktable, rawtherapee;
each test skips when its program is absent, and .ci/run installs them).

Colour is compared on the 24 ColorChecker patches of the demo scene: exposed's own sRGB rendering of a
raw against each editor's rendering of exposed's DNG of the same raw, as CIELAB differences of patch
means. Editors add their own default look (darktable: +0.7 EV exposure and filmic), so lightness is
reported apart from chroma.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from conftest import shared_file
from exposed.imaging.bayer import PATTERNS
from exposed.imaging.color import CAMERA_XYZ, D65, Calibration, srgb_to_lab
from exposed.io.dng import DngMetadata, write_dng
from exposed.io.exif import ExifInfo
from exposed.io.raw import read_raw

pytestmark = pytest.mark.readers


def _need(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} is not installed")
    return path


def _exposed(*args: object) -> None:
    done = subprocess.run([sys.executable, "-m", "exposed", *map(str, args)], capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr


def _lab(srgb: np.ndarray) -> np.ndarray:
    """8-bit sRGB (..., 3) to CIELAB (D65 white), through exposed.imaging.color.srgb_to_lab."""
    x = torch.from_numpy(np.asarray(srgb, dtype=np.float64) / 255.0).reshape(1, -1, 1, 3).permute(0, 3, 1, 2)
    return srgb_to_lab(x)[0, :, :, 0].T.reshape(*np.shape(srgb)).numpy()


def _patches(image: np.ndarray, height: int = 512, width: int = 768) -> np.ndarray:
    """Lab means of the centres of the demo scene's 24 patches (as exposed.demo.example_scene lays
    them out); an image trimmed at its borders is taken as centred in the scene."""
    dy, dx = (height - image.shape[0]) // 2, (width - image.shape[1]) // 2
    ph, pw, top, left = height // 6, width // 10, height // 8, width // 20
    means = []
    for i in range(24):
        row, col = divmod(i, 6)
        y0, x0 = top + row * (ph + ph // 8) - dy, left + col * (pw + pw // 8) - dx
        means.append(image[y0 + ph // 5:y0 + ph - ph // 5, x0 + pw // 5:x0 + pw - pw // 5].reshape(-1, 3).mean(0))
    return _lab(np.array(means, dtype=np.float64))


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """The demo's dark raw, brightened x100 by exposed into a DNG and into its own sRGB JPEG."""
    folder = tmp_path_factory.mktemp("scene")
    _exposed("demo", "-o", folder, "--mode", "amplify")
    _exposed("enhance", folder / "dark.dng", "--mode", "amplify", "--ratio", 100, "-f", "dng", "-o", folder / "x.dng")
    _exposed("enhance", folder / "dark.dng", "--mode", "amplify", "--ratio", 100, "-o", folder / "x.jpg")
    return folder


def _darktable(dng: Path, out: Path) -> np.ndarray:
    program = _need("darktable-cli")
    subprocess.run([program, str(dng), str(out), "--core", "--configdir", str(out.parent / "darktable")],
                   capture_output=True, timeout=300, env={"HOME": str(out.parent), "PATH": "/usr/bin:/bin"})
    assert out.exists(), "darktable did not render the DNG"
    return iio.imread(out)


def _rawtherapee(dng: Path, out: Path) -> np.ndarray:
    program = _need("rawtherapee-cli")
    subprocess.run([program, "-o", str(out), "-Y", "-c", str(dng)], capture_output=True, timeout=300,
                   env={"HOME": str(out.parent), "PATH": "/usr/bin:/bin"})
    assert out.exists(), "RawTherapee did not render the DNG"
    return iio.imread(out)


def _small_dngs(folder: Path) -> list[Path]:
    """Every Bayer order and the linear layout, with the EXIF a photographer relies on."""
    rng = np.random.default_rng(0)
    shot = ExifInfo(exposure_time=1 / 30, f_number=2.0, iso=6400, make="Sony", model="ILCE-7SM2", lens="FE 50mm",
                    focal_length=50.0, datetime="2026:11:23 20:00:00")
    calibration = (Calibration(D65, CAMERA_XYZ["Sony ILCE-7S / 7S II"]),)
    files = []
    for pattern in PATTERNS:
        meta = DngMetadata(pattern=pattern, black=np.full((2, 2), 512.0), white=16383, calibrations=calibration,
                           as_shot_neutral=np.array([0.5, 1.0, 0.6]), exif=shot, orientation=6,
                           noise_reduction_applied=1.0, description="test")
        files.append(write_dng(folder / f"{pattern}.dng", rng.integers(512, 16383, (64, 96)).astype(np.uint16), meta))
    files.append(write_dng(folder / "linear.dng", rng.integers(0, 65535, (64, 96, 3)).astype(np.uint16),
                           DngMetadata(calibrations=calibration, exif=shot)))
    return files


def test_exiftool_finds_no_warning_or_error(tmp_path, scene):
    exiftool = _need("exiftool")
    for path in [*_small_dngs(tmp_path), scene / "x.dng"]:
        report = subprocess.run([exiftool, "-validate", "-warning", "-error", "-a", str(path)], capture_output=True,
                                text=True, timeout=60).stdout
        assert report.split(":", 1)[0].strip() == "Validate" and report.split(":", 1)[1].strip() == "OK", report


def test_raw_identify_reads_camera_size_and_exif(tmp_path):
    program = _need("raw-identify")
    for path in _small_dngs(tmp_path):
        report = subprocess.run([program, "-v", str(path)], capture_output=True, text=True, timeout=60).stdout
        assert "Camera: Sony ILCE-7SM2" in report and "ISO speed: 6400" in report, report
        assert "Aperture: f/2.0" in report and "Shutter: 1/30.0" in report and "Lens: FE 50mm" in report
        assert ("Filter pattern: " in report) != path.name.startswith("linear")


def test_rawtherapee_renders_exposeds_colours(scene, tmp_path):
    ours = _patches(iio.imread(scene / "x.jpg"))
    theirs = _patches(_rawtherapee(scene / "x.dng", tmp_path / "rt.jpg"))
    delta_e = np.linalg.norm(ours - theirs, axis=1)
    print(f"\nRawTherapee vs exposed, 24 patches: mean dE76 {delta_e.mean():.1f}, max {delta_e.max():.1f}")
    assert delta_e.mean() < 5.0 and delta_e.max() < 12.0, delta_e  # measured 2.3 mean, 5.5 max
    # The measure can fail: the same pixels labelled with the wrong Bayer order are far off.
    image = read_raw(scene / "x.dng")
    wrong = DngMetadata(pattern="BGGR", black=np.zeros((2, 2)), white=65535, calibrations=image.calibrations,
                        as_shot_neutral=1 / image.wb)
    write_dng(tmp_path / "wrong.dng", image.mosaic, wrong)
    assert np.linalg.norm(ours - _patches(_rawtherapee(tmp_path / "wrong.dng", tmp_path / "w.jpg")), axis=1).mean() > 10


def test_darktable_renders_exposeds_colours(scene, tmp_path):
    ours = _patches(iio.imread(scene / "x.jpg"))
    theirs = _patches(_darktable(scene / "x.dng", tmp_path / "dt.jpg"))
    chroma = np.linalg.norm(ours[:, 1:] - theirs[:, 1:], axis=1)
    turn = np.arctan2(ours[:, 2], ours[:, 1]) - np.arctan2(theirs[:, 2], theirs[:, 1])
    hue = np.degrees(np.angle(np.exp(1j * turn)))
    colourful = np.hypot(ours[:, 1], ours[:, 2]) > 15
    print(f"\ndarktable vs exposed, 24 patches: mean d(a*b*) {chroma.mean():.1f}, mean |hue| "
          f"{np.abs(hue[colourful]).mean():.1f} deg over {colourful.sum()} colourful patches, "
          f"mean dL {(theirs[:, 0] - ours[:, 0]).mean():+.1f}")
    assert chroma.mean() < 8.0, chroma  # measured 4.3
    assert np.abs(hue[colourful]).mean() < 8.0, hue  # measured 3.3 degrees
    assert abs((theirs[:, 0] - ours[:, 0]).mean()) < 12.0  # darktable's default look: +6.5 L measured


@pytest.mark.parametrize("name", ["kodak-dc50.kdc", "blackmagic-pocket-4k.dng"])
def test_real_raws_come_back_as_dngs_both_editors_open(tmp_path, name):
    """darktable 4.2 cannot open the Blackmagic original; exposed's DNG of it, with Make and Model, it can."""
    _exposed("enhance", shared_file("raw", name), "--mode", "amplify", "--ratio", 1, "-f", "dng",
             "-o", tmp_path / "x.dng")
    _exposed("enhance", tmp_path / "x.dng", "--mode", "amplify", "--ratio", 1, "-o", tmp_path / "ours.jpg")
    ours = iio.imread(tmp_path / "ours.jpg").astype(float)
    for render in (_darktable, _rawtherapee):
        theirs = render(tmp_path / "x.dng", tmp_path / f"{render.__name__}.jpg").astype(float)
        balance, own = theirs.mean((0, 1)) / theirs.mean(), ours.mean((0, 1)) / ours.mean()
        print(f"\n{name} via {render.__name__.lstrip('_')}: channel balance {np.round(balance, 3)}, "
              f"exposed's {np.round(own, 3)}")
        assert abs(theirs.shape[0] - ours.shape[0]) <= 8 and abs(theirs.shape[1] - ours.shape[1]) <= 8  # upright
        # The colour balance of the whole frame (mean of each channel over the grey mean) agrees.
        assert np.allclose(balance, own, atol=0.03)


@pytest.mark.parametrize("fmt,bits", [("jpg", 8), ("png", 8), ("png", 16), ("tiff", 8), ("tiff", 16)])
def test_pictures_pass_exiftools_validator_with_their_exif_and_srgb_profile(tmp_path, fmt, bits):
    from exposed.io.images import save_image

    exiftool = _need("exiftool")
    dtype = np.uint16 if bits == 16 else np.uint8
    image = (np.random.default_rng(0).random((24, 32, 3)) * np.iinfo(dtype).max).astype(dtype)
    path = save_image(tmp_path / f"a.{fmt}", image, fmt, ExifInfo(make="SONY", model="ILCE-7S", iso=3200.0,
                                                                  exposure_time=1 / 30, f_number=2.8))
    done = subprocess.run([exiftool, "-validate", "-warning", "-a", "-ColorSpace", "-ProfileDescription", "-ISO",
                           str(path)], capture_output=True, text=True, timeout=60)
    pairs = (line.split(":", 1) for line in done.stdout.strip().splitlines())
    lines = {key.strip(): value.strip() for key, value in pairs}
    assert lines["Validate"] == "OK", done.stdout
    assert lines["Color Space"] == "sRGB" and "sRGB" in lines["Profile Description"]
    assert lines["ISO"] == "3200"
