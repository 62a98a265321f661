"""The noise level of a real file, which the exposure process needs (its K and read noise).

Sources, in order of trust: the user's ``--noise-profile``, the file's DNG NoiseProfile tag, an
estimate from the picture itself (a Poisson-Gaussian fit after Foi et al., IEEE TIP 2008), and
finally a default from the ISO through the Sony A7S II calibration. A source whose figures no real
sensor has is passed over for the next, and the reason kept for ``-v``. All figures are in
normalised units (black 0, white 1): variance(x) = gain * x + read_var, one pair per CFA site
(packed order R, G1, G2, B), and never below the quantisation noise of the file's own DN step.

numpy only: a plan is made before (or without) torch, and the estimate runs while torch loads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from exposed.sensor.cameras import CAMERAS
from exposed.sensor.darktable import DarktableNoise

if TYPE_CHECKING:
    from exposed.sensor.calibration import IsoNoise

PICTURE = "estimated from the picture"
MIN_SAMPLES_PER_LEVEL = 200
MAX_BLOCKS = 1 << 17  # 2 x 2 blocks per CFA site that a fit looks at: 8,000 per level bin
LEVEL_BINS = 16
ISO_DEFAULT_CAMERA = "sony-a7s2"
FALLBACK_ISO = 3200.0
# What real sensors span, relative to white: 20 electrons at white (a tiny pixel at an extreme ISO)
# to 500,000 (a large pixel at base ISO), and read noise up to 5% of white. Outside: not a sensor.
GAIN_RANGE = (1.0 / 500_000, 1.0 / 20)
MAX_READ_SIGMA = 0.05
# A bin of levels whose blocks touch the clipped floor or white more often than this is left out
# of the fit: clipping squeezes its variance.
MAX_CLIPPED_SHARE = 0.005


@dataclass(frozen=True)
class NoiseLevel:
    """The noise the exposure process assumes, per CFA site, and where it came from.

    site_gain, site_read_var: (R, G1, G2, B) in normalised units. notes: why more trusted sources
    were passed over (shown with ``-v``).
    """

    site_gain: tuple[float, ...]
    site_read_var: tuple[float, ...]
    source: str
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.site_gain) != 4 or len(self.site_read_var) != 4:
            raise ValueError("a noise level has one gain and one read variance per CFA site (4 of each)")

    @classmethod
    def uniform(cls, gain: float, read_var: float, source: str, notes: tuple[str, ...] = ()) -> NoiseLevel:
        return cls((gain,) * 4, (read_var,) * 4, source, notes)

    @property
    def gain(self) -> float:
        """The mean over the four sites (for reports)."""
        return sum(self.site_gain) / 4

    @property
    def read_var(self) -> float:
        return sum(self.site_read_var) / 4


def parse_noise_profile(text: str) -> tuple[float, float]:
    """'S,O' (the DNG NoiseProfile convention) to floats; ValueError with a reason otherwise."""
    try:
        gain, read_var = (float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"noise profile {text!r} must be two numbers 'S,O' (variance = S * x + O)") from None
    if not (math.isfinite(gain) and math.isfinite(read_var)) or gain <= 0 or read_var < 0:
        raise ValueError("noise profile needs S > 0 and O >= 0")
    return gain, read_var


@dataclass(frozen=True)
class SiteFit:
    """One CFA site's fit. gain is None where the picture's levels do not pin the slope down.
    levels, variances, weights: the binned measurements the line was fitted to."""

    gain: float | None
    read_var: float
    gain_max: float | None = None  # where gain is None: the largest slope the levels allow
    levels: tuple[float, ...] = ()
    variances: tuple[float, ...] = ()
    weights: tuple[float, ...] = ()

    def read_var_given(self, gain: float, floor: float) -> float:
        """The read variance these measurements show once a gain known from elsewhere is taken as
        the slope: the weighted mean of variance - gain * level, no lower than ``floor``. (The
        picture's own intercept belongs with its own slope, not with another source's.)"""
        if not self.levels:
            return max(self.read_var, floor)
        total = sum(w * (v - gain * x) for x, v, w in zip(self.levels, self.variances, self.weights))
        return max(total / sum(self.weights), floor)


def _robust_variance(detail: np.ndarray) -> float:
    """The variance of the details within 4 robust sigmas (1.4826 MAD) of their median: edges and
    texture, a minority of blocks, are left out, and what is left is a plain second moment, which
    stays right for noise of a DN or less, where the rounding makes it far from Gaussian and the
    MAD alone is off by a third."""
    deviation = np.abs(detail - np.median(detail))
    kept = deviation[deviation <= 4 * 1.4826 * np.median(deviation)]
    return float(np.mean(np.square(kept)))


def estimate_site(channel: np.ndarray, step: float, floor: float, rng: np.random.Generator) -> SiteFit | None:
    """Fit variance = a * x + b to one CFA site's photosites (Foi et al. 2008, simplified).

    channel: (H, W) one packed channel, normalised; step: one DN of the file, normalised; floor: the
    lowest value the file can hold (where its noise is clipped). In every 2 x 2 block the diagonal
    Haar detail (a - b - c + d) / 2 has the photosites' noise variance and almost no signal, and the
    block mean gives the level. Whole-DN data are dithered by a uniform step first, so the median of
    the details is not stuck on a few discrete values at 8 bits; the dither's variance is taken off
    again, the rounding's stays (it is noise the picture holds). Levels are binned by quantiles;
    bins touching the clipped floor or white are dropped; each bin's variance is taken robustly
    and a line fitted by weighted least squares. None when too few blocks are left. Frames with
    more than :data:`MAX_BLOCKS` blocks are fitted on evenly spaced rows of blocks.
    """
    h, w = channel.shape
    x = channel[: h & ~1, : w & ~1]
    rows, width = x.shape[0] // 2, x.shape[1]
    stride = -(-rows * (width // 2) // MAX_BLOCKS)
    if stride > 1:  # every stride-th row of blocks: a 24 MP frame costs what a 2 MP one does
        x = x.reshape(rows, 2, width)[::stride].reshape(-1, width)
    x = x.astype(np.float64)  # after the rows are picked: converting the whole channel cost more than the fit
    blocks = np.stack([x[0::2, 0::2], x[0::2, 1::2], x[1::2, 0::2], x[1::2, 1::2]]).reshape(4, -1)
    clipped = np.any((blocks <= floor + step / 2) | (blocks >= 1.0 - step / 2), axis=0)
    blocks = blocks + (rng.random(blocks.shape) - 0.5) * step
    a, b, c, d = blocks
    detail, level = (a - b - c + d) / 2, (a + b + c + d) / 4
    bins = min(LEVEL_BINS, level.size // MIN_SAMPLES_PER_LEVEL)
    if bins < 1:
        return None
    dither_var = step**2 / 12.0  # the detail of four independent dithers has the variance of one
    levels, variances, weights = [], [], []
    for chunk in np.array_split(np.argsort(level, kind="stable"), bins):
        if clipped[chunk].mean() > MAX_CLIPPED_SHARE:
            continue
        var = max(_robust_variance(detail[chunk]) - dither_var, step**2 / 12.0)
        levels.append(float(level[chunk].mean()))
        variances.append(var)
        weights.append(chunk.size / (2.7 * var**2))  # the MAD's sampling variance, about 2.7 v^2 / n
    if not levels:
        return None
    L, y, W = np.array(levels), np.array(variances), np.array(weights)
    seen = (tuple(levels), tuple(variances), tuple(weights))
    gain_max = None
    if len(levels) >= 3:
        X = np.stack([L, np.ones_like(L)], axis=1)
        normal = X.T @ (X * W[:, None])
        coef = np.linalg.solve(normal, X.T @ (W * y))
        error = math.sqrt(np.linalg.inv(normal)[0, 0])
        if coef[0] > 2 * error:
            return SiteFit(float(coef[0]), max(float(coef[1]), step**2 / 12.0), None, *seen)
        gain_max = max(float(coef[0] + 2 * error), 0.0)
    # The slope is lost in the scatter (a narrow range of levels, read noise dominating): the
    # variance the picture shows, as if signal-independent.
    return SiteFit(None, float((W * y).sum() / W.sum()), gain_max, *seen)


def estimate_noise(packed: np.ndarray, scale: float = 65535.0, floor: float | None = None,
                   seed: int = 0) -> list[SiteFit] | None:
    """Per-site fits of a (1, 4, H, W) normalised raw, in packed order; None when it is too small.

    scale: the file's white minus black in DN (so one DN is 1 / scale); floor: its lowest value
    (-black / scale), by default the lowest value present.
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(packed)[0]
    floor = float(x.min()) if floor is None else floor
    fits = [estimate_site(x[c], 1.0 / scale, floor, rng) for c in range(x.shape[0])]
    found = [f for f in fits if f is not None]
    return found if len(found) == len(fits) else None


