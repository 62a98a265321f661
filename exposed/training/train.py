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
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor, nn
from torch.utils.data import DataLoader

from exposed.io.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from exposed.training.data import ImageBank, RatioRange, SyntheticRaw, TrainingBatch
from exposed.training.config import TrainConfig
from exposed.training.schedule import learning_rate
from exposed.training.evaluate import EvalSet, evaluate, make_eval_set
from exposed.denoise.infer import (Precision, autocast, channels_last, choose_precision, denoise, pick_device,
                                   wiener_blend)
from exposed.exposure import brighten
from exposed.training.night import NightScenes
from exposed.denoise.config import ModelConfig
from exposed.denoise.model import ExposureModel, diffusion_from_twin, widen_input, widen_width
from exposed.denoise.numpy_infer import steps_for_ratio
from exposed.denoise.process import run_process
from exposed.sensor.noise import SensorScale


RELATIVE_FLOOR = 2e-3  # the brightened frame's L1 below which a sample weighs no more (about 50 dB)


def relative_l1(estimate: Tensor, clean: Tensor, amplified: Tensor, floor: float = RELATIVE_FLOOR,
                reduce: bool = True) -> Tensor:
    """The batch's L1 with every sample weighted by 1 / (its plain brightened frame's L1).

    estimate, clean, amplified: (B, C, H, W). The plain L1 is dominated by the noisiest samples (a
    x300 frame's error is a hundred times a x2 frame's), so a network trained on it learns nothing
    about frames a few stops dark and damages them; the bars are in dB over plain brightening at
    every ratio, which this weighting follows. Weights are normalised to mean 1 over the batch so
    the loss keeps the scale (and the learning rate its meaning) of the plain L1. ``reduce=False``:
    each sample's weighted term (B,), whose mean is the loss.
    """
    per_sample = (estimate - clean).abs().mean(dim=(1, 2, 3))
    weight = 1.0 / (amplified.clamp(0.0, 1.0) - clean).abs().mean(dim=(1, 2, 3)).clamp_min(floor)
    terms = per_sample * weight / weight.mean()
    return terms.mean() if reduce else terms


PSNR_FLOOR = 1e-10  # a sample's mean squared error below which it gains nothing (100 dB)
DB = 10.0 / math.log(10.0)  # natural log to decibels


def relative_psnr(estimate: Tensor, clean: Tensor, amplified: Tensor, floor: float = PSNR_FLOOR,
                  reduce: bool = True) -> Tensor:
    """The batch's mean of each sample's dB against its plain brightened frame: 10 log10 of
    MSE(estimate) / MSE(brightened, clipped to black and white), negative where the estimate is better.

    estimate, clean, amplified: (B, C, H, W). The quality bars are mean PSNRs over brightening,
    ratio by ratio: this is that figure, to be minimised, every sample counting alike in dB as
    with :func:`relative_l1`. Its gradient weighs each sample's squared error by the inverse of
    its own, where the L1 losses aim at each pixel's median: a Wiener-blended result trained
    this way aims at the PSNR the bars read. ``reduce=False``: each sample's term (B,).
    """
    mse = (estimate - clean).square().mean(dim=(1, 2, 3))
    base = (amplified.clamp(0.0, 1.0) - clean).square().mean(dim=(1, 2, 3)).detach()
    terms = DB * (torch.log(mse + floor) - torch.log(base + floor))
    return terms.mean() if reduce else terms


LOSSES = {"relative": relative_l1, "psnr": relative_psnr}


