"""The quality tables: dark raws made from CBSD68 and from real sensors, every method scored on the packed raw.

    python benchmarks/quality.py [--diffusion MODEL] [--feedforward MODEL] [--sets paper,low,night,eld2,real]
                                 [--classical auto|bm3d|nlm|wavelet] [--classical-subset 10] [--no-sweep]

Sets (each a table, with its bars checked; no output is ever rescaled with the ground truth):

- paper: CBSD68 as Sony A7S II raws at x100 / x250 / x300, P+G and ELD noise (issue 3's table):
  the amplified input; a classical denoiser after a generalised Anscombe transform (BM3D when the
  optional, non-commercially licensed ``bm3d`` package is installed, otherwise scikit-image's
  non-local means; on the first images only, as it is slow); the feed-forward twin;
  ExposureDiffusion at its default (a fixed T or T by ratio, and the blend with the brightened
  frame; see benchmarks/steps.py) in fp32 and bf16, and unblended; with the sweep, also
  ExposureDiffusion at T = 0, 1, 2, 3, 5 and 10 and the twin iterated through the process (the
  paper's Fig. 6, drawn in quality_steps.png); the learned models again on the classical
  denoiser's images, for a like-for-like comparison.
- low: the same pictures only x1 to x20 too dark, the frames most photographers call dark.
- night: the same pictures as night scenes (brighter than white, with light sources far above it,
  clipped in the dark frame; fixed seed) at x20 and x100; PSNR over the frame and in the ring
  2 to 12 pixels around the clipped lamps; side-by-side crops in quality_night.png.
- eld2: a second calibrated camera (Nikon D850) with the full ELD noise model, x100 to x300.
- real: two real sensors' mosaics (../shared/data/raw: Blackmagic Pocket 4K, Canon EOS 550D) as
  the reference, darkened with the A7S II's P+G noise from x2 to x300.

Writes benchmarks/results/quality.json, quality.md and the figures. The classical denoiser's rows
measure no model, so a rerun takes them from the results file when it scored the same set (same
images, ratios, seed, camera and noise) with the same denoiser; ``--fresh`` computes them again.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from collections.abc import Callable

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from exposed.denoise.checkpoint import model_from_checkpoint
from exposed.io.checkpoint import load_checkpoint
from exposed.modes import default_model_path
from exposed.training.evaluate import EvalSet, evaluate, make_eval_set, make_raw_set
from exposed.denoise.infer import denoise
from exposed.exposure import brighten
from exposed.training.night import NightScenes
from exposed.sensor.noise import SensorScale
from speed import cpu_name  # benchmarks/, the script's own folder

ROOT = Path(__file__).resolve().parents[1]
VAL = ROOT.parent / "shared" / "data" / "images" / "val" / "CBSD68"
RAWS = [ROOT.parent / "shared" / "data" / "raw" / name
        for name in ("blackmagic-pocket-4k.dng", "canon-eos-kiss-x4-colorchart-crop.dng")]
PAPER_RATIOS = (100.0, 250.0, 300.0)
LOW_RATIOS = (1.0, 2.0, 5.0, 10.0, 20.0)
NIGHT_RATIOS = (20.0, 100.0)
REAL_RATIOS = (2.0, 5.0, 20.0, 100.0, 300.0)
DIFFUSION_STEPS = (0, 1, 2, 3, 5, 10)
SECOND_CAMERA = "nikon-d850"
NIGHT_SEED = 13
AMPLIFY, TWIN, CLASSICAL = "amplified input", "feed-forward twin", "{} + Anscombe"
Method = Callable[[torch.Tensor, torch.Tensor, SensorScale], torch.Tensor]


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
    Photosites clipped in the dark frame stay white, as in every exposed mode.
    """
    def method(dark: torch.Tensor, ratio: torch.Tensor, sensor: SensorScale) -> torch.Tensor:
        gain, read = sensor.gain.item(), sensor.read_var.item() / sensor.gain.item() ** 2
        d = 2.0 * np.sqrt(np.maximum(dark[0].double().numpy() / gain + read + 3.0 / 8.0, 0.0))
        d = np.stack([denoiser(channel) for channel in d])
        d = np.maximum(d, 2.0 * math.sqrt(3.0 / 8.0))
        c = math.sqrt(1.5)
        y = d**2 / 4 + c / 4 / d - 11 / 8 / d**2 + 5 / 8 * c / d**3 - 1 / 8
        electrons = np.maximum(y - read, 0.0)
        out = torch.from_numpy(electrons * gain * ratio.item())[None].float()
        return out.masked_fill(dark >= 1.0, 1.0)
    return method


