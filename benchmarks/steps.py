"""How many exposure steps ExposureDiffusion should take at each ratio, and how much of the plain
brightened frame to blend back, chosen on validation crops.

    python benchmarks/steps.py [--model runs/diffusion/best.pt] [--max-steps 3] [--count 12]

The process re-exposes F's own estimate: where the dark frame is very noisy that refines it, where
it is only a few times too dark it replaces real detail with the estimate's. This scores the model
at T = 0 .. max-steps over ratios from x1 to x300 (centre 256 x 256 crops of the validation images,
Sony A7S II P+G noise, the seed training validates with, no rescaling), then picks the rule
T = min(steps, ratio // ratio_per_step) with the best mean PSNR over those ratios (ties: fewer
passes). For the feed-forward twin only T = 0 is scored. Then, at each ratio, the block over which
the result takes the brightened frame's local mean (:func:`exposed.denoise.infer.keep_local_mean`;
none, 4, 8 or 16 packed pixels) and the network's error variance tau2 for
:func:`exposed.denoise.infer.fuse` (a log grid) are the pair that gives the best mean PSNR. Ship them
with ``exposed export --steps S --ratio-per-step R --fusion R1:T1,... --local-mean R1:W1,...``.
Writes benchmarks/results/steps.json (or --out).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from exposed.denoise.checkpoint import load_model
from exposed.io.checkpoint import default_model_path
from exposed.training.evaluate import evaluate, make_eval_set
from exposed.denoise.infer import denoise, fuse, keep_local_mean, steps_for_ratio
from exposed.exposure import brighten
from exposed.imaging.metrics import psnr
from exposed.sensor.noise import SensorScale

ROOT = Path(__file__).resolve().parents[1]
RATIOS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0)
TAU2_GRID = tuple(10 ** (e / 4) for e in range(-32, -3))  # 1e-8 .. 1e-1
WINDOWS = (0, 4, 8, 16)  # packed pixels: keep_local_mean's block (0: not done)
RATIO_PER_STEP = (25.0, 50.0, 75.0, 100.0, 125.0, 150.0, 200.0, 300.0, 0.0)  # 0: always the most steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "images" / "val" / "CBSD68")
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--count", type=int, default=12, help="validation images (centre crops)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "steps.json")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model = load_model(args.model)
    val = make_eval_set(args.val, RATIOS, "sony-a7s2", "pg", seed=1234, limit=args.count, crop=256)
    max_steps = 0 if model.config.kind == "feedforward" else args.max_steps

    def scores(method) -> dict[float, float]:  # type: ignore[no-untyped-def]
        return {r: v["psnr"] for r, v in zip(RATIOS, evaluate(method, val).values())}

    rows = {"amplified input": scores(lambda dark, ratio, sensor: dark * ratio)}
    outputs: dict[int, list[torch.Tensor]] = {}
    for t in range(max_steps + 1):
        g = torch.Generator().manual_seed(0)
        outputs[t] = []

        def method(dark, ratio, sensor):  # type: ignore[no-untyped-def]
            outputs[t].append(denoise(model, dark, ratio, sensor, t, g, args.precision, blend=False))
            return outputs[t][-1]
        rows[f"T={t}"] = scores(method)

    choices = [{"steps": 0, "ratio_per_step": 0.0, "mean_psnr": sum(rows["T=0"].values()) / len(RATIOS),
                "passes": len(RATIOS)}]
    for most in range(1, max_steps + 1):
        for per_step in RATIO_PER_STEP:
            mean = sum(rows[f"T={steps_for_ratio(most, per_step, r)}"][r] for r in RATIOS) / len(RATIOS)
            passes = sum(steps_for_ratio(most, per_step, r) + 1 for r in RATIOS)
            choices.append({"steps": most, "ratio_per_step": per_step, "mean_psnr": mean, "passes": passes})
    best = max(choices, key=lambda c: (round(c["mean_psnr"], 2), -c["passes"]))
    chosen = [steps_for_ratio(best["steps"], best["ratio_per_step"], r) for r in RATIOS]

    # On the chosen steps' outputs, per ratio: the block over which the result takes the brightened
    # frame's local mean (or none) and the blend's tau2, the pair with the best PSNR.
    Choice = tuple[int, float]  # (window, tau2)
    fused: dict[float, dict[Choice, list[float]]] = {r: {} for r in RATIOS}
    for i, item in enumerate(val.items):
        estimate = outputs[chosen[RATIOS.index(item.ratio)]][i]
        ratio, sensor = torch.tensor([item.ratio]), SensorScale.from_noise(item.noise)
        amplified = brighten(item.dark, ratio)
        for window in WINDOWS:
            corrected = keep_local_mean(estimate, amplified, ratio, sensor, window).masked_fill(item.dark >= 1.0, 1.0)
            for tau2 in TAU2_GRID:
                out = fuse(corrected, amplified, torch.tensor([tau2]), ratio, sensor)
                fused[item.ratio].setdefault((window, tau2), []).append(psnr(out.clamp(0.0, 1.0), item.clean).item())
    best_pair = {r: max(fused[r], key=lambda c: sum(fused[r][c])) for r in RATIOS}
    fusion = [(r, best_pair[r][1]) for r in RATIOS]
    local_mean = [(r, best_pair[r][0]) for r in RATIOS if best_pair[r][0]]
    rows["chosen T, blended alone"] = {r: max(sum(fused[r][(0, t)]) / len(fused[r][(0, t)]) for t in TAU2_GRID)
                                       for r in RATIOS}
    rows["chosen T, local mean, blended"] = {r: sum(fused[r][c]) / len(fused[r][c]) for r, c in best_pair.items()}

    table = Table(title=f"{args.model.name}: PSNR (dB) by ratio and exposure steps, {args.count} validation crops")
    table.add_column("")
    for r in RATIOS:
        table.add_column(f"x{r:g}", justify="right")
    for name, row in rows.items():
        table.add_row(name, *(f"{row[r]:.2f}" for r in RATIOS))
    table.add_row("chosen T", *(str(t) for t in chosen))
    table.add_row("tau2", *(f"{t:.1e}" for _, t in fusion))
    table.add_row("local-mean window", *(str(best_pair[r][0]) for r in RATIOS))
    console = Console(width=140)
    console.print(table)
    fixed = {f"T={t}": sum(rows[f"T={t}"][r] for r in RATIOS) / len(RATIOS) for t in range(max_steps + 1)}
    console.print("mean over the ratios: " + ", ".join(f"fixed {k} {v:.2f} dB" for k, v in fixed.items()) +
                  f"; chosen rule (steps {best['steps']}, ratio per step {best['ratio_per_step']:g}) "
                  f"{best['mean_psnr']:.2f} dB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": str(args.model), "validation": val.description,
                                    "precision": args.precision,
                                    "ratios": RATIOS, "rows": {k: list(v.values()) for k, v in rows.items()},
                                    "choices": choices, "best": best, "fusion": fusion, "local_mean": local_mean,
                                    "export": f"exposed export CHECKPOINT OUT --steps {best['steps']} "
                                              f"--ratio-per-step {best['ratio_per_step']:g} --fusion "
                                              + ",".join(f"{r:g}:{t:.3g}" for r, t in fusion) + " --local-mean "
                                              + (",".join(f"{r:g}:{w}" for r, w in local_mean) or "none")},
                                   indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
