import pytest
import torch

from conftest import DEVICES
from exposed.denoise.networks import NAFNet, UNet, build_backbone, crop_to, pad_to_multiple
from exposed.denoise.config import ModelConfig
from exposed.denoise.model import ExposureModel


def test_sid_unet_at_width_32_has_the_papers_parameter_count():
    # facts.md: 7.76 M parameters; the adaptive residual layer adds a few hundred (7.761 M -> 7.762 M).
    n = sum(p.numel() for p in UNet(8, 9, 32).parameters())
    assert 7.75e6 < n < 7.77e6


@pytest.mark.parametrize("arch", ["unet", "nafnet"])
@pytest.mark.parametrize("kind,channels", [("diffusion", 9), ("feedforward", 4)])
def test_models_take_any_size_and_return_four_channels(arch, kind, channels):
    model = ExposureModel(ModelConfig(arch, 8, kind))
    assert model.backbone(torch.zeros(1, 8, 16, 16)).shape[1] == channels
    x = torch.rand(2, 4, 37, 50)
    out = model(x, torch.rand_like(x))
    assert out.shape == (2, 4, 37, 50)


def test_adaptive_residual_layer_blends_direct_and_residual_estimates():
    model = ExposureModel(ModelConfig("unet", 8, "diffusion"))
    amplified = torch.rand(1, 4, 16, 16) * 1.2
    raw_out = torch.randn(1, 9, 16, 16)
    model.backbone.forward = lambda x: raw_out  # type: ignore[method-assign]
    mask = torch.sigmoid(raw_out[:, :1])
    expected = mask * raw_out[:, 1:5].clamp(0, 1) + (1 - mask) * (amplified + raw_out[:, 5:9]).clamp(0, 1)
    torch.testing.assert_close(model(amplified, torch.zeros_like(amplified)), expected)


def test_padding_is_cropped_back_exactly():
    x = torch.rand(1, 3, 21, 30)
    padded = pad_to_multiple(x, 16)
    assert padded.shape[-2:] == (32, 32)
    assert torch.equal(crop_to(padded, 21, 30), x)


def test_unknown_architecture_is_named():
    with pytest.raises(ValueError, match="unet"):
        build_backbone("resnet", 8, 4, 16)


def test_nafnet_multiple_follows_its_depth():
    assert NAFNet(8, 4, 8, encoder_blocks=(1, 1), decoder_blocks=(1, 1)).multiple == 4


def test_the_log_noise_channel_is_log2_of_the_level_centred_and_scaled():
    from exposed.denoise.config import LOG_STD_CENTRE, LOG_STD_FLOOR, LOG_STD_SCALE
    from exposed.denoise.model import log_noise_level

    std = torch.tensor([0.0, 1e-7, 0.002, 0.05, 0.3, 2.0], dtype=torch.float64)
    expected = (torch.log2(std.clamp_min(LOG_STD_FLOOR)) - LOG_STD_CENTRE) / LOG_STD_SCALE
    torch.testing.assert_close(log_noise_level(std.float()).double(), expected, rtol=1e-6, atol=1e-6)
    assert log_noise_level(torch.tensor([0.002])).item() < -0.9 and log_noise_level(torch.tensor([0.3])).item() > 1.3


@pytest.mark.parametrize("arch", ["unet", "nafnet"])
@pytest.mark.parametrize("kind", ["diffusion", "feedforward"])
def test_widening_to_the_log_noise_input_keeps_what_the_model_computes(arch, kind):
    from exposed.denoise.model import widen_input

    torch.manual_seed(0)
    plain = ExposureModel(ModelConfig(arch, 8, kind)).eval()
    wide = ExposureModel(ModelConfig(arch, 8, kind, noise_input="std+log")).eval()
    wide.load_state_dict(widen_input(plain.state_dict(), wide.config))
    x = torch.rand(1, 4, 32, 32) * 1.5
    std = torch.rand_like(x) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(wide(x, std), plain(x, std))
        # and the new channels do reach the network once their weights move
        for p in wide.backbone.parameters():
            if p.dim() == 4 and p.shape[1] == 12:
                p[:, 8:] = 0.1
        assert not torch.allclose(wide(x, std), plain(x, std))
    weights = wide.state_dict()
    assert widen_input(weights, wide.config) is weights  # already wide: left alone
    with pytest.raises(ValueError, match="more than"):
        widen_input(wide.state_dict(), plain.config)


@pytest.mark.parametrize("factor", [2, 3])
def test_a_widened_unet_computes_what_the_narrow_one_did(factor):
    from exposed.denoise.networks import UNet, widen_unet

    torch.manual_seed(0)
    narrow = UNet(12, 9, 4).double().eval()
    x = torch.randn(2, 12, 48, 64, dtype=torch.float64)
    exact = UNet(12, 9, 4 * factor).double().eval()
    exact.load_state_dict(widen_unet(narrow.state_dict(), 4, factor, noise=0.0))
    nudged = UNet(12, 9, 4 * factor).double().eval()
    nudged.load_state_dict(widen_unet(narrow.state_dict(), 4, factor, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        reference = narrow(x)
        torch.testing.assert_close(exact(x), reference, rtol=1e-12, atol=1e-12)
        # the copies moved apart (else Adam keeps them copies): close to the function, not equal to it
        difference = (nudged(x) - reference).abs().max().item()
        assert 0 < difference < 2e-3 * reference.abs().max().item()
    # level 1's first convolution: 8 channels from 4, now 8 * factor from 4 * factor; the copies of a
    # channel differ but average to the narrow weights, each input copy read 1 / factor
    wide, old = nudged.down[1][0].weight, narrow.down[1][0].weight
    assert not torch.allclose(wide[:8], wide[8:16])
    torch.testing.assert_close(wide.reshape(factor, 8, 4 * factor, 3, 3).mean(0),
                               old[:, torch.arange(4 * factor) % 4] / factor)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("kind", ["diffusion", "feedforward"])
def test_a_model_file_starts_a_unet_a_whole_factor_wider_and_nothing_else(kind, device):
    from exposed.denoise.model import widen_width

    torch.manual_seed(0)
    narrow = ExposureModel(ModelConfig("unet", 4, kind, noise_input="std+log")).to(device).eval()
    wide = ExposureModel(ModelConfig("unet", 8, kind, noise_input="std+log")).to(device).eval()
    wide.load_state_dict(widen_width(narrow.state_dict(), 4, wide.config))  # weights where the model is
    x = torch.rand(1, 4, 32, 32, device=device) * 1.5
    with torch.no_grad():
        assert (wide(x, x * 0.02) - narrow(x, x * 0.02)).abs().max().item() < 1e-3
    weights = narrow.state_dict()
    assert widen_width(weights, 4, narrow.config) is weights
    with pytest.raises(ValueError, match="whole factor"):
        widen_width(weights, 4, ModelConfig("unet", 6, kind))
    with pytest.raises(ValueError, match="whole factor"):
        widen_width(ExposureModel(ModelConfig("nafnet", 4, kind)).state_dict(), 4, ModelConfig("nafnet", 8, kind))


def test_an_unknown_noise_input_is_refused_not_built_as_the_plain_one():
    with pytest.raises(ValueError, match="std\\+log"):
        ModelConfig(noise_input="log")  # type: ignore[arg-type]