def amplify(dark: torch.Tensor, ratio: torch.Tensor, sensor: SensorScale) -> torch.Tensor:
    """Plain brightening, as ``--mode amplify`` does it."""
    return brighten(dark, ratio)


def timed(method, seconds: list[float]):  # type: ignore[no-untyped-def]
    def run(*args):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        out = method(*args)
        seconds.append(time.perf_counter() - start)
        return out
    return run


def score(methods: list[tuple[str, EvalSet, Method, int]], label: str,
          known: dict[str, dict] | None = None) -> dict[str, dict]:
    """Every method on its set: scores per ratio, parameters and seconds per raw megapixel; rows in
    ``known`` (measured before on the same set) are taken as they are."""
    rows = {}
    with Progress(console=Console(stderr=True), transient=True) as progress:
        for name, data, method, n_params in methods:
            if known and name in known:
                rows[name] = known[name]
                continue
            task = progress.add_task(f"{label}: {name}", total=len(data.items))
            seconds: list[float] = []
            scores = evaluate(timed(method, seconds), data, progress=lambda: progress.advance(task))
            megapixels = sum(4 * i.dark[0, 0].numel() for i in data.items) / 1e6
            rows[name] = {"scores": scores, "parameters": n_params, "seconds_per_megapixel": sum(seconds) / megapixels}
    return rows


def psnr_of(rows: dict[str, dict], name: str, ratio: float, key: str = "psnr") -> float:
    return rows[name]["scores"][f"x{ratio:g}"][key]