class TrainingStep(nn.Module):
    """The loss of one batch: unroll the exposure process T steps and sum every estimate's loss (the
    plain L1, or one of :data:`LOSSES`: each sample's L1 or dB against its brightened frame).

    A module of its own so DistributedDataParallel sees the whole unrolled process as one forward.
    The feed-forward twin is trained as it is used: one pass, no process. ``result_only``: the
    blended result is scored, each sample unrolled the steps inference gives its ratio, and its
    last estimate with ``estimate_weight`` in the samples from ratio ``estimate_from`` up.
    """

    def __init__(self, model: ExposureModel, steps: int, loss: str = "l1", result_only: bool = False,
                 estimate_weight: float = 0.0, estimate_from: float = 0.0):
        super().__init__()
        if loss not in ("l1", *LOSSES):
            raise ValueError(f"unknown loss {loss!r}: 'l1', 'relative' or 'psnr'")
        if result_only and not model.config.wiener_stride:
            raise ValueError("result_only scores the Wiener-blended result: the model needs a wiener_stride")
        self.model, self.steps, self.loss = model, 0 if model.config.kind == "feedforward" else steps, loss
        self.result_only, self.estimate_weight, self.estimate_from = result_only, estimate_weight, estimate_from

    def forward(self, noisy: Tensor, clean: Tensor, ratio: Tensor, gain: Tensor, read_var: Tensor,
                generator: torch.Generator | None) -> Tensor:
        sensor = SensorScale(gain, read_var)
        if self.result_only:
            estimates = [self._results(noisy, ratio, sensor, generator)]
        else:
            estimates = list(run_process(self.model, noisy, ratio, sensor, self.steps, generator, training=True))
        amplified = brighten(noisy, ratio).detach()
        stride = self.model.config.wiener_stride
        if stride:  # the result as it ships: the last estimate as the pilot of the Wiener blend, in float32
            with torch.autocast(noisy.device.type, enabled=False):
                blended = wiener_blend(estimates[-1].float(), amplified, ratio, sensor, stride,
                                       bound=self.model.config.state_high)
            estimates.append(blended.masked_fill(noisy >= 1.0, 1.0))
        if self.loss in LOSSES:  # (estimates, B)
            terms = torch.stack([LOSSES[self.loss](e, clean, amplified, reduce=False) for e in estimates])
        else:
            terms = torch.stack([(e - clean).abs().mean(dim=(1, 2, 3)) for e in estimates])
        if self.result_only:  # [the last estimate, the result]
            anchored = (ratio.to(terms.device) >= self.estimate_from).to(terms.dtype)
            return (terms[1] + self.estimate_weight * anchored * terms[0]).mean()
        return terms.mean(dim=1).sum()

    def _results(self, noisy: Tensor, ratio: Tensor, sensor: SensorScale, generator: torch.Generator | None) -> Tensor:
        """The last estimate of every sample, each run the steps inference takes at its ratio
        (:func:`exposed.denoise.numpy_infer.steps_for_ratio`): samples that share a T share a process."""
        counts = [steps_for_ratio(self.steps, self.model.config.ratio_per_step, r) for r in ratio.tolist()]
        parts, order = [], []
        for steps in sorted(set(counts)):
            index = torch.tensor([i for i, c in enumerate(counts) if c == steps], device=noisy.device)
            part = SensorScale(sensor.gain[index], sensor.read_var[index])
            *_, last = run_process(self.model, noisy[index], ratio[index], part, steps, generator, training=True)
            parts.append(last)
            order.append(index)
        return torch.cat(parts)[torch.argsort(torch.cat(order))]


def batch_loss(step: nn.Module, batch: TrainingBatch, generator: torch.Generator | None) -> Tensor:
    sensor = SensorScale.from_noise(batch.noise, batch.quantised)
    return step(batch.noisy, batch.clean, batch.ratio, sensor.gain, sensor.read_var, generator)


@torch.no_grad()
def precision_check(step: nn.Module, batches: list[TrainingBatch], device: torch.device,
                    seed: int = 0) -> dict[str, float]:
    """The loss of a few batches in bf16 autocast and in fp32, with the same photon draws."""
    losses = {}
    precision: Precision
    for precision in ("fp32", "bf16"):
        generator = torch.Generator(device=device).manual_seed(seed)
        with autocast(device, precision):
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


