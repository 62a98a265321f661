"""Orientation in one place: LibRaw's flip codes, the TIFF/EXIF Orientation values, and turning
pixels upright, for tensors (B, C, H, W) and arrays (H, W, C) alike.

LibRaw reports a raw's orientation as a flip code (3: 180 degrees, 5: a quarter turn counter-clockwise,
6: clockwise); photos and DNGs carry the TIFF tag instead. Only the rotations occur in cameras'
files; mirrored codes are kept in the table so a tag round-trips, and leave pixels as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import Tensor

# LibRaw's flip codes and the TIFF Orientation values they come from.
TIFF_ORIENTATION = {0: 1, 1: 2, 3: 3, 2: 4, 4: 5, 6: 6, 7: 7, 5: 8}
_FLIP_FROM_TIFF = {tiff: flip for flip, tiff in TIFF_ORIENTATION.items()}
_QUARTER_TURNS = {3: 2, 5: 1, 6: -1}  # counter-clockwise quarter turns that make a flip code upright


def flip_from_tiff(orientation: int | None) -> int:
    """LibRaw's flip code for a TIFF/EXIF Orientation value (1, i.e. none, when absent or unknown)."""
    return _FLIP_FROM_TIFF.get(orientation or 1, 0)


def orient(image: Tensor, flip: int) -> Tensor:
    """(..., H, W) turned upright by LibRaw's flip code."""
    turns = _QUARTER_TURNS.get(flip, 0)
    return image.rot90(turns, (-2, -1)) if turns else image


def upright(image: np.ndarray, flip: int) -> np.ndarray:
    """(H, W, C) turned upright by LibRaw's flip code (as :func:`orient`, for arrays)."""
    turns = _QUARTER_TURNS.get(flip, 0)
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image
