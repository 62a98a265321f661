"""The denoising network's execution on the CPU, one way against another (issue 18, item 3).

    python benchmarks/backends.py [--model models/exposure-diffusion-unet16.pt] [--repeats 5]

One pass of the shipped default model over the tiles of a 12 MP frame (the tile shape
:func:`exposed.denoise.infer.tiling` gives a 1416 x 2120 packed frame, times the tile count), in one
process, after a warm-up pass: torch eager fp32 (contiguous and channels-last), torch with bf16
weights and autocast, channels-last (what exposed runs where :func:`bf16_is_fast`), torch.compile
of both (its compile time apart), and ONNX Runtime's CPU provider in fp32 when ``onnxruntime`` is
installed (the model exported by ``torch.onnx.export``), and OpenVINO in fp32, bf16 and int8 (each
where this CPU and the model have it; ``--openvino`` names others), compiled for the tile's shape,
the outputs made as :mod:`exposed.denoise.numpy_infer` makes them (what ``exposed enhance`` runs on
a CPU). Columns: seconds per 12 MP pass, the ratio to eager fp32 and the largest difference from
eager fp32's output. Writes benchmarks/results/backends.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from exposed.denoise import numpy_infer, openvino
from exposed.denoise.checkpoint import load_model
from exposed.denoise.infer import bf16_is_fast, channels_last, tiling
from exposed.denoise.numpy_infer import OVERLAP
from exposed.modes import default_model_path
from speed import HELD, _version, cpu_name  # benchmarks/, the script's own folder

PACKED = (1416, 2120)  # a 12 MP Bayer frame, packed
TILE = 512  # exposed's default (Settings.tile)


def seconds_per_call(run: Callable[[], object], repeats: int) -> float:
    """The median of ``repeats`` calls after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def openvino_precisions(model: Path) -> list[str]:
    """fp32, bf16 where the CPU computes in it, int8 where the model file has its int8 form."""
    return ["fp32"] + ["bf16"] * openvino.computes_bf16() + ["int8"] * (openvino.int8_form(model) is not None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model_path("exposure-diffusion-unet16.pt"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--openvino", help="OpenVINO's precisions to time, comma-separated (default: fp32, and bf16 "
                                           "where this CPU computes in it, int8 where the model has an int8 form)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "backends.json")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    cpu = torch.device("cpu")
    (th, tops), (tw, lefts) = tiling(PACKED[0], TILE, OVERLAP), tiling(PACKED[1], TILE, OVERLAP)
    tiles = len(tops) * len(lefts)
    g = torch.Generator().manual_seed(0)
    amplified = torch.rand(1, 4, th, tw, generator=g)
    std = 0.02 + 0.05 * torch.rand(1, 4, th, tw, generator=g)
    eager = load_model(args.model, cpu)
    reference = eager(amplified, std)
    last = channels_last(load_model(args.model, cpu))
    half = channels_last(load_model(args.model, cpu))
    half.backbone.to(torch.bfloat16)

    def bf16(model: torch.nn.Module) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(amplified, std)
        return run

    candidates: list[tuple[str, Callable[[], torch.Tensor]]] = [
        ("torch eager fp32", lambda: eager(amplified, std)),
        ("torch eager fp32, channels-last", lambda: last(amplified, std)),
    ]
    if bf16_is_fast(cpu):
        candidates.append(("torch eager bf16 weights + autocast, channels-last (exposed's torch runtime)", bf16(half)))
    compiled = {"fp32": torch.compile(last)}
    if bf16_is_fast(cpu):
        compiled["bf16"] = torch.compile(half)
    rows = []
    for precision, model in compiled.items():
        run = bf16(model) if precision == "bf16" else (lambda m=model: m(amplified, std))
        start = time.perf_counter()
        run()
        rows.append({"backend": f"torch.compile {precision} (compile time)", "seconds": time.perf_counter() - start})
        candidates.append((f"torch.compile {precision}, channels-last", run))
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            torch.onnx.export(eager, (amplified, std), str(path), input_names=["amplified", "std"],
                              output_names=["estimate"], dynamo=False)
            options = ort.SessionOptions()
            options.intra_op_num_threads = os.cpu_count() or 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"amplified": amplified.numpy(), "std": std.numpy()}
        candidates.append((f"ONNX Runtime {ort.__version__} fp32, CPU provider",
                           lambda: torch.from_numpy(session.run(None, feed)[0])))
    if openvino.available():
        for precision in args.openvino.split(",") if args.openvino else openvino_precisions(args.model):
            runtime = openvino.OpenVinoSession(args.model, precision)
            feed_np = (amplified.numpy(), std.numpy())

            def ov_run(runtime: openvino.OpenVinoSession = runtime) -> torch.Tensor:
                return torch.from_numpy(numpy_infer.network_output(
                    runtime.config, runtime.backbone(numpy_infer.network_inputs(runtime.config, *feed_np)),
                    feed_np[0]))
            candidates.append((f"OpenVINO {_version('openvino')} {precision}, compiled for the tile "
                               "(exposed's CPU runtime)", ov_run))
    base = None
    for label, run in candidates:
        seconds = seconds_per_call(run, args.repeats) * tiles
        base = base or seconds
        difference = float((run().float() - reference).abs().max())
        rows.append({"backend": label, "seconds": seconds, "vs_eager_fp32": seconds / base,
                     "max_difference": difference})
    table = Table(title=f"One network pass over a 12 MP frame ({tiles} tiles of {th} x {tw}; {cpu_name()}, "
                        f"{os.cpu_count()} cores, torch {torch.__version__})")
    for column in ("backend", "s per pass", "vs eager fp32", "max |difference|"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for r in rows:
        table.add_row(r["backend"], f"{r['seconds']:.2f}", f"{r['vs_eager_fp32']:.2f}" if "vs_eager_fp32" in r else "",
                      f"{r['max_difference']:.1e}" if "max_difference" in r else "")
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
                                    "model": str(args.model), "tiles": tiles, "tile": [th, tw],
                                    "held": {k: os.environ[k] for k in HELD if k in os.environ}, "rows": rows},
                                   indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
