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

import torch
from torch import Tensor

from exposed.denoise.model import ExposureModel
from exposed.denoise.numpy_infer import SITE_TRANSFORM as NUMPY_SITE_TRANSFORM
from exposed.denoise.numpy_infer import (BOUNDED_ERROR, CLIPPED_ERROR, CLIPPED_SIGMAS, OVERLAP, WIENER_BAND,
                                         blend_lattice, ramp, steps_for, tiling)
from exposed.denoise.numpy_infer import frame_snr as numpy_frame_snr
from exposed.denoise.numpy_infer import pilot_error as numpy_pilot_error
from exposed.denoise.process import noise_var, run_process
from exposed.exposure import brighten
from exposed.imaging.wiener import dct_wiener
from exposed.imaging.wiener_numpy import STRIDE, blend_bands
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


@torch.no_grad()
def predict(model: ExposureModel, amplified: Tensor, std: Tensor, tile: int | None = None,
            overlap: int = OVERLAP) -> Tensor:
    """F on a whole frame, tiled if ``tile`` (in packed pixels) is smaller than the frame. (B, 4, H, W)."""
    h, w = amplified.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        return model(amplified, std)
    out = torch.zeros_like(amplified, dtype=torch.float32)
    weight = torch.zeros(1, 1, h, w, device=amplified.device)
    (th, tops), (tw, lefts) = tiling(h, tile, overlap), tiling(w, tile, overlap)
    wgt = torch.from_numpy(ramp(th, overlap)[:, None] * ramp(tw, overlap)[None, :]).to(amplified.device)
    for top in tops:
        for left in lefts:
            window = (..., slice(top, top + th), slice(left, left + tw))
            out[window] += model(amplified[window], std[window]) * wgt
            weight[window] += wgt
    return out.div_(weight)


def default_steps(model: ExposureModel, ratio: float | None = None, snr: float | None = None) -> int:
    """The exposure steps T a model runs at ``ratio`` when none are asked for
    (:func:`exposed.denoise.numpy_infer.steps_for`, which says why)."""
    return steps_for(model.config, ratio, snr)


def frame_snr(dark: Tensor, sensor: SensorScale) -> float:
    """:func:`exposed.denoise.numpy_infer.frame_snr` of a (B, 4, H, W) normalised dark frame with
    the noise of ``sensor`` (its figures averaged)."""
    return numpy_frame_snr(dark.detach().float().cpu().numpy(), float(sensor.gain.float().mean()),
                           float(sensor.read_var.float().mean()))


SITE_TRANSFORM = torch.from_numpy(NUMPY_SITE_TRANSFORM)  # the sites' decorrelating transform (numpy_infer's says why)


def pilot_error(table: tuple[tuple[float, float], ...], ratio: Tensor) -> Tensor:
    """The network's error variance at each ratio (B,) (:func:`exposed.denoise.numpy_infer.pilot_error`)."""
    return torch.tensor([numpy_pilot_error(table, r) for r in ratio.tolist()], dtype=torch.float32,
                        device=ratio.device)


