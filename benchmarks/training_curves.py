"""Training curves of one or more runs: loss and validation PSNR against iterations and hours.

    python benchmarks/training_curves.py RUN_DIR [RUN_DIR ...] [--out benchmarks/results/training_curves.png]

Reads each run's log.jsonl (written by ``exposed train``). The diffusion loss sums T + 1 steps, so
compare runs by their validation PSNR, which is measured the same way for both.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "training_curves.png")
    args = parser.parse_args()
    fig, (loss_ax, val_ax) = plt.subplots(1, 2, figsize=(12, 4))
    for run in args.runs:
        records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        losses = [(r["iteration"], r["loss"]) for r in records if "loss" in r]
        vals = [(r["iteration"], r["val"]) for r in records if "val" in r]
        hours = max((r.get("wall_seconds", 0) for r in records), default=0) / 3600
        loss_ax.plot(*zip(*losses), label=f"{run.name} ({hours:.1f} h)", alpha=0.8)
        for key, style in (("x100", "-"), ("x300", "--")):
            if vals:
                val_ax.plot([i for i, _ in vals], [v[key]["psnr"] for _, v in vals], style, label=f"{run.name} {key}")
    loss_ax.set(xlabel="iteration", ylabel="training loss (L1, summed over steps)", yscale="log")
    val_ax.set(xlabel="iteration", ylabel="validation PSNR (dB)")
    for ax in (loss_ax, val_ax):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
