"""Raw file in, finished photo out: the Python API behind ``exposed enhance``.

    import exposed
    enhancer = exposed.Enhancer(exposed.Settings(mode="diffusion", steps=2))
    image, plan = enhancer.enhance("night.ARW")   # (H, W, 3) uint8 sRGB, and what was decided

    from exposed.io.dng import write_dng                  # or, for a raw editor, a DNG:
    from exposed.io.raw import read_raw
    plan = enhancer.plan(read_raw("night.ARW"))
    write_dng("night-exposed.dng", *enhancer.dng(plan, enhancer.enhance_mosaic(plan)))

The steps: read the mosaic (:mod:`exposed.io.raw`), decide the exposure ratio
(:mod:`exposed.exposure`) and the noise level (:mod:`exposed.sensor.estimate`), brighten and denoise
the packed raw with the exposure process (:mod:`exposed.denoise.infer`), then render it with exposed's ISP
(:mod:`exposed.imaging.isp`) or LibRaw's.

Everything but the network is numpy: the denoising modules, and torch with them, are imported only
when a mode denoises, so ``--mode amplify`` starts in a fraction of the time (issue 18).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import rawpy

from exposed.imaging.bayer import cell_offsets, fill_photosites, pack, unpack
from exposed.io.dng import DngMetadata
from exposed.io.orientation import TIFF_ORIENTATION, upright
from exposed.exposure import RatioChoice, brighten, choose_ratio
from exposed.imaging.isp import demosaic, render
from exposed.modes import MODES, Mode, default_model, default_model_path
from exposed.sensor.darktable import darktable_noise
from exposed.sensor.estimate import NoiseLevel, noise_level
from exposed.io.raw import RawImage, default_crop, read_raw

if TYPE_CHECKING:
    from exposed.denoise.config import ModelConfig
    from exposed.denoise.openvino import OpenVinoSession
    from exposed.denoise.session import DenoiseSession
    from exposed.sensor.calibration import IsoNoise, SensorCalibration

WHITE_BALANCES = ("camera", "daylight", "none")
# "auto": bf16 where the hardware makes it fast, else a model's int8 form on the CPU runtime, else fp32
PrecisionRequest = Literal["auto", "fp32", "bf16", "int8"]
RuntimeRequest = Literal["auto", "torch", "openvino"]  # "auto": OpenVINO on the CPU where installed
DngLayout = Literal["cfa", "linear"]
Isp = Literal["exposed", "libraw"]


@dataclass(frozen=True)
class Settings:
    """How to enhance. Ratio requests are exclusive: ratio, ev or target_exposure (else automatic)."""

    mode: Mode = "diffusion"
    steps: int | None = None  # exposure steps T; None: the model's own
    model: Path | None = None  # None: the shipped model for the mode
    device: str = "auto"
    precision: PrecisionRequest = "auto"
    runtime: RuntimeRequest = "auto"  # what runs the network (exposed.denoise.openvino.runtime_for)
    tile: int | None = 512  # packed pixels per network tile; None: the whole frame at once
    seed: int = 0
    ratio: float | None = None
    ev: float | None = None
    target_exposure: float | None = None
    target_iso: float | None = None
    target_f_number: float | None = None
    noise_profile: str | None = None
    profile: Path | None = None  # a camera calibration from `exposed calibrate`
    wb: str = "camera"  # camera, daylight, none, or "R,G,B" multipliers
    tone: bool = False
    isp: Isp = "exposed"
    bits: int = 8
    dng: DngLayout = "cfa"  # DNG output: the Bayer mosaic ("cfa") or demosaiced camera RGB ("linear")
    gp_k: int = 10  # GP mode: k-means centres the Gaussian process is fitted on
    gp_smoothing: float = 3.0  # GP mode: the guided filter before the GP, in the photo's noise levels (0: none)
    gp_patch: int = 1  # GP mode: p = q, the patch side (1: pixel pairs, the best measured)
    # How much of the denoised result to keep, the rest plain brightening, in linear raw: 1 all of
    # it, 0 none (exactly --mode amplify's output). For a taste of grain, or a frame the model overdoes.
    strength: float = 1.0
    uncertainty: int = 0  # runs of the exposure process behind an uncertainty map (0: no map)


@dataclass
class Frame:
    """What a plan takes from the file alone, in numpy, before any model is needed: a batch makes
    its first file's while torch is being imported (:meth:`Enhancer.frame`). Packed only, as the
    network, the statistics and the ISP all see a frame: a 24 MP file holds 96 MB less."""

    raw: RawImage  # with the camera profile's corrections
    packed: np.ndarray  # (1, 4, H / 2, W / 2) float32 normalised (:meth:`RawImage.packed`)
    saturated: np.ndarray  # (1, 4, H / 2, W / 2) bool: photosites at the white level, held white in every mode
    corrections: tuple[str, ...] = ()  # what the camera profile changed in the raw data (shown with -v)


@dataclass
class Plan:
    """What will be done to one file: shown by --dry-run and ``exposed info``, used by enhance."""

    frame: Frame
    ratio: RatioChoice
    noise: NoiseLevel | None
    wb: np.ndarray
    wb_source: str

    @property
    def raw(self) -> RawImage:
        return self.frame.raw

    @property
    def mosaic(self) -> np.ndarray:
        """(1, 1, H, W) float32 normalised: the frame unpacked (a new array each time)."""
        return unpack(self.frame.packed, self.raw.pattern)

    @property
    def corrections(self) -> tuple[str, ...]:
        return self.frame.corrections


def parse_wb(text: str) -> np.ndarray:
    """'R,G,B' multipliers, normalised to green 1."""
    try:
        values = np.array([float(v) for v in text.split(",")])
    except ValueError:
        values = np.array([])
    if values.shape != (3,) or values.min() <= 0:
        raise ValueError(f"white balance {text!r}: expected camera, daylight, none or three positive numbers R,G,B")
    return values / values[1]


class Enhancer:
    """Enhances raw files one after another with the same settings (the model is loaded once).
    GP mode's photos have their own: :class:`exposed.gp.pipeline.PhotoEnhancer`."""

    def __init__(self, settings: Settings = Settings()):
        if settings.mode not in MODES:
            raise ValueError(f"unknown mode {settings.mode!r}; expected one of {', '.join(MODES)}")
        if MODES[settings.mode].photos:
            raise ValueError(f"mode {settings.mode} enhances photos: use exposed.PhotoEnhancer")
        if settings.dng not in get_args(DngLayout):
            raise ValueError(f"unknown DNG layout {settings.dng!r}; expected cfa or linear")
        if settings.wb not in WHITE_BALANCES:
            parse_wb(settings.wb)
        if not 0.0 <= settings.strength <= 1.0:
            raise ValueError(f"strength {settings.strength:g}: expected a number from 0 to 1")
        if settings.uncertainty and (settings.mode != "diffusion" or settings.uncertainty < 2):
            raise ValueError("an uncertainty map needs --mode diffusion (the other modes draw nothing at random) "
                             "and two runs or more")
        self.settings = settings
        self.calibration: SensorCalibration | None = None
        if settings.profile:
            from exposed.sensor.calibration import SensorCalibration

            self.calibration = SensorCalibration.load(settings.profile)
        if settings.precision not in get_args(PrecisionRequest):
            raise ValueError(f"unknown precision {settings.precision!r}; expected "
                             f"{', '.join(get_args(PrecisionRequest))}")
        if settings.precision == "int8" and MODES[settings.mode].denoises_raw:
            self._check_int8()

    def _check_int8(self) -> None:
        """int8 is a form of a model file that the CPU runtime runs: refused at once, before any
        file of a batch, where it cannot be had."""
        from exposed.denoise.openvino import OpenVinoSession, runtime_for

        if runtime_for(self.settings.runtime, self.settings.device) != "openvino":
            raise ValueError("int8 runs on the CPU runtime only (OpenVINO: --runtime openvino, no GPU device)")
        _ = OpenVinoSession(self.model_path, "int8").precision  # a model without an int8 form of its own: refused

    @property
    def model_path(self) -> Path:
        """The model file of the mode (the shipped one unless ``model`` says otherwise)."""
        return self.settings.model or default_model_path(default_model(self.settings.mode))

    @cached_property
    def session(self) -> DenoiseSession | OpenVinoSession | None:
        """The network half, for a mode with one (None for amplify), made on first use: OpenVINO's
        on the CPU, torch's on a GPU (or as ``runtime`` says). Its first use loads the model, which
        a batch spends reading its first raw (:mod:`exposed.batch.run`)."""
        if not MODES[self.settings.mode].denoises_raw:
            return None
        from exposed.denoise.openvino import runtime_for

        s = self.settings
        path = self.model_path
        if runtime_for(s.runtime, s.device) == "openvino":
            from exposed.denoise.openvino import OpenVinoSession

            return OpenVinoSession(path, s.precision)
        from exposed.denoise.session import DenoiseSession

        return DenoiseSession(path, s.device, s.precision)

    @property
    def model_config(self) -> ModelConfig | None:
        """The settings of the mode's model (None for amplify), reading the model on first use."""
        return self.session.config if self.session is not None else None

    def frame(self, raw: RawImage) -> Frame:
        """The file's part of its plan, numpy only (no model, no torch): the raw corrected by the
        camera profile, normalised and packed, and its saturated photosites."""
        raw, corrections = self._corrected(raw, self._at_iso(raw))
        saturated = pack((raw.mosaic >= raw.white)[None, None], raw.pattern)
        return Frame(raw, raw.packed(), saturated, corrections)

    def _at_iso(self, raw: RawImage) -> IsoNoise | None:
        return self.calibration.at_iso(raw.exif.iso) if self.calibration else None

    def plan(self, raw: RawImage | Frame) -> Plan:
        """What will be done to a file: its :meth:`frame` (made here unless given), the exposure
        ratio, the noise level and the white balance. The network for the frame's size starts
        compiling meanwhile, if its runtime compiles one."""
        s = self.settings
        frame = raw if isinstance(raw, Frame) else self.frame(raw)
        raw, packed = frame.raw, frame.packed
        if s.wb == "camera":
            wb, wb_source = raw.wb, f"camera ({raw.wb_source})"
        elif s.wb == "daylight":
            wb, wb_source = ((raw.daylight_wb, "daylight") if raw.daylight_wb is not None
                             else (raw.wb, "camera (no daylight data)"))
        elif s.wb == "none":
            wb, wb_source = np.ones(3), "none"
        else:
            wb, wb_source = parse_wb(s.wb), "--wb"
        if self.session is not None and s.strength > 0:  # compiled while the ratio and noise are worked out
            self.session.prepare(packed.shape[-2], packed.shape[-1], s.tile)
        supported = self.session.config.ratio_range if self.session is not None else (1e-3, 1e6)
        ratio = choose_ratio(packed, wb, raw.exif, supported, ratio=s.ratio, ev=s.ev,
                             target_exposure=s.target_exposure, target_iso=s.target_iso,
                             target_f_number=s.target_f_number)
        noise = None
        if self.session is not None:
            ex = raw.exif
            noise = noise_level(packed, s.noise_profile, raw.noise_profile, ex.iso, raw.scale,
                                float(-raw.black.min() / raw.scale), camera=self._at_iso(raw),
                                darktable=darktable_noise(ex.make, ex.model, ex.iso))
        return Plan(frame, ratio, noise, np.asarray(wb, dtype=np.float64), wb_source)

    def _corrected(self, raw: RawImage, at_iso: IsoNoise | None) -> tuple[RawImage, tuple[str, ...]]:
        """The raw with the camera profile's corrections: its black level's true offset at the
        file's ISO, and its hot photosites filled from their neighbours of the same colour.
        ValueError when the profile is of another camera."""
        c = self.calibration
        if c is None or at_iso is None:
            return raw, ()
        ex = raw.exif
        if c.model and ex.model and (c.make, c.model) != (ex.make, ex.model):
            raise ValueError(f"the camera profile is of a {c.make} {c.model}, this file of a {ex.make} {ex.model}")
        offset = at_iso.offset
        black = raw.black.astype(np.float64).copy()
        for (r, col), value in zip(cell_offsets(raw.pattern), offset):
            black[r, col] += value
        notes = [f"black level {raw.black.mean():g} + {sum(offset) / 4:.2f} DN (the profile's measured offset)"]
        mosaic = raw.mosaic
        if c.hot_pixels and mosaic.shape == (c.height, c.width):
            mosaic = fill_photosites(mosaic, np.array(c.hot_pixels))
            notes.append(f"{len(c.hot_pixels)} hot photosites filled from their neighbours")
        elif c.hot_pixels:
            notes.append(f"hot photosites left alone: the profile's frames are {c.width}x{c.height}, this "
                         f"one {mosaic.shape[1]}x{mosaic.shape[0]}")
        return replace(raw, black=black, mosaic=mosaic), tuple(notes)

    def enhance_mosaic(self, plan: Plan, on_step: Callable[[int, int], None] | None = None,
                       seed: int | None = None, steps: int | None = None) -> np.ndarray:
        """The brightened (and denoised) normalised mosaic, (1, 1, H, W) float32 in [0, 1];
        ``on_step(done, total)`` reports each network pass; ``seed`` and ``steps`` override the settings'."""
        raw = plan.raw
        strength = self.settings.strength

        def amplified() -> np.ndarray:
            bright = brighten(plan.frame.packed, np.array([plan.ratio.ratio]), plan.frame.saturated)
            return unpack(np.clip(bright, 0.0, 1.0, out=bright), raw.pattern)

        if self.session is None or strength == 0.0:
            return amplified()
        assert plan.noise is not None
        s = self.settings
        out = self.session.denoise(plan.frame.packed, plan.frame.saturated, plan.ratio.ratio,
                                   plan.noise, s.steps if steps is None else steps, s.seed if seed is None else seed,
                                   s.tile, on_step)
        denoised = unpack(out, raw.pattern)
        if strength == 1.0:
            return denoised
        return np.float32(strength) * denoised + np.float32(1.0 - strength) * amplified()

    def steps(self, plan: Plan) -> int:
        """The exposure steps T this file gets: the settings', or the model's default for its ratio
        and signal-to-noise ratio (what either runtime's ``denoise`` chooses)."""
        from exposed.denoise.numpy_infer import frame_snr, steps_for

        assert self.session is not None and plan.noise is not None
        if self.settings.steps is not None:
            return self.settings.steps
        snr = frame_snr(plan.frame.packed, plan.noise.gain, plan.noise.read_var)
        return steps_for(self.session.config, plan.ratio.ratio, snr)

    def uncertainty(self, plan: Plan, delivered: np.ndarray) -> np.ndarray:
        """(H, W) float32, upright like :meth:`render`'s image: the spread of the result's brightness
        (0 to 1, on the sRGB curve) over ``settings.uncertainty`` runs of the exposure process, seeds
        ``seed``, ``seed + 1``, ... (:mod:`exposed.denoise.uncertainty`). ``delivered``: the seed's
        own result, reused when its steps already draw photons."""
        from exposed.denoise.uncertainty import packed_spread, varied_steps

        assert self.session is not None
        s, pattern = self.settings, plan.raw.pattern
        steps = self.steps(plan)
        varied = varied_steps(steps)
        first = delivered if varied == steps else self.enhance_mosaic(plan, steps=varied)
        runs = [first] + [self.enhance_mosaic(plan, seed=s.seed + k, steps=varied) for k in range(1, s.uncertainty)]
        cells = packed_spread([pack(run, pattern) for run in runs], plan.wb)
        full = cells.repeat(2, 0).repeat(2, 1)
        return upright(full, plan.raw.orientation)

    def render(self, plan: Plan, mosaic: np.ndarray, bits: int | None = None) -> np.ndarray:
        """Display-ready (H, W, 3) uint8 or uint16, upright: exposed's ISP
        (:func:`exposed.imaging.isp.render`) or LibRaw's. mosaic: (1, 1, H, W) as
        :meth:`enhance_mosaic` gives it."""
        raw = plan.raw
        bits = bits or self.settings.bits
        if self.settings.isp == "libraw":
            return _render_libraw(plan, mosaic, bits)
        image = render(mosaic[0, 0], raw.pattern, plan.wb, raw.cam_to_srgb, self.settings.tone, bits)
        return upright(image, raw.orientation)

    def dng(self, plan: Plan, mosaic: np.ndarray) -> tuple[np.ndarray, DngMetadata]:
        """The enhanced frame as a DNG's 16-bit pixels and tags, for :func:`exposed.io.dng.write_dng`.

        A raw editor must see the camera's raw, only brighter and cleaner: the source's Bayer order,
        colour calibrations, white balance (AsShotNeutral = 1 / multipliers, so ``--wb`` carries
        over), orientation and EXIF. The brightening is in the data, so BaselineExposure stays 0 and
        the editor shows what exposed's own rendering shows; black is 0 and white 65535, finer steps
        than the camera's own for the denoised values. The frame is the source's default crop, so
        no ActiveArea or DefaultCrop is needed and the pattern belongs to the written corner.
        """
        raw, s = plan.raw, self.settings
        if s.dng == "linear":  # camera RGB, not white-balanced, as LinearRaw DNGs hold it
            data = demosaic(mosaic[0, 0].clip(0.0, 1.0), raw.pattern)
        else:
            data = mosaic[0, 0]
        pixels = np.round(data.astype(np.float32).clip(0.0, 1.0) * np.float32(65535.0)).astype(np.uint16)
        if s.mode == "amplify":
            what = f"brightened x{plan.ratio.ratio:.4g} ({plan.ratio.source}), not denoised"
        else:
            steps = self.steps(plan)
            what = f"brightened x{plan.ratio.ratio:.4g} ({plan.ratio.source}) and denoised ({s.mode}, T={steps}" + (
                f", strength {s.strength:g})" if s.strength < 1.0 else ")")
        meta = DngMetadata(
            pattern=raw.pattern, black=np.zeros((2, 2)), white=65535, calibrations=raw.calibrations,
            as_shot_neutral=1.0 / plan.wb, unique_camera_model=raw.unique_camera_model,
            orientation=TIFF_ORIENTATION.get(raw.orientation, 1), exif=raw.exif, baseline_exposure=0.0,
            noise_reduction_applied=0.0 if s.mode == "amplify" else s.strength,
            description=f"exposed: {what}", original_name=raw.path.name)
        return pixels, meta

    def enhance(self, path: str | Path) -> tuple[np.ndarray, Plan]:
        plan = self.plan(read_raw(path))
        return self.render(plan, self.enhance_mosaic(plan)), plan


