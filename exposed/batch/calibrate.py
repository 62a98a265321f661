"""``exposed calibrate``: a camera's noise profile from its dark (and flat) frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from exposed.batch.files import expand_inputs
from exposed.batch.report import shown
from exposed.batch.run import EXIT_FAILED, EXIT_OK
from exposed.imaging.bayer import cell_offsets
from exposed.io.raw import RawError, RawImage, read_raw
from exposed.sensor.calibrate import Shot, calibrate

DARK_CLIPPED_SHARE = 0.001  # more photosites than this at zero: the black level hides the noise


def _shots(names: list[str], kind: str, console: Console) -> tuple[list[tuple[Shot, RawImage]], int]:
    """Each readable frame with its ISO, and how many were refused (each said why)."""
    found, problems = expand_inputs(names, recursive=False)
    failures = len(problems)
    for problem in problems:
        console.print(f"[red]error[/]: {shown(problem.source)}: {escape(problem.reason)}")
    shots = []
    for source, _ in found:
        try:
            raw = read_raw(source)
        except (RawError, OSError) as error:
            console.print(f"[red]error[/]: {shown(source)}: {escape(str(error))}")
            failures += 1
            continue
        reason = None
        iso = raw.exif.iso
        if not iso:
            reason = f"no ISO in its EXIF: a {kind} frame must say its ISO"
        elif kind == "dark" and (raw.mosaic == 0).mean() > DARK_CLIPPED_SHARE:
            reason = "too many photosites at zero: its black level is too low to show the noise below it"
        if reason:
            console.print(f"[red]error[/]: {shown(source)}: {reason}")
            failures += 1
            continue
        h, w = raw.mosaic.shape
        black = np.tile(raw.black, (h // 2, w // 2))
        mosaic = torch.from_numpy(raw.mosaic.astype(np.float64) - black)
        shots.append((Shot(mosaic, float(iso or 0), raw.exif.exposure_time), raw))
    return shots, failures


def calibrate_files(darks: list[str], flats: list[str], output: Path, console: Console) -> int:
    """Fit and write the profile; the exit status (1 when any frame was refused or nothing could be fitted)."""
    dark_shots, failures = _shots(darks, "dark", console)
    flat_shots, flat_failures = _shots(flats, "flat", console)
    failures += flat_failures
    if not dark_shots:
        console.print("[red]error[/]: no usable dark frame")
        return EXIT_FAILED
    first = dark_shots[0][1]

    def matching(shots: list[tuple[Shot, RawImage]]) -> list[Shot]:
        kept = []
        for shot, raw in shots:
            if raw.mosaic.shape == first.mosaic.shape and raw.pattern == first.pattern and raw.white == first.white:
                kept.append(shot)
            else:
                console.print(f"[red]error[/]: {shown(str(raw.path))}: not the same sensor mode as "
                              f"{shown(str(first.path))} (size, Bayer pattern or white level differ)")
        return kept

    usable_darks, usable_flats = matching(dark_shots), matching(flat_shots)
    failures += len(dark_shots) + len(flat_shots) - len(usable_darks) - len(usable_flats)
    black = [float(first.black[r, c]) for r, c in cell_offsets(first.pattern)]
    try:
        profile = calibrate(usable_darks, usable_flats, first.pattern, float(first.white), black,
                            first.exif.make, first.exif.model)
    except ValueError as error:
        console.print(f"[red]error[/]: {escape(str(error))}")
        return EXIT_FAILED
    profile.save(output)
    table = Table(title=f"{first.exif.make or ''} {first.exif.model or ''}: noise per ISO (DN, mean of the four sites)")
    for column in ("ISO", "dark", "flat pairs", "black offset", "read sigma", "row sigma", "Tukey lambda", "K (DN/e-)"):
        table.add_column(column, justify="right")
    for fit in profile.isos:
        table.add_row(f"{fit.iso:g}", str(fit.dark_frames), str(fit.flat_pairs), f"{sum(fit.offset) / 4:+.2f}",
                      f"{sum(fit.read_sigma) / 4:.2f}", f"{fit.row_sigma:.2f}", f"{fit.tukey_lambda:+.3f}",
                      f"{sum(fit.K) / 4:.3f}" if fit.K else "-")
    console.print(table)
    if profile.gain_fit is None:
        console.print("no flat frames: the profile has read noise but no gain (enhance takes the gain from the "
                      "next source; train needs --flat)")
    console.print(f"{len(profile.hot_pixels)} hot photosites" if any(f.dark_frames > 1 for f in profile.isos) else
                  "one dark frame per ISO cannot tell hot photosites from noise: none mapped (give two or more)")
    console.print(f"wrote {output}")
    return EXIT_FAILED if failures else EXIT_OK
