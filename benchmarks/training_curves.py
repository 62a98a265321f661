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
    positive = True
    for run in args.runs:
        records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        # A resumed run logs again from its checkpoint: the last record of each iteration is the one kept.
        losses = sorted({r["iteration"]: r["loss"] for r in records if "loss" in r}.items())
        vals = sorted({r["iteration"]: r["val"] for r in records if "val" in r}.items())
        hours = max((r.get("wall_seconds", 0) for r in records), default=0) / 3600
        loss_ax.plot(*zip(*losses), label=f"{run.name} ({hours:.1f} h)", alpha=0.8)
        positive = positive and all(loss > 0 for _, loss in losses)
        # every ratio the run validated (runs choose theirs with --val-ratios), one line style each
        for key, style in zip(vals[0][1] if vals else (), ("-", "--", ":", "-.")):
            val_ax.plot([i for i, _ in vals], [v[key]["psnr"] for _, v in vals], style, label=f"{run.name} {key}")
    # the L1 losses are positive and span decades; --loss psnr's, in dB below brightening, are negative
    loss_ax.set(xlabel="iteration", ylabel="training loss (summed over steps)", yscale="log" if positive else "linear")
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
