"""The empirical Wiener filter of :mod:`exposed.imaging.wiener` on numpy arrays, for inference
outside torch (:mod:`exposed.denoise.numpy_infer`): the same blocks, gains and weights, so the two
agree to float32 rounding (tests/test_wiener_numpy.py); torch's stays for training, which needs
its gradients, and for GPUs.

Torch-free, as is everything a photo needs on the CPU: importing torch alone takes longer than
the rest of a 12 MP frame's work but the network (issue 18).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np

BLOCK = 8  # pixels: the DCT block's side
STRIDE = 4  # pixels between neighbouring blocks (benchmarks/steps.py scores 1, 2, 4 and 8)
NOISE_FLOOR = 1e-18  # the least noise variance a block is taken to have
STRIP = 64  # block rows transformed at a time, so a strip's coefficients stay in the CPU's cache

Window = tuple[slice, slice]


def block_strips(starts_h: int, starts_w: int, block: int, stride: int,
                 quincunx: bool = False) -> Iterator[tuple[Window, Window, int, int]]:
    """The order both runtimes' filters take a padded frame's blocks in: for each offset (dy, dx)
    of the (block / stride)^2 the blocks of that offset tile the frame, taken :data:`STRIP` block
    rows at a time. Yields the strip's window of the frame (rows, columns), its blocks' start
    cells in the grid of ``starts_h`` x ``starts_w`` starts (rows, columns), and its block rows and
    columns. ``quincunx``: only the offsets with dy + dx even, half the blocks: the lattice at
    twice the stride and a second one between its blocks (see :func:`dct_wiener`), which needs an
    even number of strides to a block."""
    steps = block // stride
    if quincunx and steps % 2:
        raise ValueError(f"a quincunx needs an even number of strides to a block, not {block} / {stride}")
    for dy in range(steps):
        rows_total = len(range(dy, starts_h, steps))
        for dx in range(steps):
            if quincunx and (dy + dx) % 2:
                continue
            across = len(range(dx, starts_w, steps))
            cols = slice(dx * stride, dx * stride + across * block)
            for first in range(0, rows_total, STRIP):
                rows = min(STRIP, rows_total - first)
                top = dy * stride + first * block
                starts = slice(dy + first * steps, dy + (first + rows) * steps, steps)
                yield (slice(top, top + rows * block), cols), (starts, slice(dx, None, steps)), rows, across


def blend_bands(height: int, band: int, stride: int) -> list[tuple[int, int, int, int]]:
    """The bands of ``band`` rows a frame's Wiener blend is done in, in both runtimes: each band's
    rows (first, last) and the rows its pixels' blocks reach (low, high). A last band too short
    to mirror joins the one before."""
    halo = BLOCK - stride
    firsts = list(range(0, height, band))
    if len(firsts) > 1 and height - firsts[-1] < stride:
        firsts.pop()
    return [(first, last, max(0, first - halo), min(height, last + halo))
            for first, last in zip(firsts, [*firsts[1:], height])]


def dct_matrix(size: int) -> np.ndarray:
    """The orthonormal DCT-II matrix (size, size), float32: row u is the u-th cosine, so ``D @ x``
    transforms x."""
    k = np.arange(size, dtype=np.float64)
    d = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * size)) * np.sqrt(2 / size)
    d[0] /= np.sqrt(2)
    return d.astype(np.float32)


def _cell_sums(x: np.ndarray, size: int) -> np.ndarray:
    """Sums of ``size`` x ``size`` cells of (n, H, W), H and W multiples of ``size``: added a row
    and then a column of the cells at a time, each step a pass over contiguous memory (numpy's
    reduction over a short inner axis runs ten times slower)."""
    n, h, w = x.shape
    rows = x.reshape(n, h // size, size, w)
    summed = rows[:, :, 0].copy()
    for i in range(1, size):
        summed += rows[:, :, i]
    cells = np.ascontiguousarray(summed[..., 0::size])
    for j in range(1, size):
        cells += summed[..., j::size]
    return cells


def _pooled_mean(x: np.ndarray, size: int, stride: int) -> np.ndarray:
    """Means of ``size`` x ``size`` windows every ``stride`` pixels of (n, H, W) (valid windows only)."""
    n, h, w = x.shape
    cells = _cell_sums(x[:, : h // stride * stride, : w // stride * stride], stride)
    steps = size // stride
    rows, cols = cells.shape[1] - steps + 1, cells.shape[2] - steps + 1
    total = np.zeros((n, rows, cols), dtype=np.float32)
    for i in range(steps):
        for j in range(steps):
            total += cells[:, i:i + rows, j:j + cols]
    return total / np.float32(size * size)


def dct_wiener(noisy: np.ndarray, pilot: np.ndarray, variance: np.ndarray, pilot_error: float | np.ndarray = 0.0,
               block: int = BLOCK, stride: int = STRIDE, residual_error: float = 0.0,
               quincunx: bool = False) -> np.ndarray:
    """``noisy`` filtered plane by plane with Wiener gains from ``pilot`` and the noise ``variance``
    of each of its pixels: :func:`exposed.imaging.wiener.dct_wiener` for one image, (C, H, W)
    float32 arrays in and out. ``pilot_error``: the pilot's own error variance, added to its power:
    a number or a map (1, H, W), taken per block as the noise is; ``residual_error``: the weight of
    each block's own evidence of it (torch's docstring says how); ``quincunx``: every other block
    start, as torch's."""
    if block % stride:
        raise ValueError(f"block {block} must be a multiple of stride {stride}")
    c, h, w = noisy.shape
    steps = block // stride
    pad = block - stride
    extra_h, extra_w = -h % stride, -w % stride
    mode: Literal["reflect", "edge"] = "reflect" if min(h, w) > pad + max(extra_h, extra_w) else "edge"
    widths = ((0, 0), (pad, pad + extra_h), (pad, pad + extra_w))

    def planes(x: np.ndarray) -> np.ndarray:
        return np.pad(x.astype(np.float32, copy=False), widths, mode=mode)

    measured, guide = planes(noisy), planes(pilot)
    n, height, width = measured.shape
    starts_h, starts_w = (height - block) // stride + 1, (width - block) // stride + 1
    # Each block's noise variance, its pixels' mean, floored as torch's is (see there why).
    noise = _pooled_mean(planes(variance), block, stride)
    d = dct_matrix(block)
    dt = np.ascontiguousarray(d.T)
    if isinstance(pilot_error, np.ndarray):  # a map: each block's mean, the same in every plane
        error = np.broadcast_to(_pooled_mean(planes(pilot_error), block, stride), noise.shape)
    else:
        error = np.broadcast_to(np.float32(pilot_error), noise.shape)
    if residual_error:
        excess = (_pooled_mean(np.square(measured - guide), block, stride) - noise).mean(axis=0, keepdims=True)
        error = error + np.float32(residual_error) * np.maximum(excess, np.float32(0.0))
    noise = np.maximum(noise, np.float32(NOISE_FLOOR))
    out = np.zeros_like(measured)
    share = np.zeros((n, starts_h, starts_w), dtype=np.float32)  # each block's weight, at its start

    for (top, cols), (cell_rows, cell_cols), rows, across in block_strips(starts_h, starts_w, block, stride,
                                                                          quincunx):
        window, starts = (slice(None), top, cols), (slice(None), cell_rows, cell_cols)

        def transform(x: np.ndarray) -> np.ndarray:  # (n, rows*block, across*block) -> (n, rows, u, across*v)
            x = np.ascontiguousarray(x).reshape(-1, block) @ dt
            return d @ x.reshape(n, rows, block, across * block)

        kept, weight = _shrink(transform(measured[window]), transform(guide[window]), error[starts], noise[starts])
        back = (dt @ kept).reshape(-1, block) @ d
        out[window] += back.reshape(n, rows * block, across * block)
        share[starts] = weight

    # A pixel's total weight: the shares of the blocks covering it, which start in the
    # ``steps`` x ``steps`` stride cells up and to the left of its own (one value per cell).
    cells = np.pad(share, ((0, 0), (steps - 1, steps - 1), (steps - 1, steps - 1)))
    total = np.zeros((n, starts_h + steps - 1, starts_w + steps - 1), dtype=np.float32)
    for i in range(steps):
        for j in range(steps):
            total += cells[:, i:i + starts_h + steps - 1, j:j + starts_w + steps - 1]
    # Cells of the padding a quincunx leaves without a block have no weight (and are cropped away).
    np.maximum(total, np.float32(1e-30), out=total)
    out.reshape(n, height // stride, stride, width // stride, stride)[...] /= total[:, :, None, :, None]
    return out[:, pad:pad + h, pad:pad + w]


def _shrink(coefficients: np.ndarray, guide: np.ndarray, error: np.ndarray,
            sigma2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One strip's Wiener-kept coefficients, weighted, and its blocks' weights (as torch's
    ``_shrink``; ``error`` and ``sigma2`` per block); overwrites ``guide``."""
    n, rows, block, width = coefficients.shape
    per_block = (n, rows, block, width // block, block)
    block_sigma2 = sigma2[:, :, None, :, None]
    gain = np.square(guide, out=guide)
    view = gain.reshape(per_block)
    view += error[:, :, None, :, None]
    view /= view + block_sigma2
    weight = _cell_sums(np.square(gain).reshape(n * rows, block, width), block).reshape(n, rows, width // block)
    weight *= sigma2
    weight = 1.0 / np.maximum(weight, np.float32(1e-30))
    view *= weight[:, :, None, :, None]
    view *= coefficients.reshape(per_block)
    return gain, weight
