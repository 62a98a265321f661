"""`exposed calibrate` and camera profiles: the fit against frames of known noise at 8, 12 and 14
bits, the profile file, and its use by enhance, info and train."""

import json
import math

import numpy as np
import pytest
import torch

from conftest import shared_file
from exposed.imaging.bayer import fill_photosites, pack
from exposed.imaging.color import D65, Calibration
from exposed.demo import SONY_XYZ
from exposed.io.dng import DngMetadata, write_dng
from exposed.io.exif import ExifInfo
from exposed.io.raw import read_raw
from exposed.sensor.calibrate import Shot, calibrate
from exposed.sensor.calibration import SensorCalibration
from exposed.sensor.cameras import noise_source
from exposed.sensor.noise import NoiseParams, add_noise, tukey_lambda_variance
from test_cli_enhance import run

# (bits, K at the higher ISO in DN/e-, Tukey scale, lambda, row sigma, black, the black's true offset)
SENSORS = [(14, 2.0, 3.0, -0.1, 1.0, 512, 3.2), (12, 0.6, 1.2, 0.05, 0.4, 256, -1.5),
           (8, 0.05, 0.45, 0.0, 0.15, 16, 0.6)]
ISOS = (800, 3200)


def _frames(bits, K, tscale, lam, row, black, offset, iso, darks=3, level=0.3, seed=0, h=384, w=512, hot=()):
    """Dark frames and one flat pair of a sensor of known noise, in DN minus the stated black."""
    g = torch.Generator().manual_seed(seed)
    white = 2**bits - 1
    p = NoiseParams.create(K=K, read_sigma=tscale, row_sigma=row, tukey_lambda=lam, black=black, white=white,
                           model="eld")

    def shot(light):
        dn = add_noise(torch.full((1, 1, h, w), light * (white - black)), p, g, round_dn=True)[0, 0] + offset
        for r, c in hot:
            dn[r, c] += 40 * tscale
        return (dn + black).clamp(0, white).double() - black

    return [shot(0.0) for _ in range(darks)], [shot(level) for _ in range(2)], white


def _truth(K, tscale, lam, iso):
    """K and read sigma at ``iso``: K proportional to ISO, read noise 0.6 times at the lower ISO."""
    factor = 1.0 if iso == ISOS[1] else 0.6
    return K * iso / ISOS[1], tscale * factor * math.sqrt(tukey_lambda_variance(torch.tensor(lam)).item())


@pytest.mark.parametrize("bits,K,tscale,lam,row,black,offset", SENSORS)
def test_calibrate_recovers_gain_read_row_noise_and_black_offset_at_8_12_and_14_bits(bits, K, tscale, lam, row,
                                                                                     black, offset):
    darks, flats = [], []
    for i, iso in enumerate(ISOS):
        k, _ = _truth(K, tscale, lam, iso)
        d, f, white = _frames(bits, k, tscale * (1.0 if iso == ISOS[1] else 0.6), lam, row, black, offset, iso, seed=i)
        darks += [Shot(x, iso) for x in d]
        flats += [Shot(x, iso, 0.01) for x in f]
    profile = calibrate(darks, flats, "RGGB", white, [black] * 4)
    for fit in profile.isos:
        true_k, true_read = _truth(K, tscale, lam, fit.iso)
        assert fit.K is not None and np.allclose(fit.K, true_k, rtol=0.10)
        assert np.allclose(fit.read_sigma, true_read, rtol=0.10)
        assert fit.row_sigma == pytest.approx(row, rel=0.25)
        assert np.allclose(fit.offset, offset, atol=0.1)
    assert profile.k_at(1600) == pytest.approx(K / 2, rel=0.10)  # the log-linear fit between the ISOs


def test_hot_photosites_are_found_in_every_dark_frame_and_filled_from_their_neighbours():
    hot = [(10, 20), (101, 37), (250, 300)]
    d, _, white = _frames(14, 2.0, 3.0, 0.0, 0.5, 512, 0.0, 1600, darks=3, hot=hot)
    profile = calibrate([Shot(x, 1600) for x in d], [], "RGGB", white, [512] * 4)
    assert sorted(profile.hot_pixels) == hot and profile.gain_fit is None
    single = calibrate([Shot(d[0], 1600)], [], "RGGB", white, [512] * 4)
    assert single.hot_pixels == ()  # one frame cannot tell a hot pixel from a noise spike
    mosaic = np.arange(36, dtype=np.uint16).reshape(6, 6) * 10
    filled = fill_photosites(mosaic, np.array([[2, 2], [2, 4]]))  # the second is the first's neighbour
    assert filled[2, 2] == round((mosaic[0, 2] + mosaic[4, 2] + mosaic[2, 0]) / 3)
    assert filled[2, 4] == round((mosaic[0, 4] + mosaic[4, 4]) / 2)
    assert (np.delete(filled.flatten(), [14, 16]) == np.delete(mosaic.flatten(), [14, 16])).all()


