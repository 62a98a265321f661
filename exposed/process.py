"""The exposure process of ExposureDiffusion and the model that drives it.

A dark frame is a short exposure of the scene; the process simulates ever longer exposures of the
same scene. Each state is kept brightened to the reference exposure ("amplified"), together with
its exposure lambda (1 for the dark frame, the ratio r for the reference). One shared network F
predicts the clean reference from a state; the next, longer exposure adds the photons that
prediction implies for the extra time, as Poisson counts (Eq. 10):

    n_next = n_t + Poisson((lambda_next - lambda_t) / r * F(X_t) * S / K)

where n are photo-electron counts, S = white - black and K the system gain. Nothing here ever looks
at a ground truth: training compares each prediction with it, inference never sees one.

Tensors are packed raws (B, 4, H, W) normalised to black 0, white 1; per-image values are (B,).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from exposed.networks import build_backbone, crop_to, pad_to_multiple
from exposed.noise import NoiseParams

Kind = Literal["diffusion", "feedforward"]


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model: stored in every checkpoint (JSON-serialisable)."""

    arch: str = "unet"
    width: int = 16
    kind: Kind = "diffusion"
    steps: int = 2  # the default number of exposure steps T at inference (the most, with ratio_per_step)
    # Exposure ratio one inference step should cover: T = min(steps, ratio // ratio_per_step), so a
    # frame only a few times too dark gets one pass. 0: always ``steps``. Chosen on validation at
    # export (benchmarks/steps.py); training ignores it.
    ratio_per_step: float = 0.0
    # The state is clamped to [state_low, state_high] before the network sees it (its noise channel
    # is computed from the clamped state too). Noise at x100-x300 routinely reaches 2 or 3 times
    # white and must stay visible; a lamp clipped in the dark frame is about ``ratio`` times white
    # and must not: no network saw such values in training. Chosen by benchmarks/bounds.py.
    state_low: float = -1.0
    state_high: float = 4.0
    # (ratio, tau2) pairs, ratios ascending: the variance of the network's own error at that ratio,
    # by which the result is blended with the plain brightened frame (exposed.infer.fuse). Chosen
    # on validation at export (benchmarks/steps.py); empty: no blending. Training ignores it.
    fusion: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:  # JSON gives lists; keep the config hashable and comparable
        object.__setattr__(self, "fusion", tuple((float(r), float(t)) for r, t in self.fusion))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ExposureModel(nn.Module):
    """The network F and its output layer.

    Input: the amplified state and its noise level (the photon count it holds, expressed as the
    standard deviation of shot plus read noise that count implies, in amplified units): 8 channels.
    ``diffusion`` ends in the adaptive residual layer (9 outputs: mask logit, direct estimate,
    residual; F = M * clip(x0) + (1 - M) * clip(amplified + residual)). ``feedforward`` is the
    plain twin: 4 outputs, the estimate itself.
    """

    def __init__(self, config: ModelConfig, ratio_range: tuple[float, float] = (1.0, 300.0)):
        super().__init__()
        self.config = config
        self.ratio_range = ratio_range  # the exposure ratios it was trained on
        out_channels = 9 if config.kind == "diffusion" else 4
        self.backbone = build_backbone(config.arch, 8, out_channels, config.width)

    def forward(self, amplified: Tensor, noise_std: Tensor) -> Tensor:
        h, w = amplified.shape[-2:]
        x = pad_to_multiple(torch.cat([amplified, noise_std], dim=1), self.backbone.multiple)
        out = crop_to(self.backbone(x), h, w).float()
        if self.config.kind == "feedforward":
            return out
        mask = torch.sigmoid(out[:, :1])
        direct = out[:, 1:5].clamp(0.0, 1.0)
        residual = (amplified.float() + out[:, 5:9]).clamp(0.0, 1.0)
        return mask * direct + (1.0 - mask) * residual


@dataclass(frozen=True)
class SensorScale:
    """The noise figures the process needs, per image, in normalised units.

    gain: K / S, the normalised signal of one photo-electron. read_var: read variance / S^2.
    Each is (B,), or (B, 4) for figures that differ between the CFA sites (packed order).
    """

    gain: Tensor
    read_var: Tensor

    @classmethod
    def from_noise(cls, noise: NoiseParams, quantised: bool = False) -> SensorScale:
        """``quantised``: the frame was rounded to whole DN, which adds 1/12 DN^2 to P+G's read
        variance (the ELD model counts its quantisation already)."""
        rounding = 1.0 / 12.0 if quantised and noise.model == "pg" else 0.0
        return cls(noise.K / noise.scale, (noise.read_variance() + rounding) / noise.scale**2)

    def to(self, device: torch.device | str) -> SensorScale:
        return SensorScale(self.gain.to(device), self.read_var.to(device))