@dataclass
class _Run:
    """One run's state and files: the weights optimised, the average validated and saved (with
    ``ema``), the progress, and the log. Only rank 0 writes."""

    config: TrainConfig
    device: torch.device
    precision: Precision
    rank: int
    world: int
    model: ExposureModel
    optimizer: torch.optim.Optimizer
    console: Console
    average: ExposureModel | None = None
    start: int = 0
    best: float = -math.inf
    wall: float = 0.0
    session_start: float = field(default_factory=time.perf_counter)

    @property
    def out(self) -> Path:
        return Path(self.config.out)

    @property
    def used(self) -> ExposureModel:
        """The weights validated and saved as the model."""
        return self.average if self.average is not None else self.model

    def elapsed(self) -> float:
        return self.wall + time.perf_counter() - self.session_start

    def log(self, record: dict[str, Any]) -> None:
        if self.rank == 0:
            with open(self.out / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def restore(self) -> None:
        """Resume from last.pt, else start from ``init`` (a model file), else from scratch."""
        config, last = self.config, self.out / "last.pt"
        saved: dict[str, Tensor] | None = None  # the averaged weights a run resumes with
        if last.exists():
            state = load_checkpoint(last, self.device)
            if ModelConfig.from_dict(state["model_config"]) != config.model_config():
                raise ValueError(f"{last} holds a different model ({state['model_config']}); use another --out")
            # With an average, "model" holds it (what ships) and "optimised" the weights the optimizer moves.
            self.model.load_state_dict(state.get("optimised", state["model"]))
            saved = state["model"] if "optimised" in state else None
            self.optimizer.load_state_dict(state["optimizer"])
            progress = state["train"]
            self.start, self.best, self.wall = progress["iteration"], progress["best_psnr"], progress["wall_seconds"]
            if self.rank == 0:
                self.console.log(f"resumed {last} at iteration {self.start}")
            self.log({"resumed": self.start})
        elif config.init:
            state = load_checkpoint(config.init, "cpu")  # loading the weights puts them on the device
            theirs = state["model_config"]
            twin = (theirs["kind"], config.kind) == ("feedforward", "diffusion")  # the twin's function to start from
            if theirs["arch"] != config.arch or (theirs["kind"] != config.kind and not twin):
                raise ValueError(f"{config.init} holds a different model ({theirs})")
            weights = widen_input({k: v.float() for k, v in state["model"].items()}, self.model.config)
            if twin:
                weights = diffusion_from_twin(weights, self.model.config)
            # A narrower UNet's file starts a wider one (each hidden channel copied, see widen_width).
            self.model.load_state_dict(widen_width(weights, theirs["width"], self.model.config,
                                                   torch.Generator().manual_seed(config.seed)))
            if not config.fine_tune:
                self.start, self.wall = state["train"].get("iteration", 0), state["train"].get("wall_seconds", 0.0)
            if self.rank == 0:
                self.console.log(f"started from {config.init} at iteration {self.start}")
            self.log({"init": config.init, "init_iteration": state["train"].get("iteration", 0),
                      "init_width": theirs["width"], "fine_tune": config.fine_tune, "iteration": self.start})
        if config.ema > 0:
            self.average = copy.deepcopy(self.model).requires_grad_(False)
            if saved is not None:
                self.average.load_state_dict(saved)

    def save_last(self, iteration: int) -> None:
        if self.rank == 0:
            progress = {"config": asdict(self.config), "iteration": iteration, "best_psnr": self.best,
                        "wall_seconds": self.elapsed(), "precision": self.precision, "world_size": self.world}
            resume: dict[str, Any] = {"optimizer": self.optimizer.state_dict()}
            if self.average is not None:
                resume["optimised"] = self.model.state_dict()
            save_checkpoint(self.out / "last.pt", make_checkpoint(
                self.used.state_dict(), self.config.model_config().to_dict(), progress, **resume))

    def validate(self, iteration: int, val_set: EvalSet) -> None:
        """Score the saved weights with the model's own default (T exposure steps, or one pass for the
        twin) and keep them as best.pt when they beat every earlier validation."""
        used, g = self.used.eval(), torch.Generator(device=self.device).manual_seed(0)
        scores = evaluate(lambda dark, ratio, sensor: denoise(used, dark, ratio, sensor, None, g, self.precision),
                          val_set, self.device)
        self.model.train()
        mean_psnr = sum(s["psnr"] for s in scores.values()) / len(scores)
        self.log({"iteration": iteration, "val": scores, "val_psnr": mean_psnr})
        self.console.log(f"iteration {iteration}: validation " +
                         ", ".join(f"{k} {v['psnr']:.2f} dB" for k, v in scores.items()))
        if mean_psnr > self.best:
            self.best = mean_psnr
            progress = {"config": asdict(self.config), "iteration": iteration, "val": scores,
                        "precision": self.precision, "wall_seconds": self.elapsed()}
            save_checkpoint(self.out / "best.pt",
                            make_checkpoint(used.state_dict(), self.config.model_config().to_dict(), progress))


def _start(config: TrainConfig) -> _Run:
    """The device, the model and its optimizer, restored from where the run left off."""
    rank, world, local_rank = _distributed()
    device = pick_device(config.device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
    if config.threads:
        torch.set_num_threads(config.threads)
    Path(config.out).mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    model = channels_last(ExposureModel(config.model_config()).to(device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                  fused=device.type == "cuda")
    run = _Run(config, device, choose_precision(config.precision, device), rank, world, model, optimizer,
               Console(stderr=True))
    run.restore()
    return run


def _data(run: _Run) -> tuple[SyntheticRaw, Iterator[TrainingBatch], EvalSet | None]:
    """The synthetic training batches (seeded by where the run starts) and the validation set."""
    config = run.config
    bank = ImageBank.from_source(config.images, config.patch)
    if run.device.type != "cpu":
        bank = bank.to(run.device)  # batches are then made on the device, without workers
    ratios = RatioRange(config.ratio_low, config.ratio_high, focus_weight=config.ratio_focus_weight)
    data = SyntheticRaw(bank, config.patch, config.batch, config.sensors(), ratios,
                        NightScenes(share=config.night_share), seed=config.seed * 10_000_019 + run.start)
    batches = iter(DataLoader(data, batch_size=None, num_workers=config.workers) if config.workers else data)
    val_set = None
    if run.rank == 0 and config.val_count > 0 and Path(config.val_images).is_dir():
        val_set = make_eval_set(config.val_images, config.val_ratios, config.val_camera, config.val_noise_model,
                                seed=1234, limit=config.val_count, crop=256)
    if run.start == 0:
        run.log({"start": asdict(config), "precision": run.precision, "device": str(run.device),
                 "world_size": run.world, "threads": torch.get_num_threads(), "images": len(bank),
                 "megapixels": bank.megapixels})
    return data, batches, val_set


def train(config: TrainConfig) -> Path:
    """Train (or resume) a run; returns the path of its last checkpoint."""
    run = _start(config)
    data, batches, val_set = _data(run)
    step: nn.Module = TrainingStep(run.model, config.steps, config.loss, config.result_only, config.estimate_weight,
                                    config.estimate_from)
    if run.world > 1:
        step = nn.parallel.DistributedDataParallel(
            step, device_ids=[run.device.index] if run.device.type == "cuda" else None)
    generator = torch.Generator(device=run.device).manual_seed(config.seed * 10_000_019 + run.start * 101 + run.rank)
    if run.rank == 0 and run.precision == "bf16":
        check = precision_check(step, [data.make_batch(torch.Generator().manual_seed(i),
                                                       torch.Generator(device=data.bank.device).manual_seed(i))
                                       for i in range(3)], run.device)
        run.log({"iteration": run.start, "precision_check": check})
        run.console.log(f"bf16 against fp32 on 3 batches: loss {check['bf16_loss']:.5f} vs "
                        f"{check['fp32_loss']:.5f} (worst relative difference {check['max_relative_difference']:.2%})")
    _loop(run, step, batches, generator, val_set)
    if run.world > 1:
        dist.barrier()
    return run.out / "last.pt"


def _loop(run: _Run, step: nn.Module, batches: Iterator[TrainingBatch], generator: torch.Generator,
          val_set: EvalSet | None) -> None:
    """Optimizer steps until the last iteration or the time budget; the budget is checked after a
    step, which then validates and checkpoints, so a run always ends with its checkpoint."""
    config, model, average = run.config, run.model, run.average
    run.session_start = last_checkpoint = time.perf_counter()
    model.train()
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeRemainingColumn()]
    with Progress(*columns, console=run.console, disable=run.rank != 0 or not sys.stderr.isatty()) as progress:
        task = progress.add_task(f"training {config.kind}", total=config.iters, completed=run.start, info="")
        running, seen, done = 0.0, 0, run.start
        while done < config.iters:
            iteration = done
            for group in run.optimizer.param_groups:
                group["lr"] = learning_rate(config, iteration, run.elapsed())
            batch = next(batches).to(run.device)
            with autocast(run.device, run.precision):
                loss = batch_loss(step, batch, generator)
            run.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            run.optimizer.step()
            if average is not None:
                with torch.no_grad():
                    torch._foreach_lerp_(list(average.parameters()), list(model.parameters()), 1.0 - config.ema)
            running, seen, done = running + loss.item(), seen + 1, iteration + 1
            # Ends here: the last iteration, or the time budget spent (every process decides alike).
            final = done == config.iters or (config.minutes > 0 and run.elapsed() >= 60 * config.minutes)
            if run.world > 1 and config.minutes > 0:
                flag = torch.tensor([float(final)], device=run.device)
                dist.all_reduce(flag, op=dist.ReduceOp.MAX)
                final = bool(flag.item())
            if done % config.log_every == 0 or final:
                run.log({"iteration": done, "loss": running / seen, "wall_seconds": run.elapsed(),
                         "lr": learning_rate(config, iteration, run.elapsed())})
                info = f"loss {running / seen:.4f}"
                progress.update(task, completed=done, info=info)
                if run.rank == 0 and not sys.stderr.isatty():
                    run.console.log(f"iteration {done}/{config.iters} {info}")
                running, seen = 0.0, 0
            if val_set is not None and (done % config.val_every == 0 or final):
                run.validate(done, val_set)
            if final or time.perf_counter() - last_checkpoint > 60 * config.checkpoint_minutes:
                run.save_last(done)
                last_checkpoint = time.perf_counter()
            if final:
                break
