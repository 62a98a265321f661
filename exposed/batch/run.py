"""Running ``exposed enhance`` over many files, the way shells expect.

Each file either succeeds or gets one line naming it and the reason; the batch goes on and the exit
status says how it went (0 all done, 1 some failed; 130 after Ctrl-C, with no partial file left).
Standard output carries image bytes only (``-o -``); everything for people goes to standard error,
through the :class:`~exposed.batch.report.Reporter`. The work of one file is
:func:`~exposed.batch.job.run_job`.
"""

from __future__ import annotations

import os
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from exposed.batch.files import RAW_SUFFIXES, STDIN, Job, expand_inputs, plan_outputs
from exposed.batch.job import run_job
from exposed.batch.report import Reporter
from exposed.gp.pipeline import PhotoEnhancer
from exposed.io.photo import PHOTO_SUFFIXES
from exposed.modes import MODES
from exposed.pipeline import Enhancer, Settings

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


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


def run_batch(inputs: list[str], settings: Settings, options: BatchOptions, reporter: Reporter) -> int:
    """Enhance every input; returns the exit status. ValueError means a usage error."""
    photos = MODES[settings.mode].photos
    found, problems = expand_inputs(inputs, options.recursive, RAW_SUFFIXES | PHOTO_SUFFIXES if photos
                                    else RAW_SUFFIXES)
    planned = plan_outputs(found, options.output, options.fmt, options.suffix) if found else []
    enhancer = PhotoEnhancer(settings) if photos else Enhancer(settings)
    for problem in problems:
        reporter.problem(problem)
    todo: list[Job] = []
    for job in planned:
        if job.output != STDIN and Path(job.output).exists() and not options.overwrite and not options.dry_run:
            reporter.skipped(job)
        else:
            todo.append(job)
    if options.jobs > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // options.jobs))
    stop = threading.Event()
    try:
        with tempfile.TemporaryDirectory(prefix="exposed-") as folder, reporter.batch(len(todo)):
            tmp = Path(folder)
            if options.jobs == 1:  # in the main thread, so Ctrl-C stops the work at once
                for job in todo:
                    with reporter.passes(job) as on_step:
                        reporter.finished(run_job(job, enhancer, options.fmt, tmp, options.dry_run, on_step=on_step),
                                          options.dry_run)
            else:
                pool = ThreadPoolExecutor(max_workers=options.jobs)
                try:
                    for outcome in pool.map(lambda j: run_job(j, enhancer, options.fmt, tmp, options.dry_run, stop),
                                            todo):
                        reporter.finished(outcome, options.dry_run)
                finally:
                    stop.set()  # files still being computed are not written
                    pool.shutdown(wait=True, cancel_futures=True)
    except KeyboardInterrupt:
        reporter.interrupted()
        return EXIT_INTERRUPTED
    reporter.summary(len(planned) + len(problems))
    return EXIT_FAILED if reporter.failures else EXIT_OK