def check(lines: list[str], checks: dict[str, bool], name: str, gain: float, need: float, what: str) -> None:
    holds = gain >= need
    checks[name] = holds
    lines.append(f"{name}: the default {gain:+.2f} dB against {what} (bar {need:+.2f}): "
                 f"{'holds' if holds else 'missed'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--diffusion", type=Path, default=default_model_path())
    parser.add_argument("--feedforward", type=Path, default=default_model_path("feedforward-unet16.pt"))
    parser.add_argument("--val", type=Path, default=VAL)
    parser.add_argument("--sets", default="paper,low,night,eld2,real", help="which tables, comma-separated")
    parser.add_argument("--noise", default="pg,eld", help="the paper set's noise models, comma-separated")
    parser.add_argument("--classical", default="auto", choices=["auto", "bm3d", "nlm", "wavelet"])
    parser.add_argument("--classical-subset", type=int, default=10, help="images the classical denoiser sees")
    parser.add_argument("--no-sweep", dest="sweep", action="store_false",
                        help="skip the T = 0 .. 10 curves of the paper set (most of its time)")
    parser.add_argument("--limit", type=int, help="use only the first N images for every method")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="score the classical denoiser again, not from --out")
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
    rule = (f"T = min({config.steps}, ratio // {config.ratio_per_step:g})" if config.ratio_per_step
            else f"T={config.steps}")
    default = f"ExposureDiffusion default ({rule}{', Wiener-blended' if config.wiener_stride else ''})"
    n_sub = args.classical_subset
    bm3d_row = f"{CLASSICAL.format(classical_name)} (first {n_sub} images)"

    def model_method(model, steps, precision="fp32", blend=True):  # type: ignore[no-untyped-def]
        g = torch.Generator().manual_seed(args.seed)
        return lambda dark, ratio, sensor: denoise(model, dark, ratio, sensor, steps, g, precision, blend=blend)

    def core(data: EvalSet, classical_too: bool = True) -> list[tuple[str, EvalSet, Method, int]]:
        """amplify, the twin and the default on every image; the classical denoiser and the same three
        on its subset."""
        subset = EvalSet(data.items[:n_sub * len(data.description["ratios"])], data.description)  # type: ignore[arg-type]
        methods = [(AMPLIFY, data, amplify, 0), (TWIN, data, model_method(twin, 0), params["feedforward"]),
                   (default, data, model_method(diffusion, None), params["diffusion"])]
        if classical_too:
            methods += [(bm3d_row, subset, anscombe_method(classical), 0)]
            methods += [(f"{name} (first {n_sub} images)", subset, method, n) for name, _, method, n in methods[:3]]
        return methods

    results: dict[str, dict[str, object]] = {}
    earlier = json.loads(args.out.read_text()) if args.out.exists() else {}
    if all(earlier.get("meta", {}).get(k) == meta[k] for k in ("diffusion", "feedforward", "iterations_trained")):
        results = dict(earlier["results"])  # rerunning some sets keeps the others, when they measured the same models

    def classical_rows(key: str, data: EvalSet) -> dict[str, dict]:
        """The classical denoiser's row from the results file, if it scored this very set."""
        old = earlier.get("results", {}).get(key)
        same = (old is not None and not args.fresh and earlier["meta"].get("classical") == classical_name
                and json.loads(json.dumps(data.description)) == old["description"])
        return {bm3d_row: old["rows"][bm3d_row]} if same and bm3d_row in old["rows"] else {}
    sets = args.sets.split(",")
    for noise in args.noise.split(",") if "paper" in sets else []:
        data = make_eval_set(args.val, PAPER_RATIOS, "sony-a7s2", noise, args.seed, args.limit)  # type: ignore[arg-type]
        methods = core(data)
        methods.insert(3, (f"{default}, bf16 autocast", data, model_method(diffusion, None, "bf16"),
                           params["diffusion"]))
        if config.wiener_stride:
            methods.insert(3, (f"{default}, not blended", data, model_method(diffusion, None, blend=False),
                               params["diffusion"]))
        if args.sweep:
            methods += [(f"ExposureDiffusion T={t}", data, model_method(diffusion, t), params["diffusion"])
                        for t in DIFFUSION_STEPS]
            methods += [(f"twin iterated T={t}", data, model_method(twin, t), params["feedforward"])
                        for t in DIFFUSION_STEPS[1:]]
        rows = score(methods, f"paper {noise}", classical_rows(f"paper-{noise}", data))
        lines: list[str] = []
        checks: dict[str, bool] = {}
        for r in PAPER_RATIOS:
            if noise == "pg":
                check(lines, checks, f"pg x{r:g} vs twin", psnr_of(rows, default, r) - psnr_of(rows, TWIN, r),
                      0.0 if r == PAPER_RATIOS[0] else 0.3, "the twin")
            else:
                check(lines, checks, f"{noise} x{r:g} vs {classical_name}",
                      psnr_of(rows, f"{default} (first {n_sub} images)", r) - psnr_of(rows, bm3d_row, r), 1.0,
                      f"{classical_name} on its {n_sub} images")
        if args.sweep:
            for r in PAPER_RATIOS:
                curve = [psnr_of(rows, f"ExposureDiffusion T={t}", r) for t in DIFFUSION_STEPS]
                iterated = [psnr_of(rows, TWIN, r)] + [psnr_of(rows, f"twin iterated T={t}", r)
                                                       for t in DIFFUSION_STEPS[1:]]
                lines.append(f"x{r:g}: from its best T to T=10 ExposureDiffusion loses "
                             f"{max(curve) - curve[-1]:.2f} dB, "
                             f"the iterated twin {max(iterated) - iterated[-1]:.2f} dB")
        results[f"paper-{noise}"] = {"title": f"CBSD68 as Sony A7S II raws, {noise.upper()} noise",
                                     "description": data.description, "rows": rows,
                                     "bars": {"checks": checks, "lines": lines}}
        report(console, results, f"paper-{noise}", args.out, meta)

    if "low" in sets:
        data = make_eval_set(args.val, LOW_RATIOS, "sony-a7s2", "pg", args.seed, args.limit)
        rows = score(core(data), "low", classical_rows("low", data))
        lines, checks = [], {}
        for r in LOW_RATIOS:
            need = -0.05 if r < 10 else 2.0
            check(lines, checks, f"low x{r:g} vs amplify", psnr_of(rows, default, r) - psnr_of(rows, AMPLIFY, r), need,
                  "plain brightening")
        results["low"] = {"title": "CBSD68 as Sony A7S II raws, P+G noise, a few stops dark",
                          "description": data.description, "rows": rows, "bars": {"checks": checks, "lines": lines}}
        report(console, results, "low", args.out, meta)

    if "night" in sets:
        data = make_eval_set(args.val, NIGHT_RATIOS, "sony-a7s2", "pg", NIGHT_SEED, args.limit,
                             night=NightScenes(share=1.0))
        rows = score(core(data), "night", classical_rows("night", data))
        lines, checks = [], {}
        for r in NIGHT_RATIOS:
            check(lines, checks, f"night x{r:g} vs amplify", psnr_of(rows, default, r) - psnr_of(rows, AMPLIFY, r),
                  3.0 if r == 100 else 0.0, "plain brightening, whole frame")
            check(lines, checks, f"night x{r:g} ring vs amplify",
                  psnr_of(rows, default, r, "ring_psnr") - psnr_of(rows, AMPLIFY, r, "ring_psnr"),
                  1.0 if r == 100 else 0.0, "plain brightening, around the lamps")
        results["night"] = {"title": "CBSD68 as night scenes with lamps, Sony A7S II P+G noise",
                            "description": data.description, "rows": rows, "bars": {"checks": checks, "lines": lines}}
        report(console, results, "night", args.out, meta)
        night_crops(data, [(AMPLIFY, amplify), (TWIN, model_method(twin, 0)),
                           ("default", model_method(diffusion, None))],
                    args.out.with_name(args.out.stem + "_night.png"))

    if "eld2" in sets:
        data = make_eval_set(args.val, PAPER_RATIOS, SECOND_CAMERA, "eld", args.seed, args.limit)
        rows = score(core(data), "eld2", classical_rows("eld2", data))
        lines, checks = [], {}
        for r in PAPER_RATIOS:
            check(lines, checks, f"{SECOND_CAMERA} eld x{r:g} vs {classical_name}",
                  psnr_of(rows, f"{default} (first {n_sub} images)", r) - psnr_of(rows, bm3d_row, r), 1.0,
                  f"{classical_name} on its {n_sub} images")
        results["eld2"] = {"title": f"CBSD68 as {SECOND_CAMERA} raws, ELD noise", "description": data.description,
                           "rows": rows, "bars": {"checks": checks, "lines": lines}}
        report(console, results, "eld2", args.out, meta)

    if "real" in sets and all(p.exists() for p in RAWS):
        data = make_raw_set(RAWS, REAL_RATIOS, "sony-a7s2", "pg", args.seed)
        rows = score(core(data, classical_too=False), "real")
        lines, checks = [], {}
        for r in REAL_RATIOS:
            check(lines, checks, f"real x{r:g} vs amplify", psnr_of(rows, default, r) - psnr_of(rows, AMPLIFY, r), 0.0,
                  "plain brightening")
        results["real"] = {"title": "Real sensors' mosaics (Blackmagic, Canon 550D) darkened, A7S II P+G noise",
                           "description": data.description, "rows": rows, "bars": {"checks": checks, "lines": lines}}
        report(console, results, "real", args.out, meta)
    if args.sweep and any(k.startswith("paper") for k in results):
        plot_steps(results, args.out.with_name(args.out.stem + "_steps.png"))


