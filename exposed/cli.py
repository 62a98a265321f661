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
