"""The same model on its two runtimes: does the CPU runtime (OpenVINO and numpy) score what torch does?

    python benchmarks/runtimes.py [--count 16] [--ratios 1,5,20,100,300]

`exposed enhance` runs the network through OpenVINO on a CPU (exposed.denoise.openvino) and through
torch on a GPU, and quality.py scores torch's. This scores both, on validation crops made into
Sony A7S II raws with P+G noise, plain and as quality.py's night scenes with lamps (clipped in
the dark frame, held white), with each model's own T and blend: torch in fp32 and bf16 (where the
CPU is fast at it), OpenVINO in fp32, in int8 (the model's int8 form, where it has one) and in the
precision it picks here, and plain brightening.
Columns: PSNR (dB) per ratio, mean over the crops; rows after the first also give the largest
change of any crop's PSNR from torch fp32's. Where T > 0 the photons are drawn by each runtime's
own generator, so those columns agree in distribution, not crop by crop. Writes
benchmarks/results/runtimes.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from exposed.denoise import numpy_infer
from exposed.denoise.checkpoint import load_model
from exposed.denoise.infer import bf16_is_fast, channels_last, denoise
from exposed.denoise.openvino import OpenVinoSession, int8_form
from exposed.exposure import brighten
from exposed.imaging.metrics import psnr
from exposed.modes import default_model_path
from exposed.training.evaluate import EvalItem, EvalSet, make_eval_set
from exposed.training.night import NightScenes
from speed import cpu_name  # benchmarks/, the script's own folder

ROOT = Path(__file__).resolve().parents[1]
NIGHT_RATIOS = (20.0, 100.0)  # quality.py's night-scene set
AMPLIFY = "plain brightening (--mode amplify)"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "runtimes.json"
Method = Callable[[EvalItem], np.ndarray]


def torch_method(path: Path, precision: str) -> Method:
    model = channels_last(load_model(path))
    if precision == "bf16":
        model.backbone.to(torch.bfloat16)

    def run(item: EvalItem) -> np.ndarray:
        sensor = item.sensor
        out = denoise(model, item.dark, torch.tensor([item.ratio]), sensor, None, torch.Generator().manual_seed(0),
                      precision)  # type: ignore[arg-type]
        return out.numpy()
    return run


def openvino_method(path: Path, precision: str) -> tuple[Method, str]:
    session = OpenVinoSession(path, precision)

    def run(item: EvalItem) -> np.ndarray:
        sensor = item.sensor
        gain = np.broadcast_to(sensor.gain.double().numpy().reshape(-1), (4,))
        read = np.broadcast_to(sensor.read_var.double().numpy().reshape(-1), (4,))
        dark = item.dark.numpy()
        return numpy_infer.denoise(session.backbone, session.config, dark, dark >= 1.0, item.ratio, gain, read)
    return run, session.precision


def amplify(item: EvalItem) -> np.ndarray:
    """Plain brightening (``--mode amplify``), the floor every runtime must stay above."""
    return brighten(item.dark, torch.tensor([item.ratio])).clamp(0.0, 1.0).numpy()


def table_rows(data: EvalSet, methods: dict[str, Method], ratios: tuple[float, ...]) -> dict[str, dict[str, float]]:
    """Per method and ratio: the mean PSNR and the largest change of one crop's from torch fp32's."""
    scores = {label: [psnr(torch.from_numpy(run(item)), item.clean).item() for item in data.items]
              for label, run in methods.items()}
    base, floor = np.array(scores["torch fp32"]), np.array(scores[AMPLIFY])
    rows: dict[str, dict[str, float]] = {}
    for label, values in scores.items():
        rows[label] = {}
        for r in ratios:
            picked = [i for i, item in enumerate(data.items) if item.ratio == r]
            got = np.array(values)[picked]
            rows[label][f"x{r:g}"] = float(np.mean(got))
            rows[label][f"x{r:g} largest change"] = float(np.max(np.abs(got - base[picked])))
            rows[label][f"x{r:g} worst crop vs amplify"] = float(np.min(got - floor[picked]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "images" / "val" / "CBSD68")
    parser.add_argument("--count", type=int, default=16, help="validation crops")
    parser.add_argument("--ratios", default="1,5,20,100,300")
    parser.add_argument("--openvino", help="OpenVINO's precisions to score, comma-separated, instead of fp32, "
                                           "int8 and the one it picks (e.g. fp32,int8 with oneDNN held to AVX2)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    ratios = tuple(float(r) for r in args.ratios.split(","))
    sets = {"A7S II P+G": (make_eval_set(args.val, ratios, seed=0, limit=args.count, crop=256), ratios),
            "night scenes with lamps (quality.py's kind), A7S II P+G":
                (make_eval_set(args.val, NIGHT_RATIOS, seed=13, limit=args.count, crop=256,
                               night=NightScenes(share=1.0)), NIGHT_RATIOS)}
    results: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    held = {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY") if k in os.environ}
    command = " ".join([*(f"{k}={v}" for k, v in held.items()), "python benchmarks/runtimes.py",
                        f"--count {args.count} --ratios {args.ratios}",
                        *([f"--openvino {args.openvino}"] if args.openvino else []),
                        *([f"--out {args.out}"] if args.out != DEFAULT_OUT else [])])
    lines = [f"# The CPU runtime against torch ({cpu_name()})", "",
             f"`{command}`: PSNR (dB), mean of "
             f"{args.count} validation crops (256 px) made into Sony A7S II raws with P+G noise, plain and as "
             "night scenes with lamps; in brackets the largest change of one crop's PSNR from torch fp32's. "
             "The photons of T > 0 are each runtime's own draws.", ""]
    for name in ("exposure-diffusion-unet16.pt", "feedforward-unet16.pt"):
        path = default_model_path(name)
        methods: dict[str, Method] = {"torch fp32": torch_method(path, "fp32")}
        if bf16_is_fast(torch.device("cpu")):
            methods["torch bf16"] = torch_method(path, "bf16")
        if args.openvino:
            for precision in args.openvino.split(","):
                methods[f"OpenVINO {precision}"] = openvino_method(path, precision)[0]
        else:
            methods["OpenVINO fp32"] = openvino_method(path, "fp32")[0]
            if int8_form(path) is not None:  # what a CPU without bf16 runs: measured here on any CPU
                methods["OpenVINO int8"] = openvino_method(path, "int8")[0]
            chosen, precision = openvino_method(path, "auto")
            methods[f"OpenVINO auto ({precision}, exposed's on this CPU)"] = chosen
        methods[AMPLIFY] = amplify
        results[name] = {}
        for set_name, (data, set_ratios) in sets.items():
            rows = table_rows(data, methods, set_ratios)
            results[name][set_name] = rows
            table = Table(title=f"{name}, {set_name}")
            table.add_column("runtime")
            for r in set_ratios:
                table.add_column(f"x{r:g}", justify="right")
            lines += [f"**{name}, {set_name}**", "", "| runtime | " + " | ".join(f"x{r:g}" for r in set_ratios)
                      + " |", "|---" * (len(set_ratios) + 1) + "|"]
            for label, row in rows.items():
                cells = [f"{row[f'x{r:g}']:.2f}" + ("" if label == "torch fp32" else
                                                    f" ({row[f'x{r:g} largest change']:.3f})") for r in set_ratios]
                table.add_row(label, *cells)
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
            runtime = [label for label in rows if label.startswith("OpenVINO")][-1]  # auto, unless --openvino
            worst = {label: ", ".join(f"x{r:g} {rows[label][f'x{r:g} worst crop vs amplify']:+.3f}"
                                      for r in set_ratios)
                     for label in (runtime, "OpenVINO int8", "torch fp32") if label in rows}
            lines += ["", "The worst crop against plain brightening, " + "; ".join(
                f"{label}: {cells}" for label, cells in worst.items()) + " dB.", ""]
            Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    described = {name: data.description for name, (data, _) in sets.items()}
    args.out.write_text(json.dumps({"cpu": cpu_name(), "sets": described, "results": results}, indent=2) + "\n")
    args.out.with_suffix(".md").write_text("\n".join(lines))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
