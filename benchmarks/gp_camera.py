"""GP mode on dim photos as cameras make them: PSNR, SSIM and colour against the full exposure.

    python benchmarks/gp_camera.py [--reference models/gp-reference-unet8.pt] [--candidate runs/x/reference.pt]

Each CBSD68 image is taken as a scene's light and shot 4, 10 and 30 times too short with the virtual
camera's calibrated noise and a random camera colour, then developed like a camera's JPEG
(exposed.gp.reference.camera_dark, fixed seed); the reference photo is the same scene developed at
full exposure. Rows: the dark input; auto gamma (the power curve bringing the mean to 0.45);
histogram equalisation of the luminance; the reference network alone (on the whole photo); GP mode
with its defaults, then with one choice changed at a time (k, the smoothing before the GP, the
paper's pooled colour model, the prior mean: zero as the paper's or linear, a global tone term
under the GP; 3 x 3 patches, the thumbnail's size); each ``--candidate`` network
alone and in GP mode's defaults. Columns: PSNR and SSIM against the reference photo, and mean
CIELAB chroma C* as a share of the reference photos' (1.00: as colourful; washed out below) and
global contrast, the standard deviation of L*, as a share of theirs (below 1: brightness squeezed
towards one level).
Side-by-side crops of the first images (dark, reference photo, GP mode's default, and with each
candidate) go to benchmarks/results/gp_camera.png. Results: benchmarks/results/gp_camera.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from exposed.gp import enhance as gp
from exposed.gp.reference import camera_dark, load_reference
from exposed.imaging.color import srgb_to_lab
from exposed.imaging.metrics import pooled_psnr, ssim
from exposed.modes import default_model_path
from exposed.sensor.cameras import VIRTUAL_CAMERA
from exposed.training.data import find_images, read_rgb8
from exposed.training.unprocess import CameraColour
from gp import auto_gamma  # benchmarks/, the script's own folder

ROOT = Path(__file__).resolve().parents[1]
RATIOS = (4.0, 10.0, 30.0)
# GP mode's choices, one changed at a time from the defaults: (row, enhance_image's arguments).
CHOICES = (
    ("GP mode, defaults (k = 10, smoothing 3, joint colour, pixel pairs, 128 x 128 thumbnail)", {}),
    ("GP, k = 30", {"k": 30}),
    ("GP, k = 100", {"k": 100}),
    ("GP, no smoothing", {"smoothing": 0.0}),
    ("GP, smoothing 1.5", {"smoothing": 1.5}),
    ("GP, k = 30, no smoothing (the defaults before)", {"k": 30, "smoothing": 0.0}),
    ("GP, the paper's pooled colour", {"colour": "pooled"}),
    ("GP, zero prior mean (the paper's)", {"prior": "zero"}),
    ("GP, linear prior mean (a global tone term)", {"prior": "linear"}),
    ("GP, 3 x 3 patches", {"patch": 3}),
    ("GP, 64 x 64 thumbnail", {"reference_pixels": 64 * 64}),
    ("GP, 256 x 256 thumbnail", {"reference_pixels": 256 * 256}),
)


def equalise(image: torch.Tensor, bins: int = 256) -> torch.Tensor:
    """Histogram equalisation of the luminance, colour scaled with it: (1, 3, H, W) in [0, 1]."""
    luma = (image * torch.tensor([0.2126, 0.7152, 0.0722])[None, :, None, None]).sum(1, keepdim=True)
    counts = torch.histc(luma, bins, 0.0, 1.0)
    cdf = counts.cumsum(0) / counts.sum()
    mapped = cdf[(luma * (bins - 1)).round().long().clamp(0, bins - 1)]
    return (image * mapped / luma.clamp_min(1e-4)).clamp(0.0, 1.0)


def chroma(image: torch.Tensor) -> float:
    """Mean CIELAB chroma C* of an sRGB image."""
    lab = srgb_to_lab(image.double())
    return float(lab[:, 1:].pow(2).sum(1).sqrt().mean())


def contrast(image: torch.Tensor) -> float:
    """Global contrast: the standard deviation of CIELAB lightness L* over the image."""
    return float(srgb_to_lab(image.double())[:, 0].std())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "data" / "images" / "val")
    parser.add_argument("--reference", type=Path, default=None, help="default: the shipped one")
    parser.add_argument("--candidate", type=Path, action="append", default=[], help="another reference (repeat)")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gp_camera.json")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    nets = {"shipped": load_reference(args.reference or default_model_path("gp-reference-unet8.pt"))}
    nets.update({path.parent.name or path.stem: load_reference(path) for path in args.candidate})
    generator = torch.Generator().manual_seed(2024)
    scores: dict[str, dict[str, list[float]]] = {}
    crops = []

    def add(name: str, out: torch.Tensor, target: torch.Tensor) -> None:
        row = scores.setdefault(name, {"psnr": [], "ssim": [], "chroma": [], "contrast": []})
        row["psnr"].append(pooled_psnr(out, target))
        row["ssim"].append(float(ssim(out, target).mean()))
        row["chroma"].append(chroma(out))
        row["contrast"].append(contrast(out))

    references, reference_contrasts = [], []
    for i, path in enumerate(find_images(args.images)[:args.limit]):
        clean = read_rgb8(path)[None].float() / 255
        clean = clean[..., : clean.shape[-2] & ~1, : clean.shape[-1] & ~1]
        for ratio in RATIOS:
            noise = VIRTUAL_CAMERA.sample(1, "eld", generator)
            colour = CameraColour.random(1, generator)
            dark, target = camera_dark(clean, torch.tensor([ratio]), noise, colour, generator)
            references.append(chroma(target))
            reference_contrasts.append(contrast(target))
            add("dark input", dark, target)
            add("auto gamma (mean to 0.45)", auto_gamma(dark), target)
            add("histogram equalisation", equalise(dark), target)
            shown = [dark, target]
            for name, net in nets.items():
                add(f"reference CNN alone ({name})", net(dark).clamp(0.0, 1.0), target)
                for row, choice in CHOICES if name == "shipped" else CHOICES[:1]:
                    out = gp.enhance_image(dark, net, generator=torch.Generator().manual_seed(i), **choice)
                    add(f"{row} ({name})", out, target)
                    if not choice:
                        shown.append(out)
            if i < 3 and ratio == RATIOS[1]:
                crops.append(torch.cat([x[..., :160, :160] for x in shown], dim=-1))
    mean_reference_chroma = float(np.mean(references))
    mean_reference_contrast = float(np.mean(reference_contrasts))
    table = Table(title=f"GP mode on camera-dim {args.images.name} ({len(references)} photos: ratios {RATIOS})")
    for column in ("method", "PSNR (dB)", "SSIM", "chroma / reference", "contrast / reference"):
        table.add_column(column, justify="left" if column == "method" else "right")
    results = {}
    for name, row in scores.items():
        results[name] = {"psnr": float(np.mean(row["psnr"])), "ssim": float(np.mean(row["ssim"])),
                         "chroma_share": float(np.mean(row["chroma"])) / mean_reference_chroma,
                         "contrast_share": float(np.mean(row["contrast"])) / mean_reference_contrast}
        table.add_row(name, f"{results[name]['psnr']:.2f}", f"{results[name]['ssim']:.3f}",
                      f"{results[name]['chroma_share']:.2f}", f"{results[name]['contrast_share']:.2f}")
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if crops:
        grid = torch.cat(crops, dim=-2)[0].permute(1, 2, 0).mul(255).round().byte().numpy()
        iio.imwrite(args.out.with_suffix(".png"), grid)
    args.out.write_text(json.dumps({"images": str(args.images), "photos": len(references), "ratios": RATIOS,
                                    "references": {k: str(v) for k, v in zip(nets, [args.reference or "shipped",
                                                                                     *args.candidate])},
                                    "crops": "dark, reference photo, then GP mode's defaults with each network",
                                    "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
