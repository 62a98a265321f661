"""The GP mode's reference enhancer: a small CNN from dark sRGB to bright sRGB, and its training.

The Gaussian process of :mod:`exposed.gp.enhance` learns each photo's own enhancement from pairs of dark
and reference patches, so the reference only has to be right on average, on a thumbnail: a SID
UNet of width 8 (0.5 M parameters) trained on photographs darkened two ways: as in the paper (a
gamma curve, then noise and 8-bit quantisation, as a dark JPEG has), and as a camera makes a dim
photo (:func:`camera_dark`: the scene as raw light, a short exposure with a calibrated sensor's
noise, then developed like a camera's JPEG), against the same scene developed at full exposure.

    exposed train-reference --images ../shared/data/images/train --out runs/reference
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from exposed.imaging.bayer import mosaic
from exposed.imaging.isp import demosaic, tone_curve
from exposed.io.checkpoint import load_checkpoint, make_checkpoint, save_checkpoint
from exposed.sensor.cameras import VIRTUAL_CAMERA
from exposed.sensor.noise import NoiseParams, synthesize_dark
from exposed.training.data import ImageBank
from exposed.training.unprocess import CameraColour, reprocess, unprocess
from exposed.denoise.infer import autocast, channels_last, choose_precision, pick_device
from exposed.imaging.metrics import pooled_psnr
from exposed.training.schedule import cosine_decay
from exposed.denoise.networks import UNet, crop_to, pad_to_multiple

GAMMAS = (1.0, 5.0)  # darkening exponents drawn in training: from none to very dark
CAMERA_RATIOS = (2.0, 50.0)  # how many times too short the dim photos' exposures are (log-uniform)


def develop(camera: Tensor, colour: CameraColour) -> Tensor:
    """Linear camera RGB (B, 3, H, W) to an 8-bit camera JPEG's values: white balance, colour
    matrix, the sRGB curve, a gentle S tone curve as cameras add, rounded to 8 bits."""
    return tone_curve(reprocess(camera.clamp(0.0, 1.0), colour)).mul(255.0).round().div(255.0)


def camera_dark(clean: Tensor, ratio: Tensor, noise: NoiseParams, colour: CameraColour,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """A dim photo as a camera makes it, and the same scene at full exposure: (dark, reference).

    clean: (B, 3, H, W) sRGB, H and W even, taken as the scene's light (unprocessed to camera RGB
    with ``colour``); ratio: (B,) how many times too short the exposure is; noise: the sensor's, per
    image. The short exposure is mosaicked, given shot, read and quantisation noise, demosaiced and
    developed (:func:`develop`) without brightening; the reference is the noise-free scene developed
    the same way. Both (B, 3, H, W) in [0, 1], 8-bit steps.
    """
    camera = unprocess(clean, colour)
    raw = synthesize_dark(mosaic(camera, "RGGB"), ratio, noise, generator, round_dn=True)
    planes = [torch.from_numpy(demosaic(frame[0].clamp(0.0, 1.0).cpu().numpy(), "RGGB")) for frame in raw]
    demosaiced = torch.stack(planes).permute(0, 3, 1, 2).to(raw.device)
    return develop(demosaiced, colour), develop(camera, colour)


def darken(clean: Tensor, gamma: Tensor, shot: Tensor, read: Tensor,
           generator: torch.Generator | None = None) -> Tensor:
    """A photograph as a dark 8-bit file would show it: clean ** gamma, Gaussian noise of variance
    ``shot * x + read`` (Poisson-Gaussian in the dark image's own values), rounded to 8 bits.

    clean: (B, 3, H, W) in [0, 1]; gamma, shot, read: (B,). Returns (B, 3, H, W) in [0, 1].
    """
    dark = clean.clamp(0.0, 1.0) ** gamma.view(-1, 1, 1, 1)
    sigma = (shot.view(-1, 1, 1, 1) * dark + read.view(-1, 1, 1, 1)).sqrt()
    noisy = dark + sigma * torch.randn(dark.shape, generator=generator, device=dark.device)
    return noisy.clamp(0.0, 1.0).mul(255.0).round().div(255.0)


class ReferenceNet(nn.Module):
    """Dark sRGB (B, 3, H, W) to its brightened estimate, any H and W: the input plus a UNet's correction."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.width = width
        self.unet = UNet(3, 3, width)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        return x + crop_to(self.unet(pad_to_multiple(x, UNet.multiple)), h, w)


@dataclass
class ReferenceConfig:
    images: str = "../shared/data/images/train"
    val_images: str = "../shared/data/images/val"
    out: str = "runs/reference"
    width: int = 8
    patch: int = 128
    batch_size: int = 8
    iterations: int = 4000
    lr: float = 1e-3
    seed: int = 0
    val_every: int = 500
    device: str = "auto"  # cuda, then mps, then the CPU
    camera_share: float = 0.0  # of each batch, dim camera photos (camera_dark) rather than gamma curves
    chroma_weight: float = 0.0  # colour_loss's weight on chroma
    clip: float = 1.0  # the gradients' norm is clipped to this (width 8's first steps measured 0.3 to 1.2)


ROLLBACK_DB = 3.0  # a validation this far below the best so far: diverged, so training goes back to the best


def _samples(bank: ImageBank, n: int, patch: int, generator: torch.Generator,
             camera_share: float = 0.0) -> tuple[Tensor, Tensor]:
    """(dark, reference) pairs: ``camera_share`` of them dim camera photos (:func:`camera_dark`,
    calibrated noise of the virtual camera), the rest gamma-darkened (half noise-free, half with up
    to about 3 levels of noise)."""
    clean = bank.crops(n, patch, generator)
    gamma = GAMMAS[0] + (GAMMAS[1] - GAMMAS[0]) * torch.rand(n, generator=generator)
    noisy = torch.rand(n, generator=generator) < 0.5
    shot = torch.where(noisy, 2e-3 * torch.rand(n, generator=generator), torch.zeros(n))
    read = torch.where(noisy, 1e-5 * torch.rand(n, generator=generator), torch.zeros(n))
    dark, reference = darken(clean, gamma, shot, read, generator), clean
    cameras = int(round(camera_share * n))
    if cameras:
        low, high = (torch.log(torch.tensor(r)) for r in CAMERA_RATIOS)
        ratio = (low + (high - low) * torch.rand(cameras, generator=generator)).exp()
        noise = VIRTUAL_CAMERA.sample(cameras, "eld", generator)
        pair = camera_dark(clean[:cameras], ratio, noise, CameraColour.random(cameras, generator), generator)
        dark, reference = torch.cat([pair[0], dark[cameras:]]), torch.cat([pair[1], reference[cameras:]])
    return dark, reference


def colour_loss(estimate: Tensor, target: Tensor, chroma_weight: float) -> Tensor:
    """L1 on RGB plus ``chroma_weight`` times L1 on the chroma (each channel minus the pixel's mean):
    plain L1 lets a small network wash colour out to grey at little cost, this charges for it."""
    def chroma(x: Tensor) -> Tensor:
        return x - x.mean(1, keepdim=True)

    return F.l1_loss(estimate, target) + chroma_weight * F.l1_loss(chroma(estimate), chroma(target))


def train_reference(config: ReferenceConfig, log: Any = print) -> Path:
    """Train (resuming from OUT/last.pt) and return OUT/reference.pt, the file to ship: the weights
    of the best validation so far, rewritten whenever it improves, so a run that diverges late never
    ships worse than it was. Gradients are clipped; a validation more than ``ROLLBACK_DB`` below
    the best sends training back to the best weights and optimizer state (width 16 once diverged at
    lr 1e-3: its validation fell from 16.8 to 4.5 dB in 500 iterations)."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    device = pick_device(config.device)
    precision = choose_precision("auto", device)
    torch.manual_seed(config.seed)
    model = ReferenceNet(config.width).to(device)
    model = channels_last(model) if device.type == "cpu" else model
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    generator = torch.Generator().manual_seed(config.seed)  # the samples are drawn on the CPU, then moved
    start, seconds, best = 0, 0.0, -math.inf
    if (out / "last.pt").exists():
        state = load_checkpoint(out / "last.pt", device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"].cpu())
        start, seconds = int(state["train"]["iteration"]), float(state["train"]["seconds"])
        best = float(state["train"].get("best_psnr", -math.inf))
        log(f"resumed at iteration {start}")
    bank = ImageBank.from_folder(config.images, config.patch)
    val_bank = ImageBank.from_folder(config.val_images, config.patch)
    val_dark, val_clean = (x.to(device) for x in _samples(val_bank, 32, config.patch,
                                                          torch.Generator().manual_seed(1234), config.camera_share))
    began = time.perf_counter() - seconds
    for iteration in range(start, config.iterations):
        lr = cosine_decay(config.lr, 0.01 * config.lr, iteration / config.iterations)
        for group in optimizer.param_groups:
            group["lr"] = lr
        dark, clean = (x.to(device) for x in _samples(bank, config.batch_size, config.patch, generator,
                                                      config.camera_share))
        with autocast(device, precision):
            loss = colour_loss(model(dark.to(memory_format=torch.channels_last)).float(), clean, config.chroma_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        optimizer.step()
        done = iteration + 1
        if done % config.val_every == 0 or done == config.iterations:
            with torch.no_grad():
                psnr = pooled_psnr(model(val_dark), val_clean)
            log(f"iteration {done}: loss {loss.item():.4f}, validation PSNR {psnr:.2f} dB "
                f"(input {pooled_psnr(val_dark, val_clean):.2f} dB), {time.perf_counter() - began:.0f} s")
            if psnr < best - ROLLBACK_DB and (out / "best.pt").exists():
                state = load_checkpoint(out / "best.pt", device)
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                log(f"diverged ({psnr:.2f} dB against the best {best:.2f}): back to the weights of iteration "
                    f"{state['train']['iteration']}, training on")
            train = {"iteration": done, "seconds": time.perf_counter() - began, "best_psnr": max(best, psnr)}
            checkpoint = make_checkpoint(model.state_dict(), _model_config(model), train,
                                         optimizer=optimizer.state_dict(), generator=generator.get_state())
            if psnr > best:
                best = psnr
                save_checkpoint(out / "best.pt", checkpoint)
                save_reference(out / "reference.pt", model, {**asdict(config), "iterations_done": done,
                                                             "validation_psnr": psnr,
                                                             "seconds": time.perf_counter() - began})
            save_checkpoint(out / "last.pt", checkpoint)
    return out / "reference.pt"


def _model_config(model: ReferenceNet) -> dict[str, Any]:
    return {"kind": "reference", "width": model.width}


def save_reference(path: str | Path, model: ReferenceNet, train: dict[str, Any]) -> Path:
    """The file to ship: float16 weights, the width, and how it was trained (JSON-serialisable)."""
    return save_checkpoint(path, make_checkpoint(model.state_dict(), _model_config(model), train, half=True))


def load_reference(path: str | Path, device: torch.device | str = "cpu") -> ReferenceNet:
    """A shipped reference network (weights and its width only; loads with weights_only=True)."""
    state = load_checkpoint(path, device)
    if state["model_config"].get("kind") != "reference":
        raise ValueError(f"{path}: not a GP reference network ({state['model_config'].get('kind')})")
    model = ReferenceNet(int(state["model_config"]["width"]))
    model.load_state_dict({k: v.float() for k, v in state["model"].items()})
    return model.to(device).eval()