def _cell(row: dict, ratio: str) -> str:
    s = row["scores"][ratio]
    ring = f" (ring {s['ring_psnr']:.2f})" if "ring_psnr" in s else ""
    return f"{s['psnr']:.2f} / {s['ssim']:.3f}{ring}"


def report(console: Console, results: dict[str, dict], key: str, out: Path, meta: dict[str, object]) -> None:
    """Print one set's table and bars, and rewrite the JSON and Markdown with every set so far."""
    result = results[key]
    ratios = [f"x{r:g}" for r in result["description"]["ratios"]]  # type: ignore[index]
    table = Table(title=f"{result['title']} (PSNR dB / SSIM, packed raw)")
    for column in ["method", *ratios, "s / MP"]:
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, row in result["rows"].items():  # type: ignore[union-attr]
        table.add_row(name, *(_cell(row, r) for r in ratios), f"{row['seconds_per_megapixel']:.2f}")
    console.print(table)
    for line in result["bars"]["lines"]:  # type: ignore[index]
        console.print(line)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    lines = [f"Models: {meta['diffusion']} and {meta['feedforward']} (iterations {meta['iterations_trained']}); "
             f"{meta['cpu']}.", ""]
    for result in results.values():
        ratios = [f"x{r:g}" for r in result["description"]["ratios"]]  # type: ignore[index]
        lines += [f"**{result['title']}** (seed {result['description']['seed']})", "",  # type: ignore[index]
                  "| method | " + " | ".join(ratios) + " | s / MP |", "|---" * (len(ratios) + 2) + "|"]
        for name, row in result["rows"].items():  # type: ignore[union-attr]
            lines.append(f"| {name} | " + " | ".join(_cell(row, r) for r in ratios) +
                         f" | {row['seconds_per_megapixel']:.2f} |")
        lines += [""] + [f"- {line}" for line in result["bars"]["lines"]] + [""]  # type: ignore[index]
    out.with_suffix(".md").write_text("\n".join(lines))
    console.print(f"wrote {out} and {out.with_suffix('.md').name}")


