"""The ``exposed`` command line: a thin layer over the Python API."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from exposed import __version__
from exposed.batch.heap import keep_freed_memory
from exposed.modes import MODES, RAW_MODES, Mode
from exposed.sensor.noise_kinds import NOISE_MODELS, NoiseModel

if TYPE_CHECKING:  # these import torch (and the pipeline rawpy): not for --help
    from collections.abc import Callable

    from torch import Tensor

    from exposed.denoise.infer import Precision
    from exposed.denoise.model import ExposureModel
    from exposed.sensor.noise import SensorScale
    from exposed.pipeline import DngLayout, Isp

    Command = Callable[..., Any]

err = Console(stderr=True, soft_wrap=True, emoji=False)  # ":thumbs_up:" in a file name stays text


def entry() -> None:
    """The ``exposed`` program (the console script and ``python -m exposed``).

    Its heap keeps freed frames for the next (:mod:`exposed.batch.heap`: a fault per page of every
    new frame-sized array costs half a second a photo).

    Once the command is over, every file written whole and every temporary removed, the process
    ends without the interpreter's teardown: freeing torch's many thousand objects one by one takes
    0.3 to 0.6 s, which a photographer would wait for nothing (benchmarks/results/speed.md). The
    exit handlers still run (what ``atexit`` registered) and the standard streams are flushed; a
    closed pipe on them makes the status 1, as Python's own exit would report it. From then on
    SIGTERM and SIGHUP are ignored: the exit status is the command's own, never a death by a signal
    after the work is done. An exception that escapes the command (a bug) leaves the ordinary way."""
    keep_freed_memory()
    try:
        main(prog_name="exposed")  # click's standalone mode ends in SystemExit, whatever happened
    except SystemExit as done:
        status = _exit_status(done.code)
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
    atexit._run_exitfuncs()  # what the interpreter's exit runs first (logging's flush, finalizers)
    for stream in (sys.stdout, sys.stderr):  # None: the shell started exposed with it closed (>&-)
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a reader that went away (``exposed ... | head``), a closed stream
            status = status or 1
    os._exit(status)


def _exit_status(code: object) -> int:
    """The process status of a SystemExit's code, as the interpreter maps it: None is 0, a
    message is printed and gives 1."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)
    return 1


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="exposed")
def main() -> None:
    """Enhance dark raw photos with a physics-based progressive denoiser."""


