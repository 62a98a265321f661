"""An int8 form of an exposure model for CPUs that compute in neither bf16 nor AMX: post-training
quantisation with NNCF, calibrated on the inputs the network meets in use.

Why: on an AVX2-only CPU (AMD EPYC, most laptops before 2023) the network in fp32 is the largest
part of a 12 MP photo's time, and int8 convolutions take about 60% of fp32's time there
(``benchmarks/backends.py``); CPUs with bf16 (AMX, AVX-512 bf16) run bf16 faster still and keep
it. The first and the last convolution stay in floating point: the first reads the state and its
noise levels (up to 1.5 times white beside log-noise values), the last writes the adaptive
residual layer's mask, estimate and residual, and rounding either to 256 levels shows in the photo
for next to no time saved (they are 4% of the network's work). Calibrated on night scenes as much
as on plain ones: activation ranges from plain scenes alone cut the lamps' (measured: the crops
around lamps lost up to 0.16 dB).

Making the int8 form needs ``nncf`` and torch (the calibration frames are made as the training
data is), once per model file, by whoever ships it (``exposed quantise``); running it needs only
OpenVINO. It records the SHA-256 of the model file it came from, as the fp32 form does, and is used
for that file alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from exposed.denoise.numpy_infer import denoise
from exposed.denoise.openvino import INFO, OpenVinoSession, converted_path, int8_path, save_atomically

CALIBRATION_RATIOS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 300.0)
CALIBRATION_CROP = 256  # raw pixels: a 128 x 128 packed tile, as the network meets a frame's tiles


def calibration_inputs(session: OpenVinoSession, images: Path, count: int, seed: int) -> list[np.ndarray]:
    """The network's inputs (1, C, 128, 128) while it denoises centre crops of ``count`` pictures
    of ``images`` at every ratio of :data:`CALIBRATION_RATIOS`, once as plain scenes and once as
    night scenes with light sources (:class:`~exposed.training.night.NightScenes`), with noise from
    every calibrated camera and the virtual one, P+G or ELD, at 8 to 14 bits in whole DN: what the
    model was trained on, so the activation ranges are those of real use."""
    from exposed.sensor.cameras import CAMERAS
    from exposed.training.data import SensorMix
    from exposed.training.evaluate import make_eval_set
    from exposed.training.night import NightScenes

    sensors = SensorMix(tuple(CAMERAS) + ("virtual",), ("pg", "eld"), (8, 10, 12, 14, 14), varied_black=True,
                        black_error=2.0, quantise=True)
    seen: list[np.ndarray] = []

    def record(x: np.ndarray) -> np.ndarray:
        seen.append(x.copy())
        return session.backbone(x)

    for offset, night in enumerate((None, NightScenes(share=1.0))):
        frames = make_eval_set(images, CALIBRATION_RATIOS, seed=seed + offset, limit=count, crop=CALIBRATION_CROP,
                               night=night, sensors=sensors)
        for item in frames.items:
            scale = item.sensor
            dark = item.dark.numpy()
            denoise(record, session.config, dark, dark >= 1.0, item.ratio, np.full(4, float(scale.gain)),
                    np.full(4, float(scale.read_var)))
    return seen


def quantise(model: Path, images: Path, count: int = 12, seed: int = 7, out: Path | None = None) -> Path:
    """Write the int8 form of the exposure model file ``model`` (default :func:`int8_path`),
    calibrated on :func:`calibration_inputs`; returns its XML's path. Needs nncf and torch."""
    import nncf
    import openvino as ov

    if count < 1:
        raise ValueError(f"calibration needs at least one picture, not {count}")
    session = OpenVinoSession(model, "fp32")
    inputs = calibration_inputs(session, images, count, seed)
    if not inputs:
        raise ValueError(f"{images}: no pictures to calibrate on")
    network = ov.Core().read_model(converted_path(model))
    convolutions = [op.get_friendly_name() for op in network.get_ordered_ops()
                    if op.get_type_name() in ("Convolution", "ConvolutionBackpropData")]
    quantised = nncf.quantize(network, nncf.Dataset(inputs), preset=nncf.QuantizationPreset.MIXED,
                              subset_size=len(inputs), fast_bias_correction=True,
                              ignored_scope=nncf.IgnoredScope(names=[convolutions[0], convolutions[-1]]))
    quantised.set_rt_info(json.dumps({"pictures": count, "seed": seed, "inputs": len(inputs),
                                      "ratios": list(CALIBRATION_RATIOS), "folder": Path(images).name}),
                          [INFO, "calibration"])
    target = int8_path(model) if out is None else out
    return save_atomically(quantised, target, compress_to_fp16=True)

