"""Running a trained model on a whole frame (Algorithm 2), with bounded memory.

Large frames are processed tile by tile for the network only: each step of the exposure process
evaluates F on overlapping tiles blended with smooth weights, then draws that step's photons for
the whole frame at once. The random draws therefore do not depend on the tiling, and tiled and
untiled results differ only by the network's view of tile borders.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Literal

import torch
from torch import Tensor

from exposed.process import ExposureModel, SensorScale, run_process

Precision = Literal["fp32", "bf16"]


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` takes CUDA, then Apple MPS, then the CPU."""
    if name != "auto":
        return torch.device(name)
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


def autocast(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _tiles(size: int, tile: int, overlap: int) -> Iterator[int]:
    if size <= tile:
        yield 0
        return
    stride = tile - overlap
    starts = list(range(0, size - tile, stride)) + [size - tile]
    yield from starts


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
    for top in _tiles(h, tile, overlap):
        for left in _tiles(w, tile, overlap):
            window = (..., slice(top, top + tile), slice(left, left + tile))
            part = model(amplified[window], std[window])
            ph, pw = part.shape[-2:]
            wgt = _ramp(ph, overlap, amplified.device)[:, None] * _ramp(pw, overlap, amplified.device)[None, :]
            out[window] += part * wgt
            weight[window] += wgt
    return out / weight


def default_steps(model: ExposureModel, ratio: float | None = None) -> int:
    """The exposure steps T a model runs at ``ratio`` when none are asked for: one pass for the
    twin; for ExposureDiffusion its own T, or fewer for small ratios if the model says how much
    exposure a step should cover. The process re-exposes F's own estimate, which pays off where
    the dark frame is very noisy and costs detail where it is not (benchmarks/steps.py)."""
    config = model.config
    if config.kind == "feedforward":
        return 0
    return config.steps if ratio is None else steps_for_ratio(config.steps, config.ratio_per_step, ratio)


def steps_for_ratio(steps: int, ratio_per_step: float, ratio: float) -> int:
    """T = min(steps, ratio // ratio_per_step); always ``steps`` when ratio_per_step is 0."""
    return min(steps, int(ratio // ratio_per_step)) if ratio_per_step > 0 else steps


@torch.no_grad()
def denoise(model: ExposureModel, dark: Tensor, ratio: Tensor, sensor: SensorScale, steps: int | None = None,
            generator: torch.Generator | None = None, precision: Precision = "fp32", tile: int | None = None,
            overlap: int = 32, on_step: Callable[[int, int], None] | None = None) -> Tensor:
    """Brighten and denoise a dark packed raw: the estimate after T exposure steps (T + 1 passes of F).

    dark: (B, 4, H, W) normalised (black 0, white 1), not amplified. ratio: (B,). steps defaults to
    the model's own for the batch's largest ratio (:func:`default_steps`). ``on_step(done, total)`` is called
    after each network pass (progress for long frames). Returns (B, 4, H, W) in [0, 1].
    """
    if steps is None:
        steps = default_steps(model, float(ratio.max()))
    with autocast(dark.device, precision):
        for done, estimate in enumerate(run_process(model, dark, ratio, sensor, steps, generator,
                                                    forward=lambda state, std: predict(model, state, std, tile,
                                                                                       overlap)), start=1):
            if on_step is not None:
                on_step(done, steps + 1)
    return estimate.clamp(0.0, 1.0)
