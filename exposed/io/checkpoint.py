"""Model files, one contract for every kind: the exposure models' training states (last, best), the
files that ship (export) and GP mode's reference network.

A checkpoint is a plain dict of tensors and JSON values, written atomically and read with
``torch.load(weights_only=True)``, so a model file cannot run code:

- ``model``: the state dict;
- ``model_config``: JSON that rebuilds the network (:class:`exposed.denoise.model.ModelConfig` as a
  dict, or ``{"kind": "reference", "width": w}``);
- ``train``: JSON on how it was trained and how far (``iteration``, ``config``, ``val``, ...);
- training states only: ``optimizer`` and whatever else resuming needs (``optimised``, ``generator``).

Files written before this layout load as if written with it (:func:`load_checkpoint`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from exposed.io.atomic import atomic_write


def make_checkpoint(weights: dict[str, Tensor], model_config: dict[str, Any], train: dict[str, Any] | None = None,
                    half: bool = False, **resume: Any) -> dict[str, Any]:
    """The dict every model file holds. ``half``: floating-point weights in float16 (files to ship:
    half the size, about 3 significant digits kept). ``resume``: optimizer and other training state."""
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    return {"model": weights, "model_config": dict(model_config), "train": dict(train or {}), **resume}


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint in the current layout. Older files: GP reference files kept their settings in
    ``config`` and their progress at the top level; exposure models' ratio range was only in the
    training settings."""
    state = torch.load(path, map_location=device, weights_only=True)
    if "model_config" not in state and "config" in state:
        state["model_config"] = {"kind": "reference", **state.pop("config")}
    train = state.setdefault("train", {})
    for key in ("iteration", "seconds"):
        if key in state and not isinstance(state[key], dict):
            train.setdefault(key, state.pop(key))
    config = state["model_config"]
    trained = train.get("config", {})
    if "arch" in config and "ratio_range" not in config and "ratio_low" in trained:
        config["ratio_range"] = [float(trained["ratio_low"]), float(trained.get("ratio_high", 300.0))]
    return state
