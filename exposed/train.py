"""Training ExposureDiffusion (Algorithm 1) and its feed-forward twin on synthetic raw data.

One file, read top to bottom: settings, the loss of one batch, then the loop. Every run resumes
from ``<out>/last.pt`` if it exists (after a crash, a kill -9 or a new session), checkpoints are
written atomically, and the same code runs under ``torchrun`` (DistributedDataParallel over gloo on
CPUs, NCCL on GPUs) by reading the environment torchrun sets. The global batch is then
``batch`` times the number of processes.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor, nn
from torch.utils.data import DataLoader

from exposed.cameras import CAMERAS
from exposed.checkpoint import load_checkpoint, save_checkpoint
from exposed.data import ImageBank, RatioRange, SensorMix, SyntheticRaw, TrainingBatch
from exposed.evaluate import evaluate, make_eval_set
from exposed.infer import autocast, bf16_is_fast, brighten, channels_last, denoise, pick_device
from exposed.night import NightScenes
from exposed.process import ExposureModel, ModelConfig, SensorScale, run_process


@dataclass
class TrainConfig:
    """Settings of a training run; a TOML file and command-line options both set these names."""

    # The model.
    arch: str = "unet"
    width: int = 16
    kind: str = "diffusion"  # or "feedforward": the twin
    steps: int = 2  # T, exposure steps unrolled per sample
    # The data.
    images: str = "../shared/data/images/train"  # a folder, or a training pack (exposed pack)
    val_images: str = "../shared/data/images/val"
    camera: str = "sony-a7s2"  # a calibrated camera, "virtual", a comma-separated list, or "all" (drawn per sample)
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
    loss: str = "l1"
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
    val_noise_model: str = "pg"
    checkpoint_minutes: float = 5.0
    precision: str = "auto"  # auto: bf16 where it is fast (AMX / AVX-512 bf16 CPUs, CUDA), else fp32
    device: str = "auto"
    threads: int = 0  # CPU threads per process; 0 leaves torch's default
    # A model file (a shipped checkpoint) to start from when the run has no last.pt yet. The run
    # continues at that model's iteration count, so the schedule and the number of optimizer steps
    # stay those of one run; only Adam's moment estimates start afresh, as after the warm-up.
    init: str = ""
    # With ``init``: start this run's own count and schedule at 0 (a fine-tune on new data, whose
    # warm-up and decay must span its own iterations) instead of continuing the model's.
    fine_tune: bool = False

    def model_config(self) -> ModelConfig:
        return ModelConfig(self.arch, self.width, self.kind, self.steps)  # type: ignore[arg-type]

    def sensors(self) -> SensorMix:
        cameras = tuple(CAMERAS) + ("virtual",) if self.camera == "all" else tuple(self.camera.split(","))
        return SensorMix(cameras, tuple(self.noise_model.split(",")), self.bits,  # type: ignore[arg-type]
                         self.varied_black, self.black_error, self.quantise)


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


def learning_rate(config: TrainConfig, iteration: int, seconds: float = 0.0) -> float:
    """Warm-up over ``warmup`` iterations, then cosine decay by the run's progress: the share of its
    iterations done or, with a time budget, the share of its minutes spent, whichever is larger."""
    if iteration < config.warmup:
        return config.lr * (iteration + 1) / config.warmup
    progress = (iteration - config.warmup) / max(1, config.iters - config.warmup)
    if config.minutes > 0:
        progress = max(progress, seconds / (60.0 * config.minutes))
    return cosine_decay(config.lr, config.lr_min, progress)


def cosine_decay(high: float, low: float, progress: float) -> float:
    """Half a cosine from ``high`` (progress 0) to ``low`` (progress 1 and beyond)."""
    return low + 0.5 * (high - low) * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


RELATIVE_FLOOR = 2e-3  # the brightened frame's L1 below which a sample weighs no more (about 50 dB)


def relative_l1(estimate: Tensor, clean: Tensor, amplified: Tensor, floor: float = RELATIVE_FLOOR) -> Tensor:
    """The batch's L1 with every sample weighted by 1 / (its plain brightened frame's L1).

    estimate, clean, amplified: (B, C, H, W). The plain L1 is dominated by the noisiest samples (a
    x300 frame's error is a hundred times a x2 frame's), so a network trained on it learns nothing
    about frames a few stops dark and damages them; the bars are in dB over plain brightening at
    every ratio, which this weighting follows. Weights are normalised to mean 1 over the batch so
    the loss keeps the scale (and the learning rate its meaning) of the plain L1.
    """
    per_sample = (estimate - clean).abs().mean(dim=(1, 2, 3))
    weight = 1.0 / (amplified.clamp(0.0, 1.0) - clean).abs().mean(dim=(1, 2, 3)).clamp_min(floor)
    return (per_sample * weight / weight.mean()).mean()


class TrainingStep(nn.Module):
    """The loss of one batch: unroll the exposure process T steps and sum the L1 of every estimate.

    A module of its own so DistributedDataParallel sees the whole unrolled process as one forward.
    The feed-forward twin is trained as it is used: one pass, no process.
    """

    def __init__(self, model: ExposureModel, steps: int, loss: str = "l1"):
        super().__init__()
        if loss not in ("l1", "relative"):
            raise ValueError(f"unknown loss {loss!r}: 'l1' or 'relative'")
        self.model, self.steps, self.loss = model, 0 if model.config.kind == "feedforward" else steps, loss

    def forward(self, noisy: Tensor, clean: Tensor, ratio: Tensor, gain: Tensor, read_var: Tensor,
                generator: torch.Generator | None) -> Tensor:
        estimates = run_process(self.model, noisy, ratio, SensorScale(gain, read_var), self.steps, generator,
                                training=True)
        if self.loss == "relative":
            amplified = brighten(noisy, ratio).detach()
            return torch.stack([relative_l1(e, clean, amplified) for e in estimates]).sum()
        return torch.stack([(e - clean).abs().mean() for e in estimates]).sum()


def batch_loss(step: nn.Module, batch: TrainingBatch, generator: torch.Generator | None) -> Tensor:
    sensor = SensorScale.from_noise(batch.noise, batch.quantised)
    return step(batch.noisy, batch.clean, batch.ratio, sensor.gain, sensor.read_var, generator)


@torch.no_grad()
def precision_check(step: nn.Module, batches: list[TrainingBatch], device: torch.device,
                    seed: int = 0) -> dict[str, float]:
    """The loss of a few batches in bf16 autocast and in fp32, with the same photon draws."""
    losses = {}
    for precision in ("fp32", "bf16"):
        generator = torch.Generator(device=device).manual_seed(seed)
        with autocast(device, precision):  # type: ignore[arg-type]
            losses[precision] = [batch_loss(step, b, generator).item() for b in batches]
    worst = max(abs(b - f) / f for f, b in zip(losses["fp32"], losses["bf16"]))
    return {"fp32_loss": sum(losses["fp32"]) / len(batches), "bf16_loss": sum(losses["bf16"]) / len(batches),
            "max_relative_difference": worst}


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) when run directly."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank() if world > 1 else 0), world, int(os.environ.get("LOCAL_RANK", "0"))


def train(config: TrainConfig) -> Path:
    """Train (or resume) a run; returns the path of its last checkpoint."""
    rank, world, local_rank = _distributed()
    device = pick_device(config.device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
    if config.threads:
        torch.set_num_threads(config.threads)
    precision = config.precision if config.precision != "auto" else ("bf16" if bf16_is_fast(device) else "fp32")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    log_file = out / "log.jsonl"

    def log(record: dict[str, Any]) -> None:
        if rank == 0:
            with open(log_file, "a") as f:
                f.write(json.dumps(record) + "\n")

    torch.manual_seed(config.seed)
    model = channels_last(ExposureModel(config.model_config()).to(device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                  fused=device.type == "cuda")
    start, best, wall = 0, -math.inf, 0.0
    saved: dict[str, Tensor] | None = None  # the averaged weights a run resumes with
    last_path, best_path = out / "last.pt", out / "best.pt"
    if last_path.exists():
        state = load_checkpoint(last_path, device)
        if ModelConfig(**state["model_config"]) != config.model_config():
            raise ValueError(f"{last_path} holds a different model ({state['model_config']}); use another --out")
        # With an average, "model" holds it (what ships) and "optimised" the weights the optimizer moves.
        model.load_state_dict(state.get("optimised", state["model"]))
        saved = state["model"] if "optimised" in state else None
        optimizer.load_state_dict(state["optimizer"])
        start, best, wall = state["train"]["iteration"], state["train"]["best_psnr"], state["train"]["wall_seconds"]
        if rank == 0:
            console.log(f"resumed {last_path} at iteration {start}")
            log({"resumed": start})
    elif config.init:
        state = load_checkpoint(config.init, device)
        if state["model_config"]["arch"] != config.arch or state["model_config"]["width"] != config.width \
                or state["model_config"]["kind"] != config.kind:
            raise ValueError(f"{config.init} holds a different model ({state['model_config']})")
        model.load_state_dict({k: v.float() for k, v in state["model"].items()})
        if not config.fine_tune:
            start = state.get("train", {}).get("iteration", 0)
            wall = state.get("train", {}).get("wall_seconds", 0.0)
        if rank == 0:
            console.log(f"started from {config.init} at iteration {start}")
            log({"init": config.init, "init_iteration": state.get("train", {}).get("iteration", 0),
                 "fine_tune": config.fine_tune, "iteration": start})
    average = None
    if config.ema > 0:
        average = copy.deepcopy(model).requires_grad_(False)
        if saved is not None:
            average.load_state_dict(saved)
    used = average if average is not None else model  # the weights validated and saved as the model

    step: nn.Module = TrainingStep(model, config.steps, config.loss)
    if world > 1:
        step = nn.parallel.DistributedDataParallel(step, device_ids=[local_rank] if device.type == "cuda" else None)
    bank = ImageBank.from_source(config.images, config.patch)
    if device.type != "cpu":
        bank = bank.to(device)  # batches are then made on the device, without workers
    ratios = RatioRange(config.ratio_low, config.ratio_high, focus_weight=config.ratio_focus_weight)
    data = SyntheticRaw(bank, config.patch, config.batch, config.sensors(), ratios,
                        NightScenes(share=config.night_share), seed=config.seed * 10_000_019 + start)
    batches = iter(DataLoader(data, batch_size=None, num_workers=config.workers) if config.workers else data)
    generator = torch.Generator(device=device).manual_seed(config.seed * 10_000_019 + start * 101 + rank)
    val_set = None
    if rank == 0 and config.val_count > 0 and Path(config.val_images).is_dir():
        val_set = make_eval_set(config.val_images, config.val_ratios, config.val_camera, config.val_noise_model,  # type: ignore[arg-type]
                                seed=1234, limit=config.val_count, crop=256)

    def elapsed() -> float:
        return wall + time.perf_counter() - session_start

    def checkpoint(iteration: int) -> None:
        if rank == 0:
            save_checkpoint(last_path, {
                "model": used.state_dict(), "model_config": config.model_config().to_dict(),
                **({"optimised": model.state_dict()} if average is not None else {}),
                "optimizer": optimizer.state_dict(),
                "train": {"config": asdict(config), "iteration": iteration, "best_psnr": best,
                          "wall_seconds": elapsed(), "precision": precision, "world_size": world}})

    def validate(iteration: int) -> None:
        nonlocal best
        used.eval()
        g = torch.Generator(device=device).manual_seed(0)
        # The model's own default: T exposure steps, or one pass for the twin (never the twin iterated).
        scores = evaluate(lambda dark, ratio, sensor: denoise(used, dark, ratio, sensor, None, g, precision),  # type: ignore[arg-type]
                          val_set, device)  # type: ignore[arg-type]
        model.train()
        mean_psnr = sum(s["psnr"] for s in scores.values()) / len(scores)
        log({"iteration": iteration, "val": scores, "val_psnr": mean_psnr})
        console.log(f"iteration {iteration}: validation " +
                    ", ".join(f"{k} {v['psnr']:.2f} dB" for k, v in scores.items()))
        if mean_psnr > best:
            best = mean_psnr
            save_checkpoint(best_path, {"model": used.state_dict(), "model_config": config.model_config().to_dict(),
                                        "train": {"config": asdict(config), "iteration": iteration,
                                                  "val": scores, "precision": precision,
                                                  "wall_seconds": elapsed()}})

    if rank == 0 and start == 0:
        log({"start": asdict(config), "precision": precision, "device": str(device), "world_size": world,
             "threads": torch.get_num_threads(), "images": len(bank), "megapixels": bank.megapixels})
    if rank == 0 and precision == "bf16":
        check = precision_check(step, [data.make_batch(torch.Generator().manual_seed(i),
                                                       torch.Generator(device=bank.device).manual_seed(i))
                                       for i in range(3)], device)
        log({"iteration": start, "precision_check": check})
        console.log(f"bf16 against fp32 on 3 batches: loss {check['bf16_loss']:.5f} vs {check['fp32_loss']:.5f} "
                    f"(worst relative difference {check['max_relative_difference']:.2%})")
    session_start = last_checkpoint = time.perf_counter()
    model.train()
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeRemainingColumn()]
    with Progress(*columns, console=console, disable=rank != 0 or not sys.stderr.isatty()) as progress:
        task = progress.add_task(f"training {config.kind}", total=config.iters, completed=start, info="")
        running, seen, done = 0.0, 0, start
        while done < config.iters:  # the time budget is checked after each step, which then checkpoints
            iteration = done
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, iteration, elapsed())
            batch = next(batches).to(device)
            with autocast(device, precision):  # type: ignore[arg-type]
                loss = batch_loss(step, batch, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(list(average.parameters()), list(model.parameters()), 1.0 - config.ema)
            running, seen, done = running + loss.item(), seen + 1, iteration + 1
            # Ends here: the last iteration, or the time budget spent (every process decides alike).
            final = done == config.iters or (config.minutes > 0 and elapsed() >= 60 * config.minutes)
            if world > 1 and config.minutes > 0:
                flag = torch.tensor([float(final)], device=device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                final = bool(flag.item())
            if done % config.log_every == 0 or final:
                log({"iteration": done, "loss": running / seen, "lr": learning_rate(config, iteration, elapsed()),
                     "wall_seconds": elapsed()})
                info = f"loss {running / seen:.4f}"
                progress.update(task, completed=done, info=info)
                if rank == 0 and not sys.stderr.isatty():
                    console.log(f"iteration {done}/{config.iters} {info}")
                running, seen = 0.0, 0
            if val_set is not None and (done % config.val_every == 0 or final):
                validate(done)
            if final or time.perf_counter() - last_checkpoint > 60 * config.checkpoint_minutes:
                checkpoint(done)
                last_checkpoint = time.perf_counter()
            if final:
                break
    if world > 1:
        dist.barrier()
    return last_path
