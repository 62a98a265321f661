"""Fuzz `exposed enhance` with mutated raws and photos, in batches, the way a user's folder would.

    python benchmarks/fuzz.py [--count 5000] [--batch 50] [--seed 0] [--out benchmarks/results/fuzz.json]

Seeds: the real raws of ../shared/data/raw (where present), DNGs from exposed's own writer with
random levels, sizes, patterns and EXIF (NaN and infinite values among them), and small JPEG, PNG
and TIFF photos. Mutations: bit flips in the header or the data, runs of one byte, truncation,
corrupted IFD entries (type, count, offset), absurd dimensions and levels, a raw named as a photo
and back, special files (a FIFO, a link to /dev/zero, a folder named like a raw, an empty file)
and odd names (tabs, rich markup, emoji codes, bytes that are not UTF-8). Each batch runs through
the command line in one of the modes (amplify, diffusion with a tiny untrained model, feedforward,
gp), in its own output folder and TMPDIR, under a timeout. Reported per mutation kind: tracebacks,
crashes (death by a signal or an unexpected exit status), hangs, outputs left for failed inputs,
partial files or temporary folders left, modified inputs, inputs not named on stderr, and the
peak RSS of any run. Exit status 1 when any of those is not zero.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch

from exposed.batch.report import printable
from exposed.imaging.color import D65, Calibration
from exposed.io.dng import DngMetadata, write_dng
from exposed.io.exif import ExifInfo

ROOT = Path(__file__).resolve().parents[1]
SHARED_RAW = ROOT.parent / "shared" / "data" / "raw"
KINDS = ("header_flip", "data_flip", "byte_run", "truncate", "ifd_entry", "levels_and_size", "exif_values",
         "wrong_extension", "special_file", "odd_name", "photo_flip", "photo_truncate", "clean")
CHECKS = ("traceback", "crash", "hang", "output_for_failed", "partial_or_temp_left", "input_modified",
          "input_not_named")
BAD_FLOATS = (float("inf"), float("-inf"), float("nan"), 1e20, -1e20, 0.0)


def _synthetic_dng(path: Path, rng: random.Random) -> Path:
    """A DNG from exposed's writer with random but plausible or absurd levels and shot data."""
    h, w = rng.choice([(2, 2), (16, 24), (30, 40), (64, 96), (128, 96)])
    white = rng.choice([255, 1023, 4095, 16383, 65535, 1000])
    black = rng.choice([0.0, 64.0, 512.0, float(white), white * 0.99])
    pixels = np.random.default_rng(rng.randrange(1 << 30)).integers(0, white + 1, (h, w)).astype(np.uint16)
    if rng.random() < 0.1:
        pixels[:] = rng.choice([0, white])
    matrix = rng.choice([np.eye(3), np.ones((3, 3)), np.zeros((3, 3)), np.diag([1.0, 2.0, 0.5])])
    exif = ExifInfo(make="Fuzz", model="Cam", exposure_time=rng.choice([1 / 50, 30.0, 1e-9]),
                    f_number=rng.choice([2.8, 0.1, 64.0]), iso=rng.choice([100.0, 3200.0, 1e7]),
                    exposure_bias=rng.choice([0.0, -3.0, 9.0]), lens=rng.choice(["", "50mm", "\u00e9\u00e8"]))
    meta = DngMetadata(rng.choice(["RGGB", "BGGR", "GRBG", "GBRG"]), np.full((2, 2), black), white,
                       (Calibration(D65, matrix),), np.array([0.5, 1.0, 0.7]), orientation=rng.choice([1, 3, 6, 8]),
                       exif=exif, noise_profile=rng.choice([None, [(1e-4, 1e-6)], [(-1.0, 5.0)]]))
    return write_dng(path, pixels, meta)


def _ifd_entries(data: bytes) -> list[int]:
    """Offsets of IFD0's 12-byte entries in a TIFF-based file (empty when it is not one)."""
    if data[:2] not in (b"II", b"MM") or len(data) < 8:
        return []
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    if ifd + 2 > len(data):
        return []
    (count,) = struct.unpack(order + "H", data[ifd:ifd + 2])
    return [ifd + 2 + 12 * i for i in range(min(count, 400)) if ifd + 14 + 12 * i <= len(data)]


