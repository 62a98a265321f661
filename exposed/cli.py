"""The ``exposed`` command line: a thin layer over the Python API."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from exposed import __version__
from exposed.cameras import CAMERAS
from exposed.noise import NOISE_MODELS

err = Console(stderr=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="exposed")
def main() -> None:
    """Enhance dark raw photos with a physics-based progressive denoiser."""


@main.command()
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("exposed-demo"),
              show_default=True, help="Folder for the demo's images.")
@click.option("--ratio", type=click.FloatRange(min=1.0), default=100.0, show_default=True,
              help="How many times darker the simulated shot is than the reference.")
@click.option("--iso", type=click.FloatRange(min=50.0), default=3200.0, show_default=True)
@click.option("--camera", type=click.Choice(sorted(CAMERAS)), default="sony-a7s2", show_default=True)
@click.option("--noise", "noise_model", type=click.Choice(NOISE_MODELS), default="pg", show_default=True,
              help="pg: Poisson-Gaussian; eld: Poisson, row, Tukey-lambda and quantisation noise.")
@click.option("--seed", type=int, default=0, show_default=True)
def demo(output: Path, ratio: float, iso: float, camera: str, noise_model: str, seed: int) -> None:
    """Simulate a dark shot of a built-in scene with a real camera's noise."""
    from exposed.demo import run_demo

    result = run_demo(output, ratio=ratio, iso=iso, camera=camera, model=noise_model, seed=seed)  # type: ignore[arg-type]
    n = result.noise
    err.print(f"{camera} at ISO {iso:g}: K = {n.K.item():.3f} DN/e-, read sigma = {n.read_sigma.item():.2f} DN, "
              f"shot {ratio:g}x darker than the reference")
    table = Table(title="Noise on the grey patches: measured against K * signal + read variance")
    for column in ("signal (DN)", "measured variance", "expected variance", "ratio"):
        table.add_column(column, justify="right")
    for g in result.grey_patches:
        table.add_row(f"{g['signal_dn']:.1f}", f"{g['measured_var']:.1f}", f"{g['expected_var']:.1f}",
                      f"{g['measured_var'] / g['expected_var']:.3f}")
    Console().print(table)
    err.print(f"amplified without denoising: {result.amplified_psnr:.2f} dB PSNR on the packed raw")
    for path in result.files:
        err.print(f"wrote {path}")


def _train_options(function):  # type: ignore[no-untyped-def]
    """One --option per TrainConfig setting, so the file and the command line share their names."""
    from dataclasses import fields

    from exposed.train import TrainConfig

    for f in reversed(fields(TrainConfig)):
        kind = {int: int, float: float, str: str}[type(f.default)]
        function = click.option(f"--{f.name.replace('_', '-')}", f.name, type=kind, default=None,
                                help=f"(default {f.default})")(function)
    return function


@main.command()
@click.option("-c", "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML file of settings; options given here override it.")
@_train_options
def train(config_path: Path | None, **settings: object) -> None:
    """Train ExposureDiffusion or its feed-forward twin; resumes from OUT/last.pt."""
    from exposed.train import load_config, train as run

    try:
        config = load_config(config_path, **settings)
    except (ValueError, TypeError, OSError) as error:
        raise click.UsageError(str(error)) from None
    try:
        err.print(f"checkpoint: {run(config)}")
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None


def _ratios(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        ratios = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter("a comma-separated list of numbers, e.g. 100,250,300") from None
    if any(r <= 0 for r in ratios):
        raise click.BadParameter("ratios must be positive")
    return ratios


@main.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-m", "--model", "models", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Checkpoint to evaluate (repeat for several); default: the shipped model.")
@click.option("--ratios", default="100,250,300", show_default=True, callback=_ratios)
@click.option("--camera", default="sony-a7s2", show_default=True, help="Noise profile, or 'virtual'.")
@click.option("--noise", "noise_model", type=click.Choice(NOISE_MODELS), default="pg", show_default=True)
@click.option("--steps", type=click.IntRange(min=0), help="Exposure steps T (default: each model's own).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the test set's noise and of inference.")
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N images.")
@click.option("--crop", type=click.IntRange(min=32), help="Centre crop of N raw pixels instead of whole images.")
@click.option("--precision", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or mps.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results here: .json or .csv.")
def evaluate(folder: Path, models: tuple[Path, ...], ratios: tuple[float, ...], camera: str, noise_model: str,
             steps: int | None, seed: int, limit: int | None, crop: int | None, precision: str, device: str,
             output: Path | None) -> None:
    """PSNR / SSIM on synthetic dark raws made from the clean images in FOLDER (no rescaling)."""
    import torch
    from rich.progress import Progress

    from exposed.checkpoint import default_model_path, load_model
    from exposed.evaluate import evaluate as run, make_eval_set, write_results
    from exposed.infer import denoise, pick_device

    dev = pick_device(device)
    eval_set = make_eval_set(folder, ratios, camera, noise_model, seed, limit, crop)  # type: ignore[arg-type]
    rows = {}
    with Progress(console=err, transient=True) as progress:
        for path in models or (default_model_path(),):
            model = load_model(path, dev)
            task = progress.add_task(path.name, total=len(eval_set.items))
            generator = torch.Generator(device=dev).manual_seed(seed)
            rows[str(path) if models else path.name] = run(lambda dark, ratio, sensor: denoise(model, dark, ratio, sensor, steps, generator,
                                                                        precision),  # type: ignore[arg-type]
                                  eval_set, dev, progress=lambda: progress.advance(task))
    table = Table(title=f"{folder.name}: {camera} {noise_model} noise, seed {seed} (PSNR dB / SSIM, packed raw)")
    table.add_column("model")
    for r in ratios:
        table.add_column(f"x{r:g}", justify="right")
    for name, scores in rows.items():
        table.add_row(name, *(f"{scores[f'x{r:g}']['psnr']:.2f} / {scores[f'x{r:g}']['ssim']:.3f}" for r in ratios))
    Console().print(table)
    if output:
        meta = dict(eval_set.description, steps=steps, precision=precision, device=str(dev))
        err.print(f"wrote {write_results(output, rows, meta)}")


@main.command()
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--fp32", is_flag=True, help="Keep float32 weights (default: float16, half the size).")
def export(checkpoint: Path, output: Path, fp32: bool) -> None:
    """Turn a training checkpoint into a model file to ship or share (no optimizer state)."""
    from exposed.checkpoint import export_model, load_checkpoint, save_checkpoint

    save_checkpoint(output, export_model(load_checkpoint(checkpoint), half=not fp32))
    err.print(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB)")
