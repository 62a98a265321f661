"""darktable's noise profiles as a noise source: name matching, ISO interpolation, units, and the
place in the order of sources."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from exposed.demo import example_scene, write_synthetic_dng
from exposed.io.exif import ExifInfo
from exposed.sensor.cameras import CAMERAS
from exposed.sensor.darktable import DARKTABLE_TO_RAW, camera_names, darktable_noise, load_profiles
from exposed.sensor.estimate import noise_level
from test_cli_enhance import run

INSTALLED = Path("/usr/share/darktable/noiseprofiles.json")


@pytest.mark.parametrize("make,model,key", [
    ("SONY", "ILCE-7S", ("sony", "ilce 7s")), ("NIKON CORPORATION", "NIKON D850", ("nikon", "d850")),
    ("Canon", "Canon EOS 5D Mark IV", ("canon", "eos 5d mark iv")), ("RICOH IMAGING COMPANY, LTD.", "PENTAX K-1",
                                                                      ("pentax", "k 1")),
    ("OLYMPUS IMAGING CORP.", "E-M5", ("olympus", "e m5")), ("Canon", "", None), (None, "X", None)])
def test_cameras_are_named_the_way_darktables_profiling_script_names_them(make, model, key):
    assert camera_names(make, model) == key


def _profiles(tmp_path, monkeypatch):
    data = {"version": 0, "noiseprofiles": [{"maker": "Sony", "models": [{"model": "ILCE-7S", "profiles": [
        {"name": "ILCE-7S iso 800", "iso": 800, "a": [9.0, 1e-6, 9.0], "b": [9.0, 2e-8, 9.0]},
        {"name": "ILCE-7S iso 1600", "iso": 1600, "a": [9.0, 2e-6, 9.0], "b": [9.0, -1e-8, 9.0]},
        {"name": "bad", "iso": 1000, "a": [9.0, 5e-4, 9.0], "b": [9.0, 1.0, 9.0], "skip": True}]}]}]}
    path = tmp_path / "noiseprofiles.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv("EXPOSED_DARKTABLE_PROFILES", str(path))
    load_profiles.cache_clear()
    return path


def test_green_figures_are_interpolated_linearly_in_iso_and_converted_to_raw_units(tmp_path, monkeypatch):
    _profiles(tmp_path, monkeypatch)
    exact = darktable_noise("SONY", "ILCE-7S", 800)
    assert exact.gain == pytest.approx(DARKTABLE_TO_RAW * 1e-6) and exact.read_var == pytest.approx(
        DARKTABLE_TO_RAW * 2e-8) and exact.name == "darktable 'ILCE-7S iso 800'"
    between = darktable_noise("SONY", "ILCE-7S", 1000)  # the skipped ISO 1000 entry is not used
    assert between.gain == pytest.approx(DARKTABLE_TO_RAW * 1.25e-6)
    assert between.read_var == pytest.approx(DARKTABLE_TO_RAW * (2e-8 + 0.25 * -3e-8))
    assert darktable_noise("SONY", "ILCE-7S", 1600).read_var is None  # darktable's b <= 0: no read noise
    above = darktable_noise("SONY", "ILCE-7S", 6400)
    assert above.gain == pytest.approx(DARKTABLE_TO_RAW * 8e-6) and "scaled to ISO 6400" in above.name
    assert darktable_noise("SONY", "ILCE-7M3", 800) is None and darktable_noise("SONY", "ILCE-7S", None) is None


def test_darktable_gives_the_gain_after_the_tag_and_before_the_picture(tmp_path, monkeypatch):
    _profiles(tmp_path, monkeypatch)
    y = torch.linspace(0.05, 1, 256)[:, None].expand(256, 256)
    dark = (0.01 * y)[None, None] + 1e-3 * torch.randn(1, 1, 256, 256, generator=torch.Generator().manual_seed(0))
    from exposed.imaging.bayer import pack

    packed = pack(dark, "RGGB")
    dt = darktable_noise("SONY", "ILCE-7S", 800)
    tagged = noise_level(packed, None, [(5e-5, 1e-7)], 800, darktable=dt)
    assert tagged.source == "DNG NoiseProfile tag"
    level = noise_level(packed, None, None, 800, darktable=dt)
    assert level.source == "darktable 'ILCE-7S iso 800' (read noise: estimated from the picture)"
    assert level.site_gain == (dt.gain,) * 4
    # the picture's read noise is refitted under darktable's gain: variance - gain * level, averaged
    assert level.read_var == pytest.approx(1e-6 - dt.gain * 0.01 * 0.525, rel=0.15)


@pytest.mark.skipif(shutil.which("darktable-cli") is None, reason="darktable-cli is not installed")
def test_the_unit_factor_is_what_darktable_measures_on_a_frame_of_known_noise(tmp_path):
    """darktable-cli renders a frame of known noise with the PPG demosaic; measured as darktable's
    profiling tool measures, its green slope times DARKTABLE_TO_RAW is the true raw gain."""
    out = tmp_path / "units.json"
    proc = subprocess.run([sys.executable, "benchmarks/darktable_units.py", "--out", str(out)], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1], timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["PPG"]["factor"] == pytest.approx(DARKTABLE_TO_RAW, rel=0.05)
    assert result["RCD"]["factor"] > 1.5 * result["PPG"]["factor"]  # the demosaic matters, hence one is named


@pytest.mark.skipif(not INSTALLED.is_file(), reason="darktable is not installed (no noiseprofiles.json)")
def test_a_sony_a7s_dng_without_noise_profile_gets_darktables_profile(tmp_path, monkeypatch):
    """An ILCE-7S frame at ISO 3200 whose noise is the ELD calibration of the A7S II (the same sensor,
    calibrated independently of darktable): `exposed info` names darktable's profile, and the noise
    variance it assumes, summed over the frame's photosites at their true levels, is within 25% of
    the frame's true variance."""
    monkeypatch.delenv("EXPOSED_DARKTABLE_PROFILES", raising=False)
    noise = CAMERAS["sony-a7s2"].at_iso(3200, "pg")
    shot = write_synthetic_dng(tmp_path / "a7s.dng", example_scene(), 100.0, noise,
                               generator=torch.Generator().manual_seed(0),
                               exif=ExifInfo(make="SONY", model="ILCE-7S", iso=3200.0, exposure_time=1 / 100))
    info = json.loads(run("info", "--json", shot.path, text=True).stdout)[0]
    assert info["noise_source"].startswith("darktable 'ILCE-7S iso 3200'")
    levels = shot.dark.clamp_min(0).double()
    gain, read = (noise.K / noise.scale).item(), (noise.read_variance() / noise.scale**2).item()
    used = (info["noise_gain"] * levels + info["noise_read_variance"]).mean()
    true = (gain * levels + read).mean()
    assert used.item() == pytest.approx(true.item(), rel=0.25)
