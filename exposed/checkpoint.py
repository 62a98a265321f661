"""Saving and loading models. A checkpoint is a plain dict of tensors and JSON values, written
atomically and read with ``torch.load(weights_only=True)``, so a model file cannot run code.

Keys: ``model`` (state dict), ``model_config`` (:class:`ModelConfig` as a dict) and, for training
checkpoints, ``train`` (the run's settings and progress) and ``optimizer``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import torch

from exposed.output import atomic_write
from exposed.process import ExposureModel, ModelConfig

DEFAULT_MODEL = "exposure-diffusion-unet16.pt"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=device, weights_only=True)


def model_from_checkpoint(checkpoint: dict[str, Any]) -> ExposureModel:
    trained = checkpoint.get("train", {}).get("config", {})
    ratios = (float(trained.get("ratio_low", 1.0)), float(trained.get("ratio_high", 300.0)))
    model = ExposureModel(ModelConfig(**checkpoint["model_config"]), ratios)
    model.load_state_dict({k: v.float() for k, v in checkpoint["model"].items()})
    return model.eval()


def default_model_path(name: str = DEFAULT_MODEL) -> Path:
    """A model shipped with exposed: the project's models/ folder, installed as ``exposed.models``,
    or beside the package when it runs from a source checkout."""
    try:
        return Path(str(resources.files("exposed.models").joinpath(name)))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "models" / name


def load_model(path: str | Path | None = None, device: torch.device | str = "cpu") -> ExposureModel:
    """A model ready for inference: the shipped default when ``path`` is None."""
    path = default_model_path() if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    return model_from_checkpoint(load_checkpoint(path)).to(device)


def export_model(checkpoint: dict[str, Any], half: bool = True, steps: int | None = None,
                 ratio_per_step: float | None = None,
                 fusion: list[tuple[float, float]] | None = None) -> dict[str, Any]:
    """What ships: weights (in float16 unless ``half`` is False: half the size, and float16 keeps
    every trained weight to about 3 significant digits), the model's config and a training summary;
    no optimizer state. ``steps`` (the most exposure steps at inference) and ``ratio_per_step``
    (the ratio one step covers) set the default T, chosen on validation data (training used the
    config's own T). ``fusion``: (ratio, tau2) pairs, the network's error variance by ratio for
    blending with the brightened frame (:func:`exposed.infer.fuse`), also chosen on validation."""
    weights = {k: v.half() if half and v.is_floating_point() else v for k, v in checkpoint["model"].items()}
    train = checkpoint.get("train", {})
    summary = {k: train[k] for k in ("config", "iteration", "val", "wall_seconds", "precision") if k in train}
    config = dict(checkpoint["model_config"], **({"steps": steps} if steps is not None else {}),
                  **({"ratio_per_step": ratio_per_step} if ratio_per_step is not None else {}),
                  **({"fusion": [list(pair) for pair in fusion]} if fusion is not None else {}))
    return {"model": weights, "model_config": config, "train": summary}
