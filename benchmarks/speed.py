"""End-to-end speed and peak memory of ``exposed enhance`` on generated 12 MP and 24 MP raws.

    python benchmarks/speed.py [--sizes 12,24] [--out benchmarks/results/speed.json]

Every configuration runs as its own process (``python -m exposed enhance FILE -o OUT.jpg ...``), so
the time includes start-up, reading, the model and writing, and the peak resident memory is that
process's own. Beside them, in the same run: rawpy's own postprocess of the same file written to a
JPEG (the ISP floor), and darktable-cli / rawtherapee-cli where installed. Ratios are against rawpy.
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

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from exposed.bayer import mosaic
from exposed.cameras import CAMERAS
from exposed.color import CAMERA_XYZ, rgb_to_camera
from exposed.demo import example_scene
from exposed.dng import DngMetadata, write_cfa_dng
from exposed.noise import synthesize_dark
from exposed.unprocess import CameraColour, unprocess

SIZES = {12: (2832, 4240), 24: (4024, 6048)}  # raw pixels: the SID Sony frame, and a 24 MP sensor
RAWPY_SCRIPT = ("import sys, rawpy, imageio.v3 as iio\n"
                "with rawpy.imread(sys.argv[1]) as raw:\n"
                "    iio.imwrite(sys.argv[2], raw.postprocess(use_camera_wb=True), extension='.jpg')\n")


def make_raw(path: Path, height: int, width: int) -> Path:
    """A dark (x100) Sony A7S II ISO 3200 DNG of the example scene, scaled up to the sensor size."""
    scene = F.interpolate(example_scene(), size=(height, width), mode="bilinear", align_corners=False)
    xyz = CAMERA_XYZ["Sony ILCE-7S / 7S II"]
    gains = torch.tensor([[2.1, 1.0, 1.7]])
    clean = mosaic(unprocess(scene, CameraColour(rgb_to_camera(xyz)[None].float(), gains)), "RGGB")
    noise = CAMERAS["sony-a7s2"].at_iso(3200)
    dark = synthesize_dark(clean, torch.tensor([100.0]), noise, torch.Generator().manual_seed(0))
    dn = (dark[0, 0] * noise.scale.item() + 512).round().clamp(0, 16383).numpy().astype(np.uint16)
    return write_cfa_dng(path, dn, DngMetadata("RGGB", np.full((2, 2), 512.0), 16383, xyz.numpy(),
                                               (1 / gains[0]).numpy(), exposure_time=0.01, iso=3200, f_number=2.8))


def measure(command: list[str]) -> tuple[float, float, bool]:
    """(seconds, peak RSS in MB, succeeded) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        print(proc.stderr.read().decode()[-2000:] if proc.stderr else "", file=sys.stderr)
    return seconds, usage.ru_maxrss / 1024, proc.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="12,24")
    parser.add_argument("--steps", default="0,1,2")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speed.json")
    args = parser.parse_args()
    console = Console()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            raw = make_raw(Path(tmp) / f"{size}mp.dng", *SIZES[size])
            out = str(Path(tmp) / "out.jpg")
            exposed = [sys.executable, "-m", "exposed", "enhance", str(raw), "-o", out, "--overwrite", "-q",
                       "--ratio", "100"]
            configs = [("rawpy postprocess (ISP floor)", [sys.executable, "-c", RAWPY_SCRIPT, str(raw), out])]
            for tool, cmd in (("darktable-cli", ["darktable-cli", str(raw), out]),
                              ("rawtherapee-cli", ["rawtherapee-cli", "-o", out, "-Y", "-c", str(raw)])):
                if shutil.which(tool):
                    configs.append((tool, cmd))
            configs.append(("exposed --mode amplify", exposed + ["--mode", "amplify"]))
            for precision in ("fp32", "bf16"):
                for steps in (int(t) for t in args.steps.split(",")):
                    for tile in ("512", "0"):
                        label = f"exposed diffusion T={steps} {precision} {'tiled 512' if tile != '0' else 'whole frame'}"
                        configs.append((label, exposed + ["--steps", str(steps), "--precision", precision,
                                                          "--tile", tile]))
            floor = None
            for label, cmd in configs:
                seconds, rss, ok = measure(cmd)
                floor = floor or seconds
                rows.append({"megapixels": size, "config": label, "seconds": seconds, "peak_rss_mb": rss, "ok": ok,
                             "vs_rawpy": seconds / floor})
                console.print(f"{size} MP  {label}: {seconds:.1f} s, {rss:.0f} MB" + ("" if ok else "  FAILED"))
    table = Table(title=f"exposed enhance end to end ({platform.machine()}, {os.cpu_count()} cores, "
                        f"torch {torch.__version__})")
    for column in ("MP", "configuration", "seconds", "x rawpy", "peak RSS (MB)"):
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for r in rows:
        table.add_row(str(r["megapixels"]), r["config"] + ("" if r["ok"] else " (failed)"), f"{r['seconds']:.1f}",
                      f"{r['vs_rawpy']:.2f}", f"{r['peak_rss_mb']:.0f}")
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.machine(), "cores": os.cpu_count(),
                                    "torch": torch.__version__, "rows": rows}, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
