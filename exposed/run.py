"""Running ``exposed enhance`` and ``exposed info`` over many files, the way shells expect.

Each file either succeeds or gets one line naming it and the reason; the batch goes on and the exit
status says how it went (0 all done, 1 some failed; 130 after Ctrl-C, with no partial file left).
Standard output carries image bytes only (``-o -``) or the JSON of ``info --json``; everything for
people goes to standard error.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from exposed.batch import RAW_SUFFIXES, STDIN, Job, expand_inputs, plan_outputs
from exposed.dng import DngMetadata, write_dng
from exposed.exif import ExifInfo
from exposed.pipeline import Enhancer, Plan, Settings
from exposed.output import image_bytes, save_image
from exposed.photo import PHOTO_SUFFIXES
from exposed.modes import MODES, Mode
from exposed.rawio import STDERR_LOCK, RawError, read_raw

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


# Standard input arrives without a name; JPEG and PNG say what they are in their first bytes (TIFF's
# header is also every TIFF-based raw's, so anything else is taken for a raw).
_MAGIC = {b"\xff\xd8\xff": ".jpg", b"\x89PNG": ".png"}


def _stdin_to_file(folder: Path) -> Path:
    data = sys.stdin.buffer.read()
    suffix = next((ext for magic, ext in _MAGIC.items() if data.startswith(magic)), ".raw")
    path = folder / f"stdin{suffix}"
    path.write_bytes(data)
    return path


def _describe(plan: Plan) -> str:
    ex = plan.raw.exif
    parts = [f"x{plan.ratio.ratio:.3g} ({plan.ratio.source})"]
    if ex.iso:
        parts.append(f"ISO {ex.iso:g}")
    if plan.noise is not None:
        parts.append(f"noise: {plan.noise.source}")
    return ", ".join(parts)


def run_batch(inputs: list[str], output: str | None, recursive: bool, fmt: str, bits: int, suffix: str,
              overwrite: bool, jobs: int, dry_run: bool, quiet: bool, verbose: bool, options: dict[str, Any],
              console: Console) -> int:
    """Enhance every input; returns the exit status. ValueError means a usage error. ``fmt`` is an
    image format of :mod:`exposed.output` or ``dng`` (a raw for editors; ``options['dng']`` its layout)."""
    def say(message: str) -> None:
        with STDERR_LOCK:  # free under silenced_stderr; held by a decode only outside it (the Python API)
            console.print(message)

    suffixes = RAW_SUFFIXES | PHOTO_SUFFIXES if MODES[options.get("mode", "diffusion")].photos else RAW_SUFFIXES
    found, problems = expand_inputs(inputs, recursive, suffixes)
    planned = plan_outputs(found, output, fmt, suffix) if found else []
    settings = Settings(**options, bits=bits)  # type: ignore[arg-type]
    enhancer = Enhancer(settings)
    failures = len(problems)
    for problem in problems:
        say(f"[red]error[/]: {escape(problem.source)}: {problem.reason}")
    todo: list[Job] = []
    for job in planned:
        if job.output not in (None, STDIN) and Path(job.output).exists() and not overwrite and not dry_run:  # type: ignore[arg-type]
            if not quiet:
                say(f"skipped {escape(job.source)}: {escape(job.output)} exists (use --overwrite)")  # type: ignore[arg-type]
            continue
        todo.append(job)
    if jobs > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))

    def report(job: Job, plan: Plan, seconds: float | None = None) -> None:
        if quiet:
            return
        timing = f" in {seconds:.1f} s" if verbose and seconds is not None else ""
        say(f"{escape(job.source)} -> {escape(str(job.output))}: {_describe(plan)}{timing}")
        if verbose:
            say(f"    ratio: {plan.ratio.reason}; white balance: {plan.wb_source}")
            for note in plan.noise.notes if plan.noise is not None else ():
                say(f"    noise: {note}")

    gp_mode = MODES[settings.mode].photos

    def deliver(job: Job, tmp: Path, exif: ExifInfo, image: np.ndarray | None = None,
                dng: tuple[np.ndarray, DngMetadata] | None = None) -> None:
        """Send one result, a picture or DNG pixels and tags, to standard output or to its file."""
        if job.output == STDIN:
            # the DNG writer works on a file; its bytes are streamed from a temporary one
            if dng:
                data = write_dng(tmp / "stdout.dng", *dng).read_bytes()
            elif image is not None:
                data = image_bytes(image, fmt, exif)
            else:
                raise ValueError("nothing to deliver")
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        Path(job.output).parent.mkdir(parents=True, exist_ok=True)  # type: ignore[arg-type]
        if dng:
            write_dng(job.output, *dng)  # type: ignore[arg-type]
        else:
            save_image(job.output, image, fmt, exif)  # type: ignore[arg-type]

    def gp_one(job: Job, source: Path, tmp: Path, start: float, stop: threading.Event | None) -> None:
        """GP mode for one file: a photo or a raw developed as shot (errors propagate to ``one``)."""
        if dry_run:
            if not quiet:
                say(f"{escape(job.source)} -> {escape(str(job.output))}: GP, k = {settings.gp_k}, "
                    f"{settings.gp_patch} x {settings.gp_patch} patches")
            return None
        image, exif = enhancer.enhance_photo(source)
        if stop is not None and stop.is_set():
            return None
        deliver(job, tmp, exif, image)
        if not quiet:
            timing = f" in {time.perf_counter() - start:.1f} s" if verbose else ""
            say(f"{escape(job.source)} -> {escape(str(job.output))}: GP, k = {settings.gp_k}{timing}")
        return None

    def one(job: Job, tmp: Path, stop: threading.Event | None = None, progress: Progress | None = None) -> str | None:
        """Process one file; returns an error reason or None. Nothing is written once ``stop`` is set;
        ``progress`` gets a bar of the file's network passes."""
        start = time.perf_counter()
        try:
            source = _stdin_to_file(tmp) if job.source == STDIN else Path(job.source)
            if gp_mode:
                gp_one(job, source, tmp, start, stop)
                return None
            plan = enhancer.plan(read_raw(source))
            if plan.ratio.warning and not quiet:
                say(f"[yellow]warning[/]: {escape(job.source)}: {plan.ratio.warning}")
            if dry_run:
                report(job, plan)
                return None
            if progress is None or plan.noise is None:
                mosaic = enhancer.enhance_mosaic(plan)
            else:
                passes = progress.add_task(f"  {Path(job.source).name}", total=None)
                try:
                    mosaic = enhancer.enhance_mosaic(
                        plan, lambda done, total: progress.update(passes, completed=done, total=total))
                finally:
                    progress.remove_task(passes)
            dng = enhancer.dng(plan, mosaic) if fmt == "dng" else None
            image = None if dng else enhancer.render(plan, mosaic)
            if stop is not None and stop.is_set():
                return None
            deliver(job, tmp, plan.raw.exif, image, dng)
            report(job, plan, time.perf_counter() - start)
            return None
        except RawError as error:
            if not gp_mode and Path(job.source).suffix.lower() in PHOTO_SUFFIXES:
                return f"{error} (an sRGB photo: use --mode gp)"
            return str(error)
        except PermissionError as error:
            return f"cannot write {error.filename or job.output}: permission denied"
        except (FileExistsError, NotADirectoryError) as error:
            return f"cannot write {job.output}: {error.filename} is not a folder"
        except OSError as error:
            return f"{error.strerror or error}" + (f": {error.filename}" if error.filename else "")
        except ValueError as error:
            return str(error)

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    stop = threading.Event()
    try:
        with tempfile.TemporaryDirectory(prefix="exposed-") as tmp, \
                Progress(*columns, console=console, transient=True,
                         disable=quiet or not console.is_terminal) as progress:
            task = progress.add_task("enhancing", total=len(todo))

            def finished(job: Job, reason: str | None) -> None:
                nonlocal failures
                progress.advance(task)
                if reason is not None:
                    failures += 1
                    say(f"[red]error[/]: {escape(job.source)}: {escape(reason)}")

            if jobs == 1:  # in the main thread, so Ctrl-C stops the work at once
                for job in todo:
                    finished(job, one(job, Path(tmp), progress=progress))
            else:
                pool = ThreadPoolExecutor(max_workers=jobs)
                try:
                    for job, reason in zip(todo, pool.map(lambda j: one(j, Path(tmp), stop), todo)):
                        finished(job, reason)
                finally:
                    stop.set()  # files still being computed are not written
                    pool.shutdown(wait=True, cancel_futures=True)
    except KeyboardInterrupt:
        say("interrupted: no partial files were left")
        return EXIT_INTERRUPTED
    if failures and not quiet and len(todo) + len(problems) > 1:
        say(f"{failures} of {len(planned) + len(problems)} failed")
    return EXIT_FAILED if failures else EXIT_OK


