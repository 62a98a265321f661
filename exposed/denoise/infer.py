"""Running a trained model on a whole frame (Algorithm 2), with bounded memory.

Large frames are processed tile by tile for the network only: each step of the exposure process
evaluates F on overlapping tiles blended with smooth weights, then draws that step's photons for
the whole frame at once. The random draws therefore do not depend on the tiling, and tiled and
untiled results differ only by the network's view of tile borders.
"""

from __future__ import annotations

import contextlib
import math
from typing import Literal, TypeVar
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from exposed.denoise.model import ExposureModel
from exposed.exposure import brighten
from exposed.imaging.filters import box_mean
from exposed.denoise.process import noise_std, noise_var, run_process
from exposed.sensor.noise import SensorScale

Precision = Literal["fp32", "bf16"]


M = TypeVar("M", bound=torch.nn.Module)


def channels_last(model: M) -> M:
    """The model with its 4-D weights in channels-last order, which CPU convolutions (and bf16 on
    CUDA) run faster in; torch's typing of ``Module.to`` lacks the ``memory_format`` it takes."""
    return model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA, then Apple MPS, then the CPU. ValueError for a name torch does not know."""
    if name != "auto":
        try:
            return torch.device(name)
        except RuntimeError:
            raise ValueError(f"unknown device {name!r}; expected auto, cpu, cuda, cuda:N or mps") from None
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def bf16_is_fast(device: torch.device) -> bool:
    """Whether bf16 autocast is worth using: CUDA with bf16 support, or a CPU with AVX-512 bf16 / AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def choose_precision(requested: str, device: torch.device) -> Precision:
    """``auto``: bf16 where the hardware makes it fast, else fp32; ``fp32`` and ``bf16`` as asked."""
    if requested == "auto":
        return "bf16" if bf16_is_fast(device) else "fp32"
    if requested == "fp32":
        return "fp32"
    if requested == "bf16":
        return "bf16"
    raise ValueError(f"unknown precision {requested!r}; expected auto, fp32 or bf16")


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


TILE_MULTIPLE = 16  # the UNet's: a tile of this multiple needs no padding


