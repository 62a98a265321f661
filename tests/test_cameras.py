import math

import pytest
import torch

from exposed.sensor.cameras import CAMERAS, VIRTUAL_CAMERA, noise_source


def test_sony_a7s2_iso_3200_gives_the_calibrated_gain():
    # facts.md: about 9.4e-4 DN/e- per ISO, so ISO 3200 gives K of about 3.0.
    assert CAMERAS["sony-a7s2"].k_at_iso(3200) == pytest.approx(3.0, abs=0.03)
    assert CAMERAS["sony-a7s2"].at_iso(3200).K.item() == pytest.approx(3.0, abs=0.03)


@pytest.mark.parametrize("name", sorted(CAMERAS))
def test_iso_range_maps_onto_the_calibrated_gain_range(name):
    profile = CAMERAS[name]
    assert profile.k_at_iso(100) == pytest.approx(profile.k_min, rel=0.01)
    assert profile.k_at_iso(6400) == pytest.approx(profile.k_max)


@pytest.mark.parametrize("name", sorted(CAMERAS))
@pytest.mark.parametrize("model", ["pg", "eld"])
def test_sampled_noise_follows_the_log_linear_fits(name, model):
    profile = CAMERAS[name]
    params = profile.sample(40_000, model, torch.Generator().manual_seed(3))
    log_k = params.K.double().log()
    assert log_k.min() >= math.log(profile.k_min) - 1e-5 and log_k.max() <= math.log(profile.k_max) + 1e-5
    fits = [("read_sigma", profile.gaussian if model == "pg" else profile.tukey)]
    if model == "eld":
        fits.append(("row_sigma", profile.row))
        lam = params.tukey_lambda
        assert lam.min() >= profile.tukey_lambda[0] - 1e-6 and lam.max() <= profile.tukey_lambda[1] + 1e-6
    for field, fit in fits:
        log_s = getattr(params, field).double().log()
        slope = ((log_k - log_k.mean()) * (log_s - log_s.mean())).sum() / ((log_k - log_k.mean()) ** 2).sum()
        bias = log_s.mean() - slope * log_k.mean()
        residual = log_s - (slope * log_k + bias)
        assert slope.item() == pytest.approx(fit.slope, abs=0.02)
        assert bias.item() == pytest.approx(fit.bias, abs=0.03)
        assert residual.std().item() == pytest.approx(fit.spread, rel=0.03)


def test_virtual_camera_stays_inside_the_calibrated_envelope():
    params = VIRTUAL_CAMERA.sample(20_000, "eld", torch.Generator().manual_seed(0))
    assert params.K.min() >= 0.1 - 1e-6 and params.K.max() <= 30 + 1e-4
    # At a given gain the virtual read noise spans the calibrated cameras' range (plus their spread).
    log_k = params.K.double().log()
    high = torch.stack([p.tukey.slope * log_k + p.tukey.bias for p in CAMERAS.values()]).amax(0)
    low = torch.stack([p.tukey.slope * log_k + p.tukey.bias for p in CAMERAS.values()]).amin(0)
    inside = ((params.read_sigma.double().log() > low - 0.6) & (params.read_sigma.double().log() < high + 0.6)).double()
    assert inside.mean() > 0.95
    assert params.tukey_lambda.min() >= -0.243 - 1e-6 and params.tukey_lambda.max() <= 0.2 + 1e-6


def test_unknown_camera_names_the_choices():
    with pytest.raises(ValueError, match="sony-a7s2"):
        noise_source("leica-m")