def _mutate(data: bytes, kind: str, rng: random.Random) -> bytes:
    out = bytearray(data)
    if not out:
        return bytes(out)
    if kind in ("header_flip", "photo_flip"):
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(min(len(out), 4096))
            out[i] ^= 1 << rng.randrange(8)
    elif kind == "data_flip":
        for _ in range(rng.randint(1, 64)):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
    elif kind == "byte_run":
        start = rng.randrange(len(out))
        run = rng.randint(1, 4096)
        out[start:start + run] = bytes([rng.choice([0, 255, rng.randrange(256)])]) * len(out[start:start + run])
    elif kind in ("truncate", "photo_truncate"):
        out = out[:rng.randrange(len(out))]
    elif kind == "ifd_entry":
        entries = _ifd_entries(data)
        for at in rng.sample(entries, min(len(entries), rng.randint(1, 3))):
            field = rng.choice([2, 4, 8])  # type, count or value/offset
            size = 2 if field == 2 else 4
            value = rng.choice([0, 1, 0xFFFF, 0xFFFFFFFF, rng.randrange(1 << 16), rng.randrange(1 << 32)])
            out[at + field:at + field + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    return bytes(out)


def make_inputs(folder: Path, count: int, seed: int) -> list[tuple[Path, str]]:
    """``count`` fuzzed inputs in ``folder`` (names unique by stem), each with its mutation kind."""
    rng = random.Random(seed)
    seeds = [p for p in sorted(SHARED_RAW.glob("*")) + sorted((SHARED_RAW / "stubs").glob("*"))
             if p.is_file() and p.stat().st_size < 5e6] if SHARED_RAW.is_dir() else []
    own = [_synthetic_dng(folder / f"seed{i}.dng", rng) for i in range(12)]
    photos = []
    for i, ext in enumerate(("jpg", "png", "tif") * 2):
        image = (np.random.default_rng(i).random((48 + 8 * i, 64, 3)) * 60).astype(np.uint8)
        path = folder / f"photo{i}.{ext}"
        iio.imwrite(path, image)
        photos.append(path)
    made: list[tuple[Path, str]] = []
    for n in range(count):
        kind = rng.choice(KINDS)
        stem = f"f{n:05d}"
        if kind == "odd_name":
            stem += rng.choice(["\tx", "[bold]y", ":thumbs_up:", " z ", "caf\udce9"])
        if kind == "special_file":
            special = rng.choice(["fifo", "zero", "folder", "empty"])
            path = folder / f"{stem}.{rng.choice(['dng', 'png', 'jpg', 'nef'])}"
            if special == "fifo":
                os.mkfifo(path)
            elif special == "zero":
                path.symlink_to("/dev/zero")
            elif special == "folder":
                path.mkdir()
            else:
                path.write_bytes(b"")
            made.append((path, kind))
            continue
        if kind.startswith("photo"):
            source = rng.choice(photos)
        elif kind in ("levels_and_size", "exif_values"):
            source = _synthetic_dng(folder / f"{stem}.src.dng", rng)
        else:
            source = rng.choice(seeds + own if seeds else own)
        data = source.read_bytes()
        if kind not in ("clean", "levels_and_size", "exif_values", "wrong_extension", "odd_name"):
            data = _mutate(data, kind, rng)
        suffix = source.suffix
        if kind == "wrong_extension":
            suffix = rng.choice([".jpg", ".png", ".dng", ".arw", ".tif"])
        path = folder / f"{stem}{suffix}"
        path.write_bytes(data)
        if kind == "exif_values":
            _poison_exif(path, rng)
        made.append((path, kind))
    for p in folder.glob("*.src.dng"):
        p.unlink()
    return made


def _poison_exif(path: Path, rng: random.Random) -> None:
    """Overwrite the rational EXIF values (exposure time, f-number, bias) with absurd ones, as
    DOUBLE entries (type 12) pointing at 8-byte values appended to the file."""
    data = bytearray(path.read_bytes())
    if data[:2] != b"II":
        return
    for at in range(8, len(data) - 12, 2):
        code, kind = struct.unpack("<HH", data[at:at + 4])
        if code in (0x829A, 0x829D, 0x9204, 0x9203) and kind in (5, 10) and data[at + 4:at + 8] == b"\1\0\0\0":
            offset = len(data) + (len(data) & 1)
            data += b"\0" * (offset - len(data)) + struct.pack("<d", rng.choice(BAD_FLOATS))
            data[at + 2:at + 4] = struct.pack("<H", 12)
            data[at + 8:at + 12] = struct.pack("<I", offset)
    path.write_bytes(bytes(data))


def _digest(path: Path) -> str | None:
    if path.is_symlink() or not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_batch(inputs: list[tuple[Path, str]], mode: str, model: Path | None, work: Path, timeout: float,
              ) -> tuple[dict[str, Counter], list[str]]:
    """One command over ``inputs``; the failures found, by mutation kind, and notes on them."""
    out, tmp = work / "out", work / "tmp"
    for folder in (out, tmp):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    before = {path: _digest(path) for path, _ in inputs}
    command = [sys.executable, "-m", "exposed", "enhance", *map(os.fsencode, (str(p) for p, _ in inputs)),
               "-o", f"{out}/", "--mode", mode]
    if model is not None:
        command += ["--model", str(model), "--steps", "1"]
    found: dict[str, Counter] = defaultdict(Counter)
    notes: list[str] = []
    kinds = Counter(kind for _, kind in inputs)
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, env={**os.environ, "TMPDIR": str(tmp)})
    except subprocess.TimeoutExpired:
        for kind in kinds:
            found[kind]["hang"] += 1
        notes.append(f"hang: {mode} over {[p.name for p, _ in inputs]}")
        return found, notes
    stderr = done.stderr.decode("utf-8", "replace")
    if "Traceback" in stderr:  # none is expected: every file's errors are caught at its boundary
        found["batch"]["traceback"] += 1
        notes.append(f"traceback ({mode}): " + stderr[stderr.index("Traceback"):][-600:])
    if done.returncode not in (0, 1):  # a signal, or a usage error for a batch of files that exist
        found["batch"]["crash"] += 1
        notes.append(f"exit {done.returncode} ({mode}): {stderr[-300:]}")
    left = [p for p in out.rglob("*") if ".part" in p.name] + list(tmp.iterdir())
    if left:
        found["batch"]["partial_or_temp_left"] += len(left)
        notes.append(f"left: {left[:3]}")
    lines = stderr.splitlines()
    for path, kind in inputs:
        name = printable(str(path))
        mentions = [line for line in lines if name in line]
        if not mentions:
            found[kind]["input_not_named"] += 1
            notes.append(f"not named: {name!r} ({mode})")
        if any(line.startswith("error:") for line in mentions):
            if any((out / f"{path.stem}{suffix}.jpg").exists() for suffix in ("", "-exposed")):
                found[kind]["output_for_failed"] += 1
        if _digest(path) != before[path]:
            found[kind]["input_modified"] += 1
    return found, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one batch may take")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fuzz.json")
    args = parser.parse_args()
    started = time.time()
    totals: dict[str, Counter] = defaultdict(Counter)
    kinds: Counter = Counter()
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="exposed-fuzz-") as folder:
        root = Path(folder)
        inputs_dir = root / "inputs"
        inputs_dir.mkdir()
        inputs = make_inputs(inputs_dir, args.count, args.seed)
        kinds.update(kind for _, kind in inputs)
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest import tiny_model, tiny_reference

        models = {"diffusion": tiny_model(root / "tiny.pt"), "feedforward": tiny_model(root / "twin.pt", "feedforward"),
                  "gp": tiny_reference(root / "ref.pt"), "amplify": None}
        rng = random.Random(args.seed + 1)
        for start in range(0, len(inputs), args.batch):
            mode = rng.choice(["amplify", "amplify", "diffusion", "feedforward", "gp"])
            found, batch_notes = run_batch(inputs[start:start + args.batch], mode, models[mode], root / "work",
                                           args.timeout)
            for kind, counter in found.items():
                totals[kind].update(counter)
            notes += batch_notes
            print(f"{min(start + args.batch, len(inputs))}/{len(inputs)} inputs, "
                  f"{sum(sum(c.values()) for c in totals.values())} failures", flush=True)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    summary = {check: sum(c[check] for c in totals.values()) for check in CHECKS}
    print(f"\n{'kind':<18}{'inputs':>8}" + "".join(f"{c:>22}" for c in CHECKS))
    for kind in (*KINDS, "batch"):
        print(f"{kind:<18}{kinds.get(kind, 0):>8}" + "".join(f"{totals[kind][c]:>22}" for c in CHECKS))
    print(f"{'all':<18}{len(inputs):>8}" + "".join(f"{summary[c]:>22}" for c in CHECKS))
    print(f"peak RSS of any run: {peak_mb:.0f} MB; {time.time() - started:.0f} s")
    for note in notes[:20]:
        print("  " + note)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"count": len(inputs), "seed": args.seed, "batch": args.batch,
                                    "inputs_by_kind": dict(kinds), "failures": summary,
                                    "by_kind": {k: dict(v) for k, v in totals.items()},
                                    "peak_rss_mb": peak_mb, "seconds": time.time() - started,
                                    "torch": torch.__version__, "notes": notes[:50]}, indent=1) + "\n")
    raise SystemExit(1 if any(summary.values()) or peak_mb > 3000 else 0)


if __name__ == "__main__":
    main()
