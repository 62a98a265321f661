"""How many exposure steps ExposureDiffusion should take at each ratio, and how its estimate is
blended with the plain brightened frame, chosen on validation crops.

    python benchmarks/steps.py [--model runs/diffusion/best.pt] [--max-steps 3] [--count 12] [--stride 4]

The process re-exposes F's own estimate: where the dark frame is very noisy that refines it, where
it is only a few times too dark it replaces real detail with the estimate's. This scores the model
at T = 0 .. max-steps over ratios from x1 to x300 (centre 256 x 256 crops of the
validation images, Sony A7S II P+G noise, the seed training validates with, no rescaling); then,
on each T's outputs Wiener-blended with the brightened frame (:func:`exposed.denoise.infer.wiener_blend`,
blocks ``--stride`` packed pixels apart), picks the rule T = min(steps, ratio // ratio_per_step)
with the best mean PSNR over those ratios (ties: fewer passes): the blend keeps the photo's own
detail, so the steps that pay off blended are not those that pay off alone. At each ratio the
blend's pilot error (the network's error variance, :func:`exposed.denoise.infer.pilot_error`) is the
one on a log grid that scores best among those that leave no crop more than 0.02 dB below plain
brightening (a photo never made worse; else the one whose worst crop is best), on these crops and,
from x1 to x20, on a crop of every validation picture with the noise of a calibrated camera or the
virtual one at 8, 12 or 14 bits, whole DN, P+G or ELD (the nearly clean frames a trusted estimate
can spoil), and from x5 to x100 on a crop of every validation picture made a night scene with lamps
(clipped highlights, where a trusted estimate's halo shows). Rows for the other strides (1, 2, 8)
at the chosen T show what their cost would buy, and a row with the reference as the pilot what a
perfect network would give the blend. For the feed-forward twin only T = 0 is scored. With
``--residual-error K`` each blend block also counts its own evidence of the estimate's error
(ModelConfig.residual_error), the pilot errors chosen beside it: run 0 and 1 and ship the better
mean. A row for the quincunx at half the stride (twice the blocks, ModelConfig.dense_below) shows
what doubling the blend's time buys at each ratio. Ship the choice with ``exposed export --steps S
--ratio-per-step R --wiener-stride W --dense-below D --residual-error K --pilot-error R1:E1,...``.
Writes benchmarks/results/steps.json (or --out).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import NamedTuple

import torch
from rich.console import Console
from rich.table import Table

from exposed.denoise.checkpoint import load_model
from exposed.modes import default_model_path
from exposed.sensor.cameras import CAMERAS
from exposed.training.data import SensorMix
from exposed.training.evaluate import EvalItem, EvalSet, evaluate, make_eval_set
from exposed.training.night import NightScenes
from exposed.denoise.infer import denoise, wiener_blend
from exposed.denoise.numpy_infer import steps_for_ratio
from exposed.exposure import brighten
from exposed.imaging.metrics import psnr

ROOT = Path(__file__).resolve().parents[1]
RATIOS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0)
STRIDES = (1, 2, 4, 8)  # packed pixels between the Wiener blend's 8 x 8 blocks
ERRORS = tuple(10 ** (e / 2) for e in range(-16, -5))  # the network's error variance: 1e-8 .. 1e-3
RATIO_PER_STEP = (25.0, 50.0, 75.0, 100.0, 125.0, 150.0, 200.0, 300.0, 0.0)  # 0: always the most steps
# dB: the most a pilot error may leave any crop below plain brightening. Trusting the estimate fully
# scores best on average at x1 to x5 but leaves a few crops of fine texture 0.04 to 0.06 dB below
# it (benchmarks/never_worse.py); issue 13's bar is 0.05, this keeps a margin inside it.
WORST_ALLOWED = -0.02
# Where the worst crop is also looked for: every calibrated camera and the virtual one, 8 to 14
# bits, whole DN, either noise model, one drawn per crop, at the ratios where a trusted pilot can
# spoil a nearly clean frame.
MIXED = SensorMix((*CAMERAS, "virtual"), ("pg", "eld"), (8, 12, 14), quantise=True)
MIXED_RATIOS = (1.0, 2.0, 5.0, 10.0, 20.0)
# Where the worst crop is also looked for among night scenes with lamps (quality.py's kind, other
# seeds): from frames a few stops dark, where lamps' edges are most of the noise left, to x100.
NIGHT_RATIOS = (5.0, 20.0, 50.0, 100.0)


class Score(NamedTuple):
    mean: float  # dB, over the crops
    worst: float  # dB, the worst crop's PSNR less that of its plain brightened frame


def safest_best(by_error: dict[float, Score]) -> float:
    """The pilot error with the best mean among those whose worst crop is within WORST_ALLOWED of
    brightening; where none is, the one with the best worst crop."""
    safe = [e for e, s in by_error.items() if s.worst >= WORST_ALLOWED]
    if safe:
        return max(safe, key=lambda e: by_error[e].mean)
    return max(by_error, key=lambda e: by_error[e].worst)


def blend_scores(items: list[EvalItem], estimates: list[torch.Tensor], stride: int,
                 errors: dict[float, tuple[float, ...]], bound: float,
                 residual: float, quincunx: bool = False) -> dict[float, dict[float, Score]]:
    """Score by ratio and pilot error variance (those of ``errors[ratio]``) of ``estimates`` (one per
    item) Wiener-blended with the items' brightened frames, blocks ``stride`` apart (every other
    one with ``quincunx``), the network's state bounded at ``bound``, each block's own evidence of
    the error weighted ``residual``."""
    scores: dict[float, dict[float, list[tuple[float, float]]]] = {}
    for item, estimate in zip(items, estimates):
        ratio, sensor = torch.tensor([item.ratio]), item.sensor
        amplified = brighten(item.dark, ratio)
        plain = psnr(amplified.clamp(0.0, 1.0), item.clean).item()
        for error in errors[item.ratio]:
            out = wiener_blend(estimate, amplified, ratio, sensor, stride, error, bound=bound, residual_error=residual,
                               quincunx=quincunx)
            out.masked_fill_(item.dark >= 1.0, 1.0)
            score = psnr(out.clamp(0.0, 1.0), item.clean).item()
            scores.setdefault(item.ratio, {}).setdefault(error, []).append((score, score - plain))
    return {r: {e: Score(sum(s for s, _ in v) / len(v), min(d for _, d in v)) for e, v in by_error.items()}
            for r, by_error in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "images" / "val" / "CBSD68")
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--count", type=int, default=12, help="validation images (centre crops)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--dense-below", type=float, default=30.0,
                        help="ratios below which the model is to blend on the quincunx (twice the blend's time; "
                             "written into the export line; the quincunx row shows what it buys at every ratio)")
    parser.add_argument("--stride", type=int, default=4, choices=STRIDES,
                        help="the Wiener blend's stride the steps are chosen with (4: what a 12 MP photo can afford)")
    parser.add_argument("--mixed-count", type=int, default=68,
                        help="pictures whose crops with mixed cameras' noise, and as night scenes, "
                             "bound the worst crop (0: none)")
    parser.add_argument("--residual-error", type=float, default=0.0,
                        help="the weight of each blend block's own evidence of the estimate's error "
                             "(ModelConfig.residual_error), the pilot errors chosen beside it")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "steps.json")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model = load_model(args.model)
    val = make_eval_set(args.val, RATIOS, "sony-a7s2", "pg", seed=1234, limit=args.count, crop=256)
    mixed = make_eval_set(args.val, MIXED_RATIOS, seed=4321, limit=args.mixed_count, crop=256,
                          sensors=MIXED) if args.mixed_count else EvalSet([])
    night = make_eval_set(args.val, NIGHT_RATIOS, seed=8765, limit=args.mixed_count, crop=256,
                          night=NightScenes(share=1.0)) if args.mixed_count else EvalSet([])
    guard = mixed.items + night.items  # the crops that bound the worst, beside the validation ones
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

    guard_outputs = {t: [denoise(model, item.dark, torch.tensor([item.ratio]),
                                 item.sensor, t,
                                 torch.Generator().manual_seed(0), args.precision, blend=False)
                         for item in guard] for t in range(max_steps + 1)}

    def blended(t: int, stride: int, errors: dict[float, tuple[float, ...]],
                guarded: bool = True, quincunx: bool = False) -> dict[float, dict[float, Score]]:
        """(mean PSNR, the worst crop's PSNR less its brightened frame's) by ratio and pilot error
        variance (those of ``errors[ratio]``) of T = t's outputs Wiener-blended with blocks ``stride``
        apart (``quincunx``: every other one); with ``guarded`` the worst crop is also looked for
        among the mixed cameras' and the night scenes' crops."""
        main = blend_scores(val.items, outputs[t], stride, errors, model.config.state_high, args.residual_error,
                            quincunx)
        extra = (blend_scores(guard, guard_outputs[t], stride, errors, model.config.state_high, args.residual_error)
                 if guarded else {})
        return {r: {e: Score(s.mean, min(s.worst, extra[r][e].worst) if r in extra else s.worst)
                    for e, s in by_error.items()} for r, by_error in main.items()}


    # At each T and ratio, the pilot error variance that scores best within WORST_ALLOWED; T's rule on those.
    at_stride = {t: blended(t, args.stride, {r: ERRORS for r in RATIOS}) for t in range(max_steps + 1)}
    picked = {t: {r: safest_best(at_stride[t][r]) for r in RATIOS} for t in range(max_steps + 1)}
    for t in range(max_steps + 1):
        rows[f"T={t}, blended"] = {r: at_stride[t][r][picked[t][r]].mean for r in RATIOS}
    choices = [{"steps": 0, "ratio_per_step": 0.0, "passes": len(RATIOS),
                "mean_psnr": sum(rows["T=0, blended"].values()) / len(RATIOS)}]
    for most in range(1, max_steps + 1):
        for per_step in RATIO_PER_STEP:
            mean = sum(rows[f"T={steps_for_ratio(most, per_step, r)}, blended"][r] for r in RATIOS) / len(RATIOS)
            passes = sum(steps_for_ratio(most, per_step, r) + 1 for r in RATIOS)
            choices.append({"steps": most, "ratio_per_step": per_step, "mean_psnr": mean, "passes": passes})
    best = max(choices, key=lambda c: (round(c["mean_psnr"], 2), -c["passes"]))
    chosen = [steps_for_ratio(int(best["steps"]), best["ratio_per_step"], r) for r in RATIOS]
    errors = [(r, picked[t][r]) for r, t in zip(RATIOS, chosen)]
    rows["chosen T, blended, the estimate trusted"] = {r: at_stride[t][r][ERRORS[0]].mean
                                                       for r, t in zip(RATIOS, chosen)}
    worst = {"chosen T, blended: the worst crop's dB over brightening":
             {r: at_stride[t][r][e].worst for (r, e), t in zip(errors, chosen)},
             "the estimate trusted: the worst crop's dB over brightening":
             {r: at_stride[t][r][ERRORS[0]].worst for r, t in zip(RATIOS, chosen)}}
    # What the blend would give a perfect network: the reference itself as the pilot.
    rows["the reference as the pilot, blended"] = {}
    for r in RATIOS:
        items = [item for item in val.items if item.ratio == r]
        rows["the reference as the pilot, blended"][r] = sum(
            psnr(wiener_blend(item.clean, brighten(item.dark, torch.tensor([r])), torch.tensor([r]),
                              item.sensor, args.stride, clipped_error=0.0).masked_fill(item.dark >= 1.0, 1.0)
                 .clamp(0.0, 1.0), item.clean).item() for item in items) / len(items)
    for stride in STRIDES:  # at the errors chosen for args.stride
        by_t = {t: at_stride[t] if stride == args.stride else
                blended(t, stride, {r: (e,) for r, e in errors}, guarded=False) for t in set(chosen)}
        rows[f"chosen T, blended, stride {stride}"] = {r: by_t[t][r][e].mean for (r, e), t in zip(errors, chosen)}
    # The quincunx at half the stride: twice the blocks, what the model takes below --dense-below.
    by_t = {t: blended(t, args.stride // 2, {r: (e,) for r, e in errors}, guarded=False, quincunx=True)
            for t in set(chosen)}
    rows[f"chosen T, blended, quincunx at stride {args.stride // 2}"] = {r: by_t[t][r][e].mean
                                                                         for (r, e), t in zip(errors, chosen)}
    rows.update(worst)

    table = Table(title=f"{args.model.name}: PSNR (dB) by ratio and exposure steps, {args.count} validation crops"
                        f", residual error {args.residual_error:g}")
    table.add_column("")
    for r in RATIOS:
        table.add_column(f"x{r:g}", justify="right")
    for name, row in rows.items():
        table.add_row(name, *(f"{row[r]:.2f}" for r in RATIOS))
    table.add_row("chosen T", *(str(t) for t in chosen))
    table.add_row("pilot error", *(f"{e:.0e}" for _, e in errors))
    console = Console(width=140)
    console.print(table)
    fixed = {f"T={t}": sum(rows[f"T={t}, blended"][r] for r in RATIOS) / len(RATIOS) for t in range(max_steps + 1)}
    console.print("mean over the ratios, blended: " + ", ".join(f"fixed {k} {v:.2f} dB" for k, v in fixed.items()) +
                  f"; chosen rule (steps {best['steps']}, ratio per step {best['ratio_per_step']:g}) "
                  f"{best['mean_psnr']:.2f} dB")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": str(args.model), "validation": val.description,
                                    "precision": args.precision, "mixed": mixed.description,
                                    "night": night.description,
                                    "ratios": RATIOS, "rows": {k: list(v.values()) for k, v in rows.items()},
                                    "choices": choices, "best": best, "stride": args.stride, "pilot_error": errors,
                                    "residual_error": args.residual_error,
                                    "export": f"exposed export CHECKPOINT OUT --steps {best['steps']} "
                                              f"--ratio-per-step {best['ratio_per_step']:g} "
                                              f"--wiener-stride {args.stride} --dense-below {args.dense_below:g} "
                                              f"--residual-error {args.residual_error:g} --pilot-error "
                                              + ",".join(f"{r:g}:{e:.3g}" for r, e in errors)},
                                   indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
