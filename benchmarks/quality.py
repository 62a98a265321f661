"""The quality table of issue 3: CBSD68 turned into dark raws, every method scored on the packed raw.

    python benchmarks/quality.py [--diffusion MODEL] [--feedforward MODEL] [--noise pg,eld]
                                 [--classical auto|bm3d|nlm|wavelet] [--classical-subset 10]

Rows: the amplified input (no denoising); a classical denoiser after a generalised Anscombe
transform (BM3D when the optional, non-commercially licensed ``bm3d`` package is installed,
otherwise scikit-image's non-local means; on the first images only, as it is slow); the feed-forward
twin; ExposureDiffusion at T = 0, 1, 2, 3, 5 and 10 (fp32), and at its default (a fixed T, or T
by ratio, see benchmarks/steps.py) in fp32 and with bf16 autocast (the check of bf16 inference
against fp32). Also the twin iterated through the exposure process, the "baseline" curve of the
paper's Fig. 6, which is drawn with ExposureDiffusion's curve; and the learned models again on the
classical denoiser's images, for a like-for-like comparison. Then issue 3's bars, checked. No
output is ever rescaled with the ground truth. Writes JSON, a Markdown table and the figure.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from exposed.checkpoint import default_model_path, load_checkpoint, model_from_checkpoint
from exposed.evaluate import EvalSet, evaluate, make_eval_set
from exposed.infer import denoise
from exposed.process import SensorScale
from speed import cpu_name  # benchmarks/, the script's own folder

ROOT = Path(__file__).resolve().parents[1]
VAL = ROOT.parent / "shared" / "data" / "images" / "val" / "CBSD68"
RATIOS = (100.0, 250.0, 300.0)
DIFFUSION_STEPS = (0, 1, 2, 3, 5, 10)


def classical_denoiser(name: str):  # type: ignore[no-untyped-def]
    """A 2-D denoiser for unit-variance Gaussian noise: (H, W) float64 -> (H, W)."""
    if name in ("auto", "bm3d"):
        try:
            import bm3d

            return "BM3D", lambda image: bm3d.bm3d(image, sigma_psd=1.0)
        except ImportError:
            if name == "bm3d":
                raise
    from skimage.restoration import denoise_nl_means, denoise_wavelet

    if name == "wavelet":
        return "wavelet (BayesShrink)", lambda image: denoise_wavelet(image, sigma=1.0, rescale_sigma=False)
    return "non-local means", lambda image: denoise_nl_means(image, h=0.8, sigma=1.0, patch_size=5, patch_distance=6,
                                                              fast_mode=True)


def anscombe_method(denoiser):  # type: ignore[no-untyped-def]
    """Denoise in photo-electrons after the generalised Anscombe transform, then brighten.

    z + sigma^2 (electrons plus read variance) is close to Poisson, so 2 sqrt(z + sigma^2 + 3/8) has
    unit variance; the inverse is Makitalo and Foi's closed-form exact unbiased inverse (2011).
    """
    def method(dark: torch.Tensor, ratio: torch.Tensor, sensor: SensorScale) -> torch.Tensor:
        gain, read = sensor.gain.item(), sensor.read_var.item() / sensor.gain.item() ** 2
        d = 2.0 * np.sqrt(np.maximum(dark[0].double().numpy() / gain + read + 3.0 / 8.0, 0.0))
        d = np.stack([denoiser(channel) for channel in d])
        d = np.maximum(d, 2.0 * math.sqrt(3.0 / 8.0))
        c = math.sqrt(1.5)
        y = d**2 / 4 + c / 4 / d - 11 / 8 / d**2 + 5 / 8 * c / d**3 - 1 / 8
        electrons = np.maximum(y - read, 0.0)
        return torch.from_numpy(electrons * gain * ratio.item())[None].float()
    return method


def timed(method, seconds: list[float]):  # type: ignore[no-untyped-def]
    def run(*args):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        out = method(*args)
        seconds.append(time.perf_counter() - start)
        return out
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diffusion", type=Path, default=default_model_path())
    parser.add_argument("--feedforward", type=Path, default=default_model_path("feedforward-unet16.pt"))
    parser.add_argument("--val", type=Path, default=VAL)
    parser.add_argument("--noise", default="pg,eld", help="noise models, comma-separated")
    parser.add_argument("--classical", default="auto", choices=["auto", "bm3d", "nlm", "wavelet"])
    parser.add_argument("--classical-subset", type=int, default=10, help="images the classical denoiser sees")
    parser.add_argument("--limit", type=int, help="use only the first N images for every method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality.json")
    args = parser.parse_args()
    console = Console()
    torch.set_grad_enabled(False)

    checkpoints = {"diffusion": load_checkpoint(args.diffusion), "feedforward": load_checkpoint(args.feedforward)}
    diffusion, twin = (model_from_checkpoint(checkpoints[name]) for name in ("diffusion", "feedforward"))
    # Which weights a results file measured: the iteration each model file records.
    trained = {name: c.get("train", {}).get("iteration") for name, c in checkpoints.items()}
    classical_name, classical = classical_denoiser(args.classical)
    meta = {"diffusion": str(args.diffusion), "feedforward": str(args.feedforward), "classical": classical_name,
            "iterations_trained": trained, "torch_threads": torch.get_num_threads(), "cpu": cpu_name()}
    params = {"diffusion": sum(p.numel() for p in diffusion.parameters()),
              "feedforward": sum(p.numel() for p in twin.parameters())}
    config = diffusion.config
    rule = f"T = min({config.steps}, ratio // {config.ratio_per_step:g})" if config.ratio_per_step else f"T={config.steps}"
    default = f"ExposureDiffusion default ({rule})"
    results: dict[str, dict[str, object]] = {}
    for noise in args.noise.split(","):
        eval_set = make_eval_set(args.val, RATIOS, "sony-a7s2", noise, args.seed, args.limit)  # type: ignore[arg-type]
        subset = EvalSet(eval_set.items[:args.classical_subset * len(RATIOS)], eval_set.description)
        megapixels = {id(s): sum(4 * i.dark[0, 0].numel() for i in s.items) / 1e6 for s in (eval_set, subset)}

        def model_method(model, steps, precision="fp32"):  # type: ignore[no-untyped-def]
            g = torch.Generator().manual_seed(args.seed)
            return lambda dark, ratio, sensor: denoise(model, dark, ratio, sensor, steps, g, precision)

        methods = [("amplified input", eval_set, lambda dark, ratio, sensor: dark * ratio, 0),
                   (f"{classical_name} + Anscombe (first {args.classical_subset} images)", subset,
                    anscombe_method(classical), 0),
                   ("feed-forward twin", eval_set, model_method(twin, 0), params["feedforward"])]
        methods += [(f"ExposureDiffusion T={t}", eval_set, model_method(diffusion, t), params["diffusion"])
                    for t in DIFFUSION_STEPS]
        methods += [(f"twin iterated T={t}", eval_set, model_method(twin, t), params["feedforward"])
                    for t in DIFFUSION_STEPS[1:]]
        # The model's own default (a fixed T, or T by ratio), in fp32 and in bf16 autocast.
        methods += [(default, eval_set, model_method(diffusion, None), params["diffusion"]),
                    (f"{default}, bf16 autocast", eval_set, model_method(diffusion, None, "bf16"), params["diffusion"])]
        # The classical denoiser sees a subset only: score the learned models on the same images, so
        # the comparison with it is like for like.
        methods += [(f"{name} (first {args.classical_subset} images)", subset, method, n)
                    for name, method, n in (("amplified input", methods[0][2], 0),
                                            ("feed-forward twin", model_method(twin, 0), params["feedforward"]),
                                            (default, model_method(diffusion, None), params["diffusion"]))]
        rows = {}
        with Progress(console=Console(stderr=True), transient=True) as progress:
            for name, data, method, n_params in methods:
                task = progress.add_task(f"{noise}: {name}", total=len(data.items))
                seconds: list[float] = []
                scores = evaluate(timed(method, seconds), data, progress=lambda: progress.advance(task))
                rows[name] = {"scores": scores, "parameters": n_params,
                              "seconds_per_megapixel": sum(seconds) / megapixels[id(data)]}
        results[noise] = {"description": eval_set.description, "rows": rows,
                          "bars": bars(rows, default, classical_name, args.classical_subset)}
        for line in results[noise]["bars"]["lines"]:  # type: ignore[index]
            console.print(line)

        table = Table(title=f"CBSD68 as Sony A7S II raws, {noise.upper()} noise (PSNR dB / SSIM, packed raw)")
        for column in ["method", *(f"x{r:g}" for r in RATIOS), "parameters", "s / MP"]:
            table.add_column(column, justify="left" if column == "method" else "right")
        for name, row in rows.items():
            table.add_row(name, *(f"{row['scores'][f'x{r:g}']['psnr']:.2f} / {row['scores'][f'x{r:g}']['ssim']:.3f}"
                                  for r in RATIOS), f"{row['parameters']:,}", f"{row['seconds_per_megapixel']:.2f}")
        console.print(table)
        write(args.out, results, meta, args.seed)
        console.print(f"wrote {args.out} and its .md and _steps.png")


def write(out: Path, results: dict[str, dict[str, object]], meta: dict[str, object], seed: int) -> None:
    """JSON, a Markdown table and the steps figure; rewritten after each noise model, so the first
    table lands before the second is done."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    lines = []
    for noise, result in results.items():
        lines += [f"**{noise.upper()} noise** (Sony A7S II profile, seed {seed})", "",
                  "| method | " + " | ".join(f"x{r:g}" for r in RATIOS) + " | parameters | s / MP |",
                  "|---" * (len(RATIOS) + 3) + "|"]
        for name, row in result["rows"].items():  # type: ignore[union-attr]
            cells = [f"{row['scores'][f'x{r:g}']['psnr']:.2f} / {row['scores'][f'x{r:g}']['ssim']:.3f}" for r in RATIOS]
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {row['parameters']:,} | {row['seconds_per_megapixel']:.2f} |")
        lines += [""] + [f"- {line}" for line in result["bars"]["lines"]] + [""]  # type: ignore[index]
    out.with_suffix(".md").write_text("\n".join(lines))
    plot_steps(results, out.with_name(out.stem + "_steps.png"))


