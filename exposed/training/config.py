"""A training run's settings: the dataclass a TOML file and the command line both fill.

Kept apart from the training loop so that the command line can build its options from it without
importing the training stack (data pipeline, image readers, torch) on every ``exposed enhance``:
what needs them is imported by the methods that use it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from exposed.sensor.noise_kinds import NOISE_MODELS, NoiseModel

if TYPE_CHECKING:
    from exposed.denoise.config import Kind, ModelConfig, NoiseInput
    from exposed.training.data import SensorMix


@dataclass
class TrainConfig:
    """Settings of a training run; a TOML file and command-line options both set these names."""

    # The model.
    arch: str = "unet"
    width: int = 16
    kind: Kind = "diffusion"  # or "feedforward": the twin
    steps: int = 2  # T, exposure steps unrolled per sample
    noise_input: str = "std"  # "std+log": the network is also given the noise level's log (ModelConfig)
    state_high: float = 4.0  # the state is clamped to at most this before the network sees it (ModelConfig)
    # The data.
    images: str = "../shared/data/images/train"  # a folder, or a training pack (exposed pack)
    val_images: str = "../shared/data/images/val"
    camera: str = "sony-a7s2"  # a calibrated camera, "virtual", a comma-separated list, or "all" (drawn per sample)
    profile: str = ""  # your camera's profile (exposed calibrate --flat ...): train on its noise alone, not camera's
    noise_model: str = "pg"  # "pg", "eld" or "pg,eld" (drawn per batch)
    bits: tuple[int, ...] = (14,)  # the frames' bit depths, drawn uniformly (repeat one to weight it)
    varied_black: bool = False  # black 0 (clipped floor) or 1/64-1/16 of the range, else 512 at 14 bits
    black_error: float = 0.0  # DN: the true black is off the stated one by up to this
    quantise: bool = False  # dark frames rounded to whole DN
    night_share: float = 0.0  # samples made night scenes: brighter than white, with light sources
    ratio_low: float = 1.0
    ratio_high: float = 300.0
    ratio_focus_weight: float = 0.75  # share of ratios drawn in x100-x300, the rest log-uniform over the range
    # "l1": the plain L1 of every estimate. "relative": each sample's L1 over that of its plain
    # brightened frame, so a frame one stop dark counts as much as one 300 times dark (see relative_l1).
    # "psnr": each sample's dB against its plain brightened frame, the bars' own figure (relative_psnr).
    loss: str = "l1"
    # 0: the losses are on the network's estimates alone. N: the last estimate is also scored as it
    # ships, Wiener-blended with the brightened frame in blocks N packed pixels apart
    # (exposed.denoise.infer.wiener_blend), so the network learns to be a good pilot for the blend;
    # validation then scores the blended result too (ModelConfig.wiener_stride).
    wiener_stride: int = 0
    # With a wiener_stride: score the result as it ships (the blend of the last estimate) instead of
    # every step's estimate, each sample unrolled the steps inference gives its ratio
    # (ratio_per_step), so the network is trained for what the photographer gets: the per-step
    # terms pull the estimate towards a smooth median that the blend cannot use (stage 7 in the
    # model cards).
    result_only: bool = False
    # With result_only: the weight of the last estimate's own loss beside the result's. The blend's
    # gain P^2 / (P^2 + s^2) has no gradient where the estimate's coefficient P is far below or
    # above the noise, so the result's loss alone lets the estimate drift there (a run at 1e-4 lost
    # 4 dB at x100 in 1,500 iterations); a little of its own loss holds it to an image.
    estimate_weight: float = 0.0
    estimate_from: float = 0.0  # the ratio from which a sample's estimate is scored (estimate_weight)
    ratio_per_step: float = 0.0  # exposure one step covers (ModelConfig.ratio_per_step); 0: always ``steps``
    patch: int = 256  # raw pixels (the packed patch is half of it)
    batch: int = 8
    workers: int = 0
    # The optimisation: AdamW (fused on CUDA), linear warm-up, then cosine decay to lr_min at the
    # end of the run: the last iteration, or the end of ``minutes`` if that comes first.
    iters: int = 50_000
    minutes: float = 0.0  # a wall-clock budget for the whole run, resumes included (0: none)
    weight_decay: float = 0.0
    ema: float = 0.0  # decay of an exponential moving average of the weights, which is then what is validated and saved
    lr: float = 2e-4
    lr_min: float = 1e-6
    warmup: int = 500
    seed: int = 0
    # Bookkeeping.
    out: str = "runs/diffusion"
    log_every: int = 25
    val_every: int = 1000
    val_count: int = 12  # validation images (centre 256 x 256 crops)
    val_ratios: tuple[float, ...] = (100.0, 300.0)
    val_camera: str = "sony-a7s2"
    val_noise_model: NoiseModel = "pg"
    checkpoint_minutes: float = 5.0
    precision: str = "auto"  # auto: bf16 where it is fast (AMX / AVX-512 bf16 CPUs, CUDA), else fp32
    device: str = "auto"
    threads: int = 0  # CPU threads per process; 0 leaves torch's default
    # A model file (a shipped checkpoint) to start from when the run has no last.pt yet. The run
    # continues at that model's iteration count, so the schedule and the number of optimizer steps
    # stay those of one run; only Adam's moment estimates start afresh, as after the warm-up. A twin's
    # (feed-forward) file starts a diffusion model with the twin's function (model.diffusion_from_twin).
    init: str = ""
    # With ``init``: start this run's own count and schedule at 0 (a fine-tune on new data, whose
    # warm-up and decay must span its own iterations) instead of continuing the model's.
    fine_tune: bool = False

    def model_config(self) -> ModelConfig:
        from exposed.denoise.config import ModelConfig

        return ModelConfig(self.arch, self.width, self.kind, self.steps, ratio_range=(self.ratio_low, self.ratio_high),
                           noise_input=cast("NoiseInput", self.noise_input), state_high=self.state_high,
                           wiener_stride=self.wiener_stride, ratio_per_step=self.ratio_per_step)

    def sensors(self) -> SensorMix:
        from exposed.sensor.cameras import CAMERAS, noise_source
        from exposed.training.data import SensorMix

        cameras = tuple(CAMERAS) + ("virtual",) if self.camera == "all" else tuple(self.camera.split(","))
        if self.profile:
            noise_source(self.profile).sample(1)  # a profile without a gain is refused now, not mid-run
            cameras = (self.profile,)
        models = tuple(self.noise_model.split(","))
        if not set(models) <= set(NOISE_MODELS):
            raise ValueError(f"unknown noise model in {self.noise_model!r}; expected {', '.join(NOISE_MODELS)}")
        return SensorMix(cameras, cast(tuple[NoiseModel, ...], models), self.bits, self.varied_black,
                         self.black_error, self.quantise)


def load_config(path: str | Path | None = None, **overrides: Any) -> TrainConfig:
    """Defaults, then the TOML file's values, then ``overrides`` that are not None."""
    values: dict[str, Any] = {}
    if path is not None:
        with open(path, "rb") as f:
            values.update(tomllib.load(f))
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown training setting(s): {', '.join(unknown)}")
    for key, kind in (("val_ratios", float), ("bits", int)):  # a TOML list, or "2,100,300" from the command line
        if key in values:
            items = values[key]
            values[key] = tuple(kind(v) for v in (items.split(",") if isinstance(items, str) else items))
    return TrainConfig(**values)
