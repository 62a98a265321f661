"""Exposure models from and to model files (the layout is :mod:`exposed.io.checkpoint`'s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import torch

from exposed.denoise.config import Kind, ModelConfig
from exposed.denoise.model import ExposureModel
from exposed.io.checkpoint import load_checkpoint, make_checkpoint
from exposed.modes import default_model_path


def model_from_checkpoint(checkpoint: dict[str, Any]) -> ExposureModel:
    kind = checkpoint["model_config"].get("kind")
    if kind not in get_args(Kind):
        raise ValueError(f"not an exposure model (a {kind} network)")
    model = ExposureModel(ModelConfig.from_dict(checkpoint["model_config"]))
    model.load_state_dict({k: v.float() for k, v in checkpoint["model"].items()})
    return model.eval()


def load_model(path: str | Path | None = None, device: torch.device | str = "cpu") -> ExposureModel:
    """A model ready for inference: the shipped default when ``path`` is None."""
    path = default_model_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    return model_from_checkpoint(load_checkpoint(path)).to(device)


def export_model(checkpoint: dict[str, Any], half: bool = True, steps: int | None = None,
                 ratio_per_step: float | None = None, snr_per_step: float | None = None,
                 wiener_stride: int | None = None, dense_below: float | None = None,
                 pilot_error: list[tuple[float, float]] | None = None,
                 state_high: float | None = None, residual_error: float | None = None,
                 ratio_range: tuple[float, float] | None = None) -> dict[str, Any]:
    """What ships: weights (in float16 unless ``half`` is False: half the size, and float16 keeps
    every trained weight to about 3 significant digits), the model's config and a training summary;
    no optimizer state. ``steps`` (the most exposure steps at inference) and ``ratio_per_step``
    (the ratio one step covers) set the default T, and ``snr_per_step`` caps it by the frame's
    signal-to-noise ratio, all chosen on validation data (training used the config's own T).
    ``wiener_stride``: the spacing of the Wiener blend's blocks, 0 for none
    (:func:`exposed.denoise.infer.wiener_blend`), ``dense_below``, the ratios below which it takes
    twice the blocks (ModelConfig.dense_below), ``pilot_error``, (ratio, variance) pairs, the
    network's error variance by ratio it trusts the estimate with, and ``residual_error``, the
    weight of each block's own evidence of that error, all chosen on validation
    (benchmarks/steps.py). ``state_high``:
    the bound on the state the network sees (benchmarks/bounds.py), where a bound below the trained
    one scores better around lamps. ``ratio_range``: the ratios the tool may ask of the model (an
    automatic ratio is held inside it); a fine-tune on part of the ratios (``--ratio-low`` /
    ``--ratio-high``) records only that part, though the weights it started from know the rest, so
    its file is given the range it was checked on (steps.py, never_worse.py)."""
    train = checkpoint.get("train", {})
    summary = {k: train[k] for k in ("config", "iteration", "val", "wall_seconds", "precision") if k in train}
    config = ModelConfig.from_dict(checkpoint["model_config"]).to_dict()
    config.update(**({"steps": steps} if steps is not None else {}),
                  **({"ratio_per_step": ratio_per_step} if ratio_per_step is not None else {}),
                  **({"snr_per_step": snr_per_step} if snr_per_step is not None else {}),
                  **({"wiener_stride": wiener_stride} if wiener_stride is not None else {}),
                  **({"dense_below": dense_below} if dense_below is not None else {}),
                  **({"pilot_error": [list(pair) for pair in pilot_error]} if pilot_error is not None else {}),
                  **({"state_high": state_high} if state_high is not None else {}),
                  **({"residual_error": residual_error} if residual_error is not None else {}),
                  **({"ratio_range": list(ratio_range)} if ratio_range is not None else {}))
    return make_checkpoint(checkpoint["model"], config, summary, half=half)
