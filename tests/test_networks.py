import pytest
import torch

from exposed.denoise.networks import NAFNet, UNet, build_backbone, crop_to, pad_to_multiple
from exposed.denoise.model import ExposureModel, ModelConfig


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
