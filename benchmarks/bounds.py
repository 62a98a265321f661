"""How far above white the network should see the exposure process's state, chosen by measurement.

    python benchmarks/bounds.py [--model MODEL] [--count 12]

The state is clamped to [-1, high] before the network sees it (ModelConfig.state_high). Too low a
bound hides the noise of ordinary scenes at x100-x300, which routinely reaches 2 or 3 times white;
too high a bound shows the network lamps at ``ratio`` times white, which no training sample has.
This scores the model (unblended, so the bound alone is measured) at several bounds on validation
crops as ordinary scenes (x20, x100, x300) and as night scenes with lamps (x20, x100: the whole
crop and the ring around the clipped lamps). Writes benchmarks/results/bounds.json.
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
from exposed.training.evaluate import evaluate, make_eval_set
from exposed.denoise.infer import denoise
from exposed.training.night import NightScenes

ROOT = Path(__file__).resolve().parents[1]
BOUNDS = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0, 1e9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "images" / "val" / "CBSD68")
    parser.add_argument("--count", type=int, default=12)
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
    columns = list(next(iter(rows.values())))
    table = Table(title=f"{args.model.name}: PSNR (dB) by the state's upper bound, {args.count} validation crops")
    table.add_column("bound")
    for c in columns:
        table.add_column(c, justify="right")
    for name, row in rows.items():
        table.add_row(name, *(f"{row[c]:.2f}" for c in columns))
    Console(width=160).print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": str(args.model), "count": args.count, "rows": rows}, indent=2) + "\n")
    Console().print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
