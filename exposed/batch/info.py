"""``exposed info``: what each file is and what exposed would do with it, for people or as JSON."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from rich.console import Console
from rich.markup import escape

from exposed.batch.files import expand_inputs
from exposed.batch.job import internal_error, raised_by_exposed
from exposed.batch.report import shown
from exposed.batch.run import EXIT_FAILED, EXIT_OK
from exposed.io.raw import RawError, read_raw
from exposed.modes import Mode
from exposed.pipeline import Enhancer, Settings


def describe_files(files: list[str], as_json: bool, mode: str, noise_profile: str | None, profile: Path | None,
                   console: Console) -> int:
    """``exposed info``: what each file is and what exposed would do with it."""
    found, problems = expand_inputs(files, recursive=False)
    enhancer = Enhancer(replace(Settings(), mode=cast(Mode, mode), noise_profile=noise_profile, profile=profile))
    records: list[dict[str, Any]] = []
    failures = len(problems)
    for problem in problems:
        records.append({"file": problem.source, "error": problem.reason})
    for source, _ in found:
        try:
            raw = read_raw(source)
            plan = enhancer.plan(raw)
        except Exception as error:  # the file boundary, as in enhance
            failures += 1
            ours = isinstance(error, RawError | OSError) or isinstance(error, ValueError) and raised_by_exposed(error)
            records.append({"file": source, "error": str(error) if ours else internal_error(error)
                            or "could not be read: the file holds values exposed cannot use"})
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
            "noise_source": plan.noise.source if plan.noise else None,
            "noise_notes": list(plan.noise.notes) if plan.noise else [], "corrections": list(plan.corrections)})
    if as_json:
        sys.stdout.write(json.dumps(records, indent=2) + "\n")
    else:
        for r in records:
            if "error" in r:
                console.print(f"[red]error[/]: {shown(r['file'])}: {escape(r['error'])}")
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