def bars(rows: dict[str, dict], ed: str, classical: str, subset: int) -> dict[str, object]:
    """Issue 3's bars, measured: ExposureDiffusion ``ed`` at its default T against the twin (at least
    0.3 dB above at x250 and x300, not below at x100), against the classical denoiser on the same
    images (at least 2 dB above at every ratio), and its loss from its best T to T = 10 beside the
    iterated twin's (no collapse)."""
    def score(name: str, ratio: float) -> float:
        return rows[name]["scores"][f"x{ratio:g}"]["psnr"]

    lines, checks = [], {}
    for r in RATIOS:
        gain = score(ed, r) - score("feed-forward twin", r)
        need = 0.0 if r == RATIOS[0] else 0.3
        checks[f"twin x{r:g}"] = gain >= need
        lines.append(f"x{r:g}: the default {gain:+.2f} dB against the twin (bar {need:+.1f}): "
                     f"{'holds' if gain >= need else 'missed'}")
    for r in RATIOS:
        gain = score(f"{ed} (first {subset} images)", r) - score(f"{classical} + Anscombe (first {subset} images)", r)
        checks[f"classical x{r:g}"] = gain >= 2.0
        lines.append(f"x{r:g}: the default {gain:+.2f} dB against {classical} on its {subset} images (bar +2.0): "
                     f"{'holds' if gain >= 2.0 else 'missed'}")
    for r in RATIOS:
        curve = [score(f"ExposureDiffusion T={t}", r) for t in DIFFUSION_STEPS]
        twin = [score("feed-forward twin", r)] + [score(f"twin iterated T={t}", r) for t in DIFFUSION_STEPS[1:]]
        drop, twin_drop = max(curve) - curve[-1], max(twin) - twin[-1]
        checks[f"T=10 x{r:g}"] = drop < twin_drop
        lines.append(f"x{r:g}: from its best T to T=10 ExposureDiffusion loses {drop:.2f} dB, "
                     f"the iterated twin {twin_drop:.2f} dB")
    return {"checks": checks, "lines": lines}


def plot_steps(results: dict[str, dict[str, object]], path: Path) -> None:
    """PSNR against the number of steps T (the paper's Fig. 6), per noise model and ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, (noise, result) in zip(axes[0], results.items()):
        rows = result["rows"]  # type: ignore[index]
        for ratio, colour in zip(RATIOS, ("C0", "C1", "C2")):
            key = f"x{ratio:g}"
            ed = [rows[f"ExposureDiffusion T={t}"]["scores"][key]["psnr"] for t in DIFFUSION_STEPS]
            twin = [rows["feed-forward twin"]["scores"][key]["psnr"]] + \
                   [rows[f"twin iterated T={t}"]["scores"][key]["psnr"] for t in DIFFUSION_STEPS[1:]]
            ax.plot(DIFFUSION_STEPS, ed, "o-", color=colour, label=f"ExposureDiffusion {key}")
            ax.plot(DIFFUSION_STEPS, twin, "s--", color=colour, alpha=0.6, label=f"twin iterated {key}")
        ax.set(title=f"{noise.upper()} noise", xlabel="exposure steps T", ylabel="PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
