"""exposed's modes in one table: what each takes, whether a network denoises the raw, and the
model file it loads by default. The command line's choices, the inputs a batch looks for and
the model the pipeline loads all come from here. No torch import: ``--help`` stays quick.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

Mode = Literal["diffusion", "feedforward", "amplify", "gp"]


@dataclass(frozen=True)
class ModeSpec:
    name: Mode
    photos: bool  # takes sRGB photographs (JPEG, PNG, TIFF) rather than raw files
    denoises_raw: bool  # a network denoises the raw mosaic (so the noise level is needed)
    default_model: str | None  # the shipped model file it loads, if any
    summary: str


MODES: dict[str, ModeSpec] = {spec.name: spec for spec in (
    ModeSpec("diffusion", False, True, "exposure-diffusion-unet16.pt",
             "ExposureDiffusion: the learned, physics-based progressive denoiser (the default)"),
    ModeSpec("feedforward", False, True, "feedforward-unet16.pt", "the same network in one pass (its twin)"),
    ModeSpec("amplify", False, False, None, "plain brightening by the exposure ratio, no denoising"),
    ModeSpec("gp", True, False, "gp-reference-unet8.pt",
             "the k-means Gaussian-process enhancer, for sRGB photos (JPEG, PNG, TIFF)"),
)}
RAW_MODES = tuple(name for name, spec in MODES.items() if not spec.photos)


def default_model(mode: str) -> str:
    """The shipped model file ``mode`` loads by default."""
    name = MODES[mode].default_model
    if name is None:
        raise ValueError(f"mode {mode} uses no model")
    return name


def default_model_path(name: str | None = None) -> Path:
    """A model shipped with exposed (by default the default mode's): the project's models/ folder,
    installed as ``exposed.models``, or beside the package when it runs from a source checkout."""
    name = name or default_model("diffusion")
    try:
        return Path(str(resources.files("exposed.models").joinpath(name)))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[1] / "models" / name
