#!/usr/bin/env bash
# Train ExposureDiffusion and its feed-forward twin on one GPU in a fixed time, at equal optimizer
# steps, and write both exported models, their logs and a summary to $OUT. README, "Training on a
# GPU", says how to make the training pack it reads and how to send it to the device machine.
#
#   OUT=runs/gpu-out MINUTES=0.1 WIDTH=4 BATCH=2 PATCH=64 DEVICE=cpu benchmarks/gpu_train.sh   # a dry run
#
# Settings (environment): IMAGES (a pack or a folder; default packs/train.tar), MINUTES (for the
# diffusion model; the twin then runs its number of steps, within TWIN_MINUTES at most; default
# 4.5), TWIN_MINUTES (the twin's guard; default twice MINUTES), WIDTH (32), BATCH (32), PATCH (512),
# LR (the toml's by default), DEVICE (auto), INIT_DIFFUSION / INIT_FEEDFORWARD (model files to
# fine-tune, such as the last GPU-trained pair or the shipped one: a fine-tune has its own warm-up,
# decay and time budget), RUNS (where the runs' resume state goes; default a fresh folder), PYTHON
# (python3). Each model is exported as soon as it is trained, so a run cut short returns the first.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:?set OUT to the folder for the results}
PYTHON=${PYTHON:-python3}
IMAGES=${IMAGES:-packs/train.tar}
MINUTES=${MINUTES:-4.5}
WIDTH=${WIDTH:-32}
BATCH=${BATCH:-32}
PATCH=${PATCH:-512}
DEVICE=${DEVICE:-auto}
RUNS=${RUNS:-$(mktemp -d)}
TWIN_MINUTES=${TWIN_MINUTES:-$(awk "BEGIN { print 2 * $MINUTES }")}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

"$PYTHON" - "$DEVICE" <<'PY'
import sys, torch
from exposed.denoise.infer import pick_device
device = pick_device(sys.argv[1])
name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
print(f"torch {torch.__version__} on {name}", flush=True)
PY

train() {  # kind, out folder, extra options
    local kind=$1 run=$2
    shift 2
    local init_var="INIT_${kind^^}"
    "$PYTHON" -m exposed train -c benchmarks/gpu_train.toml --kind "$kind" --width "$WIDTH" --batch "$BATCH" \
        --patch "$PATCH" --images "$IMAGES" --device "$DEVICE" --out "$run" ${LR:+--lr "$LR"} \
        ${!init_var:+--init "${!init_var}" --fine-tune true} "$@"
    local name
    name=$([ "$kind" = diffusion ] && echo exposure-diffusion || echo feedforward)-unet$WIDTH-gpu
    "$PYTHON" -m exposed export "$run/last.pt" "$OUT/$name.pt"
    cp "$run/log.jsonl" "$OUT/$name.log.jsonl"
}
iteration() {  # the iteration a run's last checkpoint reached
    "$PYTHON" -c "import sys; from exposed.io.checkpoint import load_checkpoint; print(load_checkpoint(sys.argv[1])['train']['iteration'])" "$1/last.pt"
}

train diffusion "$RUNS/diffusion" --minutes "$MINUTES" --iters 100000000
steps=$(iteration "$RUNS/diffusion")
# The twin takes as many steps; it is faster (one pass, not T), so its budget is only a guard (a
# loaded CPU must not leave it with fewer steps than the default; on a GPU, where making the batch
# weighs as much as the passes, MINUTES bounds it).
train feedforward "$RUNS/feedforward" --minutes "$TWIN_MINUTES" --iters "$steps" --estimate-from 0
"$PYTHON" - "$RUNS" "$OUT/summary.json" "$BATCH" "$PATCH" <<'PY'
import json, sys
from exposed.io.checkpoint import load_checkpoint
runs, out, batch, patch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
summary = {}
for kind in ("diffusion", "feedforward"):
    train = load_checkpoint(f"{runs}/{kind}/last.pt")["train"]
    summary[kind] = {"iterations": train["iteration"], "seconds": train["wall_seconds"], "batch": batch,
                     "patch": patch, "patches_per_s": train["iteration"] * batch / train["wall_seconds"],
                     "precision": train["precision"]}
    print(f"{kind}: {train['iteration']} iterations of {batch} x {patch}^2 in {train['wall_seconds']:.0f} s, "
          f"{summary[kind]['patches_per_s']:.1f} patches/s ({train['precision']})")
with open(out, "w") as f:
    json.dump(summary, f, indent=1)
PY

# Then the inference path users take on this device (last, so a failure there costs no training):
# the device-parametrised tests (tiled against whole frame, bf16 against fp32, the sampler, the
# noise against its formulas, widening a model), and the shipped default on a 12 MP frame's packed raw.
if "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() and '$DEVICE' in ('auto', 'cuda') else 1)"; then
    "$PYTHON" -m pytest -q -p no:cacheprovider -k cuda \
        tests/test_process.py tests/test_data.py tests/test_noise.py tests/test_networks.py > "$OUT/cuda_tests.txt" 2>&1 \
        || echo "some CUDA tests failed: $OUT/cuda_tests.txt"
    tail -n 3 "$OUT/cuda_tests.txt"
    "$PYTHON" - "$OUT/cuda_inference.json" <<'PY'
import json, sys, time, torch
from exposed.denoise.checkpoint import load_model
from exposed.denoise.infer import denoise
from exposed.sensor.noise import SensorScale
model = load_model(device="cuda")
dark = torch.rand(1, 4, 1500, 2000, device="cuda") * 0.01  # a 12 MP mosaic, packed
sensor, rows = SensorScale(torch.tensor([2e-4]), torch.tensor([1e-7])), {}
for precision in ("fp32", "bf16"):
    for run in range(3):  # the first run pays for cuDNN's choices
        torch.cuda.synchronize(); start = time.perf_counter()
        denoise(model, dark, torch.tensor([200.0]), sensor, None, torch.Generator(device="cuda").manual_seed(0), precision)
        torch.cuda.synchronize(); rows[precision] = time.perf_counter() - start
    print(f"default model, 12 MP frame, {precision}: {rows[precision]:.3f} s", flush=True)
json.dump({"device": torch.cuda.get_device_name(), "seconds_12mp": rows}, open(sys.argv[1], "w"), indent=1)
PY
fi