def iso_default(iso: float | None) -> tuple[float, float]:
    """Noise of the Sony A7S II calibration at this ISO, relative to its full scale.

    In normalised units this carries over to any bit depth: it assumes a sensor whose full well and
    read noise, relative to white, are like the A7S II's.
    """
    return CAMERAS[ISO_DEFAULT_CAMERA].pg_at_iso(iso or FALLBACK_ISO)


def gain_problem(gains: Sequence[float | None]) -> str | None:
    """Why these shot-noise gains belong to no real sensor, or None when they might."""
    known = [g for g in gains if g is not None]
    if len(known) < len(gains):
        return "its shot noise could not be measured (too narrow a range of brightness)"
    if any(not math.isfinite(g) for g in known):
        return "not finite"
    low, high = GAIN_RANGE
    for g in known:
        if not low <= g <= high:
            return f"gain {g:.3g} is outside what sensors have ({low:.2g} to {high:.2g}: {1 / high:.0f} to " \
                   f"{1 / low:,.0f} electrons at white)"
    return None


def read_problem(read_vars: Sequence[float]) -> str | None:
    """Why these read variances belong to no real sensor, or None when they might."""
    if any(not math.isfinite(v) or v < 0 for v in read_vars):
        return "read noise not finite"
    if max(read_vars) > MAX_READ_SIGMA**2:
        return f"read noise {math.sqrt(max(read_vars)):.3g} of white is more than any sensor's"
    return None


