"""EXIF and DNG metadata, read with exifread, with LibRaw's own fields as a fallback.

Missing tags are normal (scanned files, stripped files, exotic cameras): every field may be None and
nothing here raises for a tag that is absent or malformed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import logging
import math

import exifread
import numpy as np

from exposed.imaging.color import Calibration

# exifread logs "File format not recognized." and the like at warning or error level for files
# it cannot parse; exposed reports unreadable files itself, once, in its own words.
logging.getLogger("exifread").setLevel(logging.CRITICAL)
NOISE_PROFILE_TAG = 0xC761
ISO_TAG = 0x8827
SENSITIVITY_TYPE_TAG = 0x8830
# SensitivityType values naming which of the three tags below holds the real sensitivity.
_ISO_TAGS_BY_SENSITIVITY_TYPE = {1: (0x8831,), 2: (0x8832,), 3: (0x8833,), 4: (0x8831, 0x8832),
                                 5: (0x8831, 0x8833), 6: (0x8832, 0x8833), 7: (0x8831, 0x8832, 0x8833)}
ISO_CAP = 65535
# What a real shot can say, tag by tag; a value outside (a corrupt or hostile file: NaN, infinity,
# 1e20) is read as absent, so nothing downstream ever divides by it, raises 2 to it or prints it.
RANGES = {0x829A: (1e-7, 86_400.0), 0x829D: (0.3, 1000.0), 0x9204: (-20.0, 20.0), 0x9203: (-30.0, 30.0),
          0x920A: (0.1, 100_000.0), 0x0112: (1.0, 8.0), SENSITIVITY_TYPE_TAG: (0.0, 7.0)}
ISO_RANGE = (1.0, 1e8)


@dataclass(frozen=True)
class ExifInfo:
    """What a photographer's file says about the shot. ``iso_source`` names the tag the ISO came from."""

    exposure_time: float | None = None
    f_number: float | None = None
    iso: float | None = None
    iso_source: str | None = None
    exposure_bias: float | None = None
    brightness: float | None = None
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    focal_length: float | None = None
    datetime: str | None = None
    orientation: int | None = None


def read_tags(path: str | Path) -> dict[str, Any]:
    """All tags exifread finds (maker notes skipped); empty for a file without any or that it cannot parse."""
    try:
        with open(path, "rb") as f:
            return exifread.process_file(f, details=False)
    except Exception:  # exifread raises many kinds of errors on broken files; no EXIF is not an error
        return {}


def _by_code(tags: dict[str, Any], code: int) -> Any:
    """A tag by its numeric code, preferring the EXIF IFD over IFD0 (TIFF/EP raws put them in IFD0)."""
    found = [(name, tag) for name, tag in tags.items() if getattr(tag, "tag", None) == code]
    found.sort(key=lambda item: not item[0].startswith("EXIF"))
    return found[0][1] if found else None


def _numbers(tag: Any) -> list[float]:
    """A tag's values as floats, whatever nesting and ratio types exifread returned."""
    out: list[float] = []
    stack = list(tag.values) if isinstance(tag.values, (list, tuple)) else [tag.values]
    while stack:
        value = stack.pop(0)
        if isinstance(value, (list, tuple)):
            stack[:0] = list(value)
        elif hasattr(value, "den"):
            if value.den:
                out.append(float(value.num) / float(value.den))
        else:
            out.append(float(value))
    return out


def in_range(value: Any, low: float, high: float) -> float | None:
    """``value`` as a float when it is a finite number within [low, high], else None."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and low <= number <= high else None


def _number(tags: dict[str, Any], code: int) -> float | None:
    """A tag's first value; None when absent, unreadable, or outside what a real shot can say."""
    tag = _by_code(tags, code)
    try:
        values = _numbers(tag) if tag is not None else []
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        return None
    if not values:
        return None
    low, high = RANGES.get(code, ISO_RANGE if code in (ISO_TAG, 0x8831, 0x8832, 0x8833) else (-math.inf, math.inf))
    return in_range(values[0], low, high)


def _text(tags: dict[str, Any], code: int) -> str | None:
    tag = _by_code(tags, code)
    text = str(tag.values).strip().strip("\x00").strip() if tag is not None else ""
    return text or None