def describe_files(files: list[str], as_json: bool, mode: str, noise_profile: str | None, console: Console) -> int:
    """``exposed info``: what each file is and what exposed would do with it."""
    found, problems = expand_inputs(files, recursive=False)
    enhancer = Enhancer(replace(Settings(), mode=cast(Mode, mode), noise_profile=noise_profile))
    records: list[dict[str, Any]] = []
    failures = len(problems)
    for problem in problems:
        records.append({"file": problem.source, "error": problem.reason})
    for source, _ in found:
        try:
            raw = read_raw(source)
            plan = enhancer.plan(raw)
        except (RawError, OSError, ValueError) as error:
            failures += 1
            records.append({"file": source, "error": str(error)})
            continue
        ex = raw.exif
        records.append({
            "file": source, "camera": " ".join(v for v in (ex.make, ex.model) if v) or None,
            "iso": ex.iso, "iso_source": ex.iso_source, "exposure_time": ex.exposure_time, "f_number": ex.f_number,
            "exposure_bias": ex.exposure_bias, "date": ex.datetime, "lens": ex.lens,
            "width": int(raw.mosaic.shape[1]), "height": int(raw.mosaic.shape[0]), "cfa": raw.pattern,
            "black": raw.black.tolist(), "white": raw.white, "white_balance": raw.wb.tolist(),
            "white_balance_source": raw.wb_source, "colour": raw.colour_source, "orientation": raw.orientation,
            "ratio": plan.ratio.ratio, "ratio_source": plan.ratio.source, "ratio_reason": plan.ratio.reason,
            "ratio_warning": plan.ratio.warning,
            "noise_gain": plan.noise.gain if plan.noise else None,
            "noise_read_variance": plan.noise.read_var if plan.noise else None,
            "noise_source": plan.noise.source if plan.noise else None})
    if as_json:
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
    else:
        for r in records:
            if "error" in r:
                console.print(f"[red]error[/]: {escape(r['file'])}: {escape(r['error'])}")
                continue
            exposure = f"1/{1 / r['exposure_time']:.0f} s" if r["exposure_time"] and r["exposure_time"] < 1 \
                else (f"{r['exposure_time']:g} s" if r["exposure_time"] else "?")
            console.print(f"[bold]{escape(r['file'])}[/]: {r['camera'] or 'unknown camera'}, "
                          f"ISO {r['iso']:g} ({r['iso_source']}), " if r["iso"] else
                          f"[bold]{escape(r['file'])}[/]: {r['camera'] or 'unknown camera'}, ISO ?, ", end="")
            console.print(f"{exposure}, f/{r['f_number']:g}" if r["f_number"] else f"{exposure}, f/?")
            console.print(f"    {r['width']}x{r['height']} {r['cfa']}, black {r['black']}, white {r['white']:g}, "
                          f"orientation {r['orientation']}")
            console.print(f"    ratio x{r['ratio']:.3g} ({r['ratio_source']}: {r['ratio_reason']})"
                          + (f"; [yellow]{r['ratio_warning']}[/]" if r["ratio_warning"] else ""))
            if r["noise_source"]:
                console.print(f"    noise: variance = {r['noise_gain']:.3g} x + {r['noise_read_variance']:.3g} "
                              f"({r['noise_source']})")
    return EXIT_FAILED if failures else EXIT_OK
