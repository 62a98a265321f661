import pytest
import torch

from exposed.bayer import pack
from exposed.noise import NoiseParams, synthesize_dark
from exposed.noise_estimate import estimate_noise, noise_level, parse_noise_profile


def _dark(K, sigma, level=0.3, ratio=20.0):
    y = torch.linspace(0.05, 1, 512)[:, None].expand(512, 512)
    clean = (level * y)[None, None]  # smooth: every level from dark to bright, no texture
    params = NoiseParams.create(K=K, read_sigma=sigma)
    dark = synthesize_dark(clean, torch.tensor([ratio]), params, torch.Generator().manual_seed(0))
    return pack(dark, "RGGB"), params


@pytest.mark.parametrize("K,sigma", [(3.0, 6.0), (1.0, 3.0), (8.0, 20.0)])
def test_single_image_estimate_recovers_poisson_gaussian_parameters(K, sigma):
    packed, params = _dark(K, sigma)
    gain, read_var = estimate_noise(packed)
    scale = params.scale.item()
    assert gain == pytest.approx(K / scale, rel=0.15)
    assert read_var == pytest.approx(sigma**2 / scale**2, rel=0.15)


def test_sources_in_order_of_trust():
    packed, _ = _dark(3.0, 6.0)
    assert noise_level(packed, "1e-4,2e-7", [(5e-5, 1e-7)], 800).source == "--noise-profile"
    tagged = noise_level(packed, None, [(5e-5, 1e-7), (7e-5, 3e-7)], 800)
    assert tagged.source == "DNG NoiseProfile tag" and tagged.gain == pytest.approx(6e-5)
    assert noise_level(packed, None, None, 800).source == "estimated from the picture"
    tiny = torch.zeros(1, 4, 4, 4)
    assert noise_level(tiny, None, None, 800).source == "default for ISO 800"
    assert "no ISO" in noise_level(tiny, None, None, None).source


def test_bad_profiles_are_explained():
    with pytest.raises(ValueError, match="S,O"):
        parse_noise_profile("0.1")
    with pytest.raises(ValueError, match="S > 0"):
        parse_noise_profile("-1,0")