def _camera(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A calibrated camera's name, checked when the command runs: the profiles are tensor code,
    which ``exposed enhance`` should not load to build its options."""
    from exposed.sensor.cameras import CAMERAS

    if value not in CAMERAS:
        raise click.BadParameter(f"{value!r} is not one of {', '.join(sorted(CAMERAS))}")
    return value


@main.command()
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), default=Path("exposed-demo"),
              show_default=True, help="Folder for the demo's images.")
@click.option("--ratio", type=click.FloatRange(min=1.0), default=100.0, show_default=True,
              help="How many times darker the simulated shot is than the reference.")
@click.option("--iso", type=click.FloatRange(min=50.0), default=3200.0, show_default=True)
@click.option("--camera", default="sony-a7s2", show_default=True, callback=_camera,
              help="A calibrated camera's noise (an unknown name lists them).")
@click.option("--noise", "noise_model", type=click.Choice(NOISE_MODELS), default="pg", show_default=True,
              help="pg: Poisson-Gaussian; eld: Poisson, row, Tukey-lambda and quantisation noise.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--mode", type=click.Choice(RAW_MODES), default="diffusion",
              show_default=True, help="How to enhance the dark shot.")
def demo(output: Path, ratio: float, iso: float, camera: str, noise_model: NoiseModel, seed: int, mode: Mode) -> None:
    """Make a dark raw (DNG) of a built-in scene with a real camera's noise, and enhance it."""
    from exposed.demo import run_demo

    result = run_demo(output, ratio=ratio, iso=iso, camera=camera, model=noise_model, seed=seed, mode=mode)
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
    err.print(f"against the full exposure (sRGB PSNR): brightened only {result.psnr['amplified']:.2f} dB, "
              f"exposed --mode {mode} {result.psnr['enhanced']:.2f} dB")
    for path in result.files:
        err.print(f"wrote {path}")


def _train_options(function: Command) -> Command:
    """One --option per TrainConfig setting, so the file and the command line share their names."""
    from dataclasses import fields

    from exposed.training.config import TrainConfig

    for f in reversed(fields(TrainConfig)):
        kind = {int: int, float: float, str: str, bool: click.BOOL, tuple: str}[type(f.default)]
        function = click.option(f"--{f.name.replace('_', '-')}", f.name, type=kind, default=None,
                                help=f"(default {f.default})")(function)
    return function


@main.command()
@click.option("-c", "--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TOML file of settings; options given here override it.")
@_train_options
def train(config_path: Path | None, **settings: object) -> None:
    """Train ExposureDiffusion or its feed-forward twin; resumes from OUT/last.pt."""
    from exposed.training.config import load_config
    from exposed.training.train import train as run

    try:
        config = load_config(config_path, **settings)
    except (ValueError, TypeError, OSError) as error:
        raise click.UsageError(str(error)) from None
    try:
        err.print(f"checkpoint: {run(config)}")
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None


@main.command("train-reference")
@click.option("--images", default="../shared/data/images/train", show_default=True, help="Folder of clean photographs.")
@click.option("--val-images", default="../shared/data/images/val", show_default=True)
@click.option("--out", default="runs/reference", show_default=True, help="Run folder; resumes from OUT/last.pt.")
@click.option("--iterations", type=click.IntRange(min=1), default=4000, show_default=True)
@click.option("--width", type=click.IntRange(min=4), default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--camera-share", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              help="Share of each batch that is dim camera photos (a short raw exposure developed like a JPEG) "
                   "rather than gamma-darkened ones.")
@click.option("--chroma-weight", type=click.FloatRange(min=0.0), default=0.0, show_default=True,
              help="Weight of an L1 loss on chroma beside the RGB one (against washed-out colour).")
def train_reference(images: str, val_images: str, out: str, iterations: int, width: int, seed: int,
                    camera_share: float, chroma_weight: float) -> None:
    """Train the GP mode's reference CNN on darkened photographs; writes OUT/reference.pt."""
    from exposed.gp.reference import ReferenceConfig, train_reference as run

    config = ReferenceConfig(images=images, val_images=val_images, out=out, iterations=iterations, width=width,
                             seed=seed, camera_share=camera_share, chroma_weight=chroma_weight)
    try:
        err.print(f"wrote {run(config, log=err.print)}")
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None


@main.command()
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default="../shared/data/images/train", show_default=True, help="Folder of clean photographs.")
@click.option("--max-mb", type=click.FloatRange(min=0.01), default=40.0, show_default=True,
              help="Size limit of the pack (MB).")
