"""A simple camera pipeline in numpy, from a normalised Bayer mosaic to display sRGB.

Demosaicing (Malvar-He-Cutler), white balance with highlight clipping, the camera-to-sRGB matrix,
the sRGB transfer curve and an optional gentle tone curve, in strips of rows shared among the
CPU's cores. numpy, not torch: a photo is rendered once, on the CPU, whatever device denoised it,
and plain brightening then loads no torch at all (issue 18: importing torch took over half of
rawtherapee-cli's whole run). Shapes: mosaics (H, W), images (H, W, 3); H and W even.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import numpy as np

from exposed.imaging.arrays import Array
from exposed.imaging.bayer import cell_offsets
from exposed.imaging.color import linear_to_srgb


# Malvar, He and Cutler (ICASSP 2004), gradient-corrected linear interpolation, in eighths.
_MHC = np.array([
    # green at red and blue sites
    [[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]],
    # the colour of the horizontal neighbours, at a green site
    [[0, 0, 0.5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0], [0, 0, 0.5, 0, 0]],
    # the colour of the vertical neighbours, at a green site
    [[0, 0, -1, 0, 0], [0, -1, 4, -1, 0], [0.5, 0, 5, 0, 0.5], [0, -1, 4, -1, 0], [0, 0, -1, 0, 0]],
    # red at blue sites and blue at red sites
    [[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0], [0, 0, -1.5, 0, 0]],
], dtype=np.float64) / 8.0

_INDEX = {"R": 0, "G": 1, "B": 2}
STRIP = 64  # packed rows per unit of work: a few MB of float32, so each stays in cache
Tap = tuple[int, int, int, float]  # packed channel, row and column offset in the padded packed raw, weight


@cache  # four patterns
def _taps(pattern: str) -> tuple[tuple[Tap, ...], ...]:
    """The Malvar-He-Cutler filters on the packed raw: for each output ``colour * 4 + 2 * row +
    column`` (a colour at one site of the 2 x 2 cell), its nonzero taps.

    A 5 x 5 window around any photosite lies within the 3 x 3 packed cells around its own, so every
    output is a fixed linear map of a 3 x 3 x 4 packed neighbourhood; 7 of its 36 weights are not
    zero on average, so sums of shifted views beat a dense convolution.
    """
    sites = cell_offsets(pattern)  # packed channel i holds the raw site sites[i]
    channel_of = {pos: i for i, pos in enumerate(sites)}
    letters = {pos: colour for pos, colour in zip(sites, "RGGB")}
    weight = np.zeros((12, 4, 3, 3))
    for (r, c), colour in letters.items():
        filters = {_INDEX[colour]: np.zeros((5, 5))}
        filters[_INDEX[colour]][2, 2] = 1.0
        if colour == "G":
            filters[_INDEX[letters[(r, 1 - c)]]] = _MHC[1]
            filters[_INDEX[letters[(1 - r, c)]]] = _MHC[2]
        else:
            filters[1] = _MHC[0]
            filters[_INDEX["B" if colour == "R" else "R"]] = _MHC[3]
        for k, taps in filters.items():
            for dy in range(-2, 3):
                for dx in range(-2, 3):
                    y, x = r + dy, c + dx
                    site = channel_of[(y % 2, x % 2)]
                    weight[k * 4 + 2 * r + c, site, y // 2 + 1, x // 2 + 1] += taps[dy + 2, dx + 2]
    return tuple(tuple((ch, dy, dx, float(weight[o, ch, dy, dx])) for ch, dy, dx in zip(*np.nonzero(weight[o])))
                 for o in range(12))


def _padded_planes(mosaic: np.ndarray, pattern: str, clip: bool) -> np.ndarray:
    """(4, H/2 + 2, W/2 + 2) float32: the packed raw (canonical order), reflected by one cell.
    Written into one new array (each new frame's pages cost a fault apiece, benchmarks/results/speed.md)."""
    if mosaic.ndim != 2 or mosaic.shape[0] % 2 or mosaic.shape[1] % 2:
        raise ValueError(f"a Bayer mosaic needs a 2-D frame of even height and width, got {mosaic.shape}")
    h, w = mosaic.shape[0] // 2, mosaic.shape[1] // 2
    padded = np.empty((4, h + 2, w + 2), dtype=np.float32)
    for plane, (r, c) in zip(padded, cell_offsets(pattern)):
        if clip:
            np.clip(mosaic[r::2, c::2], 0.0, 1.0, out=plane[1:-1, 1:-1])
        else:
            plane[1:-1, 1:-1] = mosaic[r::2, c::2]
    # reflected, as np.pad's "reflect" mode: the row (column) next to the edge is mirrored past it,
    # the edge itself where it is the only one
    top, bottom = (2, -3) if h > 1 else (1, 1)
    left, right = (2, -3) if w > 1 else (1, 1)
    padded[:, 0], padded[:, -1] = padded[:, top], padded[:, bottom]
    padded[:, :, 0], padded[:, :, -1] = padded[:, :, left], padded[:, :, right]
    return padded


def _demosaic_strip(padded: np.ndarray, pattern: str, top: int, rows: int,
                    gains: tuple[float, float, float]) -> np.ndarray:
    """Packed rows ``top`` to ``top + rows`` demosaiced, each colour times its gain: (2 rows, W, 3)."""
    width = padded.shape[2] - 2
    out = np.empty((rows, 2, width, 2, 3), dtype=np.float32)
    acc, term = np.empty((2, rows, width), dtype=np.float32)  # reused: a temporary per tap costs a quarter more
    for o, taps in enumerate(_taps(pattern)):
        colour, site = divmod(o, 4)
        for i, (ch, dy, dx, weight) in enumerate(taps):
            tap = padded[ch, top + dy: top + dy + rows, dx: dx + width]
            np.multiply(tap, np.float32(weight * gains[colour]), out=term if i else acc)
            if i:
                acc += term
        out[:, site // 2, :, site % 2, colour] = acc
    return out.reshape(2 * rows, 2 * width, 3)


def _in_strips(height: int, work: Callable[[int, int], None]) -> None:
    """Run ``work(top, rows)`` over the packed rows in strips, on as many threads as cores
    (numpy's array arithmetic releases the GIL)."""
    strips = [(top, min(STRIP, height - top)) for top in range(0, height, STRIP)]
    workers = min(len(strips), os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(lambda strip: work(*strip), strips):
            pass


def demosaic(mosaic: np.ndarray, pattern: str) -> np.ndarray:
    """Malvar-He-Cutler demosaicing: (H, W) mosaic to (H, W, 3) float32.

    Each site keeps its own measured colour; the two missing ones are bilinear estimates corrected
    by the local gradient of the measured colour, which removes most of bilinear's zipper and blur.
    """
    padded = _padded_planes(mosaic, pattern, clip=False)
    out = np.empty((*mosaic.shape, 3), dtype=np.float32)

    def work(top: int, rows: int) -> None:
        out[2 * top: 2 * (top + rows)] = _demosaic_strip(padded, pattern, top, rows, (1.0, 1.0, 1.0))

    _in_strips(padded.shape[1] - 2, work)
    return out


def tone_curve(x: Array, strength: float = 0.5) -> Array:
    """A gentle S-curve on display values in [0, 1]: part way to smoothstep (3x^2 - 2x^3), which
    keeps black, mid-grey and white where they are and adds a little contrast between them. An
    array or a tensor."""
    x = x.clip(0.0, 1.0)
    return x + strength * (x * x * (3.0 - 2.0 * x) - x)


LUT_SIZE = 1 << 16  # linear steps of the 8-bit encoding table: 0.05 of an output step at the curve's steepest


@cache
def _encoding_table(tone: bool) -> np.ndarray:
    """8-bit display values of LUT_SIZE evenly spaced linear values: the sRGB curve (and the tone curve)."""
    display = linear_to_srgb(np.linspace(0.0, 1.0, LUT_SIZE))
    return np.round((tone_curve(display) if tone else display) * 255.0).astype(np.uint8)


def encode(linear: np.ndarray, bits: int = 8, tone: bool = False) -> np.ndarray:
    """Linear sRGB (clipped to [0, 1]) to display values: uint8 through a table of the curve
    (within one step of the exact curve, at a fraction of its cost), or uint16 exactly."""
    if bits == 8:  # the table's index, clipped to the table (the linear value to [0, 1]), in one array
        index = linear * np.float32(LUT_SIZE - 1)
        index += np.float32(0.5)
        np.clip(index, 0.0, LUT_SIZE - 1, out=index)
        return _encoding_table(tone)[index.astype(np.uint16)]
    display = linear_to_srgb(linear.clip(0.0, 1.0))
    return (np.float32(65535.0) * (tone_curve(display) if tone else display) + np.float32(0.5)).astype(np.uint16)


def render(mosaic: np.ndarray, pattern: str, multipliers: np.ndarray, cam_to_srgb: np.ndarray, tone: bool = False,
           bits: int = 8) -> np.ndarray:
    """Normalised mosaic (H, W) to display sRGB (H, W, 3), uint8 or uint16 (``bits`` 8 or 16).

    The mosaic is clipped to [0, 1]; white balance by the ``multipliers`` (3,) is folded into the
    demosaicing weights and clipped at white, so saturated highlights stay neutral instead of
    turning magenta (the sensor clips green first); then the (3, 3) camera-to-sRGB matrix and the
    curves. Strip by strip, so the floating-point working set stays small however large the frame.
    """
    if bits not in (8, 16):
        raise ValueError(f"{bits} bits per channel: expected 8 or 16")
    padded = _padded_planes(mosaic, pattern, clip=True)
    gains = tuple(float(g) for g in np.asarray(multipliers, dtype=np.float64).reshape(3))
    matrix = np.asarray(cam_to_srgb, dtype=np.float32).T
    out = np.empty((*mosaic.shape, 3), dtype=np.uint8 if bits == 8 else np.uint16)

    def work(top: int, rows: int) -> None:
        balanced = _demosaic_strip(padded, pattern, top, rows, gains).clip(0.0, 1.0)  # type: ignore[arg-type]
        out[2 * top: 2 * (top + rows)] = encode(balanced @ matrix, bits, tone)

    _in_strips(padded.shape[1] - 2, work)
    return out
