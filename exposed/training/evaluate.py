"""Evaluation on synthetic dark raws: PSNR and SSIM on the packed 4-channel raw.

A folder of clean photographs becomes a fixed, seeded test set: each image is unprocessed to a raw
mosaic with a random camera colour (optionally made a night scene, brighter than white with light
sources), then darkened at each ratio with noise drawn from a stated camera profile and noise
model. Real raw files can stand in for the photographs, so a real sensor's mosaic is the reference.
Metrics are computed on the whole packed raw (black subtracted, normalised, clipped to [0, 1]) and
never after rescaling the output to the ground truth; where the dark frame has clipped light
sources, PSNR is also reported in the ring around them, where halos show.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from exposed.imaging.bayer import mosaic, pack, unpack
from exposed.sensor.cameras import NoiseSource, noise_source
from exposed.training.data import SensorMix, find_images, read_rgb8
from exposed.imaging.metrics import masked_psnr, psnr, ring, ssim
from exposed.training.night import NightScenes
from exposed.sensor.noise import NoiseModel, NoiseParams, synthesize_dark
from exposed.io.atomic import atomic_write
from exposed.sensor.noise import SensorScale
from exposed.training.unprocess import CameraColour, unprocess

PAPER_RATIOS = (100.0, 250.0, 300.0)
# The ring around clipped light sources where halos and colour blobs show: 2 to 12 raw pixels,
# 1 to 6 packed ones.
LAMP_RING = (1, 6)


@dataclass
class EvalItem:
    name: str
    ratio: float
    clean: Tensor  # (1, 4, h, w)
    dark: Tensor  # (1, 4, h, w), normalised, not amplified
    noise: NoiseParams
    quantised: bool = False  # the dark frame is whole DN (SensorScale.from_noise counts the rounding)

    @property
    def sensor(self) -> SensorScale:
        """The noise figures of this frame, the rounding to whole DN included where it was rounded:
        one place for it, so no caller scores or calibrates with the read noise short by 1/12 DN^2."""
        return SensorScale.from_noise(self.noise, self.quantised)


@dataclass
class EvalSet:
    """A seeded synthetic test set and how it was made (for reports)."""

    items: list[EvalItem]
    description: dict[str, object] = field(default_factory=dict)


def _centre_crop(x: Tensor, crop: int | None, mosaic_phase: bool = False) -> Tensor:
    """A centred crop of ``crop`` pixels, or the whole of x, trimmed to even sizes; ``mosaic_phase``
    keeps the offsets even too, so a Bayer mosaic keeps its order."""
    h, w = x.shape[-2:]
    ch, cw = (min(crop, h), min(crop, w)) if crop else (h, w)
    ch, cw = ch & ~1, cw & ~1
    top, left = (h - ch) // 2, (w - cw) // 2
    if mosaic_phase:
        top, left = top & ~1, left & ~1
    return x[..., top:top + ch, left:left + cw]


def _darken(name: str, light: Tensor, ratios: Sequence[float], source: NoiseSource | SensorMix,
            noise_model: NoiseModel, generator: torch.Generator) -> list[EvalItem]:
    """One item per ratio: ``light`` (1, 1, H, W) RGGB mosaic, 1 = white, may exceed it) darkened
    with a camera's noise at its calibrated 14 bits, or with a :class:`SensorMix`'s (its bit depth,
    black level and rounding to whole DN; ``noise_model`` is then the mix's)."""
    clean = pack(light.clamp_max(1.0), "RGGB")
    quantised = isinstance(source, SensorMix) and source.quantise
    items = []
    for ratio in ratios:
        noise = source.sample(1, generator)[0] if isinstance(source, SensorMix) else \
            source.sample(1, noise_model, generator)
        dark = synthesize_dark(light, torch.tensor([ratio]), noise, generator, quantised)
        items.append(EvalItem(name, float(ratio), clean, pack(dark, "RGGB"), noise, quantised))
    return items


def make_eval_set(folder: str | Path, ratios: Sequence[float] = PAPER_RATIOS, camera: str = "sony-a7s2",
                  noise_model: NoiseModel = "pg", seed: int = 0, limit: int | None = None,
                  crop: int | None = None, night: NightScenes | None = None,
                  sensors: SensorMix | None = None) -> EvalSet:
    """Dark raws from the clean images in ``folder``: one per image and ratio.

    crop: keep only a centred crop of this many raw pixels (even), for quick validation. night:
    make each scene a night scene first (its ``share`` of them), with light sources far above white.
    sensors: draw each frame's noise from this mix (bit depth, black, whole DN) instead of
    ``camera`` and ``noise_model`` at 14 bits.
    """
    paths = find_images(folder)[:limit]
    generator = torch.Generator().manual_seed(seed)
    source = noise_source(camera) if sensors is None else sensors
    items = []
    for path in paths:
        srgb = _centre_crop(read_rgb8(path).float()[None] / 255.0, crop)
        camera_rgb = unprocess(srgb, CameraColour.random(1, generator))
        if night is not None:
            camera_rgb = night.apply(camera_rgb, generator)
        items += _darken(path.name, mosaic(camera_rgb, "RGGB"), ratios, source, noise_model, generator)
    description: dict[str, object] = {"folder": str(folder), "images": len(paths), "ratios": list(ratios),
                                      "camera": camera, "noise_model": noise_model, "seed": seed, "crop": crop}
    if sensors is not None:  # the mix's cameras and noise models, not the unused arguments
        del description["camera"], description["noise_model"]
        description["sensors"] = asdict(sensors)
    if night is not None:
        description["night"] = asdict(night)
    return EvalSet(items, description)


def make_raw_set(paths: Sequence[str | Path], ratios: Sequence[float], camera: str = "sony-a7s2",
                 noise_model: NoiseModel = "pg", seed: int = 0, crop: int | None = 1024,
                 percentile: float = 99.5, level: float = 0.9) -> EvalSet:
    """Dark raws from real raw files: each file's own mosaic (its default crop, centre ``crop``
    pixels) is the reference, scaled so its ``percentile`` sits at ``level`` of white (a well
    exposed frame) and clipped at white, then darkened with the camera profile's noise.

    The reference keeps the sensor's own noise, texture, optics and demosaicing-free detail: what a
    synthetic mosaic from an sRGB photograph does not have.
    """
    from exposed.io.raw import read_raw

    generator = torch.Generator().manual_seed(seed)
    source = noise_source(camera)
    items = []
    for path in paths:
        raw = read_raw(path)
        light = _centre_crop(torch.from_numpy(raw.normalised())[None, None], crop, mosaic_phase=True)
        packed = pack(light, raw.pattern)  # canonical R, G1, G2, B whatever the sensor's order
        packed = packed * (level / torch.quantile(packed.flatten()[::7], percentile / 100).clamp_min(1e-6))
        items += _darken(Path(path).name, unpack(packed, "RGGB").clamp(0.0, 1.0), ratios, source, noise_model,
                         generator)
    return EvalSet(items, {"files": [str(p) for p in paths], "ratios": list(ratios), "camera": camera,
                           "noise_model": noise_model, "seed": seed, "crop": crop,
                           "reference": f"the file's mosaic, its {percentile:g}th percentile at {level:g} of white"})


Method = Callable[[Tensor, Tensor, SensorScale], Tensor]


def evaluate(method: Method, eval_set: EvalSet, device: torch.device | str = "cpu",
             progress: Callable[[], None] | None = None) -> dict[str, dict[str, float]]:
    """Mean PSNR and SSIM per ratio of ``method(dark, ratio, sensor) -> estimate`` (all (1, 4, h, w)),
    and ``ring_psnr``, the mean PSNR in the ring around clipped light sources (:data:`LAMP_RING`)
    over the items that have any."""
    per_ratio: dict[float, list[tuple[float, float, float]]] = {}
    for item in eval_set.items:
        estimate = method(item.dark.to(device), torch.tensor([item.ratio], device=device),
                          item.sensor).float().clamp(0.0, 1.0).cpu()
        around = ring(item.dark >= 1.0, *LAMP_RING)
        ring_score = masked_psnr(estimate, item.clean, around).item() if around.any() else math.nan
        per_ratio.setdefault(item.ratio, []).append((psnr(estimate, item.clean).item(),
                                                     ssim(estimate, item.clean).item(), ring_score))
        if progress:
            progress()
    results = {}
    for r, v in per_ratio.items():
        rings = [x for _, _, x in v if not math.isnan(x)]
        results[f"x{r:g}"] = {"psnr": sum(p for p, _, _ in v) / len(v), "ssim": sum(s for _, s, _ in v) / len(v),
                              "count": len(v), **({"ring_psnr": sum(rings) / len(rings)} if rings else {})}
    return results


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
