"""Writing Bayer (CFA) DNG files with tifffile.

A CFA DNG holds the mosaic as LibRaw and raw editors expect a camera's raw: 16-bit samples,
CFAPattern and BlackLevel given for the 2x2 cell at the top-left of the stored image, colour data
(ColorMatrix1 under D65 and AsShotNeutral). Shot data (exposure time, f-number, ISO) sit in IFD0, as
TIFF/EP allows; LibRaw and exifread read them there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import tifffile

from exposed.bayer import PATTERNS
from exposed.output import atomic_write

_CFA_CODES = {"R": 0, "G": 1, "B": 2}
D65 = 21


@dataclass
class DngMetadata:
    """What a CFA DNG says besides its pixels; levels in the file's own DN."""

    pattern: str = "RGGB"
    black: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))
    white: int = 65535
    xyz_to_cam: np.ndarray | None = None
    as_shot_neutral: np.ndarray | None = None  # reciprocal white-balance multipliers (R, G, B)
    make: str = "exposed"
    model: str = "synthetic"
    orientation: int = 1  # TIFF orientation code
    exposure_time: float | None = None
    f_number: float | None = None
    iso: int | None = None
    noise_profile: list[tuple[float, float]] | None = None


def _rational(value: float, signed: bool = False, denominator: int = 10000) -> tuple[int, int]:
    f = Fraction(value).limit_denominator(1_000_000 if not signed else denominator)
    return f.numerator, f.denominator


def write_cfa_dng(path: str | Path, mosaic: np.ndarray, meta: DngMetadata) -> Path:
    """Write a (H, W) uint16 Bayer mosaic as a CFA DNG, atomically."""
    if meta.pattern not in PATTERNS:
        raise ValueError(f"unsupported Bayer pattern {meta.pattern!r}")
    if mosaic.ndim != 2 or mosaic.dtype != np.uint16:
        raise ValueError("a CFA DNG needs a (H, W) uint16 mosaic")
    black = np.broadcast_to(np.asarray(meta.black, dtype=np.float64), (2, 2))
    tags: list[tuple[int, str, int, object, bool]] = [
        (271, "s", 0, meta.make, True),
        (272, "s", 0, meta.model, True),
        (274, "H", 1, meta.orientation, True),
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, f"{meta.make} {meta.model}", True),  # UniqueCameraModel
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, tuple(_CFA_CODES[c] for c in meta.pattern), True),  # CFAPattern
        (50710, "B", 3, (0, 1, 2), True),  # CFAPlaneColor
        (50711, "H", 1, 1, True),  # CFALayout: rectangular
        (50713, "H", 2, (2, 2), True),  # BlackLevelRepeatDim
        (50714, "2I", 4, sum((_rational(float(v)) for v in black.flatten()), ()), True),  # BlackLevel
        (50717, "I", 1, int(meta.white), True),  # WhiteLevel
    ]
    if meta.xyz_to_cam is not None:
        values = sum((_rational(float(v), signed=True) for v in np.asarray(meta.xyz_to_cam).flatten()), ())
        tags += [(50721, "2i", 9, values, True), (50778, "H", 1, D65, True)]  # ColorMatrix1, illuminant
    if meta.as_shot_neutral is not None:
        tags.append((50728, "2I", 3, sum((_rational(float(v)) for v in meta.as_shot_neutral), ()), True))
    if meta.exposure_time:
        tags.append((33434, "2I", 1, _rational(meta.exposure_time), True))
    if meta.f_number:
        tags.append((33437, "2I", 1, _rational(meta.f_number), True))
    if meta.iso:
        tags.append((34855, "H", 1, int(min(meta.iso, 65535)), True))
    if meta.noise_profile:
        values = tuple(float(v) for pair in meta.noise_profile for v in pair)
        tags.append((51041, "d", len(values), values, True))  # NoiseProfile
    return atomic_write(path, lambda tmp: tifffile.imwrite(
        tmp, mosaic, photometric=32803, software="exposed", extratags=tags, metadata=None))
