"""The exposure process of ExposureDiffusion, which drives a model of :mod:`exposed.denoise.model`.

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

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from exposed.denoise.model import ExposureModel
from exposed.sensor.noise import SensorScale, sample_poisson

def _per_image(x: Tensor) -> Tensor:
    return x.view(-1, 1, 1, 1)


def _per_site(x: Tensor) -> Tensor:
    """(B,) or (B, 4) sensor figures, one per image or one per packed channel, to broadcast."""
    return x.view(x.shape[0], -1, 1, 1)


def noise_var(amplified: Tensor, exposure: Tensor, ratio: Tensor, sensor: SensorScale,
              high: float | None = None) -> Tensor:
    """Variance of shot plus read noise of a state, in amplified units, at its level clamped to
    [0, high] (no upper bound for None). (B, 4, H, W)."""
    boost = _per_image(ratio / exposure)
    level = amplified.clamp(0.0, high)  # one new frame; the rest is done in it
    return level.mul_(_per_site(sensor.gain) * boost).add_(_per_site(sensor.read_var) * boost**2)


def noise_std(amplified: Tensor, exposure: Tensor, ratio: Tensor, sensor: SensorScale) -> Tensor:
    """Standard deviation of shot plus read noise of a state, in amplified units. (B, 4, H, W)."""
    return noise_var(amplified, exposure, ratio, sensor).sqrt_()


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
    # Three new frames (the mean, the draw, the state), the rest in place: autograd needs none of
    # the values overwritten.
    mean = estimate.float().clamp_min(0.0).mul_(extra).div_(gain)
    # Drawn where the generator lives: a CPU generator serves devices without a Poisson sampler (MPS).
    where = generator.device if generator is not None else mean.device
    photons = sample_poisson(mean.detach().to(where), generator).to(mean.device)
    if straight_through:
        photons = (photons - mean).detach() + mean
    collected = amplified.mul(_per_image(exposure / ratio)).add_(photons.mul_(gain))
    return collected.mul_(_per_image(ratio / next_exposure))


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
        # In inference, frames nothing needs again are worked on in place (every new frame's pages
        # are faulted in afresh, benchmarks/results/speed.md): the last state, the forward's output.
        seen = state.clamp_(low, high) if t == steps and not training else state.clamp(low, high)
        estimate = forward(seen, noise_std(seen, exposures[:, t], ratio, sensor)).float()
        estimate = estimate.masked_fill(saturated, 1.0) if training else estimate.masked_fill_(saturated, 1.0)
        yield estimate
        if t < steps:
            state = expose(state, estimate, exposures[:, t], exposures[:, t + 1], ratio, sensor, generator,
                           straight_through=training)
