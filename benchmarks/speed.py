"""End-to-end speed and peak memory of ``exposed enhance`` against the converters photographers run,
on generated 12 MP and 24 MP dark raws.

    python benchmarks/speed.py [--sizes 12,24] [--repeats 3] [--precision int8,fp32] [--before DIR] [--out ...]

Every configuration runs as its own process, in rounds (each command once per round, in an
order shuffled afresh each round, so a machine's drift and the aftermath of the command before
fall on all alike), the median of ``--repeats`` rounds with the fastest and
slowest beside it: the time includes start-up (importing torch alone takes about a second),
reading, the work and writing a JPEG, as a user running the command sees it (on a CPU the
network runs on OpenVINO, without torch; one row runs it on torch for comparison); the peak resident
memory is that process's own (it is started from a small launcher, because Linux carries a parent's
peak RSS over into a forked child). Beside exposed's modes, in the same run: rawpy's postprocess
of the same file to a JPEG (LibRaw's ISP alone), darktable-cli and rawtherapee-cli with their
default pipelines where installed; ratios are against darktable-cli (or rawpy without it). A batch
of four copies of the file, minus the single run, gives the seconds per further file of a batch,
where start-up is paid once. The raw is the example scene x100 too dark (Sony A7S II noise, ISO
3200) with its EXIF, so exposed's default picks its own ratio and steps, as for a user's file; one
more row times the default on the same scene only x10 too dark, whose blend is the denser one.
``--before DIR``: another checkout of exposed (``git worktree add DIR COMMIT``) whose default,
x10 and ``--steps 1`` rows run in the same rounds, for a change's before and after on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from exposed.demo import example_scene, write_synthetic_dng
from exposed.denoise.infer import bf16_is_fast
from exposed.io.exif import ExifInfo
from exposed.sensor.cameras import CAMERAS

SIZES = {12: (2832, 4240), 24: (4024, 6048)}  # raw pixels: the SID Sony frame, and a 24 MP sensor
RAWPY_SCRIPT = ("import sys, rawpy, imageio.v3 as iio\n"
                "for path in sys.argv[1:-1]:\n"
                "    with rawpy.imread(path) as raw:\n"
                "        iio.imwrite(sys.argv[-1], raw.postprocess(use_camera_wb=True), extension='.jpg')\n")
# Runs a command and prints its own peak RSS: a small process to fork from, so the figure is the child's.
LAUNCHER = ("import os, sys\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os.execvp(sys.argv[1], sys.argv[1:])\n"
            "_, status, usage = os.wait4(pid, 0)\n"
            "print(usage.ru_maxrss, file=sys.stderr)\n"
            "sys.exit(os.waitstatus_to_exitcode(status))\n")


# Environment variables that hold libraries to an older instruction set (an AVX2-only machine's
# indication on a newer one), recorded with the results when set.
HELD = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE")


def make_raw(path: Path, height: int, width: int, ratio: float = 100.0) -> Path:
    """A dark (``ratio`` times too dark) Sony A7S II ISO 3200 DNG of the example scene, scaled up to
    the sensor size."""
    scene = F.interpolate(example_scene(), size=(height, width), mode="bilinear", align_corners=False)
    return write_synthetic_dng(path, scene, ratio, CAMERAS["sony-a7s2"].at_iso(3200),
                               generator=torch.Generator().manual_seed(0),
                               exif=ExifInfo(make="SONY", model="ILCE-7SM2", exposure_time=0.01, iso=3200,
                                             f_number=2.8)).path


def measure(command: list[str]) -> tuple[float, float, bool]:
    """(seconds, peak RSS in MB, succeeded) of one child process."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, *command], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    *messages, peak_kb = proc.stderr.strip().splitlines() or ["0"]
    if proc.returncode != 0:
        print("\n".join(messages)[-2000:], file=sys.stderr)
    return seconds, int(peak_kb) / 1024, proc.returncode == 0


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def interleaved(commands: list[list[str]], repeats: int, seed: int = 0) -> list[dict[str, Any]]:
    """Every command once per round, ``repeats`` rounds: a machine whose speed drifts over minutes
    (a shared VM's can by a third) slows every command alike, so ratios between them hold. Each
    round runs the commands in its own shuffled order (seeded): on these VMs a process that
    allocates much runs up to half as slow again straight after darktable-cli (a 24 MP `--mode
    amplify` 1.4 to 2.0 s against 1.2 to 1.4 alone), so no command may always follow the same one.
    Per command: the median, fastest and slowest seconds, the largest peak RSS, whether all succeeded."""
    runs: list[list[tuple[float, float, bool]]] = [[] for _ in commands]
    order = list(range(len(commands)))
    shuffler = random.Random(seed)
    for _ in range(repeats):
        shuffler.shuffle(order)
        for i in order:
            runs[i].append(measure(commands[i]))
    return [{"seconds": statistics.median(r[0] for r in rs), "fastest": min(r[0] for r in rs),
             "slowest": max(r[0] for r in rs), "peak_rss_mb": max(r[1] for r in rs), "ok": all(r[2] for r in rs)}
            for rs in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="12,24")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", help="exposed's --precision, comma-separated for a default row each "
                                            "(e.g. int8,fp32 with oneDNN held to AVX2); default: exposed's own choice")
    parser.add_argument("--before", type=Path, help="another checkout of exposed whose default, x10 and "
                                                     "--steps 1 rows run beside this one's (PYTHONPATH)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speed.json")
    args = parser.parse_args()
    precisions: list[str | None] = args.precision.split(",") if args.precision else [None]

    def flag(precision: str | None) -> list[str]:
        return [] if precision is None else ["--precision", precision]

    def named(precision: str | None) -> str:
        return "" if precision is None else f", --precision {precision}"

    console = Console()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            raw = make_raw(Path(tmp) / f"{size}mp.dng", *SIZES[size])
            copies = [str(raw)]
            for i in range(1, 4):
                copies.append(str(Path(tmp) / f"{size}mp_{i}.dng"))
                os.link(raw, copies[-1])
            out = str(Path(tmp) / "out.jpg")
            exposed = [sys.executable, "-m", "exposed", "enhance", "--overwrite", "-q"]
            singles = [("rawpy postprocess + JPEG (LibRaw's ISP only)",
                        [sys.executable, "-c", RAWPY_SCRIPT, str(raw), out])]
            for tool, cmd in (("darktable-cli, default pipeline (no denoise)",
                               ["darktable-cli", str(raw), out, "--core", "--configdir", f"{tmp}/darktable"]),
                              ("rawtherapee-cli, default profile",
                               ["rawtherapee-cli", "-o", out, "-Y", "-c", str(raw)])):
                if shutil.which(cmd[0]):
                    singles.append((tool, cmd))
            first = precisions[0]
            modes = [("exposed --mode amplify", ["--mode", "amplify"])]
            modes += [(f"exposed (default){named(p)}", flag(p)) for p in precisions]
            modes += [(f"exposed --steps 1 (two network passes){named(first)}", ["--steps", "1", *flag(first)]),
                      ("exposed (default) on torch (--runtime torch)",  # torch has no int8: fp32 beside it
                       ["--runtime", "torch", *flag("fp32" if first == "int8" else first)])]
            singles += [(label, exposed + [str(raw), "-o", out, *extra]) for label, extra in modes]
            # A frame only a few stops dark: its ratio is below the models' dense_below, so its blend
            # takes twice the blocks (ModelConfig.dense_below), and it is timed as well.
            few_stops = make_raw(Path(tmp) / f"{size}mp_x10.dng", *SIZES[size], 10.0)
            singles.append((f"exposed (default), the scene x10 too dark (the denser blend){named(first)}",
                            exposed + [str(few_stops), "-o", out, *flag(first)]))
            if args.before:
                before = ["env", f"PYTHONPATH={args.before.resolve()}", *exposed]
                singles += [(f"before: exposed (default){named(first)}", before + [str(raw), "-o", out, *flag(first)]),
                            (f"before: exposed --steps 1{named(first)}",
                             before + [str(raw), "-o", out, "--steps", "1", *flag(first)]),
                            (f"before: the scene x10 too dark{named(first)}",
                             before + [str(few_stops), "-o", out, *flag(first)])]
            batches = [("rawpy postprocess + JPEG (LibRaw's ISP only)", [sys.executable, "-c", RAWPY_SCRIPT, *copies,
                                                                         out])]
            batches += [(label, exposed + [*copies, "-o", f"{tmp}/batch", *extra]) for label, extra in modes[:2]]
            measured = interleaved([cmd for _, cmd in singles + batches], args.repeats)
            single: dict[str, float] = {}
            for (label, _), m in zip(singles, measured):
                single[label] = float(m["seconds"])
                rows.append({"megapixels": size, "config": label, **m})
                console.print(f"{size} MP  {label}: {m['seconds']:.2f} s, {m['peak_rss_mb']:.0f} MB"
                              + ("" if m["ok"] else "  FAILED"))
            for (label, _), m in zip(batches, measured[len(singles):]):
                per_file = (float(m["seconds"]) - single[label]) / (len(copies) - 1)
                rows.append({"megapixels": size, "config": f"{label}, per further file of a batch",
                             "seconds": per_file, "batch_seconds": m["seconds"], "peak_rss_mb": m["peak_rss_mb"],
                             "ok": m["ok"]})
                console.print(f"{size} MP  {label} per further file: {per_file:.2f} s"
                              + ("" if m["ok"] else "  FAILED"))
            base = single[next((label for label, _ in singles if label.startswith("darktable")), singles[0][0])]
            for r in rows:
                if r["megapixels"] == size:
                    r["vs_baseline"] = r["seconds"] / base
    baseline = "darktable-cli" if shutil.which("darktable-cli") else "rawpy"
    title = f"exposed enhance end to end ({cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__})"
    table = Table(title=title)
    for column in ("MP", "command", "wall s", "fastest - slowest", f"vs {baseline}", "peak RSS (MB)"):
        table.add_column(column, justify="left" if column == "command" else "right")
    for r in rows:
        spread = f"{r['fastest']:.2f} - {r['slowest']:.2f}" if "fastest" in r else ""
        table.add_row(str(r["megapixels"]), r["config"] + ("" if r["ok"] else " (failed)"), f"{r['seconds']:.2f}",
                      spread, f"{r['vs_baseline']:.2f}", f"{r['peak_rss_mb']:.0f}")
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpu": cpu_name(), "machine": platform.machine(), "cores": os.cpu_count(),
                                    "torch": torch.__version__, "baseline": baseline, "repeats": args.repeats,
                                    "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                                    "bf16_fast": bf16_is_fast(torch.device("cpu")),
                                    "openvino": _version("openvino"), "precision": args.precision,
                                    "held": {k: os.environ[k] for k in HELD if k in os.environ},
                                    "before": str(args.before) if args.before else None,
                                    "rows": rows}, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
