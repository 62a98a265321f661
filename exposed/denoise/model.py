"""The network F of the exposure process, built from a model file's settings (:mod:`exposed.denoise.config`).

Tensors are packed raws (B, 4, H, W) normalised to black 0, white 1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from exposed.denoise.config import LOG_STD_CENTRE, LOG_STD_FLOOR, LOG_STD_SCALE, ModelConfig, input_channels
from exposed.denoise.networks import build_backbone, crop_to, pad_to_multiple, widen_unet


class ExposureModel(nn.Module):
    """The network F and its output layer.

    Input: the amplified state and its noise level (the photon count it holds, expressed as the
    standard deviation of shot plus read noise that count implies, in amplified units): 8 channels.
    ``diffusion`` ends in the adaptive residual layer (9 outputs: mask logit, direct estimate,
    residual; F = M * clip(x0) + (1 - M) * clip(amplified + residual)). ``feedforward`` is the
    plain twin: 4 outputs, the estimate itself.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        out_channels = 9 if config.kind == "diffusion" else 4
        self.backbone = build_backbone(config.arch, input_channels(config), out_channels, config.width)

    def inputs(self, amplified: Tensor, noise_std: Tensor) -> Tensor:
        """What the backbone is given: the state and its noise level (and the level's log if the
        model takes it), (B, 8 or 12, H, W)."""
        channels = [amplified, noise_std]
        if self.config.noise_input == "std+log":
            channels.append(log_noise_level(noise_std))
        return torch.cat(channels, dim=1)

    def forward(self, amplified: Tensor, noise_std: Tensor) -> Tensor:
        h, w = amplified.shape[-2:]
        x = pad_to_multiple(self.inputs(amplified, noise_std), self.backbone.multiple)
        out = crop_to(self.backbone(x), h, w).float()
        if self.config.kind == "feedforward":
            return out
        mask = torch.sigmoid(out[:, :1])
        direct = out[:, 1:5].clamp(0.0, 1.0)
        residual = (amplified.float() + out[:, 5:9]).clamp(0.0, 1.0)
        return mask * direct + (1.0 - mask) * residual

    @property
    def ratio_range(self) -> tuple[float, float]:
        """The exposure ratios it was trained on."""
        return self.config.ratio_range


def log_noise_level(noise_std: Tensor) -> Tensor:
    """The noise level on a log scale, centred and scaled to order one (B, 4, H, W)."""
    level = noise_std.float().clamp_min(LOG_STD_FLOOR).log2_()
    return level.sub_(LOG_STD_CENTRE).div_(LOG_STD_SCALE).to(noise_std.dtype)


def widen_input(weights: dict[str, Tensor], config: ModelConfig) -> dict[str, Tensor]:
    """Weights of a model with fewer input channels, fitted to ``config``'s: the first convolution
    gains zero weights for the new channels, so the model computes exactly what it did and a
    fine-tune starts from there. (A model file with the inputs ``config`` asks for is returned as is.)"""
    wanted = input_channels(config)
    first = {"unet": "backbone.down.0.0.weight", "nafnet": "backbone.intro.weight"}[config.arch]
    weight = weights[first]
    if weight.shape[1] == wanted:
        return weights
    if weight.shape[1] > wanted:
        raise ValueError(f"the model file has {weight.shape[1]} input channels, more than the {wanted} asked for")
    extra = weight.new_zeros(weight.shape[0], wanted - weight.shape[1], *weight.shape[2:])
    return {**weights, first: torch.cat([weight, extra], dim=1)}


# The mask logit a twin's weights start the adaptive residual layer with: sigmoid(30) is 1 to 1e-13,
# so the layer gives the direct estimate alone, and training can still move the mask.
TWIN_MASK_LOGIT = 30.0


def diffusion_from_twin(weights: dict[str, Tensor], config: ModelConfig) -> dict[str, Tensor]:
    """Weights of a feed-forward twin fitted to ``config``'s diffusion model: the twin's 4 outputs
    become the adaptive residual layer's direct estimate and the mask starts fully on it, so the
    model computes the twin's estimate (clipped to [0, 1], as the layer clips it) and training for
    the exposure process starts from the better pilot instead of from nothing. The residual's 4
    outputs start at zero."""
    if config.kind != "diffusion":
        raise ValueError(f"a twin's weights start a diffusion model, not a {config.kind} one")
    last = {"unet": "backbone.out", "nafnet": "backbone.ending"}[config.arch]
    weight, bias = weights[f"{last}.weight"], weights[f"{last}.bias"]
    if weight.shape[0] != 4:
        raise ValueError(f"the model file has {weight.shape[0]} outputs, not a twin's 4")
    out_weight = weight.new_zeros(9, *weight.shape[1:])
    out_weight[1:5] = weight
    out_bias = bias.new_zeros(9)
    out_bias[0] = TWIN_MASK_LOGIT
    out_bias[1:5] = bias
    return {**weights, f"{last}.weight": out_weight, f"{last}.bias": out_bias}


def widen_width(weights: dict[str, Tensor], width: int, config: ModelConfig,
                generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Weights of a model of ``width``, fitted to ``config``'s wider UNet (a whole multiple of it)
    with :func:`exposed.denoise.networks.widen_unet`: a wider network starts from what a trained
    narrow one computes instead of from nothing. (Weights of ``config``'s width are returned as is.)"""
    if width == config.width:
        return weights
    if config.arch != "unet" or config.width < width or config.width % width:
        raise ValueError(f"a {config.arch} of width {config.width} cannot start from one of width {width}: "
                         "only a UNet widened by a whole factor can")
    prefix = "backbone."
    backbone = widen_unet({k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}, width,
                          config.width // width, generator=generator)
    return {**{k: v for k, v in weights.items() if not k.startswith(prefix)},
            **{prefix + k: v for k, v in backbone.items()}}