@click.option("--seed", type=int, default=0, show_default=True, help="Which subset, when not all fit.")
def pack(output: Path, images: Path, max_mb: float, seed: int) -> None:
    """Write training images into one tar file (a seeded subset up to --max-mb) that `exposed train
    --images OUTPUT` reads: a training set that travels with a working tree."""
    from exposed.training.pack import write_pack

    if output.suffix.lower() != ".tar":
        raise click.BadParameter("a pack is a .tar file", param_hint="OUTPUT")
    try:
        names = write_pack(images, output, int(max_mb * 1e6), seed)
    except (ValueError, FileNotFoundError) as error:
        raise click.ClickException(str(error)) from None
    err.print(f"wrote {output}: {len(names)} images, {output.stat().st_size / 1e6:.1f} MB")


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
def evaluate(folder: Path, models: tuple[Path, ...], ratios: tuple[float, ...], camera: str, noise_model: NoiseModel,
             steps: int | None, seed: int, limit: int | None, crop: int | None, precision: Precision, device: str,
             output: Path | None) -> None:
    """PSNR / SSIM on synthetic dark raws made from the clean images in FOLDER (no rescaling)."""
    import torch
    from rich.progress import Progress, TaskID

    from exposed.denoise.checkpoint import load_model
    from exposed.modes import default_model_path
    from exposed.training.evaluate import evaluate as run, make_eval_set, write_results
    from exposed.denoise.infer import denoise, pick_device

    dev = pick_device(device)
    eval_set = make_eval_set(folder, ratios, camera, noise_model, seed, limit, crop)
    rows = {}
    with Progress(console=err, transient=True) as progress:
        for path in models or (default_model_path(),):
            model = load_model(path, dev)
            task = progress.add_task(path.name, total=len(eval_set.items))
            generator = torch.Generator(device=dev).manual_seed(seed)
            def method(dark: Tensor, ratio: Tensor, sensor: SensorScale, model: ExposureModel = model,
                       generator: torch.Generator = generator) -> Tensor:
                return denoise(model, dark, ratio, sensor, steps, generator, precision)

            def advance(task: TaskID = task) -> None:
                progress.advance(task)

            rows[str(path) if models else path.name] = run(method, eval_set, dev, progress=advance)
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
@click.option("--steps", type=click.IntRange(min=0),
              help="Default exposure steps T at inference (default: as trained).")
@click.option("--ratio-per-step", type=click.FloatRange(min=0), default=None,
              help="Exposure ratio one default step covers, T = min(steps, ratio // this); 0: always --steps. "
                   "Choose it with benchmarks/steps.py.")
@click.option("--snr-per-step", type=click.FloatRange(min=0), default=None,
              help="Signal-to-noise ratio a default step is for, T <= this // the frame's SNR; 0: the ratio alone. "
                   "Choose it with benchmarks/steps_snr.py.")
@click.option("--wiener-stride", type=click.Choice(["0", "1", "2", "4", "8"]), default=None,
              help="Blend with the brightened frame: a Wiener filter in 8 x 8 DCT blocks this many packed pixels "
                   "apart, the network's estimate its pilot; 0: none (default: as before). Choose it with "
                   "benchmarks/steps.py.")
@click.option("--dense-below", type=click.FloatRange(min=0.0), default=None,
              help="Ratios below which the blend takes twice the blocks (a quincunx at half the stride): "
                   "about 0.1 dB more for twice the blend's time; 0: never (default: as before).")
@click.option("--pilot-error", help="RATIO:VARIANCE,... the network's error variance by ratio, which the blend "
                                    "trusts its estimate with; 'none' for 0. Choose it with benchmarks/steps.py.")
@click.option("--state-high", type=click.FloatRange(min=1.0), default=None,
              help="The most the network sees of the state, in multiples of white (default: as trained). "
                   "Choose it with benchmarks/bounds.py.")
@click.option("--residual-error", type=click.FloatRange(min=0.0), default=None,
              help="The weight of each blend block's own evidence of the estimate's error (its difference from "
                   "the photo beyond the noise); 0: the --pilot-error table alone (default: as before). "
                   "Choose it with benchmarks/steps.py --residual-error.")
@click.option("--ratio-range", help="LOW:HIGH, the exposure ratios the model is offered (an automatic ratio is "
                                    "held inside them; default: the ratios it was trained on).")
