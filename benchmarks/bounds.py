"""How far above white the network should see the exposure process's state, chosen by measurement.

    python benchmarks/bounds.py [--model MODEL] [--count 12]

The state is clamped to [-1, high] before the network sees it (ModelConfig.state_high). Too low a
bound hides the noise of ordinary scenes at x100-x300, which routinely reaches 2 or 3 times white;
too high a bound shows the network lamps at ``ratio`` times white, which no training sample has.
This scores the model (unblended, so the bound alone is measured) at several bounds on validation
crops as ordinary scenes (x20, x100, x300) and as night scenes with lamps (x20, x100: the whole
crop and the ring around the clipped lamps).

Then, at the model's own bound, how much less the Wiener blend should trust the estimate at
photosites whose measurement is clipped, and further at those the network saw bounded
(``clipped_error``, ``bounded_error`` of :func:`exposed.denoise.infer.wiener_blend`, shipped as
:data:`exposed.denoise.numpy_infer.CLIPPED_ERROR` and ``BOUNDED_ERROR``): the blended result as the
model ships it (its T and pilot errors by ratio) on ``--blend-count`` crops as night scenes and as
ordinary ones (x5, x20, x100), the mean PSNR and the worst crop's less that of its plain brightened
frame.
Writes benchmarks/results/bounds.json.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from exposed.denoise.checkpoint import load_model
from exposed.modes import default_model_path
from exposed.training.evaluate import EvalSet, evaluate, make_eval_set
from exposed.denoise.infer import denoise, pilot_error, wiener_blend
from exposed.denoise.model import ExposureModel
from exposed.denoise.numpy_infer import BOUNDED_ERROR, CLIPPED_ERROR
from exposed.exposure import brighten
from exposed.imaging.metrics import psnr
from exposed.training.night import NightScenes

ROOT = Path(__file__).resolve().parents[1]
BOUNDS = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0, 1e9)
# (clipped_error, bounded_error) pairs: neither, each alone, and around the shipped pair.
BLEND_ERRORS = ((0.0, 0.0), (1e-3, 0.0), (0.0, 5e-3), (5e-4, 5e-3), (1e-3, 5e-3), (2e-3, 5e-3), (5e-3, 5e-3),
                (1e-3, 2e-3), (1e-3, 1e-2), (1e-3, 3e-2))
BLEND_RATIOS = (5.0, 20.0, 100.0)


def bounded_error_rows(model: ExposureModel, sets: dict[str, EvalSet]) -> dict[str, dict[str, float]]:
    """By BLEND_ERRORS: the blended result's mean PSNR and its worst crop's PSNR less that of
    the crop's plain brightened frame, by set and ratio (the model's own steps, pilot errors, residual
    error and bound)."""
    rows: dict[str, dict[str, float]] = {f"{c:g}, {b:g}": {} for c, b in BLEND_ERRORS}
    for name, data in sets.items():
        scores: dict[tuple[str, float], list[tuple[float, float]]] = {}
        for item in data.items:
            ratio = torch.tensor([item.ratio])
            estimate = denoise(model, item.dark, ratio, item.sensor, None, torch.Generator().manual_seed(0),
                               blend=False)
            amplified = brighten(item.dark, ratio)
            plain = psnr(amplified.clamp(0.0, 1.0), item.clean).item()
            for clipped, bounded in BLEND_ERRORS:
                out = wiener_blend(estimate, amplified, ratio, item.sensor, model.config.wiener_stride,
                                   pilot_error(model.config.pilot_error, ratio), bound=model.config.state_high,
                                   clipped_error=clipped, bounded_error=bounded,
                                   residual_error=model.config.residual_error).masked_fill_(item.dark >= 1.0, 1.0)
                score = psnr(out.clamp(0.0, 1.0), item.clean).item()
                scores.setdefault((f"{clipped:g}, {bounded:g}", item.ratio), []).append((score, score - plain))
        for (e, r), v in scores.items():
            rows[e][f"{name} x{r:g}"] = sum(p for p, _ in v) / len(v)
            rows[e][f"{name} x{r:g} worst"] = min(d for _, d in v)
    return rows


def print_table(title: str, first: str, rows: dict[str, dict[str, float]]) -> None:
    columns = list(next(iter(rows.values())))
    table = Table(title=title)
    table.add_column(first)
    for c in columns:
        table.add_column(c, justify="right")
    for name, row in rows.items():
        table.add_row(name, *(f"{row[c]:.2f}" for c in columns))
    Console(width=200).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "images" / "val" / "CBSD68")
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--blend-count", type=int, default=68, help="crops for the blend's bounded error")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bounds.json")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model = load_model(args.model)
    sets = {"ordinary": make_eval_set(args.val, (20.0, 100.0, 300.0), seed=1234, limit=args.count, crop=256),
            "night": make_eval_set(args.val, (20.0, 100.0), seed=4321, limit=args.count, crop=256,
                                   night=NightScenes(share=1.0))}
    rows: dict[str, dict[str, float]] = {}
    for high in BOUNDS:
        model.config = replace(model.config, state_high=high)
        row = {}
        for name, data in sets.items():
            g = torch.Generator().manual_seed(0)
            scores = evaluate(lambda d, r, sensor: denoise(model, d, r, sensor, None, g, blend=False), data)
            for ratio, s in scores.items():
                row[f"{name} {ratio}"] = s["psnr"]
                if "ring_psnr" in s and name == "night":
                    row[f"{name} {ratio} ring"] = s["ring_psnr"]
        rows["none" if high > 1e8 else f"{high:g}"] = row
    print_table(f"{args.model.name}: PSNR (dB) by the state's upper bound, {args.count} validation crops",
                "bound", rows)
    model = load_model(args.model)  # its own bound again
    blend_sets = {"night": make_eval_set(args.val, BLEND_RATIOS, seed=8765, limit=args.blend_count, crop=256,
                                         night=NightScenes(share=1.0)),
                  "ordinary": make_eval_set(args.val, BLEND_RATIOS, seed=1234, limit=args.blend_count, crop=256)}
    blended = bounded_error_rows(model, blend_sets) if model.config.wiener_stride else {}
    if blended:
        print_table(f"{args.model.name}: the blended result (dB) by the error added where a photosite is clipped "
                    f"and where the state was bounded at {model.config.state_high:g}, {args.blend_count} crops "
                    f"(worst: less brightening's; shipped {CLIPPED_ERROR:g}, {BOUNDED_ERROR:g})",
                    "clipped, bounded", blended)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": str(args.model), "count": args.count, "rows": rows,
                                    "blend_count": args.blend_count, "clipped_bounded_errors": blended,
                                    "shipped": [CLIPPED_ERROR, BOUNDED_ERROR]}, indent=2) + "\n")
    Console().print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
