"""How much to brighten a dark raw: from the photographer's request, or from the picture itself.

The exposure ratio is the factor between the shot and the exposure the result should look like.
Raw signal is proportional to exposure time x ISO / f-number^2, so any change of the three is a
ratio (EV100 arithmetic). Without a request the ratio comes from the raw data: the picture's
average, measured robustly, is brought to where a metered mid-grey lands on a raw file (about 12.7%
of clipping, -3 EV), while highlights are kept from clipping by more than two stops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from exposed.imaging.arrays import Array

if TYPE_CHECKING:  # annotations only: the training path (exposed.denoise.infer's brighten) reads no EXIF
    from exposed.io.exif import ExifInfo


METERED_GREY = 0.127
HIGHLIGHT_HEADROOM = 4.0  # the 99th percentile may end up two stops over white, no more
BLOCK = 8  # statistics on 8 x 8 block medians of the packed raw: noise down, hot pixels out


@dataclass(frozen=True)
class RatioChoice:
    """The ratio used, where it came from, and the reasoning to show the user."""

    ratio: float
    source: str
    reason: str
    warning: str | None = None


def signal_ratio(exif: ExifInfo, exposure_time: float, iso: float | None = None,
                 f_number: float | None = None) -> float:
    """Ratio between a wished-for exposure and the shot: time x ISO / f-number^2 against the shot's.

    ISO and f-number default to the shot's own (only the time changes). Raises ValueError when the
    shot's EXIF lacks what the arithmetic needs.
    """
    if not exif.exposure_time:
        raise ValueError("the file has no exposure time in its EXIF, so --target-exposure cannot be used")
    ratio = exposure_time / exif.exposure_time
    if iso is not None:
        if not exif.iso:
            raise ValueError("the file has no ISO in its EXIF, so a target ISO cannot be compared")
        ratio *= iso / exif.iso
    if f_number is not None:
        if not exif.f_number:
            raise ValueError("the file has no f-number in its EXIF, so a target aperture cannot be compared")
        ratio *= (exif.f_number / f_number) ** 2
    return ratio


def meter_ratio(exif: ExifInfo) -> float | None:
    """How far below the camera's own meter the shot was (APEX: (Bv + Sv) - (Av + Tv) stops)."""
    if exif.brightness is None or not (exif.iso and exif.f_number and exif.exposure_time):
        return None
    sv = math.log2(exif.iso / 3.125)
    av = 2 * math.log2(exif.f_number)
    tv = -math.log2(exif.exposure_time)
    return 2.0 ** ((exif.brightness + sv) - (av + tv))


def brighten(dark: Array, ratio: Array, saturated: Array | None = None) -> Array:
    """Plain brightening, ``--mode amplify``'s: dark (B, C, H, W) times ratio (B,), unclipped, in
    float32, with the photosites ``saturated`` in the dark frame (default ``dark >= 1``) at white.
    Arrays, or tensors (the result on the dark frame's device)."""
    if isinstance(dark, np.ndarray):
        saturated = dark >= 1.0 if saturated is None else saturated
        gain = np.asarray(ratio, dtype=np.float32).reshape(-1, 1, 1, 1)
        out = np.multiply(dark, gain, dtype=np.float32)  # the one new frame; white set in it
        np.copyto(out, np.float32(1.0), where=saturated)
        return out
    saturated = dark >= 1.0 if saturated is None else saturated.to(dark.device)
    return (dark.float() * ratio.float().to(dark.device).view(-1, 1, 1, 1)).masked_fill_(saturated, 1.0)


def statistics_ratio(packed: np.ndarray, wb: np.ndarray) -> tuple[float, str]:
    """Ratio that brings the picture's trimmed average to a metered mid-grey, highlights permitting.

    packed: (1, 4, H, W) normalised dark raw; wb: (3,) white-balance multipliers. Medians of 8 x 8
    blocks tame the noise and ignore hot pixels (the lower of the two middle values); trimming the
    brightest and darkest 1% of blocks keeps small light sources from deciding the exposure.
    """
    weights = np.asarray([wb[0], wb[1], wb[1], wb[2]], dtype=np.float32) / 4.0
    luminance = np.tensordot(weights, np.asarray(packed[0], dtype=np.float32), 1)
    h, w = luminance.shape
    if min(h, w) >= BLOCK:
        cells = luminance[: h - h % BLOCK, : w - w % BLOCK].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK)
        middle = (BLOCK * BLOCK - 1) // 2
        blocks = np.partition(cells.transpose(0, 2, 1, 3).reshape(-1, BLOCK * BLOCK), middle, axis=1)[:, middle]
    else:
        blocks = luminance.ravel()
    blocks = np.sort(blocks)
    n = blocks.size
    trimmed = blocks[n // 100: max(n - n // 100, n // 100 + 1)]
    mean = max(float(trimmed.mean(dtype=np.float64)), 1e-6)
    high = max(float(blocks[min(n - 1, int(0.99 * n))]), 1e-6)
    ratio = METERED_GREY / mean
    reason = f"average {mean:.2%} of white brought to {METERED_GREY:.1%}"
    if ratio * high > HIGHLIGHT_HEADROOM:
        ratio = HIGHLIGHT_HEADROOM / high
        reason += f", held back so the brightest 1% ({high:.2%}) clip by at most two stops"
    return max(ratio, 1.0), reason


def choose_ratio(packed: np.ndarray, wb: np.ndarray, exif: ExifInfo, supported: tuple[float, float], *,
                 ratio: float | None = None, ev: float | None = None, target_exposure: float | None = None,
                 target_iso: float | None = None, target_f_number: float | None = None) -> RatioChoice:
    """The exposure ratio for one picture, clamped to what the model was trained for (with a warning)."""
    if ratio is not None:
        value, source, reason = ratio, "--ratio", f"x{ratio:g} as asked"
    elif ev is not None:
        value, source, reason = 2.0**ev, "--ev", f"{ev:+g} EV"
    elif target_exposure is not None:
        value = signal_ratio(exif, target_exposure, target_iso, target_f_number)
        source = "--target-exposure"
        reason = f"{target_exposure:g} s instead of {exif.exposure_time:g} s"
        if target_iso is not None:
            reason += f", ISO {target_iso:g} instead of {exif.iso:g}"
        if target_f_number is not None:
            reason += f", f/{target_f_number:g} instead of f/{exif.f_number:g}"
    else:
        value, reason = statistics_ratio(packed, wb)
        source = "auto"
        meter = meter_ratio(exif)
        if meter is not None:
            agree = "agrees" if abs(math.log2(value / meter)) <= 2 else "disagrees"
            reason += f"; the camera's meter says x{meter:.3g} ({agree})"
    low, high = supported
    warning = None
    if not low <= value <= high:
        clamped = min(max(value, low), high)
        warning = f"ratio x{value:.3g} is outside the model's range x{low:g}-x{high:g}; using x{clamped:.3g}"
        value = clamped
    return RatioChoice(float(value), source, reason, warning)
