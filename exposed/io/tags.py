"""The EXIF tags exposed writes, in one list for every output: DNG's EXIF IFD and the EXIF block of
JPEG and PNG files. Entries are TIFF's (code, type, count, value); types as :mod:`exposed.io.dng`
encodes them ("2I" rational, "2i" signed rational, "H" short, "I" long, "s" ASCII, "X" undefined).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # exifread is not needed to write tags
    from exposed.io.exif import ExifInfo

Entry = tuple[int, str, int, object]


def rational(value: float, signed: bool = False) -> tuple[int, int]:
    """A TIFF (signed) rational near ``value``: numerator and denominator, each fitting 32 bits."""
    f = Fraction(value).limit_denominator(10_000 if signed else 1_000_000)
    return f.numerator, f.denominator


def rationals(values: np.ndarray | Sequence[float], signed: bool = False) -> tuple[int, ...]:
    return sum((rational(float(v), signed) for v in np.asarray(values, dtype=np.float64).flatten()), ())


def ascii_text(text: str) -> str:
    """TIFF ASCII is 7-bit; a camera or lens name from another encoding must not break the file."""
    return text.encode("ascii", "replace").decode("ascii")


def _usable(value: float | None, low: float, high: float) -> bool:
    return value is not None and math.isfinite(value) and low <= value <= high


def exif_entries(exif: ExifInfo) -> list[Entry]:
    """The EXIF IFD's entries (code, type, count, value) for what ``exif`` knows; values no tag can
    hold (an ExifInfo built by hand with NaN, infinity or a negative time) are left out."""
    entries: list[Entry] = [(36864, "X", 4, b"0231")]  # ExifVersion
    if exif.exposure_time and _usable(exif.exposure_time, 1e-7, 1e6):
        entries.append((33434, "2I", 1, rational(exif.exposure_time)))
    if exif.f_number and _usable(exif.f_number, 0.1, 1e4):
        entries.append((33437, "2I", 1, rational(exif.f_number)))
    if exif.iso and _usable(exif.iso, 1.0, 2.0**32 - 1):
        entries.append((34855, "H", 1, int(min(round(exif.iso), 65535))))  # ISOSpeedRatings
        if exif.iso > 65535:  # EXIF 2.3: SensitivityType 2 says RecommendedExposureIndex holds it
            entries += [(34864, "H", 1, 2), (34866, "I", 1, int(round(exif.iso)))]
    if exif.datetime:
        entries.append((36867, "s", 0, ascii_text(exif.datetime)))  # DateTimeOriginal
    if exif.exposure_bias is not None and _usable(exif.exposure_bias, -1e4, 1e4):
        entries.append((37380, "2i", 1, rational(exif.exposure_bias, signed=True)))
    if exif.focal_length and _usable(exif.focal_length, 1e-3, 1e6):
        entries.append((37386, "2I", 1, rational(exif.focal_length)))
    if exif.lens:
        entries.append((42036, "s", 0, ascii_text(exif.lens)))  # LensModel
    return sorted(entries)
