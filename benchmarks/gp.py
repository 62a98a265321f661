"""GP mode on gamma-darkened CBSD68: PSNR against k, and seconds per image at 256 x 256 and 12 MP.

    python benchmarks/gp.py [--images ../shared/data/images/val] [--reference models/gp-reference-unet8.pt]

Each clean image is darkened as the paper does, clean ** gamma for gamma 2, 3 and 4, and stored in 8
bits (no added noise). Rows: the dark input; a plain brightening baseline (a gamma curve chosen so
the mean comes to 0.45, knowing nothing of the true gamma); the reference CNN alone on the whole
image; GP mode at k = 10 ... 200 with its other defaults (pixel pairs, smoothing 3, the reference
on a thumbnail of at most 128 x 128 pixels, the GP predicting every pixel); at k = 10 also without
the smoothing, with 3 x 3 patches and with the paper's pooled-channel colour model, and the defaults
before (k = 30, no smoothing); the defaults, no smoothing and 3 x 3 patches again on inputs with
noise (variance 1e-3 x + 1e-5, as in the reference CNN's training); and the paper's own Table II
figures (other data: 300 COCO images, an i7 at 3.6 GHz) for the trend. Times are whole GP
mode per image, reference CNN included, on this machine's CPU threads, and the reference CNN's
own time on the thumbnail at widths 4 to 32; results go to
benchmarks/results/gp.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from exposed.gp import enhance as gp
from exposed.modes import default_model_path
from exposed.training.data import find_images, read_rgb8
from exposed.imaging.metrics import pooled_psnr
from exposed.gp.reference import ReferenceNet, darken, load_reference
from speed import cpu_name  # benchmarks/, the script's own folder

ROOT = Path(__file__).resolve().parents[1]
GAMMAS = (2.0, 3.0, 4.0)
KS = (10, 20, 30, 50, 100, 200)
PAPER = {10: (16.27, 0.41), 20: (16.46, 0.45), 30: (16.61, 0.49), 40: (16.66, 0.54), 50: (16.66, 0.56),
         100: (16.67, 0.75), 200: (16.70, 1.74)}  # Table II, RGB model: PSNR dB, seconds at 256 x 256


def auto_gamma(dark: torch.Tensor, target: float = 0.45) -> torch.Tensor:
    """Brighten with the power curve that brings the mean to ``target`` (bisection on the exponent)."""
    low, high = 0.02, 1.0
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (low, mid) if float(dark.pow(mid).mean()) < target else (mid, high)
    return dark.pow((low + high) / 2)


def timed(function, repeats: int) -> tuple[torch.Tensor, float]:
    function()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        out = function()
    return out, (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=ROOT.parent / "shared" / "data" / "images" / "val")
    parser.add_argument("--reference", type=Path, default=None)
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gp.json")
    args = parser.parse_args()
    reference = load_reference(args.reference or default_model_path("gp-reference-unet8.pt"))
    paths = find_images(args.images)[:args.limit]
    cleans = [read_rgb8(p)[None].float() / 255 for p in paths]
    rows: dict[str, list[float]] = {"dark input": [], "auto gamma (mean to 0.45)": [], "reference CNN alone": []}
    rows.update({f"GP, k = {k}": [] for k in KS})
    # One choice changed at a time from the defaults (k = 10, smoothing 3, pixel pairs, joint colour).
    variants = {"GP, k = 10, no smoothing": {"smoothing": 0.0},
                "GP, k = 30, no smoothing (the defaults before)": {"k": 30, "smoothing": 0.0},
                "GP, k = 10, 3 x 3 patches": {"patch": 3},
                "GP, k = 10, paper's pooled colour": {"colour": "pooled"}}
    noisy_variants = {"GP, k = 10, noisy input": {},
                      "GP, k = 10, noisy input, no smoothing": {"smoothing": 0.0},
                      "GP, k = 10, 3 x 3 patches, noisy input": {"patch": 3}}
    rows.update({name: [] for name in [*variants, *noisy_variants]})
    for i, clean in enumerate(cleans):
        for gamma in GAMMAS:
            dark = darken(clean, torch.tensor([gamma]), torch.zeros(1), torch.zeros(1))
            rows["dark input"].append(pooled_psnr(dark, clean))
            rows["auto gamma (mean to 0.45)"].append(pooled_psnr(auto_gamma(dark), clean))
            with torch.no_grad():
                rows["reference CNN alone"].append(pooled_psnr(reference(dark), clean))
            for k in KS:
                out = gp.enhance_image(dark, reference, k=k, generator=torch.Generator().manual_seed(i))
                rows[f"GP, k = {k}"].append(pooled_psnr(out, clean))
            for name, choice in variants.items():
                out = gp.enhance_image(dark, reference, generator=torch.Generator().manual_seed(i), **choice)
                rows[name].append(pooled_psnr(out, clean))
            noisy = darken(clean, torch.tensor([gamma]), torch.tensor([1e-3]), torch.tensor([1e-5]),
                           torch.Generator().manual_seed(i))
            for name, choice in noisy_variants.items():
                out = gp.enhance_image(noisy, reference, generator=torch.Generator().manual_seed(i), **choice)
                rows[name].append(pooled_psnr(out, clean))

    # Speed: whole GP mode on 256 x 256 crops and on a 12 MP frame (a photo upscaled to 4240 x 2832).
    crop = darken(cleans[0][..., :256, :256], torch.tensor([3.0]), torch.zeros(1), torch.zeros(1))
    big = F.interpolate(darken(cleans[0], torch.tensor([3.0]), torch.zeros(1), torch.zeros(1)),
                        size=(2832, 4240), mode="bilinear", align_corners=False)
    seconds_256, seconds_12mp = {}, {}
    for k in KS:
        _, seconds_256[k] = timed(lambda: gp.enhance_image(crop, reference, k=k,
                                                           generator=torch.Generator().manual_seed(0)), 5)
    for k in (10, 30, 50, 200):
        _, seconds_12mp[k] = timed(lambda: gp.enhance_image(big, reference, k=k,
                                                            generator=torch.Generator().manual_seed(0)), 2)

    # The reference network's own cost on GP mode's thumbnail (that of a 3:2 photo), by width:
    # untrained weights time the same as trained ones.
    thumb = gp.thumbnail(big, 128 * 128)
    nets = {w: ReferenceNet(w).eval() for w in (4, 8, 16, 32)}
    with torch.no_grad():
        reference_ms = {w: 1000 * timed(lambda: net(thumb), 10)[1] for w, net in nets.items()}
    cpu = cpu_name()
    table = Table(title=f"GP mode on gamma-darkened {args.images.name} ({len(cleans)} images x gamma {GAMMAS}), "
                        f"{torch.get_num_threads()} threads")
    for column in ("method", "PSNR (dB)", "s / image 256x256", "s / 12 MP", "paper: PSNR, s at 256x256"):
        table.add_column(column, justify="right" if column != "method" else "left")
    results = {}
    for name, values in rows.items():
        k = int(name.split("= ")[1].split(",")[0]) if name.startswith("GP") else None
        pooled = name not in {f"GP, k = {k}" for k in KS}  # timed at the defaults only
        s256 = seconds_256.get(k) if k and not pooled else None
        s12 = seconds_12mp.get(k) if k and not pooled else None
        paper = PAPER.get(k) if k and not pooled else None
        results[name] = {"psnr": float(np.mean(values)), "seconds_256": s256, "seconds_12mp": s12,
                         "paper_psnr": paper[0] if paper else None, "paper_seconds_256": paper[1] if paper else None}
        table.add_row(name, f"{np.mean(values):.2f}", f"{s256:.3f}" if s256 else "", f"{s12:.2f}" if s12 else "",
                      f"{paper[0]:.2f}, {paper[1]:.2f} ({paper[1] / s256:.0f}x ours)" if paper and s256 else "")
    Console().print(table)
    print("reference network on a", "x".join(map(str, thumb.shape[-2:])), "thumbnail:",
          ", ".join(f"width {w} {ms:.1f} ms" for w, ms in reference_ms.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"images": str(args.images), "count": len(cleans), "gammas": GAMMAS, "cpu": cpu,
                                    "threads": torch.get_num_threads(), "torch": torch.__version__,
                                    "reference_ms_by_width": reference_ms, "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
