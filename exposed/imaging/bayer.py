"""Bayer mosaics: sampling RGB to a colour filter array, and packing 2x2 cells to 4 channels.

Packing is canonical, whatever the sensor's order: channel 0 is red, 1 the green on the red row,
2 the green on the blue row, 3 blue. A network therefore sees the same colours in the same
channels for RGGB, BGGR, GRBG and GBRG sensors, and the two channels that share a sensor row
are always (0, 1) and (2, 3), which is what row noise needs. :func:`pack` and :func:`unpack` take
numpy arrays and tensors alike (a photo's plan is numpy; see :mod:`exposed.imaging.arrays`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from exposed.imaging.arrays import Array, namespace

if TYPE_CHECKING:
    from torch import Tensor


PATTERNS: tuple[str, ...] = ("RGGB", "BGGR", "GRBG", "GBRG")

_COLOUR_INDEX = {"R": 0, "G": 1, "B": 2}


def cell_offsets(pattern: str) -> list[tuple[int, int]]:
    """(row, column) inside the 2x2 cell of R, G-on-red-row, G-on-blue-row and B, in that order."""
    pattern = pattern.upper()
    if pattern not in PATTERNS:
        raise ValueError(f"unsupported Bayer pattern {pattern!r}; expected one of {', '.join(PATTERNS)}")
    where = {(r, c): pattern[2 * r + c] for r in range(2) for c in range(2)}
    red = next(pos for pos, ch in where.items() if ch == "R")
    blue = next(pos for pos, ch in where.items() if ch == "B")
    green_red_row = (red[0], 1 - red[1])
    green_blue_row = (blue[0], 1 - blue[1])
    return [red, green_red_row, green_blue_row, blue]


def mosaic(rgb: Tensor, pattern: str) -> Tensor:
    """Keep, at each photosite, only the colour its filter passes.

    rgb: (B, 3, H, W) with H and W even. Returns (B, 1, H, W).
    """
    _check_even(rgb)
    out = rgb.new_empty(rgb[:, :1].shape)
    for (r, c), colour in zip(cell_offsets(pattern), "RGGB"):
        out[:, 0, r::2, c::2] = rgb[:, _COLOUR_INDEX[colour], r::2, c::2]
    return out


def pack(raw: Array, pattern: str) -> Array:
    """Fold each 2x2 Bayer cell into 4 channels in canonical order (R, G1, G2, B).

    raw: (B, 1, H, W) with H and W even, an array or a tensor. Returns (B, 4, H/2, W/2).
    """
    _check_even(raw)
    return namespace(raw).concatenate([raw[:, :, r::2, c::2] for r, c in cell_offsets(pattern)], 1)


def unpack(packed: Array, pattern: str) -> Array:
    """Inverse of :func:`pack`. packed: (B, 4, h, w), an array or a tensor. Returns (B, 1, 2h, 2w)."""
    b, ch, h, w = packed.shape
    if ch != 4:
        raise ValueError(f"expected 4 packed channels, got {ch}")
    shape = (b, 1, 2 * h, 2 * w)
    out = np.empty(shape, packed.dtype) if isinstance(packed, np.ndarray) else packed.new_empty(shape)
    for i, (r, c) in enumerate(cell_offsets(pattern)):
        out[:, 0, r::2, c::2] = packed[:, i]
    return out


def _check_even(x: np.ndarray | Tensor) -> None:
    if x.shape[-2] % 2 or x.shape[-1] % 2:
        raise ValueError(f"a Bayer mosaic needs even height and width, got {tuple(x.shape[-2:])}")


def fill_photosites(mosaic: np.ndarray, where: np.ndarray) -> np.ndarray:
    """A copy of ``mosaic`` (H, W) with the photosites at ``where`` (N, 2 rows and columns) replaced
    by the mean of their nearest neighbours of the same colour (two rows or columns away) that are
    not themselves in ``where``: how a camera maps out hot pixels."""
    out = mosaic.copy()
    h, w = mosaic.shape
    bad = np.zeros((h, w), dtype=bool)
    bad[where[:, 0], where[:, 1]] = True
    for r, c in where:
        values = [mosaic[r + dr, c + dc] for dr, dc in ((-2, 0), (2, 0), (0, -2), (0, 2))
                  if 0 <= r + dr < h and 0 <= c + dc < w and not bad[r + dr, c + dc]]
        if values:
            out[r, c] = np.asarray(np.mean(values)).round().astype(mosaic.dtype)
    return out
