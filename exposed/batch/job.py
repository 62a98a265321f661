"""One file of a batch: read it, enhance it, deliver the result. Prints nothing: what happened comes
back as a :class:`Outcome` for the reporter (:mod:`exposed.batch.report`) to tell.
"""

from __future__ import annotations

import errno
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from exposed.batch.files import STDIN, Job, uncertainty_paths
from exposed.io.dng import DngMetadata, write_dng
from exposed.io.exif import ExifInfo
from exposed.imaging.heatmap import heat_map
from exposed.io.images import JPEG_QUALITY, image_bytes, save_gray16, save_image
from exposed.io.photo import PHOTO_SUFFIXES
from exposed.io.raw import RawError, RawImage, read_raw
from exposed.pipeline import Enhancer, Frame, Plan

if TYPE_CHECKING:  # GP mode's stack is imported only when a photo mode runs
    from exposed.gp.pipeline import PhotoEnhancer

StepReport = Callable[[int, int], None]  # (network passes done, passes in all)
MAP_FLOOR = 0.005  # the least spread a heat map's brightest colour stands for (half a percent of the range)

# Standard input arrives without a name; JPEG and PNG say what they are in their first bytes (TIFF's
# header is also every TIFF-based raw's, so anything else is taken for a raw).
_MAGIC = {b"\xff\xd8\xff": ".jpg", b"\x89PNG": ".png"}


@dataclass
class Outcome:
    """What became of one job: ``error`` is None when it worked (or when a dry run looked at it)."""

    job: Job
    plan: Plan | None = None  # raw modes: what was decided
    error: str | None = None  # one line for a photographer
    detail: str | None = None  # the library's own words and the traceback, shown with -v
    seconds: float = 0.0
    written: bool = False
    maps: tuple[Path, Path] | None = None  # --uncertainty: the spread and heat-map files written


class ClosedStreamError(OSError):
    """Standard input or output is closed (the shell ran exposed with <&- or >&-)."""


def _stdin_to_file(folder: Path) -> Path:
    if sys.stdin is None or sys.stdin.closed:
        raise ClosedStreamError("standard input is closed: nothing to read")
    data = sys.stdin.buffer.read()
    suffix = next((ext for magic, ext in _MAGIC.items() if data.startswith(magic)), ".raw")
    path = folder / f"stdin{suffix}"
    path.write_bytes(data)
    return path


def deliver(output: str, fmt: str, tmp: Path, exif: ExifInfo, image: np.ndarray | None = None,
            dng: tuple[np.ndarray, DngMetadata] | None = None, quality: int = JPEG_QUALITY) -> None:
    """Send one result, a picture or DNG pixels and tags, to standard output or to its file
    (``quality``: JPEG's)."""
    if output == STDIN:
        if sys.stdout is None or sys.stdout.closed:
            raise ClosedStreamError("standard output is closed: nowhere to write the picture")
        # the DNG writer works on a file; its bytes are streamed from a temporary one
        if dng is not None:
            data = write_dng(tmp / "stdout.dng", *dng).read_bytes()
        elif image is not None:
            data = image_bytes(image, fmt, exif, quality)
        else:
            raise ValueError("nothing to deliver")
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    if dng is not None:
        write_dng(output, *dng)
    elif image is not None:
        save_image(output, image, fmt, exif, quality)


def write_uncertainty(output: str, spread: np.ndarray, runs: int) -> tuple[Path, Path]:
    """The uncertainty maps beside ``output``: the spread itself (16-bit TIFF, 65535 = a standard
    deviation of the whole sRGB range) and a heat map scaled to the frame's 99th percentile (at
    least :data:`MAP_FLOOR`, so a frame the process is sure of does not look alarming)."""
    tif, png = uncertainty_paths(output)
    top = max(float(np.percentile(spread, 99)), MAP_FLOOR)
    save_gray16(tif, spread, f"exposed: standard deviation over {runs} runs of the exposure process, "
                              "of the brightness on the sRGB curve (65535 = 1)")
    save_image(png, heat_map(spread, top), "png")
    return tif, png


