"""One file of a batch: read it, enhance it, deliver the result. Prints nothing: what happened comes
back as a :class:`Outcome` for the reporter (:mod:`exposed.batch.report`) to tell.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exposed.batch.files import STDIN, Job
from exposed.gp.pipeline import PhotoEnhancer
from exposed.io.dng import DngMetadata, write_dng
from exposed.io.exif import ExifInfo
from exposed.io.images import image_bytes, save_image
from exposed.io.photo import PHOTO_SUFFIXES
from exposed.io.raw import RawError, read_raw
from exposed.pipeline import Enhancer, Plan

StepReport = Callable[[int, int], None]  # (network passes done, passes in all)

# Standard input arrives without a name; JPEG and PNG say what they are in their first bytes (TIFF's
# header is also every TIFF-based raw's, so anything else is taken for a raw).
_MAGIC = {b"\xff\xd8\xff": ".jpg", b"\x89PNG": ".png"}


@dataclass
class Outcome:
    """What became of one job: ``error`` is None when it worked (or when a dry run looked at it)."""

    job: Job
    plan: Plan | None = None  # raw modes: what was decided
    error: str | None = None
    seconds: float = 0.0
    written: bool = False


def _stdin_to_file(folder: Path) -> Path:
    data = sys.stdin.buffer.read()
    suffix = next((ext for magic, ext in _MAGIC.items() if data.startswith(magic)), ".raw")
    path = folder / f"stdin{suffix}"
    path.write_bytes(data)
    return path


def deliver(output: str, fmt: str, tmp: Path, exif: ExifInfo, image: np.ndarray | None = None,
            dng: tuple[np.ndarray, DngMetadata] | None = None) -> None:
    """Send one result, a picture or DNG pixels and tags, to standard output or to its file."""
    if output == STDIN:
        # the DNG writer works on a file; its bytes are streamed from a temporary one
        if dng is not None:
            data = write_dng(tmp / "stdout.dng", *dng).read_bytes()
        elif image is not None:
            data = image_bytes(image, fmt, exif)
        else:
            raise ValueError("nothing to deliver")
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    if dng is not None:
        write_dng(output, *dng)
    elif image is not None:
        save_image(output, image, fmt, exif)


def _reason(error: Exception, job: Job, photo_mode: bool) -> str:
    """The one line a user reads for a failed file."""
    if isinstance(error, RawError):
        if not photo_mode and Path(job.source).suffix.lower() in PHOTO_SUFFIXES:
            return f"{error} (an sRGB photo: use --mode gp)"
        return str(error)
    if isinstance(error, PermissionError):
        return f"cannot write {error.filename or job.output}: permission denied"
    if isinstance(error, FileExistsError | NotADirectoryError):
        return f"cannot write {job.output}: {error.filename} is not a folder"
    if isinstance(error, OSError):
        return f"{error.strerror or error}" + (f": {error.filename}" if error.filename else "")
    return str(error)


def run_job(job: Job, enhancer: Enhancer | PhotoEnhancer, fmt: str, tmp: Path, dry_run: bool = False,
            stop: threading.Event | None = None, on_step: StepReport | None = None) -> Outcome:
    """Enhance one file and deliver it (``fmt``: an image format of :mod:`exposed.io.images`, or
    ``dng``). Nothing is written once ``stop`` is set (the batch was
    interrupted); ``on_step`` hears of each network pass."""
    start = time.perf_counter()
    outcome = Outcome(job)
    photo_mode = isinstance(enhancer, PhotoEnhancer)
    try:
        source = _stdin_to_file(tmp) if job.source == STDIN else Path(job.source)
        if isinstance(enhancer, PhotoEnhancer):
            if not dry_run:
                picture, exif = enhancer.enhance(source)
                if stop is None or not stop.is_set():
                    deliver(job.output, fmt, tmp, exif, picture)
                    outcome.written = True
        else:
            outcome.plan = plan = enhancer.plan(read_raw(source))
            if not dry_run:
                mosaic = enhancer.enhance_mosaic(plan, on_step if plan.noise is not None else None)
                dng = enhancer.dng(plan, mosaic) if fmt == "dng" else None
                image = None if dng else enhancer.render(plan, mosaic)
                if stop is None or not stop.is_set():
                    deliver(job.output, fmt, tmp, plan.raw.exif, image, dng)
                    outcome.written = True
    except (RawError, OSError, ValueError) as error:
        outcome.error = _reason(error, job, photo_mode)
    outcome.seconds = time.perf_counter() - start
    return outcome