def export(checkpoint: Path, output: Path, fp32: bool, steps: int | None, ratio_per_step: float | None,
           snr_per_step: float | None, wiener_stride: str | None, dense_below: float | None,
           pilot_error: str | None, state_high: float | None, residual_error: float | None,
           ratio_range: str | None) -> None:
    """Turn a training checkpoint into a model file to ship or share (no optimizer state), and,
    where OpenVINO is installed, its CPU runtime's form beside it (as `exposed convert` writes)."""
    from exposed.denoise.checkpoint import export_model
    from exposed.io.checkpoint import load_checkpoint, save_checkpoint

    save_checkpoint(output, export_model(load_checkpoint(checkpoint), half=not fp32, steps=steps,
                                         ratio_per_step=ratio_per_step, snr_per_step=snr_per_step,
                                         wiener_stride=None if wiener_stride is None else int(wiener_stride),
                                         dense_below=dense_below,
                                         pilot_error=_ratio_table(pilot_error, "--pilot-error", "RATIO:VARIANCE"),
                                         state_high=state_high, residual_error=residual_error,
                                         ratio_range=_ratio_range(ratio_range)))
    err.print(f"wrote {output} ({output.stat().st_size / 1e6:.1f} MB)")
    from exposed.denoise import openvino

    if openvino.available():  # the CPU runtime's form beside it, as the shipped models carry theirs
        xml = openvino.convert(output, output.with_suffix(".xml"))
        err.print(f"wrote {xml} and {xml.with_suffix('.bin').name} (the CPU runtime's form)")
        if openvino.int8_path(output).is_file() and openvino.int8_form(output) is None:
            err.print(f"{openvino.int8_path(output)} is of the file before, and no longer used: "
                      f"rewrite it with `exposed quantise {output} --images DIR`")


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def convert(model: Path) -> None:
    """Write the OpenVINO form of an exposure model beside it (MODEL.xml and MODEL.bin), which the CPU
    runtime then uses as it is instead of converting the model into its cache on first use."""
    from exposed.denoise.openvino import available, convert as to_openvino

    if not available():
        raise click.UsageError("OpenVINO is not installed (pip install openvino)")
    try:
        xml = to_openvino(model, model.with_suffix(".xml"))
    except ValueError as error:
        raise click.UsageError(f"{model}: {error}") from None
    err.print(f"wrote {xml} and {xml.with_suffix('.bin').name}")


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Clean pictures to calibrate on (sRGB, as for training), e.g. ../shared/data/images/train.")
@click.option("--count", type=click.IntRange(min=1), default=12, show_default=True,
              help="Pictures to calibrate on (each at nine ratios, plain and as a night scene).")
@click.option("--seed", type=int, default=7, show_default=True)
def quantise(model: Path, images: Path, count: int, seed: int) -> None:
    """Write the int8 form of an exposure model beside it (MODEL.int8.xml and .bin), which the CPU
    runtime takes on CPUs without bf16. Needs nncf (pip install nncf)."""
    from exposed.denoise.openvino import available

    if not available():
        raise click.UsageError("OpenVINO is not installed (pip install openvino)")
    try:
        from exposed.denoise.quantise import quantise as to_int8
    except ImportError as error:
        raise click.UsageError(f"{error}; quantising needs nncf (pip install nncf)") from None
    try:
        xml = to_int8(model, images, count, seed)
    except (ValueError, OSError) as error:
        raise click.UsageError(f"{model}: {error}") from None
    err.print(f"wrote {xml} and {xml.with_suffix('.bin').name}")


def _ratio_range(text: str | None) -> tuple[float, float] | None:
    """export's --ratio-range: 'LOW:HIGH' with 0 < LOW < HIGH, or None (kept)."""
    if text is None:
        return None
    try:
        low, high = (float(part) for part in text.split(":"))
    except ValueError:
        raise click.BadParameter("expected LOW:HIGH", param_hint="--ratio-range") from None
    if not 0 < low < high:
        raise click.BadParameter("expected 0 < LOW < HIGH", param_hint="--ratio-range")
    return low, high


def _ratio_table(text: str | None, option: str, form: str) -> list[tuple[float, float]] | None:
    """A by-ratio table of export's options, sorted by ratio: 'R:V,R:V', 'none' (empty) or None (kept)."""
    if text is None:
        return None
    try:
        table = [] if text == "none" else sorted((float(r), float(v)) for r, v in
                                                 (pair.split(":") for pair in text.split(",")))
    except ValueError:
        raise click.BadParameter(f"expected {form} pairs separated by commas", param_hint=option) from None
    if any(r <= 0 or v <= 0 for r, v in table):
        raise click.BadParameter("ratios and values must be positive", param_hint=option)
    return table