def iso_from_tags(tags: dict[str, Any]) -> tuple[float | None, str | None]:
    """ISO with the fallback chain of EXIF 2.3: ISOSpeedRatings caps at 65535, beyond which the
    SensitivityType tag says which of StandardOutputSensitivity, RecommendedExposureIndex or
    ISOSpeed holds the value."""
    iso = _number(tags, ISO_TAG)
    if iso and iso < ISO_CAP:
        return iso, "ISOSpeedRatings"
    names = {0x8831: "StandardOutputSensitivity", 0x8832: "RecommendedExposureIndex", 0x8833: "ISOSpeed"}
    kind = _number(tags, SENSITIVITY_TYPE_TAG)
    for code in _ISO_TAGS_BY_SENSITIVITY_TYPE.get(int(kind or 0), (0x8832, 0x8831, 0x8833)):
        value = _number(tags, code)
        if value:
            return value, names[code]
    return (iso, "ISOSpeedRatings") if iso else (None, None)


def read_exif(path: str | Path, tags: dict[str, Any] | None = None, libraw: Any = None) -> ExifInfo:
    """The shot's EXIF. ``libraw`` is rawpy's ``other`` record, used where exifread found nothing."""
    tags = read_tags(path) if tags is None else tags
    iso, iso_source = iso_from_tags(tags)
    exposure_time, f_number = _number(tags, 0x829A), _number(tags, 0x829D)
    when = _text(tags, 0x9003) or _text(tags, 0x0132)
    if libraw is not None:
        if not iso and in_range(getattr(libraw, "iso_speed", None), *ISO_RANGE):
            iso, iso_source = float(libraw.iso_speed), "LibRaw"
        exposure_time = exposure_time or in_range(getattr(libraw, "shutter_speed", None), *RANGES[0x829A])
        f_number = f_number or in_range(getattr(libraw, "aperture", None), *RANGES[0x829D])
        stamp = getattr(libraw, "timestamp", None)
        if not when and isinstance(stamp, datetime) and stamp.year > 1970:
            when = stamp.strftime("%Y:%m:%d %H:%M:%S")
    orientation = _number(tags, 0x0112)
    return ExifInfo(
        exposure_time=exposure_time or None, f_number=f_number or None, iso=iso, iso_source=iso_source,
        exposure_bias=_number(tags, 0x9204), brightness=_number(tags, 0x9203), make=_text(tags, 0x010F),
        model=_text(tags, 0x0110), lens=_text(tags, 0xA434), focal_length=_number(tags, 0x920A) or None,
        datetime=when,
        orientation=int(orientation) if orientation else None)  # 1 to 8 (RANGES)


def noise_profile(tags: dict[str, Any]) -> list[tuple[float, float]] | None:
    """DNG NoiseProfile as (S, O) pairs, one per colour plane (or one for all).

    In normalised units (black 0, white 1): variance(x) = S * x + O. S is the shot-noise gain, O the
    read-noise variance. None when the file has no such tag.
    """
    tag = _by_code(tags, NOISE_PROFILE_TAG)
    if tag is None:
        return None
    try:
        values = _numbers(tag)
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        return None
    if len(values) < 2 or len(values) % 2 or not all(math.isfinite(v) and v >= 0 for v in values):
        return None
    return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]


def dng_calibrations(tags: dict[str, Any]) -> tuple[Calibration, ...]:
    """A DNG's own colour calibrations (ColorMatrix1/2 with their illuminants and forward
    matrices); empty for other raws and for DNGs of cameras with other than three colours."""
    found = []
    for i in range(2):
        values, forward_values = _matrix(tags, 0xC621 + i), _matrix(tags, 0xC714 + i)
        if values is None:
            continue
        illuminant = in_range(_number(tags, 0xC65A + i), 0.0, 255.0)
        found.append(Calibration(int(illuminant or 0), values, forward_values))
    return tuple(found)


def _matrix(tags: dict[str, Any], code: int) -> np.ndarray | None:
    """A 3 x 3 matrix tag that an inverse exists for (a colour matrix), or None."""
    tag = _by_code(tags, code)
    try:
        values = np.array(_numbers(tag) if tag is not None else [], dtype=np.float64)
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        return None
    if values.size != 9 or not np.all(np.isfinite(values)):
        return None
    matrix = values.reshape(3, 3)
    return matrix if abs(np.linalg.det(matrix)) > 1e-9 * max(np.abs(matrix).max(), 1e-300) ** 3 else None


def unique_camera_model(tags: dict[str, Any]) -> str | None:
    """DNG UniqueCameraModel: how raw editors find their profiles for the camera."""
    return _text(tags, 0xC614)
