"""End-to-end speed and peak memory of ``exposed enhance`` against the converters photographers run,
on generated 12 MP and 24 MP dark raws.

    python benchmarks/speed.py [--sizes 12,24] [--repeats 3] [--out benchmarks/results/speed.json]

Every configuration runs as its own process, one after another in one run, the median of
``--repeats`` runs: the time includes start-up (importing torch alone takes over a second),
reading, the work and writing a JPEG, as a user running the command sees it; the peak resident
memory is that process's own (it is started from a small launcher, because Linux carries a parent's
peak RSS over into a forked child). Beside exposed's modes, in the same run: rawpy's postprocess
of the same file to a JPEG (LibRaw's ISP alone), darktable-cli and rawtherapee-cli with their
default pipelines where installed; ratios are against darktable-cli (or rawpy without it). A batch
of four copies of the file, minus the single run, gives the seconds per further file of a batch,
where start-up is paid once. The raw is the example scene x100 too dark (Sony A7S II noise, ISO
3200) with its EXIF, so exposed's default picks its own ratio and steps, as for a user's file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def make_raw(path: Path, height: int, width: int) -> Path:
    """A dark (x100) Sony A7S II ISO 3200 DNG of the example scene, scaled up to the sensor size."""
    scene = F.interpolate(example_scene(), size=(height, width), mode="bilinear", align_corners=False)
    return write_synthetic_dng(path, scene, 100.0, CAMERAS["sony-a7s2"].at_iso(3200),
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


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def median_run(command: list[str], repeats: int) -> tuple[float, float, bool]:
    """The median seconds and the largest peak RSS of ``repeats`` runs."""
    runs = [measure(command) for _ in range(repeats)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs), all(r[2] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="12,24")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speed.json")
    args = parser.parse_args()
    console = Console()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            raw = make_raw(Path(tmp) / f"{size}mp.dng", *SIZES[size])
            copies = [str(raw)] + [os.link(raw, Path(tmp) / f"{size}mp_{i}.dng") or str(Path(tmp) / f"{size}mp_{i}.dng")
                                   for i in range(1, 4)]
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
            modes = [("exposed --mode amplify", ["--mode", "amplify"]), ("exposed (default)", []),
                     ("exposed --steps 1 (two network passes)", ["--steps", "1"])]
            singles += [(label, exposed + [str(raw), "-o", out, *extra]) for label, extra in modes]
            batches = [("rawpy postprocess + JPEG (LibRaw's ISP only)", [sys.executable, "-c", RAWPY_SCRIPT, *copies,
                                                                         out])]
            batches += [(label, exposed + [*copies, "-o", f"{tmp}/batch", *extra]) for label, extra in modes[:2]]
            single: dict[str, float] = {}
            for label, cmd in singles:
                seconds, rss, ok = median_run(cmd, args.repeats)
                single[label] = seconds
                rows.append({"megapixels": size, "config": label, "seconds": seconds, "peak_rss_mb": rss, "ok": ok})
                console.print(f"{size} MP  {label}: {seconds:.2f} s, {rss:.0f} MB" + ("" if ok else "  FAILED"))
            for label, cmd in batches:
                seconds, rss, ok = median_run(cmd, args.repeats)
                per_file = (seconds - single[label]) / (len(copies) - 1)
                rows.append({"megapixels": size, "config": f"{label}, per further file of a batch",
                             "seconds": per_file, "peak_rss_mb": rss, "ok": ok})
                console.print(f"{size} MP  {label} per further file: {per_file:.2f} s" + ("" if ok else "  FAILED"))
            base = single[next((label for label, _ in singles if label.startswith("darktable")), singles[0][0])]
            for r in rows:
                if r["megapixels"] == size:
                    r["vs_baseline"] = r["seconds"] / base
    baseline = "darktable-cli" if shutil.which("darktable-cli") else "rawpy"
    title = f"exposed enhance end to end ({cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__})"
    table = Table(title=title)
    for column in ("MP", "command", "wall s", f"vs {baseline}", "peak RSS (MB)"):
        table.add_column(column, justify="left" if column == "command" else "right")
    for r in rows:
        table.add_row(str(r["megapixels"]), r["config"] + ("" if r["ok"] else " (failed)"), f"{r['seconds']:.2f}",
                      f"{r['vs_baseline']:.2f}", f"{r['peak_rss_mb']:.0f}")
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpu": cpu_name(), "machine": platform.machine(), "cores": os.cpu_count(),
                                    "torch": torch.__version__, "baseline": baseline, "repeats": args.repeats,
                                    "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                                    "bf16_fast": bf16_is_fast(torch.device("cpu")), "rows": rows}, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