def test_a_profile_round_trips_and_interpolates_log_linearly_between_isos(tmp_path):
    d1, f1, white = _frames(14, 0.5, 2.0, 0.0, 0.5, 512, 1.0, 800, darks=2)
    d2, f2, _ = _frames(14, 2.0, 5.0, 0.0, 1.0, 512, 2.0, 3200, darks=2, seed=1)
    shots = [Shot(x, 800) for x in d1] + [Shot(x, 3200) for x in d2]
    profile = calibrate(shots, [Shot(x, 800, 0.1) for x in f1] + [Shot(x, 3200, 0.1) for x in f2], "RGGB", white,
                        [512] * 4, "SONY", "ILCE-7S")
    back = SensorCalibration.load(profile.save(tmp_path / "p.json"))
    assert back.isos == profile.isos and back.gain_fit == profile.gain_fit and back.make == "SONY"
    lo, hi = profile.isos
    at = back.at_iso(1600)
    w = math.log(2) / math.log(4)
    expected = math.exp((1 - w) * math.log(lo.read_sigma[0]) + w * math.log(hi.read_sigma[0]))
    row = math.exp((1 - w) * math.log(lo.row_sigma) + w * math.log(hi.row_sigma))
    assert at.read_vars[0] == pytest.approx((expected**2 + row**2 + 1 / 12) / back.scale**2, rel=1e-9)
    assert at.note is None and "outside" in back.at_iso(12800).note
    assert at.gains is not None and at.gains[0] * back.scale == pytest.approx(1.0, rel=0.1)


