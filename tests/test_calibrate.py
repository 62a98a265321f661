import pytest
import torch

from exposed.sensor.calibrate import compare_to_dark_frame, fit_dark_frame
from exposed.io.exif import noise_profile, read_tags
from exposed.sensor.noise import NoiseParams, add_noise
from exposed.io.raw import read_raw

from conftest import shared_file


def _synthetic_dark_frame(params: NoiseParams, shape=(800, 1000), seed=0) -> torch.Tensor:
    frame = add_noise(torch.zeros(1, 1, *shape), params, torch.Generator().manual_seed(seed))
    return frame[0, 0].round() + 3.0  # an ADC rounds, and black is a little off


def test_fit_recovers_known_eld_parameters():
    truth = NoiseParams.create(K=1.0, read_sigma=4.0, row_sigma=1.5, tukey_lambda=-0.15, model="eld")
    fit = fit_dark_frame(_synthetic_dark_frame(truth))
    assert fit.offset.mean().item() == pytest.approx(3.0, abs=4 * 1.5 / 800**0.5)  # row offsets move the mean
    assert fit.row_sigma == pytest.approx(1.5, rel=0.1)
    assert fit.tukey_lambda == pytest.approx(-0.15, abs=0.03)
    assert fit.tukey_scale == pytest.approx(4.0, rel=0.05)
    assert fit.gaussian_sigma**2 == pytest.approx(truth.read_variance().item(), rel=0.03)


def test_comparison_prefers_the_true_model():
    truth = NoiseParams.create(K=1.0, read_sigma=3.0, row_sigma=0.0, tukey_lambda=-0.2, model="eld")
    dark = _synthetic_dark_frame(truth, shape=(400, 500)) - 3.0
    offset = torch.zeros(2, 2, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    right = compare_to_dark_frame(dark, truth, offset, generator=g)
    wrong = compare_to_dark_frame(dark, NoiseParams.create(K=1.0, read_sigma=5.0), offset, generator=g)
    assert right["ks"] < 0.01 < wrong["ks"]
    assert right["loglik_per_pixel"] > wrong["loglik_per_pixel"]


def test_pixel7_dark_frame_fit_agrees_with_its_statistics_and_noise_profile():
    path = shared_file("raw", "pixel7-dark-frame.dng")
    raw = read_raw(path)
    assert raw.pattern == "RGGB" and raw.white == 16368
    cells = (raw.mosaic.shape[0] // 2, raw.mosaic.shape[1] // 2)
    dark = torch.from_numpy(raw.mosaic.astype("float64")) - torch.from_numpy(raw.black).repeat(*cells)
    fit = fit_dark_frame(dark)
    assert fit.gaussian_sigma == pytest.approx(float((dark - fit.offset.repeat(*cells)).std()), rel=1e-6)
    profile = noise_profile(read_tags(path))
    assert profile is not None and len(profile) == 3
    read_sigmas = [o**0.5 * (16368 - 1023.5) for _, o in profile]
    # The tag's read noise is of the same order as what the frame shows (the camera's profile is a model too).
    assert all(0.6 * fit.gaussian_sigma < s < 1.2 * fit.gaussian_sigma for s in read_sigmas)
