"""EXIF and DNG metadata read with exifread. Missing tags are normal and give None, never an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import exifread

NOISE_PROFILE_TAG = 0xC761


def read_tags(path: str | Path) -> dict[str, Any]:
    """All tags exifread finds (maker notes skipped); an empty dict for a file without any."""
    with open(path, "rb") as f:
        return exifread.process_file(f, details=False)


def _numbers(tag: Any) -> list[float]:
    """A tag's values as floats, whatever nesting and ratio types exifread returned."""
    out: list[float] = []
    stack = list(tag.values) if isinstance(tag.values, (list, tuple)) else [tag.values]
    while stack:
        value = stack.pop(0)
        if isinstance(value, (list, tuple)):
            stack[:0] = list(value)
        else:
            out.append(float(value.num) / float(value.den) if hasattr(value, "den") else float(value))
    return out


def noise_profile(tags: dict[str, Any]) -> list[tuple[float, float]] | None:
    """DNG NoiseProfile as (S, O) pairs, one per colour plane (or one for all).

    In normalised units (black 0, white 1): variance(x) = S * x + O. S is the shot-noise gain, O the
    read-noise variance. None when the file has no such tag.
    """
    tag = next((v for k, v in tags.items() if getattr(v, "tag", None) == NOISE_PROFILE_TAG), None)
    if tag is None:
        return None
    values = _numbers(tag)
    if len(values) < 2 or len(values) % 2:
        return None
    return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]