def _problem(gains: Sequence[float | None] | None, read_vars: Sequence[float] | None) -> str | None:
    """Why what a source offers belongs to no real sensor, or None when it might."""
    return (gain_problem(gains) if gains is not None else None) or \
        (read_problem(read_vars) if read_vars is not None else None)


def _sites(pairs: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """DNG NoiseProfile pairs (one, or one per colour plane R, G, B) to the four packed sites."""
    if len(pairs) == 3:
        pairs = [pairs[0], pairs[1], pairs[1], pairs[2]]
    elif len(pairs) != 4:
        pairs = [(sum(s for s, _ in pairs) / len(pairs), sum(o for _, o in pairs) / len(pairs))] * 4
    return [s for s, _ in pairs], [o for _, o in pairs]


@dataclass(frozen=True)
class _Offer:
    """What one source says: per-site gains and read variances, either of which may be missing.
    ``guess``: a default, not a measurement (the picture's bound on its gain caps it)."""

    name: str
    gains: list[float] | None
    read_vars: list[float] | None
    guess: bool = False


def noise_level(packed: np.ndarray, profile: str | None, tag: list[tuple[float, float]] | None,
                iso: float | None, scale: float = 65535.0, floor: float | None = None, *,
                camera: IsoNoise | None = None, darktable: DarktableNoise | None = None) -> NoiseLevel:
    """The noise level to use: the gain and the read noise each from the first source that gives a
    plausible one.

    Sources in order of trust: ``--noise-profile``, the user's camera calibration (``camera``: read
    noise always, gain when it was calibrated with flats), the file's DNG NoiseProfile tag,
    darktable's profile for the camera (its gain; its read noise only after the picture's, see
    :mod:`exposed.sensor.darktable`), the picture itself, and the ISO default.
    packed: (1, 4, H, W) normalised; scale: the file's white minus black in DN; floor: the lowest
    value it can hold (-black / scale). Every read variance is raised to at least the quantisation
    noise of one DN, step^2 / 12, which any file holds however clean its sensor.
    """
    quantisation = 1.0 / (12.0 * scale**2)
    notes: list[str] = []
    if profile:
        gain, read_var = parse_noise_profile(profile)
        return NoiseLevel((gain,) * 4, (max(read_var, quantisation),) * 4, "--noise-profile")
    offers: list[_Offer] = []
    if camera is not None:
        offers.append(_Offer(camera.name, None if camera.gains is None else list(camera.gains), list(camera.read_vars)))
        if camera.note:
            notes.append(camera.note)
    if tag:
        offers.append(_Offer("DNG NoiseProfile tag", *_sites(tag)))
    if darktable is not None:
        offers.append(_Offer(darktable.name, [darktable.gain] * 4, None))
    fits = estimate_noise(packed, scale, floor)
    if fits is None:
        notes.append("estimate from the picture passed over: too few photosites clear of the clipped floor and white")
    else:
        fitted = [f.gain for f in fits]
        measured = None if any(g is None for g in fitted) else [g for g in fitted if g is not None]
        offers.append(_Offer(PICTURE, measured, [f.read_var for f in fits]))
    if darktable is not None and darktable.read_var is not None:
        offers.append(_Offer(darktable.name, None, [darktable.read_var] * 4))
    gain, read_var = iso_default(iso)
    offers.append(_Offer(f"default for ISO {iso:g}" if iso else f"default (no ISO; ISO {FALLBACK_ISO:g} assumed)",
                         [gain] * 4, [read_var] * 4, guess=True))
    gains_from = reads_from = None
    for offer in offers:
        wanted = offer.gains is not None and gains_from is None or offer.read_vars is not None and reads_from is None
        problem = _problem(offer.gains, offer.read_vars)
        if problem is not None:
            if wanted:
                notes.append(f"{offer.name} passed over: {problem}")
            continue
        if offer.gains is not None and gains_from is None:
            gains_from = offer
        if offer.read_vars is not None and reads_from is None:
            reads_from = offer
    if fits is not None and gains_from is not None and gains_from.guess:
        caps = [f.gain_max for f in fits]
        if any(c is not None for c in caps):
            notes.append("the picture's shot noise is below what it shows; the default gain is capped by it")
        capped = [g if c is None else min(g, c) for g, c in zip(gains_from.gains or [], caps)]
        gains_from = replace(gains_from, gains=capped)
    assert gains_from is not None and reads_from is not None and gains_from.gains and reads_from.read_vars
    read_vars = [max(v, quantisation) for v in reads_from.read_vars]
    if fits is not None and reads_from.name == PICTURE and gains_from.name != PICTURE:
        read_vars = [f.read_var_given(g, quantisation) for f, g in zip(fits, gains_from.gains)]
    source = gains_from.name if gains_from.name == reads_from.name else \
        f"{gains_from.name} (read noise: {reads_from.name})"
    return NoiseLevel(tuple(gains_from.gains), tuple(read_vars), source, tuple(notes))
