"""Exposure steps per photo: T from the frame's signal-to-noise ratio as well as its exposure ratio.

The shipped rule takes T from the exposure ratio alone (T = min(steps, ratio // ratio_per_step),
chosen by benchmarks/steps.py). But how noisy a frame is depends on the scene's brightness and the
ISO too: a x100 frame of a bright scene at low ISO is cleaner than a x30 frame of a dark one at
ISO 12800. This scores T = 0 .. steps on every validation crop (Sony A7S II P+G noise at a random
ISO per crop, as evaluation draws it, ratios x1 to x300), measures each crop's SNR as exposed can at
run time, without the truth (:func:`exposed.denoise.infer.frame_snr`), then fits rules on the first
half of the crops (the snr_per_step of best mean PSNR there) and reports them on the second half:
mean PSNR (packed raw, no rescaling) and mean time. Rules: fixed T; the ratio rule; T = min(steps,
snr_per_step // SNR), the SNR rule; and the smaller of the two, which a model exported with
``--snr-per-step`` runs by default.

    python benchmarks/steps_snr.py [--count 68] [--out benchmarks/results/steps_snr.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch

from exposed.denoise.checkpoint import load_model
from exposed.denoise.infer import choose_precision, denoise, frame_snr, pick_device
from exposed.denoise.numpy_infer import steps_for_ratio, steps_for_snr
from exposed.imaging.metrics import psnr
from exposed.modes import default_model_path
from exposed.training.evaluate import make_eval_set

ROOT = Path(__file__).resolve().parents[1]
RATIOS = (1.0, 3.0, 10.0, 30.0, 60.0, 100.0, 150.0, 200.0, 300.0)
SNR_PER_STEP = tuple(round(2 ** (e / 4), 3) for e in range(0, 33))  # 1 .. 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "images" / "val" / "CBSD68")
    parser.add_argument("--count", type=int, default=68, help="validation images (half fit the rules, half score)")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "steps_snr.json")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    device = pick_device("auto")
    precision = choose_precision("auto", device)
    model = load_model(args.model, device)
    most, per_step = model.config.steps, model.config.ratio_per_step
    data = make_eval_set(args.val, RATIOS, "sony-a7s2", "pg", seed=4321, limit=args.count, crop=args.crop)
    names = sorted({i.name for i in data.items})
    fit_names = set(names[: len(names) // 2])
    scores, seconds, snrs, ratios, fit = [], [], [], [], []
    for item in data.items:
        sensor = item.sensor.to(device)
        dark, ratio = item.dark.to(device), torch.tensor([item.ratio], device=device)
        row, timing = [], []
        for t in range(most + 1):
            generator = torch.Generator(device=device).manual_seed(0)
            start = time.perf_counter()
            out = denoise(model, dark, ratio, sensor, t, generator, precision)
            timing.append(time.perf_counter() - start)
            row.append(psnr(out.float().cpu(), item.clean).item())
        scores.append(row)
        seconds.append(timing)
        snrs.append(frame_snr(item.dark, sensor.to("cpu")))
        ratios.append(item.ratio)
        fit.append(item.name in fit_names)

    def score(rule: Callable[[int], int], part: bool) -> tuple[float, float, float]:
        chosen = [i for i in range(len(scores)) if fit[i] == part]
        steps = [rule(i) for i in chosen]
        return (sum(scores[i][t] for i, t in zip(chosen, steps)) / len(chosen),
                sum(seconds[i][t] for i, t in zip(chosen, steps)) / len(chosen), sum(steps) / len(chosen))

    def by_ratio(i: int) -> int:
        return steps_for_ratio(most, per_step, ratios[i])

    def best_snr_rule(combined: bool) -> float:
        def rule(k: float) -> Callable[[int], int]:
            return lambda i: min(steps_for_snr(most, k, snrs[i]), by_ratio(i)) if combined else \
                steps_for_snr(most, k, snrs[i])
        return max(SNR_PER_STEP, key=lambda k: (score(rule(k), True)[0], -score(rule(k), True)[1]))

    k_alone, k_both = best_snr_rule(False), best_snr_rule(True)
    rules: dict[str, Callable[[int], int]] = {f"fixed T={t}": (lambda i, t=t: t) for t in range(most + 1)}
    rules[f"ratio rule (ratio // {per_step:g})"] = by_ratio
    rules[f"SNR rule ({k_alone:g} / SNR)"] = lambda i: steps_for_snr(most, k_alone, snrs[i])
    rules[f"smaller of ratio rule and {k_both:g} / SNR"] = lambda i: min(steps_for_snr(most, k_both, snrs[i]),
                                                                         by_ratio(i))
    print(f"{len(names)} crops of {args.crop} px, {len(fit_names)} fit the rules, the rest score them; "
          f"{device}, {precision}")
    print(f"{'rule':44} {'PSNR (dB)':>10} {'time (s)':>9} {'mean T':>7}   (fit half: PSNR)")
    table = {}
    for name, rule in rules.items():
        psnr_eval, time_eval, steps_eval = score(rule, False)
        table[name] = {"psnr": psnr_eval, "seconds": time_eval, "mean_steps": steps_eval,
                       "fit_psnr": score(rule, True)[0]}
        print(f"{name:44} {psnr_eval:10.2f} {time_eval:9.3f} {steps_eval:7.2f}   ({table[name]['fit_psnr']:.2f})")
    result = {"model": str(args.model), "validation": data.description, "device": str(device),
              "precision": precision, "snr_per_step": k_alone, "snr_per_step_with_ratio": k_both, "rules": table,
              "items": [{"ratio": r, "snr": s, "fit": f, "psnr": p, "seconds": t}
                        for r, s, f, p, t in zip(ratios, snrs, fit, scores, seconds)]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
