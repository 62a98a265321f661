"""darktable's measured noise profiles (``noiseprofiles.json``) as a noise source.

darktable ships Poisson-Gaussian fits, ``variance = a * x + b`` per colour channel, for several
hundred camera models at each ISO they were shot at, made with its ``darktable-gen-noiseprofile``.
exposed reads the user's installed file at run time (its data are not copied into this project).

Units. darktable measures on its own processed image, not on the raw mosaic: demosaiced, through
the camera's colour matrix, and as the variance of the diagonal band of a one-level Haar transform
(a quarter of a pixel's variance for white noise, less where demosaicing has smoothed it). Its
denoiser uses only the green channel's pair (scaled by the white balance), and so does exposed:
the raw variance per photosite is :data:`DARKTABLE_TO_RAW` times darktable's green ``(a, b)``.
That factor is measured, not assumed: ``python benchmarks/darktable_units.py`` renders frames of
known noise through darktable-cli and measures them the way darktable's profiling tool does.

darktable's ``b`` is fitted after negative values are clipped and is often zero or negative (one
profile in eight), so the read noise is taken from a file's own dark pixels when they show it, and
from ``b`` only when they do not (see :func:`exposed.sensor.estimate.noise_level`).
"""

from __future__ import annotations

import json
import os
import re
from bisect import bisect_left
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

# Measured by benchmarks/darktable_units.py with darktable 4.2 (results in benchmarks/results/).
DARKTABLE_TO_RAW = 11.1

# Where darktable installs its data on Linux, macOS (Homebrew and the app bundle) and Windows.
SEARCH_PATHS = (
    "/usr/share/darktable/noiseprofiles.json",
    "/usr/local/share/darktable/noiseprofiles.json",
    "/opt/homebrew/share/darktable/noiseprofiles.json",
    "/Applications/darktable.app/Contents/Resources/share/darktable/noiseprofiles.json",
    "C:/Program Files/darktable/share/darktable/noiseprofiles.json",
)
ENV_PATH = "EXPOSED_DARKTABLE_PROFILES"  # a file to use instead; empty: do not use darktable's profiles


@dataclass(frozen=True)
class DarktableNoise:
    """darktable's profile for one shot, in exposed's normalised raw units (black 0, white 1).

    gain, read_var: per-photosite shot-noise gain and read variance; name: the profile(s) used
    (two when the ISO lies between profiled ones); read_var is None where darktable's fit has none.
    """

    gain: float
    read_var: float | None
    name: str


def profiles_path() -> Path | None:
    """The noiseprofiles.json to read: $EXPOSED_DARKTABLE_PROFILES, else darktable's installed one."""
    chosen = os.environ.get(ENV_PATH)
    if chosen is not None:
        return Path(chosen) if chosen else None
    return next((Path(p) for p in SEARCH_PATHS if Path(p).is_file()), None)


def camera_names(make: str | None, model: str | None) -> tuple[str, str] | None:
    """The (maker, model) darktable files a camera under, from its EXIF Make and Model, lower case.

    As darktable's profiling script names them: the maker is the first word of Make ("NIKON
    CORPORATION" -> "nikon"); the model drops a first word that repeats the maker's ("Canon EOS
    5D Mark IV" -> "eos 5d mark iv", "NIKON D850" -> "d850"). Pentax and Ricoh put their name in Model.
    """
    if not make or not model:
        return None
    make_words, model_words = make.split(), model.split()
    if not make_words or not model_words:
        return None
    maker = make_words[0]
    if model_words[0].upper() in ("PENTAX", "RICOH"):
        maker = model_words[0]
    if len(model_words) > 1 and model_words[0].lower() in (make_words[0].lower(), "pentax"):
        model_words = model_words[1:]
    return maker.lower(), _model_key(" ".join(model_words))


def _model_key(model: str) -> str:
    """Lower case with runs of spaces, hyphens and underscores as one space: darktable's file spells
    "EOS-1Ds" where EXIF says "EOS-1Ds" or "EOS 1Ds"."""
    return re.sub(r"[\s_-]+", " ", model.strip().lower())


@lru_cache(maxsize=4)
def load_profiles(path: Path) -> dict[tuple[str, str], list[tuple[float, float, float, str]]]:
    """{(maker, model): [(iso, a, b, name), ...] sorted by ISO} of the green channel, leaving out
    the entries darktable itself marks ``skip`` and any without a positive ``a``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    table: dict[tuple[str, str], list[tuple[float, float, float, str]]] = {}
    for maker in data.get("noiseprofiles", []):
        for model in maker.get("models", []):
            rows = [(float(p["iso"]), float(p["a"][1]), float(p["b"][1]), str(p.get("name", "")))
                    for p in model.get("profiles", []) if not p.get("skip") and float(p["a"][1]) > 0]
            if rows:
                key = (str(maker["maker"]).lower(), _model_key(str(model["model"])))
                table.setdefault(key, []).extend(rows)
    for rows in table.values():
        rows.sort()
    return table


def darktable_noise(make: str | None, model: str | None, iso: float | None,
                    path: Path | None = None) -> DarktableNoise | None:
    """darktable's noise for a camera at an ISO, or None (no file, no such camera, or no ISO).

    Between two profiled ISOs both figures are interpolated linearly in ISO, as darktable does;
    outside its range the nearest profile is used with ``a`` scaled by the ISO ratio (shot-noise
    gain is proportional to ISO) and ``b`` as it is.
    """
    path = path or profiles_path()
    names = camera_names(make, model)
    if path is None or names is None or not iso or iso <= 0:
        return None
    rows = load_profiles(path).get(names)
    if not rows:
        return None
    isos = [r[0] for r in rows]
    i = bisect_left(isos, iso)
    if i < len(rows) and isos[i] == iso:
        _, a, b, name = rows[i]
    elif 0 < i < len(rows):
        (i0, a0, b0, n0), (i1, a1, b1, n1) = rows[i - 1], rows[i]
        w = (iso - i0) / (i1 - i0)
        a, b, name = a0 + w * (a1 - a0), b0 + w * (b1 - b0), f"{n0} and {n1}"
    else:
        near = rows[0] if i == 0 else rows[-1]
        a, b, name = near[1] * iso / near[0], near[2], f"{near[3]} scaled to ISO {iso:g}"
    return DarktableNoise(DARKTABLE_TO_RAW * a, DARKTABLE_TO_RAW * b if b > 0 else None, f"darktable '{name}'")
