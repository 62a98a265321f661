"""Throughput of the synthetic raw training sampler.

    python benchmarks/sampler.py [IMAGE_FOLDER] [--seconds 8] [--device auto] [--out benchmarks/results/sampler.json]

Measures patches per second for 256 x 256 (and 512 x 512) raw patches with P+G and ELD noise, in
the main process and with DataLoader workers, against a baseline in the same run that decodes the
image file for every patch instead of using the in-memory bank. Then the night-photography mix the
shipped models train on (all cameras, P+G and ELD, 8 to 14 bits, night scenes), made on the CPU and
made on the training device with the bank held there (the path ``exposed train`` takes on a GPU; on
a CPU-only machine the two are the same code, so the figures show its cost is nothing extra).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader

from exposed.sensor.cameras import CAMERAS
from exposed.training.data import ImageBank, SensorMix, SyntheticRaw, find_images, read_rgb8
from exposed.denoise.infer import pick_device
from exposed.training.night import NightScenes

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "images" / "train"


class DecodeEveryPatch(ImageBank):
    """Baseline: the same sampler, but every crop decodes its image file again (no decoded-image cache)."""

    device = torch.device("cpu")

    def __init__(self, paths: list[Path]):
        self.paths = paths
        self.weights = torch.tensor([float(np.prod(iio.improps(p).shape[:2])) for p in paths], dtype=torch.float64)

    def image(self, index: int) -> torch.Tensor:
        return read_rgb8(self.paths[index])


def rate(data: SyntheticRaw, workers: int, seconds: float) -> float:
    it = iter(DataLoader(data, batch_size=None, num_workers=workers, persistent_workers=False) if workers else data)
    next(it)  # start-up (worker fork, kernel choice) is not throughput
    sync = torch.cuda.synchronize if data.bank.device.type == "cuda" else (lambda: None)
    sync()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        count += next(it).noisy.shape[0]
    sync()
    del it
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="auto", help="where the on-device rows' bank lives (auto: CUDA, MPS, CPU)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sampler.json")
    args = parser.parse_args()
    console = Console()

    start = time.perf_counter()
    bank = ImageBank.from_folder(args.folder, min_size=256)
    load = time.perf_counter() - start
    console.print(f"decoded {len(bank)} images ({bank.megapixels:.1f} MP) in {load:.1f} s; "
                  f"torch threads {torch.get_num_threads()}")
    banks = {256: bank, 512: ImageBank.from_paths([p for p in find_images(args.folder)
                                                   if min(iio.improps(p).shape[:2]) >= 512], min_size=512)}

    rows = []
    for patch, bank in banks.items():
        for noise in ("pg", "eld"):
            for workers in (0, 1, 2):
                data = SyntheticRaw(bank, patch=patch, batch_size=args.batch,
                                    sensors=SensorMix(("virtual",), (noise,)))
                rows.append({"patch": patch, "noise": noise, "workers": workers, "source": "in-memory bank",
                             "patches_per_s": rate(data, workers, args.seconds)})
    baseline = DecodeEveryPatch(find_images(args.folder))
    data = SyntheticRaw(baseline, patch=256, batch_size=args.batch, sensors=SensorMix(("virtual",)))
    rows.append({"patch": 256, "noise": "pg", "workers": 0, "source": "decode per patch (baseline)",
                 "patches_per_s": rate(data, 0, args.seconds)})
    base = rows[-1]["patches_per_s"]
    device = pick_device(args.device)
    mix = dict(patch=256, batch_size=args.batch, night=NightScenes(share=0.5),
               sensors=SensorMix(tuple(CAMERAS) + ("virtual",), ("pg", "eld"), (8, 10, 12, 12, 14, 14, 14, 14),
                                 varied_black=True, black_error=2.0, quantise=True))
    for where, mix_bank in (("cpu", banks[256]), (device.type, banks[256].to(device))):
        rows.append({"patch": 256, "noise": "night mix", "workers": 0, "source": f"bank on {where}",
                     "patches_per_s": rate(SyntheticRaw(mix_bank, **mix), 0, args.seconds)})

    table = Table(title=f"Synthetic raw sampler throughput (batch of {args.batch})")
    for column in ("patch", "noise", "workers", "images from", "patches / s", "x baseline"):
        table.add_column(column, justify="right")
    for r in rows:
        r["vs_baseline"] = r["patches_per_s"] / base
        table.add_row(str(r["patch"]), r["noise"], str(r["workers"]), r["source"], f"{r['patches_per_s']:.0f}",
                      f"{r['vs_baseline']:.1f}")
    console.print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "device": str(device),
                                    "torch_threads": torch.get_num_threads(), "load_seconds": load,
                                    "images": len(banks[256]), "megapixels": banks[256].megapixels,
                                    "rows": rows}, indent=2) + "\n")
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