def _disk_full(output: str) -> bool:
    """Whether the output's disk has (nearly) no space left: writers word that in many ways."""
    try:
        return output != STDIN and shutil.disk_usage(Path(output).parent).free < 1 << 20
    except OSError:
        return False


def _reason(error: BaseException, job: Job, photo_mode: bool) -> str:
    """The one line a photographer reads for a failed file; the library's words go to ``detail``."""
    if isinstance(error, RawError):
        if not photo_mode and Path(job.source).suffix.lower() in PHOTO_SUFFIXES:
            return f"{error} (an sRGB photo: use --mode gp)"
        return str(error)
    if isinstance(error, ClosedStreamError):
        return str(error)
    if isinstance(error, OSError) and error.errno == errno.ENOSPC or _disk_full(job.output):
        return f"no space left on the disk for {job.output}"
    if isinstance(error, PermissionError):
        return f"cannot write {error.filename or job.output}: permission denied"
    if isinstance(error, FileExistsError | NotADirectoryError):
        return f"cannot write {job.output}: {error.filename} is not a folder"
    if isinstance(error, OSError):
        return f"{(error.strerror or 'cannot be read or written').lower()}" + (
            f": {error.filename}" if error.filename else "")
    if isinstance(error, MemoryError):
        return "not enough memory to process it (try a smaller --tile, or fewer -j)"
    if isinstance(error, ValueError) and raised_by_exposed(error):
        return str(error)  # exposed's own refusals are sentences; numpy's and torch's are not
    return internal_error(error) or "could not be processed: the file holds values exposed cannot use " \
        "(-v shows the details)"


# Exceptions no file can cause, only a fault in exposed (or in how it calls a library).
PROGRAMMING_ERRORS = (TypeError, AttributeError, NameError, AssertionError, ImportError, NotImplementedError)


def internal_error(error: BaseException) -> str | None:
    """The line for a failure that is exposed's fault, not the file's (None for any other): telling
    the photographer the file is at fault would send them after the wrong problem."""
    if isinstance(error, PROGRAMMING_ERRORS):
        return f"exposed failed on it: an internal error ({type(error).__name__}), not a fault of the file; " \
            "-v shows the details to report"
    return None


def raised_by_exposed(error: BaseException) -> bool:
    """Whether the innermost frame that raised ``error`` is exposed's own code."""
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith("exposed.")


def read_ahead(job: Job, enhancer: Enhancer | PhotoEnhancer, reader: Executor,
               frame: bool = False) -> Future[RawImage | Frame] | None:
    """Start reading ``job``'s raw on ``reader`` while the file before it is being denoised, so a
    batch does not wait for LibRaw's decode between files; with ``frame``, make its
    :meth:`~exposed.pipeline.Enhancer.frame` too (numpy, which runs beside the import of torch for a
    batch's first file). None: nothing to read ahead: standard input, or a photo mode, whose
    enhancer reads its own files."""
    if job.source == STDIN or not isinstance(enhancer, Enhancer):
        return None
    if frame:
        return reader.submit(lambda: enhancer.frame(read_raw(Path(job.source))))
    return reader.submit(read_raw, Path(job.source))


Write = Callable[[Outcome], None]  # a file's result delivered; it notes what it wrote on the outcome


def run_job(job: Job, enhancer: Enhancer | PhotoEnhancer, fmt: str, tmp: Path, dry_run: bool = False,
            stop: threading.Event | None = None, on_step: StepReport | None = None,
            quality: int = JPEG_QUALITY, prefetched: Future[RawImage | Frame] | None = None) -> Outcome:
    """Enhance one file and deliver it (``fmt``: an image format of :mod:`exposed.io.images`, or
    ``dng``; ``quality``: JPEG's). Nothing is written once ``stop`` is set (the batch was
    interrupted); ``on_step`` hears of each network pass. ``prefetched``: the file's raw (or frame),
    being read in the background (:func:`read_ahead`); its failure is this file's, as a read here
    would be."""
    start = time.perf_counter()
    outcome, write = _compute(job, enhancer, fmt, tmp, dry_run, on_step, quality, prefetched)
    return _write(outcome, write, stop, start)


