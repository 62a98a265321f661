"""Reading Bayer raw files through LibRaw (rawpy).

Callers get a :class:`RawImage` or one of a few typed exceptions whose message is a one-line
reason, ready to print beside the file name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rawpy


class RawError(Exception):
    """A raw file that exposed cannot use. ``str(error)`` is a one-line reason."""


class NotRawError(RawError):
    """The file is not a raw image LibRaw can read (or is truncated or empty)."""


class UnsupportedRawError(RawError):
    """A readable raw that is not a Bayer mosaic (X-Trans, Foveon, demosaiced DNG, scanner)."""


@dataclass
class RawImage:
    """The visible Bayer mosaic of a raw file and the levels needed to normalise it.

    mosaic: (H, W) sensor values, H and W even. pattern: Bayer order of the top-left 2x2 cell.
    black: (2, 2) black level of each position of the cell. white: the saturation level.
    """

    mosaic: np.ndarray
    pattern: str
    black: np.ndarray
    white: float


def read_raw(path: str | Path) -> RawImage:
    """Read the visible Bayer mosaic and its levels."""
    try:
        with rawpy.imread(str(path)) as raw:
            pattern = _bayer_pattern(raw)
            mosaic = np.array(raw.raw_image_visible, dtype=np.uint16)
            cell = raw.raw_pattern[:2, :2]
            black = np.asarray(raw.black_level_per_channel, dtype=np.float64)[cell]
            white = float(raw.white_level)
    except rawpy.LibRawError as error:
        raise NotRawError(f"not a readable raw file ({type(error).__name__})") from None
    h, w = mosaic.shape[0] & ~1, mosaic.shape[1] & ~1
    return RawImage(mosaic[:h, :w], pattern, black, white)


def _bayer_pattern(raw: rawpy.RawPy) -> str:
    pattern = raw.raw_pattern
    if pattern is None or raw.num_colors not in (3, 4):
        raise UnsupportedRawError("not a Bayer mosaic (already demosaiced or a non-camera scan); not supported")
    if pattern.shape != (2, 2):
        raise UnsupportedRawError(f"{pattern.shape[0]}x{pattern.shape[1]} colour filter (X-Trans or similar); "
                                  "only 2x2 Bayer sensors are supported")
    letters = "".join(chr(raw.color_desc[i]) for i in pattern.flatten())
    if sorted(letters) != ["B", "G", "G", "R"]:
        raise UnsupportedRawError(f"colour filter {letters} is not an RGB Bayer pattern; not supported")
    return letters
