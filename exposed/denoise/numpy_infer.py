"""The exposure process on numpy arrays around a network run outside torch (the CPU runtime,
:mod:`exposed.denoise.openvino`): the same tiles, states, noise channels, output layer and Wiener
blend as :mod:`exposed.denoise.infer` and :mod:`exposed.denoise.process`, which training and GPUs
use, equal to them to float32 rounding for T = 0 (tests/test_numpy_infer.py; a step's photons
are drawn by numpy's generator, so T > 0 is equal in distribution).

Why a second runtime: on a 2-core CPU ``import torch`` takes longer than the whole of a 12 MP
frame's work but the network (issue 18), and OpenVINO runs the network faster than torch there.
Torch-free; the tiling and the choice of T live here and :mod:`exposed.denoise.infer` uses them.

Arrays are packed raws (1, 4, H, W) float32 normalised to black 0, white 1; sensor figures are
(gain, read variance) per packed site, (4,) each.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from exposed.denoise.config import LOG_STD_CENTRE, LOG_STD_FLOOR, LOG_STD_SCALE, ModelConfig, input_channels
from exposed.imaging.wiener_numpy import STRIDE, blend_bands, dct_wiener

Backbone = Callable[[np.ndarray], np.ndarray]  # (1, C_in, h, w) float32 -> (1, C_out, h, w) float32

TILE_MULTIPLE = 16  # the UNet's: a tile of this multiple needs no padding
OVERLAP = 32  # packed pixels neighbouring tiles share, their estimates ramped across them


def tiling(size: int, tile: int, overlap: int) -> tuple[int, list[int]]:
    """The tile length and start offsets that cover ``size`` pixels with the fewest tiles of at
    most ``tile`` pixels overlapping by at least ``overlap``: as many as a ``tile`` stride needs,
    then shrunk to share the frame evenly, so no pass is spent on a tile that mostly repeats its
    neighbour. One length for all, so every tile has the same shape; length and stride are
    multiples of 16, the UNet's pooling grid, so neighbours see the frame on the same grid (the last
    tile ends at the frame's edge). On a 12 MP frame: 12% fewer pixels than 512-pixel tiles, PSNR
    within 0.02 dB of theirs."""
    if size <= tile:
        return size, [0]
    count = -(-(size - overlap) // (tile - overlap))
    length = -(-(size + (count - 1) * overlap) // count)
    length = min(tile, -(-length // TILE_MULTIPLE) * TILE_MULTIPLE)
    stride = (length - overlap) // TILE_MULTIPLE * TILE_MULTIPLE
    count = -(-(size - length) // stride) + 1  # the stride's rounding may need one tile more
    return length, [i * stride for i in range(count - 1)] + [size - length]


def network_shape(height: int, width: int, tile: int | None, overlap: int = OVERLAP) -> tuple[int, int]:
    """The (height, width) the network runs at for a packed frame of ``height`` x ``width``: its
    tiles' (:func:`predict`), or the whole frame's, padded up to multiples of 16."""
    if tile is not None and (height > tile or width > tile):
        height, width = tiling(height, tile, overlap)[0], tiling(width, tile, overlap)[0]
    return -(-height // TILE_MULTIPLE) * TILE_MULTIPLE, -(-width // TILE_MULTIPLE) * TILE_MULTIPLE


def ramp(length: int, overlap: int) -> np.ndarray:
    """(length,) float32 tile weights: 1 in the middle, rising linearly over ``overlap`` pixels at
    both ends (never 0)."""
    weights = np.ones(length, dtype=np.float32)
    if overlap > 0 and length > 2 * overlap:
        edge = (np.arange(overlap, dtype=np.float32) + 1) / (overlap + 1)
        weights[:overlap], weights[-overlap:] = edge, edge[::-1]
    return weights


def steps_for_ratio(steps: int, ratio_per_step: float, ratio: float) -> int:
    """T = min(steps, ratio // ratio_per_step); always ``steps`` when ratio_per_step is 0."""
    return min(steps, int(ratio // ratio_per_step)) if ratio_per_step > 0 else steps


def steps_for_snr(steps: int, snr_per_step: float, snr: float) -> int:
    """T = min(steps, snr_per_step // snr): the noisier the frame, the more steps; always ``steps``
    when snr_per_step is 0."""
    if snr_per_step <= 0:
        return steps
    return steps if snr <= 0 else min(steps, int(snr_per_step // snr))


def steps_for(config: ModelConfig, ratio: float | None = None, snr: float | None = None) -> int:
    """The exposure steps T a model runs when none are asked for: one pass for the twin; for
    ExposureDiffusion its own T, or fewer for small ratios if the model says how much exposure a
    step should cover, and fewer for clean frames (a high ``snr``, :func:`frame_snr`) if it says
    how clean a frame a step is for (benchmarks/steps.py, benchmarks/steps_snr.py)."""
    if config.kind == "feedforward":
        return 0
    steps = config.steps if ratio is None else steps_for_ratio(config.steps, config.ratio_per_step, ratio)
    if snr is not None and config.snr_per_step > 0:
        steps = min(steps, steps_for_snr(config.steps, config.snr_per_step, snr))
    return steps


SNR_SAMPLE_STRIDE = 7  # every 7th photosite is plenty for a median, and keeps it from costing a pass


def frame_snr(dark: np.ndarray, gain: float, read_var: float) -> float:
    """A dark frame's signal-to-noise ratio as it can be known without the truth: its median level
    over the noise the sensor has there, sqrt(gain * level + read variance). dark: normalised, not
    amplified (any shape; a batch is taken as a whole); gain, read_var: the sensor's, over its sites."""
    level = max(float(np.median(dark.reshape(-1)[::SNR_SAMPLE_STRIDE])), 0.0)
    return level / math.sqrt(gain * level + read_var)


def pilot_error(table: tuple[tuple[float, float], ...], ratio: float) -> float:
    """The network's error variance at ``ratio``, interpolated log-linearly in a model's (ratio,
    variance) ``table`` and held at its ends; 0 for an empty table."""
    if not table:
        return 0.0
    log_table = np.log(np.asarray(table, dtype=np.float64))
    return float(np.exp(np.interp(math.log(ratio), log_table[:, 0], log_table[:, 1])))


def blend_lattice(config: ModelConfig, ratio: float) -> tuple[int, bool]:
    """The Wiener blend's block spacing and whether it is a quincunx at ``ratio``: the model's
    stride, or below its ``dense_below`` half of it with every other block (twice the blocks)."""
    if ratio < config.dense_below:
        return config.wiener_stride // 2, True
    return config.wiener_stride, False


def noise_var(amplified: np.ndarray, exposure: float, ratio: float, gain: np.ndarray, read_var: np.ndarray,
              high: float | None = None) -> np.ndarray:
    """Variance of shot plus read noise of a state at exposure ``exposure``, in amplified units, at
    its level clamped to [0, high] (no upper bound for None). (1, 4, H, W) float32, one new frame."""
    boost = ratio / exposure
    level = np.clip(amplified, 0.0, high)
    level *= (gain * boost).astype(np.float32)[None, :, None, None]
    level += (read_var * boost**2).astype(np.float32)[None, :, None, None]
    return level


def network_inputs(config: ModelConfig, amplified: np.ndarray, std: np.ndarray) -> np.ndarray:
    """What the backbone is given (:meth:`exposed.denoise.model.ExposureModel.inputs`): the state,
    its noise level and, if the model takes it, the level's log (1, 8 or 12, h, w), written into
    one new array."""
    b, c, h, w = amplified.shape
    x = np.empty((b, input_channels(config), h, w), dtype=np.float32)
    x[:, :c], x[:, c:2 * c] = amplified, std
    if config.noise_input == "std+log":
        # log2 through the natural log: numpy's is vectorised on AVX2 CPUs, its log2 is not (4 times
        # slower there, a tenth of a network pass); the two agree to float32 rounding.
        level = np.maximum(std, np.float32(LOG_STD_FLOOR), out=x[:, 2 * c:])
        np.log(level, out=level)
        level -= np.float32(LOG_STD_CENTRE * math.log(2.0))
        level *= np.float32(1.0 / (LOG_STD_SCALE * math.log(2.0)))
    return x


def network_output(config: ModelConfig, out: np.ndarray, amplified: np.ndarray) -> np.ndarray:
    """F's estimate from the backbone's outputs (:meth:`exposed.denoise.model.ExposureModel.forward`):
    the twin's 4 channels as they are, or the adaptive residual layer's mix of a direct estimate and
    a residual on the state, in float32 (1, 4, h, w). ``out`` is the caller's to overwrite."""
    if config.kind == "feedforward":
        return out.astype(np.float32, copy=False)
    mask, direct, residual = out[:, :1], out[:, 1:5], out[:, 5:9]
    np.negative(mask, out=mask)
    np.exp(mask, out=mask)
    mask += 1.0
    np.reciprocal(mask, out=mask)  # the sigmoid of the logit
    np.clip(direct, 0.0, 1.0, out=direct)
    residual += amplified
    np.clip(residual, 0.0, 1.0, out=residual)
    direct -= residual  # M * direct + (1 - M) * residual = residual + M * (direct - residual)
    direct *= mask
    return np.add(residual, direct, dtype=np.float32)


def predict(backbone: Backbone, config: ModelConfig, amplified: np.ndarray, std: np.ndarray,
            tile: int | None = None, overlap: int = OVERLAP) -> np.ndarray:
    """F on a whole frame, tiled if ``tile`` (in packed pixels) is smaller than it; frames whose
    sides are not multiples of 16 are mirrored to them at the bottom and right, as the model does."""
    h, w = amplified.shape[-2:]
    if tile is None or (h <= tile and w <= tile):
        return _forward(backbone, config, amplified, std)
    out = np.zeros_like(amplified, dtype=np.float32)
    weight = np.zeros((h, w), dtype=np.float32)
    (th, tops), (tw, lefts) = tiling(h, tile, overlap), tiling(w, tile, overlap)
    wgt = ramp(th, overlap)[:, None] * ramp(tw, overlap)[None, :]
    for top in tops:
        for left in lefts:
            window = (..., slice(top, top + th), slice(left, left + tw))
            estimate = _forward(backbone, config, amplified[window], std[window])
            out[window] += np.multiply(estimate, wgt, out=estimate)
            weight[window[1:]] += wgt
    out /= weight
    return out


def _forward(backbone: Backbone, config: ModelConfig, amplified: np.ndarray, std: np.ndarray) -> np.ndarray:
    h, w = amplified.shape[-2:]
    x = network_inputs(config, amplified, std)
    ph, pw = -h % TILE_MULTIPLE, -w % TILE_MULTIPLE
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect" if ph < h and pw < w else "edge")
    return network_output(config, backbone(np.ascontiguousarray(x))[..., :h, :w], amplified)


def run_process(backbone: Backbone, config: ModelConfig, dark: np.ndarray, saturated: np.ndarray, ratio: float,
                gain: np.ndarray, read_var: np.ndarray, steps: int, seed: np.random.SeedSequence,
                tile: int | None = None, overlap: int = OVERLAP,
                on_step: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The exposure process (:func:`exposed.denoise.process.run_process`, inference): from the dark
    frame to F's estimate after T steps, linear exposures, each step's photons Poisson with the
    mean the estimate implies (:func:`expose`); photosites ``saturated`` in the dark frame held at
    white. ``seed``: where every step's draws come from."""
    exposures = [1.0] + [max(ratio * k / steps, 1.0) for k in range(1, steps + 1)]
    state = np.multiply(dark, np.float32(ratio), dtype=np.float32)
    for t, step_seed in zip(range(steps + 1), seed.spawn(steps + 1)):
        # The network sees the state bounded; the next state grows from the unbounded one.
        seen = np.clip(state, config.state_low, config.state_high, out=state if t == steps else None)
        std = noise_var(seen, exposures[t], ratio, gain, read_var)
        estimate = predict(backbone, config, seen, np.sqrt(std, out=std), tile, overlap)
        np.copyto(estimate, np.float32(1.0), where=saturated)
        if on_step is not None:
            on_step(t + 1, steps + 1)
        if t == steps:
            return estimate
        expose(state, estimate, exposures[t], exposures[t + 1], ratio, gain, step_seed)
    raise AssertionError("unreachable")


EXPOSE_BAND = 64  # packed rows of a step drawn at a time, on one core each


def expose(state: np.ndarray, estimate: np.ndarray, exposure: float, next_exposure: float, ratio: float,
           gain: np.ndarray, seed: np.random.SeedSequence, band: int = EXPOSE_BAND) -> None:
    """One step of the process in place (:func:`exposed.denoise.process.expose`, Eq. 10): ``state``
    at ``exposure`` becomes the state at ``next_exposure``, the photons of the extra time drawn
    Poisson at the rate ``estimate`` implies. Bands of rows are drawn on all cores, each from its
    own generator spawned from ``seed``, so the result depends on the seed alone, not on the
    threads' order; nothing frame-sized is made."""
    extra = (next_exposure - exposure) / ratio
    per_photon = (extra / gain).astype(np.float32)[:, None, None]  # the mean's scale, per site
    site_gain = gain.astype(np.float32)[:, None, None]
    kept, grown = np.float32(exposure / ratio), np.float32(ratio / next_exposure)
    height = state.shape[-2]
    firsts = list(range(0, height, band))

    def one(first: int, bits: np.random.SeedSequence) -> None:
        rows = slice(first, first + band)
        mean = np.maximum(estimate[0, :, rows], 0.0) * per_photon
        photons = np.random.default_rng(bits).poisson(mean).astype(np.float32)
        part = state[0, :, rows]
        part *= kept
        part += photons * site_gain
        part *= grown

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(one, firsts, seed.spawn(len(firsts))))


# An orthonormal transform of the packed sites (R, G1, G2, B): their sum, the greens against red and
# blue, red against blue and green against green. A scene's colours are correlated across sites, so
# most of a patch's signal lands in the sum and the differences are smooth: filtered apart, each is
# kept where it holds signal (0.1 to 0.3 dB over the sites filtered alone, measured on validation
# crops). Both runtimes' blends filter in it (exposed.denoise.infer.SITE_TRANSFORM is this matrix).
SITE_TRANSFORM = np.array([[0.5, 0.5, 0.5, 0.5],
                           [0.5, -0.5, -0.5, 0.5],
                           [math.sqrt(0.5), 0.0, 0.0, -math.sqrt(0.5)],
                           [0.0, math.sqrt(0.5), -math.sqrt(0.5), 0.0]], dtype=np.float32)
WIENER_BAND = 64  # packed rows blended at a time: the planes of a band stay in the CPU's cache
# The estimate's error variance, beside the model's own, at a photosite whose measurement is clipped
# (a channel of the brightened frame more than CLIPPED_SIGMAS noise standard deviations above
# white: noise alone rarely puts it there), and further at one the network saw bounded (a channel
# at or above the state's upper bound, ModelConfig.state_high). Beside lamps and bright windows the
# network sees part of a photosite's colour cut off, or none of it above the bound, and its
# estimate of the other channels is a guess; trusted as elsewhere, it put edges there that plain
# brightening has not. `python benchmarks/bounds.py` scores them on night scenes and ordinary ones:
# with these the worst night crop at x5 / x20 / x100 went from 0.45 / 0.36 / 0.12 dB below
# brightening to 0.01 / 0.02 below and 0.03 above, night means rose 0.02 to 0.03 dB, and ordinary
# scenes scored the same to 0.01 dB (default model, 68 crops).
CLIPPED_SIGMAS = 3.0
CLIPPED_ERROR = 1e-3
BOUNDED_ERROR = 5e-3


def wiener_blend(estimate: np.ndarray, dark: np.ndarray, saturated: np.ndarray, ratio: float, gain: np.ndarray,
                 read_var: np.ndarray, stride: int = STRIDE, error: float = 0.0, band: int = WIENER_BAND,
                 bound: float = math.inf, residual_error: float = 0.0, quincunx: bool = False) -> np.ndarray:
    """The plain brightened frame (``dark`` times ``ratio``, ``saturated`` photosites white)
    Wiener-filtered with the network's estimate as the pilot (:func:`exposed.denoise.infer.wiener_blend`,
    whose docstring says why; ``bound``: the state's upper bound the network saw; ``residual_error``:
    ModelConfig's; ``quincunx``: every other block, :func:`blend_lattice`): (1, 4, H, W) in, the
    same out, the brightened frame made band by band. Bands are shared among the CPU's cores: numpy
    lets go of the GIL in their work, and BLAS is held to one thread meanwhile (its own threads on
    the small transforms only compete)."""
    read = (read_var * ratio**2).astype(np.float32)[:, None, None]  # (4, 1, 1): the read noise's variance
    shot = (gain * ratio).astype(np.float32)[:, None, None]  # and the shot noise's at white
    top = np.sqrt(shot + read) + np.float32(1.0)
    clip_level = (top - np.float32(1.0)) * np.float32(CLIPPED_SIGMAS) + np.float32(1.0)
    out = np.empty_like(estimate, dtype=np.float32)

    def mix(matrix: np.ndarray, x: np.ndarray) -> np.ndarray:
        return np.tensordot(matrix, x, axes=1)

    def one(first: int, last: int, low: int, high: int) -> None:
        level = estimate[0, :, low:high]
        bright = np.multiply(dark[0, :, low:high], np.float32(ratio), dtype=np.float32)
        np.copyto(bright, np.float32(1.0), where=saturated[0, :, low:high])
        # Photosites clipped, or seen bounded, count the estimate's error larger (CLIPPED_ERROR says why).
        clipped = np.any(bright > clip_level, axis=0, keepdims=True)
        bounded = np.any(bright >= bound, axis=0, keepdims=True)
        trust = error
        if clipped.any() or bounded.any():
            trust = clipped * np.float32(CLIPPED_ERROR) + bounded * np.float32(BOUNDED_ERROR) + np.float32(error)
        measured = mix(SITE_TRANSFORM, np.minimum(bright, top, out=bright))
        variance = mix(np.square(SITE_TRANSFORM), np.clip(level, 0.0, 1.0) * shot + read)
        planes = dct_wiener(measured, mix(SITE_TRANSFORM, level), variance, trust, stride=stride,
                            residual_error=residual_error, quincunx=quincunx)
        out[0, :, first:last] = mix(SITE_TRANSFORM.T, planes[:, first - low:last - low])

    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(lambda rows: one(*rows), blend_bands(estimate.shape[-2], band, stride)))
    return out


def denoise(backbone: Backbone, config: ModelConfig, dark: np.ndarray, saturated: np.ndarray, ratio: float,
            gain: np.ndarray, read_var: np.ndarray, steps: int | None = None, seed: int = 0,
            tile: int | None = None, overlap: int = OVERLAP,
            on_step: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Brighten and denoise a dark packed raw (:func:`exposed.denoise.infer.denoise`): the estimate
    after T exposure steps (the model's own for this ratio and frame when ``steps`` is None),
    Wiener-blended with the brightened frame where the model says so, saturated photosites white.
    dark: (1, 4, H, W) normalised; saturated: (1, 4, H, W) bool. Returns (1, 4, H, W) in [0, 1]."""
    gain, read_var = np.asarray(gain, dtype=np.float64), np.asarray(read_var, dtype=np.float64)
    if steps is None:
        steps = steps_for(config, ratio, frame_snr(dark, float(gain.mean()), float(read_var.mean())))
    estimate = run_process(backbone, config, dark, saturated, ratio, gain, read_var, steps,
                           np.random.SeedSequence(seed), tile, overlap, on_step)
    if config.wiener_stride:
        stride, quincunx = blend_lattice(config, ratio)
        estimate = wiener_blend(estimate, dark, saturated, ratio, gain, read_var, stride,
                                pilot_error(config.pilot_error, ratio), bound=config.state_high,
                                residual_error=config.residual_error, quincunx=quincunx)
        np.copyto(estimate, np.float32(1.0), where=saturated)
    return np.clip(estimate, 0.0, 1.0, out=estimate)