def test_bad_profile_files_are_refused_with_a_reason(tmp_path):
    for text, reason in (("{", "not a readable"), ('{"format": "x"}', "not an exposed noise profile"),
                         ('{"format": "exposed-noise-profile", "version": 1}', "missing or malformed")):
        (tmp_path / "p.json").write_text(text)
        with pytest.raises(ValueError, match=reason):
            SensorCalibration.load(tmp_path / "p.json")
    proc = run("info", tmp_path / "x.dng", "--profile", tmp_path / "p.json", text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_training_draws_the_profiles_noise_rescaled_to_the_frames_levels(tmp_path):
    d, f, white = _frames(14, 2.0, 3.0, 0.0, 0.5, 512, 0.0, 3200, darks=2)
    profile = calibrate([Shot(x, 3200) for x in d], [Shot(x, 3200, 0.1) for x in f], "RGGB", white, [512] * 4)
    path = str(profile.save(tmp_path / "p.json"))
    noise = noise_source(path).sample(64, "eld", torch.Generator().manual_seed(0), black=0.0, white=1023.0)
    normalised = noise.K / noise.scale
    assert torch.allclose(normalised, torch.tensor(profile.k_at(3200) / profile.scale), rtol=1e-4)
    assert torch.allclose(noise.row_sigma / noise.scale, torch.tensor(profile.isos[0].row_sigma / profile.scale),
                          rtol=1e-4)
    no_gain = calibrate([Shot(x, 3200) for x in d], [], "RGGB", white, [512] * 4).save(tmp_path / "dark-only.json")
    with pytest.raises(ValueError, match="no gain"):
        noise_source(str(no_gain)).sample(1)


def _write_frame(path, dn, iso, model="ILCE-7S", exposure_time=1 / 30):
    meta = DngMetadata("RGGB", np.full((2, 2), 512.0), 16383, (Calibration(D65, SONY_XYZ),), np.ones(3),
                       exif=ExifInfo(make="SONY", model=model, iso=float(iso), exposure_time=exposure_time))
    return write_dng(path, (dn + 512).round().clip(0, 16383).numpy().astype(np.uint16), meta)


def test_calibrate_then_info_and_enhance_use_the_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPOSED_DARKTABLE_PROFILES", "")
    hot = [(30, 40)]
    d, f, _ = _frames(14, 3.0, 6.0, 0.0, 1.0, 512, 2.5, 3200, darks=2, level=0.2, h=128, w=192, hot=hot)
    darks = [_write_frame(tmp_path / f"dark{i}.dng", x, 3200) for i, x in enumerate(d)]
    flats = [_write_frame(tmp_path / f"flat{i}.dng", x, 3200, exposure_time=1 / 100) for i, x in enumerate(f)]
    proc = run("calibrate", *darks, *sum((["--flat", p] for p in flats), []), "-o", tmp_path / "cam.json", text=True)
    assert proc.returncode == 0, proc.stderr
    assert "1 hot photosites" in proc.stderr
    profile = json.loads((tmp_path / "cam.json").read_text())
    assert profile["hot_pixels"] == [[30, 40]] and profile["make"] == "SONY"
    scene = torch.linspace(0.002, 0.02, 192)[None, :].expand(128, 192) * 13871
    shot = _write_frame(tmp_path / "night.dng", add_noise(scene[None, None].contiguous(), NoiseParams.create(
        K=3.0, read_sigma=6.0, black=512, white=16383), torch.Generator().manual_seed(5))[0, 0] + 2.5, 3200)
    info = json.loads(run("info", "--json", shot, "--profile", tmp_path / "cam.json").stdout)[0]
    assert info["noise_source"] == "camera profile cam.json at ISO 3200"
    assert info["noise_gain"] == pytest.approx(3.0 / (16383 - 512), rel=0.1)
    assert any("+ 2.5" in c for c in info["corrections"]) and any("1 hot" in c for c in info["corrections"])
    for name, extra in (("with.dng", ("--profile", tmp_path / "cam.json")), ("without.dng", ())):
        out = run("enhance", shot, "--mode", "amplify", "--ratio", 10, *extra, "-o", tmp_path / name, text=True)
        assert out.returncode == 0, out.stderr
    # the true black is 2.5 DN above the stated one: brightened ten times, that much less light
    without, with_profile = (read_raw(tmp_path / name).normalised().mean() for name in ("without.dng", "with.dng"))
    darker = without - with_profile
    assert darker == pytest.approx(2.5 * 10 / (16383 - 512), rel=0.05)
    other = _write_frame(tmp_path / "other.dng", d[0], 3200, model="ILCE-7M3")
    refused = run("enhance", other, "--profile", tmp_path / "cam.json", "-o", tmp_path / "o.jpg", "--mode", "amplify",
                  text=True)
    assert refused.returncode == 1 and "profile is of a SONY ILCE-7S, this file of a SONY ILCE-7M3" in refused.stderr


def test_pixel7_dark_frame_calibrates_to_its_own_statistics_and_against_its_noise_profile(tmp_path):
    """A real dark frame: the profile's read variance per site (read, row and rounding together) is
    the frame's own variance of that site (float64 reference), and the frame holds more read noise
    than its NoiseProfile tag states (the phone's own model): 1.2 to 2.1 times the variance."""
    path = shared_file("raw", "pixel7-dark-frame.dng")
    proc = run("calibrate", path, "-o", tmp_path / "p7.json", text=True)
    assert proc.returncode == 0, proc.stderr
    profile = SensorCalibration.load(tmp_path / "p7.json")
    raw = read_raw(path)
    at = profile.at_iso(raw.exif.iso)
    packed = pack(torch.from_numpy(raw.mosaic.astype(np.float64))[None, None], raw.pattern)[0]
    plain = [float(site.var()) / profile.scale**2 for site in packed]
    np.testing.assert_allclose(at.read_vars, plain, rtol=0.05)
    tag = raw.noise_profile
    assert tag is not None and len(tag) == 3
    stated = [tag[0][1], tag[1][1], tag[1][1], tag[2][1]]
    ratios = np.array(at.read_vars) / np.array(stated)
    assert (ratios > 1.1).all() and (ratios < 2.2).all(), ratios


def test_train_profile_replaces_the_cameras_and_refuses_a_profile_without_gain(tmp_path):
    from exposed.training.config import TrainConfig

    d, f, white = _frames(14, 2.0, 3.0, 0.0, 0.5, 512, 0.0, 3200, darks=2)
    with_gain = calibrate([Shot(x, 3200) for x in d], [Shot(x, 3200, 0.1) for x in f], "RGGB", white, [512] * 4)
    path = str(with_gain.save(tmp_path / "p.json"))
    assert TrainConfig(camera="all", profile=path).sensors().cameras == (path,)
    dark_only = str(calibrate([Shot(x, 3200) for x in d], [], "RGGB", white, [512] * 4).save(tmp_path / "d.json"))
    with pytest.raises(ValueError, match="no gain"):
        TrainConfig(profile=dark_only).sensors()
