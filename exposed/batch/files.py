"""Which files a command line means, and where each result goes.

Inputs may be files, folders (``recursive`` descends and mirrors subfolders in the output), quoted
globs, or ``-`` for standard input. Output names are the input's stem, the suffix and the format's
extension, in the output folder (or beside the input). Name clash rule: when two inputs of one run
would get the same output name (``a.ARW`` and ``a.NEF``), each keeps its source extension in the
name (``a_ARW.jpg``, ``a_NEF.jpg``). An output is never an input.
"""

from __future__ import annotations

import glob
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

RAW_SUFFIXES = frozenset({
    ".dng", ".arw", ".srf", ".sr2", ".nef", ".nrw", ".cr2", ".cr3", ".crw", ".rw2", ".raf", ".orf", ".pef",
    ".ptx", ".srw", ".kdc", ".dcr", ".mrw", ".3fr", ".fff", ".iiq", ".erf", ".mef", ".mos", ".raw", ".rwl",
    ".x3f", ".gpr", ".dcs", ".k25", ".bay", ".cap", ".eip", ".rwz",
})
STDIN = "-"
# The names -o treats as one output file; any other name is a folder (made if need be).
OUTPUT_SUFFIXES = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".tif": "tiff", ".tiff": "tiff", ".dng": "dng"}


def uncertainty_paths(output: str) -> tuple[Path, Path]:
    """Where ``--uncertainty`` writes its maps, beside the output: NAME.uncertainty.tif (16 bits)
    and NAME.uncertainty.png (the heat map)."""
    stem = Path(output).with_suffix("")
    return stem.with_name(f"{stem.name}.uncertainty.tif"), stem.with_name(f"{stem.name}.uncertainty.png")


def names_a_file(output: str) -> bool:
    """Whether ``-o output`` is one output file: a name with an image or DNG extension that is not
    an existing folder and does not end in a separator. Everything else is a folder."""
    return (Path(output).suffix.lower() in OUTPUT_SUFFIXES and not output.endswith(("/", "\\"))
            and not Path(output).is_dir())


@dataclass(frozen=True)
class Job:
    source: str  # a path, or "-" for standard input
    output: str  # a path, or "-" for standard output


@dataclass(frozen=True)
class Problem:
    source: str
    reason: str
    failure: bool = True  # False: only a note (the same file named twice), not a failed input


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def expand_inputs(inputs: list[str], recursive: bool, suffixes: frozenset[str] = RAW_SUFFIXES,
                  ) -> tuple[list[tuple[str, Path | None]], list[Problem]]:
    """(file, the folder argument it was found under or None) pairs, and inputs that gave nothing.
    Folders give their files with one of ``suffixes``."""
    found: list[tuple[str, Path | None]] = []
    problems: list[Problem] = []
    for text in inputs:
        if text == STDIN:
            found.append((STDIN, None))
            continue
        path = Path(text)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in suffixes)
            if not files:
                what = "raw files" if suffixes == RAW_SUFFIXES else "raw files or photos"
                problems.append(Problem(text, f"folder holds no {what}" + ("" if recursive else " (try -r)")))
            found += [(str(p), path) for p in files]
        elif path.exists():
            found.append((text, None))
        elif _is_glob(text):
            matches = sorted(glob.glob(text, recursive=recursive))
            if not matches:
                problems.append(Problem(text, "no file matches this pattern"))
            found += [(m, None) for m in matches if Path(m).is_file()]
        else:
            problems.append(Problem(text, "no such file or folder"))
    seen: dict[str, str] = {}
    unique = []
    for source, root in found:
        key = source if source == STDIN else str(Path(source).resolve())
        if key not in seen:
            seen[key] = source
            unique.append((source, root))
        elif source != seen[key]:  # another name for a file already in the batch: said, not done twice
            problems.append(Problem(source, f"the same file as {seen[key]}, done once", failure=False))
    return unique, problems


def plan_outputs(found: list[tuple[str, Path | None]], output: str | None, fmt: str, suffix: str,
                 ) -> tuple[list[Job], list[Problem]]:
    """Output path of every input, following the module's naming and clash rules, and the inputs
    whose output would be the input itself (a raw named x.jpg): those are left out, each with its
    reason, and the rest go on.

    output: None (beside each input; standard output for standard input), ``-`` (standard output,
    one input only), a file name with an image or DNG extension (one input only), or else a folder
    (see :func:`names_a_file`). Raises ValueError for combinations that cannot work.
    """
    extension = "tif" if fmt == "tiff" else fmt
    if output == STDIN or (output is None and [s for s, _ in found] == [STDIN]):
        if len(found) != 1:
            raise ValueError("standard output can take only one picture; give -o a folder for several")
        return [Job(found[0][0], STDIN)], []
    if any(s == STDIN for s, _ in found):
        if len(found) != 1 or output is None:
            raise ValueError("standard input must be the only input, with -o - or -o FILE")
    out_path = Path(output) if output is not None else None
    if output is not None and out_path is not None and names_a_file(output):
        if len(found) != 1:
            raise ValueError(f"-o {output} names one file but there are {len(found)} inputs; "
                             "give a folder (a name without an image extension)")
        if found[0][0] != STDIN and out_path.resolve() == Path(found[0][0]).resolve():
            raise ValueError(f"-o {output} is the input itself; inputs are never overwritten")
        return [Job(found[0][0], str(out_path))], []

    def target(source: str, root: Path | None, name: str) -> Path:
        src = Path(source)
        if out_path is None:
            return src.parent / name
        if root is not None:
            return out_path / src.parent.relative_to(root) / name
        return out_path / name

    targets = [target(s, r, f"{Path(s).stem}{suffix}.{extension}") for s, r in found]
    clashes = Counter(str(t) for t in targets)
    jobs, problems = [], []
    for (source, root), plain in zip(found, targets):
        path = plain
        if clashes[str(plain)] > 1:
            path = target(source, root, f"{Path(source).stem}_{Path(source).suffix.lstrip('.')}{suffix}.{extension}")
        if path.resolve() == Path(source).resolve():
            problems.append(Problem(source, "its output would be the input itself, which is never overwritten; "
                                            "skipped (use --suffix or -o FOLDER/)"))
        else:
            jobs.append(Job(source, str(path)))
    return jobs, problems
