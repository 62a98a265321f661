"""Evaluation on synthetic dark raws: PSNR and SSIM on the packed 4-channel raw.

A folder of clean photographs becomes a fixed, seeded test set: each image is unprocessed to a raw
mosaic with a random camera colour, then darkened at each ratio with noise drawn from a stated
camera profile and noise model. Metrics are computed on the whole packed raw (black subtracted,
normalised, clipped to [0, 1]) and never after rescaling the output to the ground truth.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from exposed.bayer import mosaic, pack
from exposed.cameras import noise_source
from exposed.data import find_images, read_rgb8
from exposed.metrics import psnr, ssim
from exposed.noise import NoiseModel, NoiseParams, synthesize_dark
from exposed.output import atomic_write
from exposed.process import SensorScale
from exposed.unprocess import CameraColour, unprocess

PAPER_RATIOS = (100.0, 250.0, 300.0)


@dataclass
class EvalItem:
    name: str
    ratio: float
    clean: Tensor  # (1, 4, h, w)
    dark: Tensor  # (1, 4, h, w), normalised, not amplified
    noise: NoiseParams


@dataclass
class EvalSet:
    """A seeded synthetic test set and how it was made (for reports)."""

    items: list[EvalItem]
    description: dict[str, object] = field(default_factory=dict)


def make_eval_set(folder: str | Path, ratios: Sequence[float] = PAPER_RATIOS, camera: str = "sony-a7s2",
                  noise_model: NoiseModel = "pg", seed: int = 0, limit: int | None = None,
                  crop: int | None = None) -> EvalSet:
    """Dark raws from the clean images in ``folder``: one per image and ratio.

    crop: keep only a centred crop of this many raw pixels (even), for quick validation.
    """
    paths = find_images(folder)[:limit]
    generator = torch.Generator().manual_seed(seed)
    source = noise_source(camera)
    items = []
    for path in paths:
        srgb = read_rgb8(path).float()[None] / 255.0
        h, w = srgb.shape[-2:]
        ch, cw = (min(crop, h), min(crop, w)) if crop else (h, w)
        ch, cw = ch & ~1, cw & ~1
        top, left = (h - ch) // 2, (w - cw) // 2
        srgb = srgb[..., top:top + ch, left:left + cw]
        clean = mosaic(unprocess(srgb, CameraColour.random(1, generator)), "RGGB")
        for ratio in ratios:
            noise = source.sample(1, noise_model, generator)
            dark = synthesize_dark(clean, torch.tensor([ratio]), noise, generator)
            items.append(EvalItem(path.name, float(ratio), pack(clean, "RGGB"), pack(dark, "RGGB"), noise))
    return EvalSet(items, {"folder": str(folder), "images": len(paths), "ratios": list(ratios), "camera": camera,
                           "noise_model": noise_model, "seed": seed, "crop": crop})


Method = Callable[[Tensor, Tensor, SensorScale], Tensor]


def evaluate(method: Method, eval_set: EvalSet, device: torch.device | str = "cpu",
             progress: Callable[[], None] | None = None) -> dict[str, dict[str, float]]:
    """Mean PSNR and SSIM per ratio of ``method(dark, ratio, sensor) -> estimate`` (all (1, 4, h, w))."""
    per_ratio: dict[float, list[tuple[float, float]]] = {}
    for item in eval_set.items:
        estimate = method(item.dark.to(device), torch.tensor([item.ratio], device=device),
                          SensorScale.from_noise(item.noise)).float().clamp(0.0, 1.0).cpu()
        per_ratio.setdefault(item.ratio, []).append((psnr(estimate, item.clean).item(), ssim(estimate, item.clean).item()))
        if progress:
            progress()
    return {f"x{r:g}": {"psnr": sum(p for p, _ in v) / len(v), "ssim": sum(s for _, s in v) / len(v), "count": len(v)}
            for r, v in per_ratio.items()}


def write_results(path: str | Path, rows: dict[str, dict[str, dict[str, float]]], meta: dict[str, object]) -> Path:
    """Results as JSON (``.json``) or one CSV row per method and ratio (``.csv``), written atomically."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as f:
                out = csv.writer(f)
                out.writerow(["method", "ratio", "psnr", "ssim", "count"])
                for method, ratios in rows.items():
                    for ratio, m in ratios.items():
                        out.writerow([method, ratio, f"{m['psnr']:.4f}", f"{m['ssim']:.5f}", m["count"]])
    else:
        def write(tmp: Path) -> None:
            tmp.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    return atomic_write(path, write)
