"""Why the default model is weak on frames only a few stops dark: its adaptive residual layer's two
paths scored apart, and the network told a wrong noise level.

    python benchmarks/residual_paths.py [--model models/exposure-diffusion-unet16.pt] [--count 12]

On centre 256 x 256 crops of the validation pictures (Sony A7S II P+G noise, the seed training
validates with), one pass (T = 0), unblended: PSNR of the brightened input (clipped to [0, 1]),
of the direct estimate alone, of the brightened state plus the residual alone, and of their mix,
with the mask's mean and the residual's mean magnitude against the noise's; then the whole pass
with its noise channel scaled by 0.7 to 2. Writes benchmarks/results/residual_paths.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from exposed.denoise.checkpoint import load_model
from exposed.denoise.process import noise_std
from exposed.imaging.metrics import psnr
from exposed.modes import default_model_path
from exposed.training.evaluate import make_eval_set

ROOT = Path(__file__).resolve().parents[1]
RATIOS = (1.0, 5.0, 10.0, 20.0, 100.0)
NOISE_SCALES = (0.7, 1.0, 1.4, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "residual_paths.json")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model = load_model(args.model)
    if model.config.kind != "diffusion":
        raise SystemExit("the twin has no residual layer: give an ExposureDiffusion model")
    val = make_eval_set(ROOT.parent / "shared" / "data" / "images" / "val" / "CBSD68", RATIOS, "sony-a7s2", "pg",
                        seed=1234, limit=args.count, crop=256)
    sums: dict[float, dict[str, float]] = {r: {} for r in RATIOS}
    for item in val.items:
        ratio, sensor = torch.tensor([item.ratio]), item.sensor
        state = (item.dark * item.ratio).clamp(model.config.state_low, model.config.state_high)
        std = noise_std(state, torch.ones(1), ratio, sensor)
        out = model.backbone(model.inputs(state, std))
        mask = torch.sigmoid(out[:, :1])
        direct, residual = out[:, 1:5].clamp(0, 1), (state + out[:, 5:9]).clamp(0, 1)
        scores = {"amplified": psnr(state.clamp(0, 1), item.clean).item(),
                  "direct alone": psnr(direct, item.clean).item(),
                  "residual alone": psnr(residual, item.clean).item(),
                  "mix (the network)": psnr(mask * direct + (1 - mask) * residual, item.clean).item(),
                  "mask mean": mask.mean().item(), "|residual|": out[:, 5:9].abs().mean().item(),
                  "|noise|": (state - item.clean).abs().mean().item()}
        for scale in NOISE_SCALES:
            scores[f"noise channel x{scale:g}"] = psnr(model(state, scale * std), item.clean).item()
        for key, value in scores.items():
            sums[item.ratio][key] = sums[item.ratio].get(key, 0.0) + value / args.count
    keys = list(next(iter(sums.values())))
    print(f"{'':>26}" + "".join(f"{'x' + format(r, 'g'):>9}" for r in RATIOS))
    for key in keys:
        print(f"{key:>26}" + "".join(f"{sums[r][key]:9.4f}" if key.startswith(("|", "mask")) else f"{sums[r][key]:9.2f}"
                                      for r in RATIOS))
    args.out.write_text(json.dumps({"model": str(args.model), "crops": args.count,
                                    "rows": {f"x{r:g}": v for r, v in sums.items()}}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
