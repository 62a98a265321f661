"""Running ``exposed enhance`` over many files, the way shells expect.

Each file either succeeds or gets one line naming it and the reason; the batch goes on and the exit
status says how it went (0 all done, 1 some failed; 130 after Ctrl-C, 143 after SIGTERM and 129
after SIGHUP, with no partial file or temporary folder left).
Standard output carries image bytes only (``-o -``); everything for people goes to standard error,
through the :class:`~exposed.batch.report.Reporter`. The work of one file is
:func:`~exposed.batch.job.run_job`.
"""

from __future__ import annotations

import contextlib
import signal
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from exposed.batch.files import RAW_SUFFIXES, STDIN, Job, expand_inputs, plan_outputs
from exposed.batch.heap import release_freed_memory
from exposed.batch.job import Outcome, read_ahead, run_job, start_job
from exposed.batch.report import Reporter
from exposed.io.images import JPEG_QUALITY
from exposed.io.photo import PHOTO_SUFFIXES
from exposed.modes import MODES
from exposed.pipeline import Enhancer, Frame, Settings

if TYPE_CHECKING:  # GP mode's stack is imported only when a photo mode runs
    from exposed.gp.pipeline import PhotoEnhancer
    from exposed.io.raw import RawImage

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the main thread is, so they unwind as Ctrl-C does: the
    partial output and the temporary folder are removed on the way out."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _signals_as_interrupts() -> Iterator[None]:
    """SIGTERM and SIGHUP handled like SIGINT for the length of a batch (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(signum)

    kept = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, previous in kept.items():
            signal.signal(sig, previous)


@dataclass(frozen=True)
class BatchOptions:
    """Which files and where their results go (:mod:`exposed.batch.files` has the naming rules)."""

    output: str | None = None  # a folder, a file (one input), "-" (standard output) or None (beside each input)
    recursive: bool = False
    fmt: str = "jpg"  # an image format of exposed.io.images, or "dng" (a raw for editors)
    suffix: str = ""
    overwrite: bool = False
    jobs: int = 1
    dry_run: bool = False
    shard: tuple[int, int] | None = None  # (K, N): only the K-th of N slices of the sorted inputs
    quality: int = JPEG_QUALITY  # of JPEG outputs


def shard_of(found: list[tuple[str, Path | None]], shard: tuple[int, int] | None) -> list[tuple[str, Path | None]]:
    """The K-th of N contiguous, nearly equal slices of the inputs sorted by name: N machines given
    K = 1..N share a batch with no file done twice or left out, whatever order the shell gave."""
    if shard is None:
        return found
    k, n = shard
    ordered = sorted(found, key=lambda item: item[0])
    return ordered[(k - 1) * len(ordered) // n:k * len(ordered) // n]


def _load_model(enhancer: Enhancer | PhotoEnhancer) -> None:
    """Load the mode's network before the first file, so a --model that is not one is a usage error
    (exit 2, one line) rather than the same failure once per file. The file's code never runs:
    model files are read with torch.load(weights_only=True)."""
    if isinstance(enhancer, Enhancer):
        _ = enhancer.session  # an unknown --device is its own error, not the model file's
    try:
        _ = enhancer.reference if not isinstance(enhancer, Enhancer) else enhancer.model_config
    except Exception as error:
        path = enhancer.settings.model
        kind = "a GP reference network" if not isinstance(enhancer, Enhancer) else "an exposure model"
        detail = str(error) if isinstance(error, FileNotFoundError | ValueError) and len(str(error)) < 100 else ""
        raise ValueError(f"--model {path}: not {kind} exposed can load" + (f" ({detail})" if detail else "")) from None


def run_batch(inputs: list[str], settings: Settings, options: BatchOptions, reporter: Reporter) -> int:
    """Enhance every input; returns the exit status. ValueError means a usage error."""
    photos = MODES[settings.mode].photos
    found, problems = expand_inputs(inputs, options.recursive, RAW_SUFFIXES | PHOTO_SUFFIXES if photos
                                    else RAW_SUFFIXES)
    found = shard_of(found, options.shard)
    planned, clashes = plan_outputs(found, options.output, options.fmt, options.suffix) if found else ([], [])
    problems += clashes
    enhancer: Enhancer | PhotoEnhancer
    if photos:
        from exposed.gp.pipeline import PhotoEnhancer

        enhancer = PhotoEnhancer(settings)
    else:
        enhancer = Enhancer(settings)
    todo: list[Job] = []
    skipped: list[Job] = []
    for job in planned:
        kept = job.output != STDIN and Path(job.output).exists() and not options.overwrite and not options.dry_run
        (skipped if kept else todo).append(job)
    reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exposed-read")
    try:
        # The first raw is read and made ready (Enhancer.frame) while the network loads: importing
        # torch alone takes a second. Later files are only read ahead: their frames, made during
        # the file before's denoising, would add two frame-sized arrays to a batch's peak memory.
        upcoming = read_ahead(todo[0], enhancer, reader, frame=True) if todo and options.jobs == 1 else None
        _load_model(enhancer)
        if isinstance(enhancer, Enhancer) and enhancer.session is not None:
            reporter.network(enhancer.session.describe())
        for problem in problems:
            reporter.problem(problem)
        for job in skipped:
            reporter.skipped(job)
        return _run(todo, enhancer, options, reporter, reader, upcoming, len(planned) + len(problems))
    finally:
        reader.shutdown(wait=True, cancel_futures=True)  # a read under way only reads: let it end


def _run(todo: list[Job], enhancer: Enhancer | PhotoEnhancer, options: BatchOptions, reporter: Reporter,
         reader: ThreadPoolExecutor, upcoming: Future[RawImage | Frame] | None, total: int) -> int:
    """The jobs, one at a time (each next raw read on ``reader`` meanwhile; ``upcoming`` is the
    first's) or ``options.jobs`` at once; the exit status."""
    session = enhancer.session if isinstance(enhancer, Enhancer) else None
    if options.jobs > 1 and session is not None:  # a mode with a network: the jobs share the cores
        session.share_cores(options.jobs)
    stop = threading.Event()
    try:
        with _signals_as_interrupts(), tempfile.TemporaryDirectory(prefix="exposed-") as folder, \
                reporter.batch(len(todo)):
            tmp = Path(folder)
            if options.jobs == 1:  # in the main thread, so Ctrl-C stops the work at once
                # Each file is written on its own thread while the next is computed; its line comes
                # when it is written, in the files' order (one writing thread).
                writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exposed-write")

                def report(outcome: Outcome) -> None:
                    reporter.finished(outcome, options.dry_run)
                pending: list[Future[Outcome]] = []  # files not yet written (two at most)
                try:
                    for i, job in enumerate(todo):
                        current = upcoming
                        upcoming = read_ahead(todo[i + 1], enhancer, reader) if i + 1 < len(todo) else None
                        with reporter.passes(job) as on_step:
                            written = start_job(job, enhancer, options.fmt, tmp, writer, report, options.dry_run,
                                                stop, on_step=on_step, quality=options.quality, prefetched=current)
                        pending = [f for f in pending if not f.done()] + [written]
                        del current, written  # the file's raw (or frame), before its freed pages are handed back
                        release_freed_memory()
                    wait(pending)  # every file written and told
                except BaseException:
                    stop.set()  # interrupted: a file being written is finished whole, none after it begun
                    for queued in pending:
                        queued.cancel()
                    # Waited for on the futures, not by joining the thread: a join that a signal
                    # interrupted marks the thread finished (CPython 3.11), and the process would
                    # then exit mid-write, leaving the temporary file.
                    wait(pending)
                    raise
                finally:
                    writer.shutdown(wait=False)
            else:
                pool = ThreadPoolExecutor(max_workers=options.jobs)
                try:
                    for outcome in pool.map(lambda j: run_job(j, enhancer, options.fmt, tmp, options.dry_run, stop,
                                                                 quality=options.quality),
                                            todo):
                        reporter.finished(outcome, options.dry_run)
                        release_freed_memory()
                finally:
                    stop.set()  # files still being computed are not written
                    pool.shutdown(wait=True, cancel_futures=True)
    except KeyboardInterrupt as interruption:  # Ctrl-C, SIGTERM, SIGHUP: exit 128 + the signal
        reporter.interrupted()
        return 128 + interruption.signum if isinstance(interruption, Interrupted) else EXIT_INTERRUPTED
    reporter.summary(total)
    return EXIT_FAILED if reporter.failures else EXIT_OK
