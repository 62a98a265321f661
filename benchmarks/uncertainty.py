"""Does `--uncertainty`'s spread show where the answer is wrong? Its rank correlation with the error.

On validation crops darkened with the Sony A7S II's noise, the exposure process runs N times with
different seeds, as `exposed enhance --uncertainty` does (exposed.denoise.uncertainty: the runs take
at least one exposure step, so there is something to vary). The map's spread (standard deviation
over the N results of each 2 x 2 cell's brightness on the sRGB curve) is compared with the delivered
result's absolute error in the same brightness: Spearman's rank correlation over all cells, and
over 8 x 8 blocks of cells (what a person sees in a heat map). No rescaling with the truth.

    python benchmarks/uncertainty.py [--runs 4] [--limit 68] [--crop 512] [--out benchmarks/results/uncertainty.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from exposed.denoise.checkpoint import load_model
from exposed.denoise.infer import choose_precision, default_steps, denoise, frame_snr, pick_device
from exposed.denoise.uncertainty import display_value, spread, varied_steps
from exposed.imaging.metrics import spearman
from exposed.modes import default_model_path
from exposed.training.evaluate import make_eval_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped diffusion model")
    parser.add_argument("--images", default="../shared/data/images/val")
    parser.add_argument("--ratios", default="10,100,300")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--limit", type=int, default=68)
    parser.add_argument("--crop", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/uncertainty.json"))
    args = parser.parse_args()
    device = pick_device("auto")
    precision = choose_precision("auto", device)
    model = load_model(args.model or default_model_path(), device)
    ratios = [float(r) for r in args.ratios.split(",")]
    data = make_eval_set(args.images, ratios, "sony-a7s2", "pg", seed=0, limit=args.limit, crop=args.crop)
    rows: dict[str, dict[str, float]] = {}
    start = time.perf_counter()
    for ratio in ratios:
        spreads, errors, block_spreads, block_errors = [], [], [], []
        for item in (i for i in data.items if i.ratio == ratio):
            sensor = item.sensor.to(device)
            dark, r = item.dark.to(device), torch.tensor([ratio], device=device)

            def run(seed: int, steps: int) -> torch.Tensor:
                generator = torch.Generator(device=device).manual_seed(seed)
                return denoise(model, dark, r, sensor, steps, generator, precision)

            steps = default_steps(model, ratio, frame_snr(dark, sensor))
            result = run(0, steps)
            varied = varied_steps(steps)
            runs = [result if varied == steps else run(0, varied)] + [run(k, varied) for k in range(1, args.runs)]
            error = (display_value(result) - display_value(item.clean.to(device))).abs().float().cpu()
            map_ = spread(runs).float().cpu()
            spreads.append(map_.flatten())
            errors.append(error.flatten())
            block_spreads.append(F.avg_pool2d(map_, 8).flatten())
            block_errors.append(F.avg_pool2d(error, 8).flatten())
        rows[f"x{ratio:g}"] = {
            "pixels": spearman(torch.cat(spreads), torch.cat(errors)),
            "blocks_8x8": spearman(torch.cat(block_spreads), torch.cat(block_errors)),
            "mean_spread": float(torch.cat(spreads).mean()), "mean_error": float(torch.cat(errors).mean())}
    seconds = time.perf_counter() - start
    print(f"{'ratio':>6} {'rank corr. (pixels)':>20} {'rank corr. (8x8 blocks)':>24} {'mean spread':>12} "
          f"{'mean |error|':>12}")
    for name, r in rows.items():
        print(f"{name:>6} {r['pixels']:20.3f} {r['blocks_8x8']:24.3f} {r['mean_spread']:12.4f} {r['mean_error']:12.4f}")
    result = {"model": str(args.model or default_model_path().name), "runs": args.runs, "images": args.images,
              "limit": args.limit, "crop": args.crop, "device": str(device), "precision": precision,
              "seconds": seconds, "ratios": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
