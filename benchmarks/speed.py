"""End-to-end speed and peak memory of ``exposed enhance`` on generated 12 MP and 24 MP raws.

    python benchmarks/speed.py [--sizes 12,24] [--out benchmarks/results/speed.json]

Every configuration runs as its own process (``python -m exposed enhance FILE -o OUT.jpg ...``), so
the time includes start-up, reading, the model and writing, and the peak resident memory is that
process's own (it is started from a small launcher, because Linux carries a parent's peak RSS over
into a forked child). Beside them, in the same run: rawpy's own postprocess of the same file written
to a JPEG (the ISP floor), and darktable-cli / rawtherapee-cli where installed. Ratios are against
rawpy. A batch of four copies of the file, minus one file, gives the seconds per further file of a
batch, where start-up (importing torch alone takes over a second) is paid once; with ``-j 2`` two
files are read and developed at once.
bf16 rows run only on CPUs where bf16 is fast (AVX-512 bf16 or AMX); elsewhere torch emulates it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
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
                               exif=ExifInfo(exposure_time=0.01, iso=3200, f_number=2.8)).path


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="12,24")
    parser.add_argument("--steps", default="0,1,2")
    parser.add_argument("--precisions", default="fp32,bf16" if bf16_is_fast(torch.device("cpu")) else "fp32")
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
            exposed = [sys.executable, "-m", "exposed", "enhance", "--overwrite", "-q", "--ratio", "100"]
            configs = [("rawpy postprocess (ISP floor)", [sys.executable, "-c", RAWPY_SCRIPT, str(raw), out])]
            for tool, cmd in (("darktable-cli", ["darktable-cli", str(raw), out]),
                              ("rawtherapee-cli", ["rawtherapee-cli", "-o", out, "-Y", "-c", str(raw)])):
                if shutil.which(tool):
                    configs.append((tool, cmd))
            configs.append(("exposed --mode amplify", exposed + [str(raw), "-o", out, "--mode", "amplify"]))
            for precision in args.precisions.split(","):
                for steps in (int(t) for t in args.steps.split(",")):
                    for tile in ("512", "0"):
                        layout = 'tiled 512' if tile != '0' else 'whole frame'
                        label = f"exposed diffusion T={steps} {precision} {layout}"
                        configs.append((label, exposed + [str(raw), "-o", out, "--steps", str(steps),
                                                          "--precision", precision, "--tile", tile]))
            # (label, the single-file row it extends, command); -j 2 decodes two files at once (LibRaw's
            # stderr is silenced once per command, so no lock is held over a decode).
            amplify = exposed + [*copies, "-o", f"{tmp}/batch/", "--mode", "amplify"]
            batches = [("rawpy postprocess (ISP floor)", "rawpy postprocess (ISP floor)",
                        [sys.executable, "-c", RAWPY_SCRIPT, *copies, out]),
                       ("exposed --mode amplify", "exposed --mode amplify", amplify),
                       ("exposed --mode amplify -j 2", "exposed --mode amplify", amplify + ["-j", "2"])]
            single: dict[str, float] = {}
            floor = None
            for label, cmd in configs:
                seconds, rss, ok = measure(cmd)
                floor, single[label] = floor or seconds, seconds
                rows.append({"megapixels": size, "config": label, "seconds": seconds, "peak_rss_mb": rss, "ok": ok,
                             "vs_rawpy": seconds / floor})
                console.print(f"{size} MP  {label}: {seconds:.1f} s, {rss:.0f} MB" + ("" if ok else "  FAILED"))
            floor = None
            for label, base, cmd in batches:
                seconds, rss, ok = measure(cmd)
                per_file = (seconds - single[base]) / (len(copies) - 1)
                floor = floor or per_file
                rows.append({"megapixels": size, "config": f"{label}, per further file of a batch",
                             "seconds": per_file, "peak_rss_mb": rss, "ok": ok, "vs_rawpy": per_file / floor})
                console.print(f"{size} MP  {label} per further file: {per_file:.1f} s" + ("" if ok else "  FAILED"))
    title = f"exposed enhance end to end ({cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__})"
    table = Table(title=title)
    for column in ("MP", "configuration", "seconds", "x rawpy", "peak RSS (MB)"):
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for r in rows:
        table.add_row(str(r["megapixels"]), r["config"] + ("" if r["ok"] else " (failed)"), f"{r['seconds']:.1f}",
                      f"{r['vs_rawpy']:.2f}", f"{r['peak_rss_mb']:.0f}")
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpu": cpu_name(), "machine": platform.machine(), "cores": os.cpu_count(),
                                    "torch": torch.__version__,
                                    "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                                    "rows": rows}, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
