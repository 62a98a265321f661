"""Score model files the way ``exposed train`` validates: the same crops, unblended, at fixed T.

A training run's log (and a model card's training table) reports its validation: the first 12
images of the validation folder, centre 256 x 256 raw crops, Sony A7S II P+G noise, seed 1234, the
network run at T exposure steps with no blend and no local mean. To tell whether a run beats the
shipped file, the shipped file has to be scored the same way, with the same code, on the same
day; its card's older figures are not a reference (the validation has changed since some of
them were taken). This does that for any number of files, shipped or training checkpoints.

    python benchmarks/trainer_validation.py models/exposure-diffusion-unet16.pt runs/diffusion/best.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from exposed.denoise.checkpoint import load_model
from exposed.denoise.infer import choose_precision, denoise, pick_device
from exposed.training.config import TrainConfig
from exposed.training.evaluate import evaluate, make_eval_set


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--ratios", default="5,20,100,300")
    parser.add_argument("--steps", type=int, default=2, help="T for diffusion models (the training T)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    defaults = TrainConfig()
    device = pick_device("auto")
    precision = choose_precision(args.precision, device)
    ratios = tuple(float(r) for r in args.ratios.split(","))
    val_set = make_eval_set(defaults.val_images, ratios, defaults.val_camera, defaults.val_noise_model,
                            seed=1234, limit=defaults.val_count, crop=256)
    results = {}
    for path in args.models:
        model = load_model(path, device).eval()
        # As the trainer validates: T fixed, no blend with the brightened frame, no local mean.
        model.config = dataclasses.replace(model.config, wiener_stride=0, ratio_per_step=0.0,
                                           snr_per_step=0.0, steps=args.steps)
        generator = torch.Generator(device=device).manual_seed(0)
        with torch.no_grad():
            scores = evaluate(lambda dark, ratio, sensor: denoise(model, dark, ratio, sensor, None, generator,
                                                                  precision), val_set, device)
        results[str(path)] = {k: round(v["psnr"], 3) for k, v in scores.items()}
        print(f"{path}: " + ", ".join(f"{k} {v:.2f} dB" for k, v in results[str(path)].items()), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"precision": precision, "steps": args.steps, "models": results}, indent=1))


if __name__ == "__main__":
    main()