def tiling(size: int, tile: int, overlap: int) -> tuple[int, list[int]]:
    """The tile length and start offsets that cover ``size`` pixels with the fewest tiles of at
    most ``tile`` pixels overlapping by at least ``overlap``: as many as a ``tile`` stride needs,
    then shrunk to share the frame evenly, so no pass is spent on a tile that mostly repeats its
    neighbour. One length for all, so every tile has the same shape; length and stride are
    multiples of 16, the UNet's pooling grid, so neighbours see the frame on the same grid (the last
    tile ends at the frame's edge). On a 12 MP frame: 12% fewer pixels than 512-pixel tiles, PSNR
    within 0.02 dB of theirs."""
    if size <= tile:
        return size, [0]
    count = -(-(size - overlap) // (tile - overlap))
    length = -(-(size + (count - 1) * overlap) // count)
    length = min(tile, -(-length // TILE_MULTIPLE) * TILE_MULTIPLE)
    stride = (length - overlap) // TILE_MULTIPLE * TILE_MULTIPLE
    count = -(-(size - length) // stride) + 1  # the stride's rounding may need one tile more
    return length, [i * stride for i in range(count - 1)] + [size - length]


def _ramp(length: int, overlap: int, device: torch.device) -> Tensor:
    """1 in the middle, rising linearly over ``overlap`` pixels at both ends (never 0)."""
    ramp = torch.ones(length, device=device)
    if overlap > 0 and length > 2 * overlap:
        edge = (torch.arange(overlap, device=device, dtype=torch.float32) + 1) / (overlap + 1)
        ramp[:overlap], ramp[-overlap:] = edge, edge.flip(0)
    return ramp


@torch.no_grad()
def predict(model: ExposureModel, amplified: Tensor, std: Tensor, tile: int | None = None,
            overlap: int = 32) -> Tensor:
    """F on a whole frame, tiled if ``tile`` (in packed pixels) is smaller than the frame. (B, 4, H, W)."""
    h, w = amplified.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        return model(amplified, std)
    out = torch.zeros_like(amplified, dtype=torch.float32)
    weight = torch.zeros(1, 1, h, w, device=amplified.device)
    (th, tops), (tw, lefts) = tiling(h, tile, overlap), tiling(w, tile, overlap)
    wgt = _ramp(th, overlap, amplified.device)[:, None] * _ramp(tw, overlap, amplified.device)[None, :]
    for top in tops:
        for left in lefts:
            window = (..., slice(top, top + th), slice(left, left + tw))
            out[window] += model(amplified[window], std[window]) * wgt
            weight[window] += wgt
    return out.div_(weight)


def default_steps(model: ExposureModel, ratio: float | None = None, snr: float | None = None) -> int:
    """The exposure steps T a model runs at ``ratio`` when none are asked for: one pass for the
    twin; for ExposureDiffusion its own T, or fewer for small ratios if the model says how much
    exposure a step should cover, and fewer for clean frames (a high ``snr``, :func:`frame_snr`) if
    it says how clean a frame a step is for. The process re-exposes F's own estimate, which pays off
    where the dark frame is very noisy and costs detail where it is not (benchmarks/steps.py,
    benchmarks/steps_snr.py)."""
    config = model.config
    if config.kind == "feedforward":
        return 0
    steps = config.steps if ratio is None else steps_for_ratio(config.steps, config.ratio_per_step, ratio)
    if snr is not None and config.snr_per_step > 0:
        steps = min(steps, steps_for_snr(config.steps, config.snr_per_step, snr))
    return steps


def steps_for_ratio(steps: int, ratio_per_step: float, ratio: float) -> int:
    """T = min(steps, ratio // ratio_per_step); always ``steps`` when ratio_per_step is 0."""
    return min(steps, int(ratio // ratio_per_step)) if ratio_per_step > 0 else steps


SNR_SAMPLE_STRIDE = 7  # every 7th photosite is plenty for a median, and keeps it from costing a pass


def frame_snr(dark: Tensor, sensor: SensorScale) -> float:
    """A dark frame's signal-to-noise ratio as it can be known without the truth: its median level
    over the noise the sensor has there, sqrt(gain * level + read variance). dark: (B, 4, H, W)
    normalised, not amplified (a batch is taken as a whole); sensor: its noise (per frame, or per
    frame and site)."""
    level = float(dark.flatten()[::SNR_SAMPLE_STRIDE].float().clamp_min(0.0).median())
    gain, read_var = float(sensor.gain.float().mean()), float(sensor.read_var.float().mean())
    return level / math.sqrt(gain * level + read_var)


def steps_for_snr(steps: int, snr_per_step: float, snr: float) -> int:
    """T = min(steps, snr_per_step // snr): the noisier the frame, the more steps; always ``steps``
    when snr_per_step is 0."""
    if snr_per_step <= 0:
        return steps
    return steps if snr <= 0 else min(steps, int(snr_per_step // snr))


def error_variance(fusion: tuple[tuple[float, float], ...], ratio: Tensor) -> Tensor:
    """The network's error variance at each ratio (B,), interpolated log-linearly in the (ratio,
    tau2) table of a model's ``fusion`` and held at its ends."""
    table = np.log(np.asarray(fusion, dtype=np.float64))
    log_tau2 = np.interp(np.log(ratio.double().cpu().numpy()), table[:, 0], table[:, 1])
    return torch.from_numpy(np.exp(log_tau2)).float().to(ratio.device)


FUSION_WINDOW = 5  # packed pixels: the neighbourhood (5 x 5 x 4 photosites) that gauges the estimate's local error
FUSION_SIGNIFICANCE = 3.0  # standard errors by which that gauge must exceed the noise before it counts


def channel_mean_square(x: Tensor) -> Tensor:
    """The mean over channels of x squared, (B, C, H, W) to (B, 1, H, W), one channel at a time:
    on the CPU a sixth of ``(x * x).mean(1)``'s time and a fiftieth of ``linalg.vector_norm``'s
    (a reduction across the channel stride; benchmarks/results/speed.md), with no C-channel temporary."""
    total = x[:, :1].square()
    for c in range(1, x.shape[1]):
        total.addcmul_(x[:, c:c + 1], x[:, c:c + 1])
    return total.div_(x.shape[1])


def fuse(estimate: Tensor, amplified: Tensor, tau2: Tensor, ratio: Tensor, sensor: SensorScale,
         window: int = FUSION_WINDOW, significance: float = FUSION_SIGNIFICANCE) -> Tensor:
    """Blend the network's estimate with the plain brightened frame, pixel by pixel, as two noisy
    measurements of one value are combined (the linear minimum-variance rule):

        out = estimate + w * (amplified - estimate),  w = tau2_local / (tau2_local + var_amplified)

    var_amplified is the brightened frame's noise at the estimate's level (shot and read noise
    times the ratio, known from the noise model). tau2 (B,) is the network's typical error variance
    at the ratio; where the frame is barely noisy (a photo a stop or two dark, a bright area) w is
    near 1 and the photo's own detail is kept, where it is very noisy w is near 0 and the estimate
    wins. This is what keeps exposed from doing worse than plain brightening on average.

    A network errs most in a few places (the steep falloff around a lamp, fine texture it smooths
    away), and there a typical tau2 is far too small. So tau2_local adds the estimate's local error
    where it shows: over a ``window`` x ``window`` neighbourhood (odd; reflected at the frame's
    edges, :func:`exposed.imaging.filters.box_mean`), the mean of (amplified - estimate)^2 is the
    noise variance plus the estimate's squared error; its excess over the noise's mean variance,
    beyond ``significance`` standard errors of a sample variance, is taken as error. In smooth,
    well-denoised areas the excess is noise and tau2_local stays tau2. ``window=0`` uses tau2
    alone. (B, 4, H, W) in, the same out.
    """
    one = torch.ones_like(ratio)
    var = noise_var(estimate, one, ratio, sensor.to(estimate.device), high=1.0)
    tau2 = tau2.view(-1, 1, 1, 1)
    # Few frame-sized temporaries: each one's pages are faulted in afresh (benchmarks/results/speed.md).
    difference = amplified - estimate
    if window:
        radius, channels = window // 2, estimate.shape[1]
        noise = box_mean(var.mean(1, keepdim=True), radius)
        # tau2 + relu(excess - significance * noise * sqrt(2 / samples)), excess = mean square - noise
        threshold = 1.0 + significance * math.sqrt(2.0 / (window * window * channels))
        tau2 = box_mean(channel_mean_square(difference), radius).sub_(noise, alpha=threshold).clamp_min_(0.0).add_(tau2)
    weight = var.add_(tau2).reciprocal_().mul_(tau2)  # tau2 / (tau2 + var), in var's frame
    return difference.mul_(weight).add_(estimate)


def mean_window(table: tuple[tuple[float, int], ...], ratio: float) -> int:
    """The block size of :func:`keep_local_mean` at ``ratio``: that of the table's nearest ratio (in
    log ratio), 0 (not done) for an empty table."""
    if not table:
        return 0
    return min(table, key=lambda entry: abs(math.log(entry[0]) - math.log(ratio)))[1]


def keep_local_mean(estimate: Tensor, amplified: Tensor, ratio: Tensor, sensor: SensorScale, window: int) -> Tensor:
    """The estimate with its local mean replaced by the brightened frame's: the mean difference over
    ``window`` x ``window`` blocks, interpolated bilinearly between block centres, is added back.

    The brightened frame is an unbiased measurement of the scene; averaged over a block, its noise's
    standard deviation falls by the block's side, while a network's error is mostly a slowly varying
    shift of tone and colour that averaging does not remove. Light above white carries nothing the result can use
    (the reference is white there): the brightened frame is taken at most one standard deviation of
    the noise at white above white, which keeps noise near white unbiased and a lamp's glow from
    lifting its dark surroundings. (B, 4, H, W) in, the same out; ``window`` 0 returns the estimate.
    """
    if window <= 0:
        return estimate
    h, w = estimate.shape[-2:]
    white = torch.ones(estimate.shape[0], estimate.shape[1], 1, 1, device=estimate.device)
    top = noise_std(white, torch.ones_like(ratio), ratio, sensor.to(estimate.device)).add_(1.0)
    difference = torch.minimum(amplified, top).sub_(estimate)
    blocks = F.avg_pool2d(difference, window, window, ceil_mode=True)
    return F.interpolate(blocks, size=(h, w), mode="bilinear", align_corners=False).add_(estimate)


@torch.no_grad()
def denoise(model: ExposureModel, dark: Tensor, ratio: Tensor, sensor: SensorScale, steps: int | None = None,
            generator: torch.Generator | None = None, precision: Precision = "fp32", tile: int | None = None,
            overlap: int = 32, on_step: Callable[[int, int], None] | None = None,
            saturated: Tensor | None = None, blend: bool = True) -> Tensor:
    """Brighten and denoise a dark packed raw: the estimate after T exposure steps (T + 1 passes of F).

    dark: (B, 4, H, W) normalised (black 0, white 1), not amplified. ratio: (B,). steps defaults to
    the model's own for the batch's largest ratio (:func:`default_steps`). ``on_step(done, total)`` is called
    after each network pass (progress for long frames). saturated: photosites at the white level in
    the dark frame, held at white (default ``dark >= 1``; see :func:`exposed.denoise.process.run_process`).
    ``blend``: where the model has the tables for them, the result takes the plain brightened
    frame's local mean (:func:`keep_local_mean`), then is blended with it (:func:`fuse`). Returns
    (B, 4, H, W) in [0, 1].
    """
    if steps is None:
        steps = default_steps(model, float(ratio.max()), frame_snr(dark, sensor))
    with autocast(dark.device, precision):
        estimates = run_process(model, dark, ratio, sensor, steps, generator, saturated=saturated,
                                forward=lambda state, std: predict(model, state, std, tile, overlap))
        for done, estimate in enumerate(estimates, start=1):  # noqa: B007 (the last estimate is the result)
            if on_step is not None:
                on_step(done, steps + 1)
    config = model.config
    if blend and (config.fusion or config.local_mean):
        ratio = ratio.to(dark.device, torch.float32)
        amplified = brighten(dark, ratio, saturated)
        window = mean_window(config.local_mean, float(ratio.max()))
        if window:
            estimate = keep_local_mean(estimate, amplified, ratio, sensor, window)
            estimate.masked_fill_(dark >= 1.0 if saturated is None else saturated.to(dark.device), 1.0)
        if config.fusion:
            estimate = fuse(estimate, amplified, error_variance(config.fusion, ratio), ratio, sensor)
    return estimate.clamp_(0.0, 1.0)