def _per_image(x: Tensor) -> Tensor:
    return x.view(-1, 1, 1, 1)


def _per_site(x: Tensor) -> Tensor:
    """(B,) or (B, 4) sensor figures, one per image or one per packed channel, to broadcast."""
    return x.view(x.shape[0], -1, 1, 1)


def noise_std(amplified: Tensor, exposure: Tensor, ratio: Tensor, sensor: SensorScale) -> Tensor:
    """Standard deviation of shot plus read noise of a state, in amplified units. (B, 4, H, W)."""
    boost = _per_image(ratio / exposure)
    var = _per_site(sensor.gain) * boost * amplified.clamp_min(0.0) + _per_site(sensor.read_var) * boost**2
    return var.sqrt()


def exposure_schedule(ratio: Tensor, steps: int, generator: torch.Generator | None = None,
                      random: bool = False) -> Tensor:
    """Exposures lambda of states X_T .. X_0, shape (B, steps + 1): 1 first, the ratio last.

    Linear by default (for x300 in three steps: 1, 100, 200, 300); ``random`` draws sorted
    intermediate exposures, as training does so every exposure gets learnt. Ratios below ``steps``
    (or below 1) never go backwards: an exposure is never shorter than the one before.
    """
    b = ratio.numel()
    if random and steps > 0:
        fractions = torch.rand(b, steps, generator=generator, device=ratio.device).sort(dim=1).values
        fractions[:, -1] = 1.0
    else:
        fractions = torch.arange(1, steps + 1, device=ratio.device, dtype=torch.float32).expand(b, steps)
        fractions = fractions / max(steps, 1)
    later = torch.maximum(fractions * ratio[:, None], torch.ones_like(fractions))
    return torch.cat([torch.ones(b, 1, device=ratio.device), later], dim=1)


def expose(amplified: Tensor, estimate: Tensor, exposure: Tensor, next_exposure: Tensor, ratio: Tensor,
           sensor: SensorScale, generator: torch.Generator | None = None, straight_through: bool = False) -> Tensor:
    """One step of the process: the state at ``next_exposure`` from the state at ``exposure`` (Eq. 10).

    The added photons are Poisson with the mean that ``estimate`` implies; with ``straight_through``
    gradients pass through that mean (training), otherwise the step is a plain sample.
    """
    gain = _per_site(sensor.gain)
    extra = _per_image((next_exposure - exposure) / ratio)
    mean = (extra * estimate.float().clamp_min(0.0) / gain)
    # Drawn where the generator lives: a CPU generator serves devices without a Poisson sampler (MPS).
    where = generator.device if generator is not None else mean.device
    photons = torch.poisson(mean.detach().to(where), generator=generator).to(mean.device)
    if straight_through:
        photons = (photons - mean).detach() + mean
    collected = amplified * _per_image(exposure / ratio) + photons * gain
    return collected * _per_image(ratio / next_exposure)


def run_process(model: ExposureModel, dark: Tensor, ratio: Tensor, sensor: SensorScale, steps: int,
                generator: torch.Generator | None = None, training: bool = False,
                forward: Callable[[Tensor, Tensor], Tensor] | None = None,
                saturated: Tensor | None = None) -> Iterator[Tensor]:
    """Run the exposure process from a dark frame, yielding F's estimate at every step (T + 1 of them).

    dark: (B, 4, H, W) normalised, not amplified; the last estimate is the result. ``training`` draws
    random intermediate exposures and lets gradients through the photon draws; ``forward`` replaces
    the plain call of the model (tiled inference). Any model can be run through the process, the
    feed-forward twin included (that is the baseline curve of the paper's Fig. 6).

    saturated: (B, 4, H, W) bool, the photosites that reached the white level in the dark frame
    (default: ``dark >= 1``). Their light is unknown beyond "at least white", so every estimate holds
    them at white: a clipped lamp stays a white lamp, whatever the network makes of it.
    """
    forward = forward or model
    ratio = ratio.to(dark.device, torch.float32)
    sensor = sensor.to(dark.device)
    saturated = dark >= 1.0 if saturated is None else saturated.to(dark.device)
    low, high = model.config.state_low, model.config.state_high
    exposures = exposure_schedule(ratio, steps, generator, random=training)
    state = dark.float() * _per_image(ratio)
    for t in range(steps + 1):
        seen = state.clamp(low, high)
        estimate = forward(seen, noise_std(seen, exposures[:, t], ratio, sensor)).float()
        estimate = estimate.masked_fill(saturated, 1.0)
        yield estimate
        if t < steps:
            state = expose(state, estimate, exposures[:, t], exposures[:, t + 1], ratio, sensor, generator,
                           straight_through=training)