def _render(packed: torch.Tensor) -> np.ndarray:
    """A packed raw as a quick sRGB picture for looking at: typical daylight gains, sRGB-like gamma."""
    rgb = torch.stack([packed[0] * 2.0, (packed[1] + packed[2]) / 2, packed[3] * 1.7]).clamp(0, 1) ** (1 / 2.2)
    return (rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def night_crops(data: EvalSet, methods: list[tuple[str, Method]], path: Path, count: int = 4, size: int = 96) -> None:
    """Side-by-side crops around the brightest lamp of the first x100 night scenes: the dark input as
    it is, each method, and the reference, so halos or their absence can be seen."""
    import imageio.v3 as iio

    tiles = []
    items = [i for i in data.items if i.ratio == 100.0 and (i.dark >= 1).any()][:count]
    for item in items:
        sat = (item.dark >= 1).any(1)[0].float()
        y, x = divmod(int(sat.flatten().argmax()), sat.shape[1])
        top = min(max(y - size // 2, 0), max(sat.shape[0] - size, 0))
        left = min(max(x - size // 2, 0), max(sat.shape[1] - size, 0))
        def crop(packed: torch.Tensor) -> np.ndarray:
            return _render(packed[0, :, top:top + size, left:left + size])

        ratio, sensor = torch.tensor([item.ratio]), item.sensor
        outputs = [crop(m(item.dark, ratio, sensor).clamp(0, 1)) for _, m in methods]
        row = [crop(item.dark), *outputs, crop(item.clean)]
        tiles.append(np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0))) for t in row], axis=1))
    if tiles:
        iio.imwrite(path, np.concatenate(tiles, axis=0))
        (path.with_suffix(".txt")).write_text("columns: dark input, " + ", ".join(n for n, _ in methods) +
                                              ", reference; rows: the first x100 night scenes, "
                                              "around their brightest lamp\n")


def plot_steps(results: dict[str, dict[str, object]], path: Path) -> None:
    """PSNR against the number of steps T (the paper's Fig. 6), per noise model and ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    papers = {k: v for k, v in results.items() if k.startswith("paper")}
    fig, axes = plt.subplots(1, len(papers), figsize=(6 * len(papers), 4), squeeze=False)
    for ax, result in zip(axes[0], papers.values()):
        rows = result["rows"]  # type: ignore[index]
        for ratio, colour in zip(PAPER_RATIOS, ("C0", "C1", "C2")):
            ed = [psnr_of(rows, f"ExposureDiffusion T={t}", ratio) for t in DIFFUSION_STEPS]  # type: ignore[arg-type]
            iterated = [psnr_of(rows, TWIN, ratio)] + [psnr_of(rows, f"twin iterated T={t}", ratio)  # type: ignore[arg-type]
                                                       for t in DIFFUSION_STEPS[1:]]
            ax.plot(DIFFUSION_STEPS, ed, "o-", color=colour, label=f"ExposureDiffusion x{ratio:g}")
            ax.plot(DIFFUSION_STEPS, iterated, "s--", color=colour, alpha=0.6, label=f"twin iterated x{ratio:g}")
        ax.set(title=str(result["title"]), xlabel="exposure steps T", ylabel="PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
