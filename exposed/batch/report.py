"""Every message of a batch, on standard error: one line per file (errors always, the rest unless
quiet), the reasoning with ``-v`` (and, for a failed file, the library's own words and traceback;
also with the environment variable EXPOSED_TRACEBACK set), and rich progress bars when standard
error is a terminal.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from exposed.batch.files import Job, Problem
from exposed.batch.job import Outcome, StepReport
from exposed.io.raw import STDERR_LOCK
from exposed.pipeline import Plan, Settings


def printable(name: str) -> str:
    """A file name as the terminal shows it: tabs, newlines and other control characters as
    escapes, and bytes that are not UTF-8 as ``\\xNN`` (never a codec error)."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def shown(name: str) -> str:
    """:func:`printable`, with rich markup escaped, for the console."""
    return escape(printable(name))


def describe(plan: Plan) -> str:
    """The decisions for one raw file, in a few words."""
    ex = plan.raw.exif
    parts = [f"x{plan.ratio.ratio:.3g} ({plan.ratio.source})"]
    if ex.iso:
        parts.append(f"ISO {ex.iso:g}")
    if plan.noise is not None:
        parts.append(f"noise: {plan.noise.source}")
    return ", ".join(parts)


class Reporter:
    """Tells the user how a batch goes. Thread-safe: jobs running at once report through it."""

    def __init__(self, console: Console, settings: Settings, quiet: bool = False, verbose: bool = False):
        self.console, self.settings, self.quiet, self.verbose = console, settings, quiet, verbose
        self.failures = 0
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def say(self, message: str) -> None:
        with STDERR_LOCK:  # free under silenced_stderr; held by a decode only outside it (the Python API)
            self.console.print(message)

    @contextlib.contextmanager
    def batch(self, total: int) -> Iterator[None]:
        """A bar over the batch's files, shown while the batch runs."""
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=self.console, transient=True,
                      disable=self.quiet or not self.console.is_terminal) as progress:
            self._progress, self._task = progress, progress.add_task("enhancing", total=total)
            try:
                yield
            finally:
                self._progress = self._task = None

    @contextlib.contextmanager
    def passes(self, job: Job) -> Iterator[StepReport | None]:
        """A bar of one file's network passes (one file at a time only)."""
        progress = self._progress
        if progress is None:
            yield None
            return
        task = progress.add_task(f"  {Path(job.source).name}", total=None)
        try:
            yield lambda done, total: progress.update(task, completed=done, total=total)
        finally:
            progress.remove_task(task)

    def network(self, description: str) -> None:
        """Where the network runs (``-v``)."""
        if self.verbose:
            self.say(f"network: {escape(description)}")

    def problem(self, problem: Problem) -> None:
        if not problem.failure:
            if not self.quiet:
                self.say(f"skipped {shown(problem.source)}: {shown(problem.reason)}")
            return
        self.failures += 1
        self.say(f"[red]error[/]: {shown(problem.source)}: {escape(problem.reason)}")

    def skipped(self, job: Job) -> None:
        if not self.quiet:
            self.say(f"skipped {shown(job.source)}: {shown(job.output)} exists (use --overwrite)")

    def finished(self, outcome: Outcome, dry_run: bool = False) -> None:
        """One file's line: its error, or what was (or, in a dry run, would be) done."""
        job, plan = outcome.job, outcome.plan
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task)
        if outcome.error is not None:
            self.failures += 1
            self.say(f"[red]error[/]: {shown(job.source)}: {escape(outcome.error)}")
            if outcome.detail and (self.verbose or os.environ.get("EXPOSED_TRACEBACK")):
                self.say(escape(outcome.detail))
            return
        if self.quiet or not (outcome.written or dry_run):
            return
        where = f"{shown(job.source)} -> {shown(job.output)}"
        timing = f" in {outcome.seconds:.1f} s" if self.verbose and not dry_run else ""
        if plan is None:  # GP mode
            s = self.settings
            patches = f", {s.gp_patch} x {s.gp_patch} patches" if dry_run else ""
            self.say(f"{where}: GP, k = {s.gp_k}, smoothing {s.gp_smoothing:g}{patches}{timing}")
            return
        if plan.ratio.warning:
            self.say(f"[yellow]warning[/]: {shown(job.source)}: {plan.ratio.warning}")
        self.say(f"{where}: {describe(plan)}{timing}")
        if outcome.maps is not None:
            self.say(f"    uncertainty: {shown(str(outcome.maps[0]))}, {shown(str(outcome.maps[1]))}")
        if self.verbose:
            self.say(f"    ratio: {plan.ratio.reason}; white balance: {plan.wb_source}")
            for note in plan.noise.notes if plan.noise is not None else ():
                self.say(f"    noise: {escape(note)}")
            for note in plan.corrections:
                self.say(f"    camera profile: {escape(note)}")

    def interrupted(self) -> None:
        self.say("interrupted: no partial files were left")

    def summary(self, total: int) -> None:
        if self.failures and not self.quiet and total > 1:
            self.say(f"{self.failures} of {total} failed")