def start_job(job: Job, enhancer: Enhancer | PhotoEnhancer, fmt: str, tmp: Path, writer: Executor,
              told: Callable[[Outcome], None], dry_run: bool = False, stop: threading.Event | None = None,
              on_step: StepReport | None = None, quality: int = JPEG_QUALITY,
              prefetched: Future[RawImage | Frame] | None = None) -> Future[Outcome]:
    """:func:`run_job` with the writing (the JPEG's encoding, a quarter of a second at 24 MP) done
    on ``writer``, one thread, while the caller goes on with the next file; ``told`` hears the
    outcome there, once the file is written, and the future completes after it (so waiting on it
    means the file's line is out). A file that failed before writing goes through ``writer`` too,
    so outcomes are told in the order of the files."""
    start = time.perf_counter()
    outcome, write = _compute(job, enhancer, fmt, tmp, dry_run, on_step, quality, prefetched)

    def finish() -> Outcome:
        told(_write(outcome, write, stop, start))
        return outcome
    return writer.submit(finish)


def _compute(job: Job, enhancer: Enhancer | PhotoEnhancer, fmt: str, tmp: Path, dry_run: bool,
             on_step: StepReport | None, quality: int,
             prefetched: Future[RawImage | Frame] | None) -> tuple[Outcome, Write | None]:
    """Everything of a job up to its writing: the outcome so far and what is left to write (None:
    nothing, a dry run or a failure, which the outcome says)."""
    outcome = Outcome(job)
    try:
        source = _stdin_to_file(tmp) if job.source == STDIN else Path(job.source)
        if not isinstance(enhancer, Enhancer):
            if dry_run:
                return outcome, None
            picture, exif = enhancer.enhance(source)
            return outcome, lambda done: deliver(job.output, fmt, tmp, exif, picture, quality=quality)
        raw = prefetched.result() if prefetched is not None else read_raw(source)  # or its frame
        outcome.plan = plan = enhancer.plan(raw)
        if dry_run:
            return outcome, None
        mosaic = enhancer.enhance_mosaic(plan, on_step if plan.noise is not None else None)
        dng = enhancer.dng(plan, mosaic) if fmt == "dng" else None
        image = None if dng else enhancer.render(plan, mosaic)
        spread = enhancer.uncertainty(plan, mosaic) if enhancer.settings.uncertainty else None

        def write(done: Outcome) -> None:
            deliver(job.output, fmt, tmp, plan.raw.exif, image, dng, quality)
            if spread is not None:
                done.maps = write_uncertainty(job.output, spread, enhancer.settings.uncertainty)
        return outcome, write
    except Exception as error:  # the file boundary: whatever one file does, the batch goes on
        _failed(outcome, error, photo_mode=not isinstance(enhancer, Enhancer))
        return outcome, None


def _write(outcome: Outcome, write: Write | None, stop: threading.Event | None, start: float) -> Outcome:
    """Deliver a computed file (unless the batch was stopped) and time the job."""
    if write is not None and (stop is None or not stop.is_set()):
        try:
            write(outcome)
            outcome.written = True
        except Exception as error:  # a full disk or a closed stream is this file's failure
            _failed(outcome, error, photo_mode=False)  # (only reading tells a photo from a raw)
    outcome.seconds = time.perf_counter() - start
    return outcome


def _failed(outcome: Outcome, error: Exception, photo_mode: bool) -> None:
    outcome.error = _reason(error, outcome.job, photo_mode)
    outcome.detail = "".join(traceback.format_exception(error)).rstrip()