DNG_SUFFIX = "-exposed"  # a DNG's default name must not be its raw input's


def _format_of(output: str | None) -> str | None:
    """The format an output file name asks for (None for folders, standard output or no name)."""
    from exposed.batch.files import OUTPUT_SUFFIXES, names_a_file

    if not output or output == "-" or not names_a_file(output):
        return None
    return OUTPUT_SUFFIXES[Path(output).suffix.lower()]


def _parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` with 1 <= K <= N, as (K, N)."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected K/N, such as 2/8") from None
    if not 1 <= k <= n:
        raise click.BadParameter(f"{text!r}: K must be from 1 to N")
    return k, n


def _device_option(function: Command) -> Command:
    return click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")(function)


@main.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output", help="Output file (one input; a name ending .jpg, .png, .tif or .dng), - for "
                                     "standard output, or else a folder, made if need be.")
@click.option("-r", "--recursive", is_flag=True, help="Descend into folders and mirror their subfolders.")
@click.option("-f", "--format", "fmt", type=click.Choice(["jpg", "png", "tiff", "dng"]),
              help="Output format (default: from -o FILE's extension, else jpg). dng: a raw for Lightroom, "
                   "darktable or RawTherapee, brightened and denoised.")
@click.option("--dng", type=click.Choice(["cfa", "linear"]), default="cfa", show_default=True,
              help="DNG layout: the camera's Bayer mosaic, or demosaiced camera RGB (LinearRaw).")
@click.option("--bits", type=click.Choice(["8", "16"]), help="Bits per channel (default: 8; 16 for tiff and dng).")
@click.option("--quality", type=click.IntRange(1, 100), default=95, show_default=True,
              help="JPEG quality (from 90 up, colour at full resolution, 4:4:4).")
@click.option("--suffix", help=f"Added to each output's name (default: none; {DNG_SUFFIX} for dng and GP mode).")
@click.option("--overwrite", is_flag=True, help="Replace outputs that exist (default: skip them).")
@click.option("--mode", type=click.Choice(list(MODES)), default="diffusion",
              show_default=True, help="diffusion: the exposure process; feedforward: one pass; amplify: brighten "
                                      "only; gp: the lightweight Gaussian-process mode for JPEG, PNG and TIFF photos.")
@click.option("--gp-k", type=click.IntRange(min=2), default=10, show_default=True,
              help="GP mode: k-means centres the Gaussian process is fitted on.")
@click.option("--gp-smoothing", type=click.FloatRange(min=0.0), default=3.0, show_default=True,
              help="GP mode: grain smoothing before the brightening, in units of the photo's own noise "
                   "(0 keeps the grain).")
@click.option("--gp-patch", type=click.IntRange(min=1), default=1, show_default=True,
              help="GP mode: patch side in pixels (odd; 1 pairs single pixels, which measured best).")
@click.option("--steps", type=click.IntRange(min=0), help="Exposure steps T (default: the model's own).")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A model file to use instead of the shipped one.")
@_device_option
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "int8"]), default="auto", show_default=True,
              help="auto uses bf16 where the hardware makes it fast, else the model's int8 form on the CPU runtime "
                   "where it has one (`exposed quantise`), else fp32.")
@click.option("--runtime", type=click.Choice(["auto", "torch", "openvino"]), default="auto", show_default=True,
              help="What runs the network: auto takes OpenVINO on the CPU where it is installed (no torch start-up), "
                   "torch on a GPU.")
@click.option("--tile", type=click.IntRange(min=0), default=512, show_default=True,
              help="Tile size in packed pixels, bounding memory on large frames; 0 for the whole frame at once.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the exposure process.")
@click.option("--strength", type=click.FloatRange(0.0, 1.0), default=1.0, show_default=True,
              help="How much of the denoised result to keep, the rest plain brightening (0: exactly --mode amplify).")
@click.option("--uncertainty", is_flag=True,
              help="Also write where the result is unsure: NAME.uncertainty.tif (the spread over --runs runs of "
                   "the exposure process) and NAME.uncertainty.png (a heat map). Diffusion mode.")
@click.option("--runs", type=click.IntRange(min=2), default=4, show_default=True,
              help="With --uncertainty: runs of the exposure process, each with its own seed.")
@click.option("--shard", type=_parse_shard, metavar="K/N",
              help="Only the K-th of N equal slices of the sorted inputs, for job arrays spread over machines.")
@click.option("--ratio", type=click.FloatRange(min=0, min_open=True), help="Brighten this many times.")
@click.option("--ev", type=float, help="Brighten by this many stops.")
@click.option("--target-exposure", type=click.FloatRange(min=0, min_open=True),
              help="The exposure time (s) you wish you had used.")
@click.option("--target-iso", type=click.FloatRange(min=0, min_open=True),
              help="With --target-exposure: a different ISO.")
@click.option("--target-f-number", type=click.FloatRange(min=0, min_open=True),
              help="With --target-exposure: a different aperture.")
@click.option("--noise-profile", help="Noise 'S,O' in normalised units (variance = S * x + O), as DNG NoiseProfile.")
@click.option("--profile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Your camera's noise profile, from `exposed calibrate`: its noise, black offset and hot pixels.")
@click.option("--wb", default="camera", show_default=True, help="camera, daylight, none, or R,G,B multipliers.")
@click.option("--tone", is_flag=True, help="Apply a gentle contrast curve (to images; a DNG is left to the editor).")
@click.option("--isp", type=click.Choice(["exposed", "libraw"]), default="exposed", show_default=True,
              help="Render images with exposed's pipeline or LibRaw's.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Files processed at once.")
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be done to each file; write nothing.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.option("-v", "--verbose", is_flag=True, help="Say why: ratio reasoning, noise source, timing.")
def enhance(inputs: tuple[str, ...], output: str | None, recursive: bool, fmt: str | None, dng: DngLayout,
            bits: str | None, quality: int, suffix: str | None, overwrite: bool, mode: Mode, gp_k: int,
            gp_smoothing: float, gp_patch: int,
            steps: int | None, model: Path | None, device: str, precision: Literal["auto", "fp32", "bf16", "int8"],
            runtime: Literal["auto", "torch", "openvino"], tile: int, seed: int, strength: float, uncertainty: bool,
            runs: int, shard: tuple[int, int] | None, ratio: float | None,
            ev: float | None, target_exposure: float | None, target_iso: float | None,
            target_f_number: float | None, noise_profile: str | None, profile: Path | None, wb: str, tone: bool,
            isp: Isp, jobs: int,
            dry_run: bool, quiet: bool, verbose: bool) -> None:
    """Brighten and denoise dark raw photos (files, folders, globs, or - for standard input)."""
    from exposed.batch.report import Reporter
    from exposed.batch.run import BatchOptions, run_batch
    from exposed.io.raw import silenced_stderr
    from exposed.pipeline import Settings

    named = _format_of(output)
    if fmt and named and fmt != named:
        raise click.UsageError(f"-o {output} is a .{named} name but --format is {fmt}")
    fmt = fmt or named or "jpg"
    if sum(v is not None for v in (ratio, ev, target_exposure)) > 1:
        raise click.UsageError("use only one of --ratio, --ev and --target-exposure")
    if (target_iso or target_f_number) and target_exposure is None:
        raise click.UsageError("--target-iso and --target-f-number go with --target-exposure")
    if 0 < tile < 64:
        raise click.UsageError("--tile must be 0 (no tiling) or at least 64")
    n_bits = int(bits) if bits else (16 if fmt in ("tiff", "dng") else 8)
    if fmt == "jpg" and n_bits == 16:
        raise click.UsageError("JPEG holds 8 bits per channel; use --format png or tiff for 16")
    if fmt == "dng" and n_bits != 16:
        raise click.UsageError("a DNG holds 16 bits per sample")
    if MODES[mode].photos:
        if fmt == "dng":
            raise click.UsageError("GP mode makes sRGB pictures; use --format jpg, png or tiff")
        if any(v is not None for v in (ratio, ev, target_exposure)):
            raise click.UsageError("GP mode sets its own brightness; --ratio, --ev and --target-exposure "
                                   "are for raw modes")
        if gp_patch % 2 == 0:
            raise click.UsageError("--gp-patch must be odd, so each patch has a centre pixel")
    if uncertainty and (mode != "diffusion" or output == "-"):
        raise click.UsageError("--uncertainty needs --mode diffusion (the other modes draw nothing at random) "
                               "and files to write its maps beside (not -o -)")
    if suffix is None:
        suffix = DNG_SUFFIX if fmt == "dng" or MODES[mode].photos else ""
    settings = Settings(mode=mode, steps=steps, model=model, device=device, precision=precision, runtime=runtime,
                        tile=tile or None,
                        seed=seed, ratio=ratio, ev=ev, target_exposure=target_exposure, target_iso=target_iso,
                        target_f_number=target_f_number, noise_profile=noise_profile, profile=profile, wb=wb,
                        tone=tone, isp=isp,
                        bits=n_bits, dng=dng, gp_k=gp_k, gp_smoothing=gp_smoothing, gp_patch=gp_patch,
                        strength=strength,
                        uncertainty=runs if uncertainty else 0)
    options = BatchOptions(output, recursive, fmt, suffix, overwrite, jobs, dry_run, shard, quality)
    if not verbose:  # libraries' warnings name no file; each file's own line says what went wrong
        warnings.simplefilter("ignore")
    try:
        with silenced_stderr():
            code = run_batch(list(inputs), settings, options, Reporter(err, settings, quiet, verbose))
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    except Exception as error:  # outside any one file (each file's errors are caught at its boundary)
        if verbose or os.environ.get("EXPOSED_TRACEBACK"):
            raise
        err.print(f"[red]error[/]: {escape(str(error) or type(error).__name__)} (-v shows the details)")
        code = 1
    raise SystemExit(code)


@main.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on standard output.")
@click.option("--mode", type=click.Choice(RAW_MODES), default="diffusion",
              show_default=True, help="Whose ratio range and noise needs to report.")
@click.option("--noise-profile", help="As for enhance.")
@click.option("--profile", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="As for enhance.")
def info(files: tuple[str, ...], as_json: bool, mode: str, noise_profile: str | None, profile: Path | None) -> None:
    """Camera, ISO, exposure, Bayer pattern, levels, and the ratio and noise exposed would use."""
    from exposed.io.raw import silenced_stderr
    from exposed.batch.info import describe_files

    try:
        with silenced_stderr():
            code = describe_files(list(files), as_json, mode, noise_profile, profile, err)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    raise SystemExit(code)


@main.command()
@click.argument("darks", nargs=-1, required=True)
@click.option("--flat", "flats", multiple=True,
              help="A flat frame (repeat): pairs of the same ISO and exposure time give the gain K.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The profile file to write (JSON).")
def calibrate(darks: tuple[str, ...], flats: tuple[str, ...], output: Path) -> None:
    """Your camera's noise profile from DARK frames (lens cap on; two or more per ISO find hot pixels).

    \b
    exposed calibrate darks/*.ARW --flat flats/*.ARW -o a7s.json
    exposed enhance --profile a7s.json night.ARW
    """
    from exposed.batch.calibrate import calibrate_files
    from exposed.io.raw import silenced_stderr

    with silenced_stderr():
        code = calibrate_files(list(darks), list(flats), output, err)
    raise SystemExit(code)