def wiener_blend(estimate: Tensor, amplified: Tensor, ratio: Tensor, sensor: SensorScale,
                 stride: int = STRIDE, error: Tensor | float = 0.0, band: int = WIENER_BAND,
                 bound: float = math.inf, clipped_error: float = CLIPPED_ERROR,
                 bounded_error: float = BOUNDED_ERROR, residual_error: float = 0.0,
                 quincunx: bool = False) -> Tensor:
    """The plain brightened frame filtered with the network's estimate as the pilot of an empirical
    Wiener filter (:func:`exposed.imaging.wiener.dct_wiener`), in the sites' decorrelated planes
    (:data:`SITE_TRANSFORM`).

    The result is the photo's own measurement, each DCT coefficient kept in the proportion the
    estimate says is signal: tone and colour come from the measurement, not from the network's
    slight shifts, texture the estimate shows is kept as shot, and noise the estimate shows none of
    is removed. The noise is the model's for the brightened frame at the estimate's level; ``error``
    is the estimate's own error variance, one per image (B,) (:func:`pilot_error`). Light above
    white carries nothing the result can use (the reference is white there): the brightened frame
    is taken at most one noise standard deviation above white, so a lamp's glow does not ring into
    its dark surroundings. At a photosite with a channel clipped (above white by more than
    CLIPPED_SIGMAS standard deviations), the estimate's error variance is taken ``clipped_error``
    larger, and ``bounded_error`` more where a channel reached ``bound``, the state's upper bound
    the network saw (ModelConfig.state_high; :data:`~exposed.denoise.numpy_infer.CLIPPED_ERROR`
    says why). ``residual_error``: the weight of each block's own evidence of the estimate's error
    (ModelConfig.residual_error). ``quincunx``: every other block start
    (:func:`~exposed.denoise.numpy_infer.blend_lattice`).

    Done in bands of ``band`` rows (a multiple of ``stride``), each with the rows its blocks reach
    beyond it: the result is the whole frame's to rounding, and nothing frame-sized is made but
    the result. (B, 4, H, W) in, the same out (float32).
    """
    one = torch.ones_like(ratio)
    sensor = sensor.to(estimate.device)
    sites = torch.zeros(estimate.shape[0], estimate.shape[1], 1, 1, device=estimate.device)
    read = noise_var(sites, one, ratio, sensor)  # (B, 4, 1, 1): the read noise's variance
    shot = noise_var(sites + 1.0, one, ratio, sensor).sub_(read)  # and the shot noise's at white
    top = shot.add(read).sqrt_().add_(1.0)
    clip_level = (top - 1.0) * CLIPPED_SIGMAS + 1.0
    transform = SITE_TRANSFORM.to(estimate.device)
    out = torch.empty_like(estimate, dtype=torch.float32)
    error = torch.as_tensor(error, dtype=torch.float32, device=estimate.device).reshape(-1, 1, 1, 1)
    for first, last, low, high in blend_bands(estimate.shape[-2], band, stride):
        rows = slice(low, high)
        level = estimate[..., rows, :].float()
        bright = amplified[..., rows, :]
        clipped, bounded = (bright > clip_level).any(1, keepdim=True), (bright >= bound).any(1, keepdim=True)
        trust = error.flatten()
        if clipped.any() or bounded.any():
            trust = clipped * clipped_error + bounded * bounded_error + error
        measured = _mix(transform, torch.minimum(bright, top))
        variance = _mix(transform.square(), level.clamp(0.0, 1.0).mul_(shot).add_(read))
        planes = dct_wiener(measured, _mix(transform, level), variance, trust, stride=stride,
                            residual_error=residual_error, quincunx=quincunx)
        out[..., first:last, :] = _mix(transform.T, planes[..., first - low:last - low, :])
    return out


def _mix(matrix: Tensor, x: Tensor) -> Tensor:
    """The channels of x (B, C, H, W) mixed by ``matrix`` (C', C): (B, C', H, W)."""
    return torch.einsum("pc,bchw->bphw", matrix, x)


@torch.no_grad()
def denoise(model: ExposureModel, dark: Tensor, ratio: Tensor, sensor: SensorScale, steps: int | None = None,
            generator: torch.Generator | None = None, precision: Precision = "fp32", tile: int | None = None,
            overlap: int = OVERLAP, on_step: Callable[[int, int], None] | None = None,
            saturated: Tensor | None = None, blend: bool = True) -> Tensor:
    """Brighten and denoise a dark packed raw: the estimate after T exposure steps (T + 1 passes of F).

    dark: (B, 4, H, W) normalised (black 0, white 1), not amplified. ratio: (B,). steps defaults to
    the model's own for the batch's largest ratio (:func:`default_steps`). ``on_step(done, total)`` is called
    after each network pass (progress for long frames). saturated: photosites at the white level in
    the dark frame, held at white (default ``dark >= 1``; see :func:`exposed.denoise.process.run_process`).
    ``blend``: where the model says so (its ``wiener_stride``), the result is the plain brightened
    frame Wiener-filtered with the network's estimate as the pilot (:func:`wiener_blend`), trusted
    as the model's ``pilot_error`` table says (:func:`pilot_error`). Returns
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
    if blend and model.config.wiener_stride:
        stride, quincunx = blend_lattice(model.config, float(ratio.max()))  # the batch's, as its steps
        ratio = ratio.to(dark.device, torch.float32)
        held = dark >= 1.0 if saturated is None else saturated.to(dark.device)
        estimate = wiener_blend(estimate, brighten(dark, ratio, saturated), ratio, sensor, stride,
                                pilot_error(model.config.pilot_error, ratio), bound=model.config.state_high,
                                residual_error=model.config.residual_error, quincunx=quincunx)
        estimate.masked_fill_(held, 1.0)
    return estimate.clamp_(0.0, 1.0)