def _render_libraw(plan: Plan, mosaic: np.ndarray, bits: int) -> np.ndarray:
    """Put the enhanced mosaic back into the file's raw buffer and let LibRaw develop it (same crop
    and orientation as exposed's own pipeline)."""
    raw_image = plan.raw
    h, w = raw_image.mosaic.shape
    black = np.tile(raw_image.black, (h // 2, w // 2))
    values = mosaic[0, 0].astype(np.float64) * raw_image.scale + black
    values = np.clip(np.round(values), 0, raw_image.white).astype(np.uint16)
    with rawpy.imread(str(raw_image.path)) as raw:
        top, left, _, _ = default_crop(raw.sizes, raw.raw_image_visible.shape)
        raw.raw_image_visible[top:top + h, left:left + w] = values
        wb = [float(plan.wb[0]), 1.0, float(plan.wb[2]), 1.0]
        image = raw.postprocess(user_wb=wb, no_auto_bright=True, output_bps=bits, gamma=(2.4, 12.92),
                                output_color=rawpy.ColorSpace.sRGB, user_flip=0)
    return upright(image[top:top + h, left:left + w], raw_image.orientation)


def enhance(path: str | Path, **settings: Any) -> np.ndarray:
    """One raw file with the given :class:`Settings` fields; returns the (H, W, 3) sRGB image."""
    image, _ = Enhancer(Settings(**settings)).enhance(path)
    return image
