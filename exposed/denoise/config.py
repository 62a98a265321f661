"""What rebuilds an exposure model: its settings, stored in every model file as JSON.

Torch-free, so the CPU runtime (:mod:`exposed.denoise.openvino`) and the command line read a model's
settings without importing torch; :mod:`exposed.denoise.model` builds the network from them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from exposed.imaging.wiener_numpy import BLOCK

Kind = Literal["diffusion", "feedforward"]
NoiseInput = Literal["std", "std+log"]
# The log noise level channel: (log2(std) - LOG_STD_CENTRE) / LOG_STD_SCALE, about -1 for a frame
# one stop dark and +1 for one 300 times dark; below LOG_STD_FLOOR the noise is under one 16-bit DN.
LOG_STD_CENTRE, LOG_STD_SCALE, LOG_STD_FLOOR = -6.0, 3.0, 2.0**-16


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model: stored in every checkpoint (JSON-serialisable)."""

    arch: str = "unet"
    width: int = 16
    kind: Kind = "diffusion"
    steps: int = 2  # the default number of exposure steps T at inference (the most, with ratio_per_step)
    # Exposure ratio one inference step should cover: T = min(steps, ratio // ratio_per_step), so a
    # frame only a few times too dark gets one pass. 0: always ``steps``. Chosen on validation at
    # export (benchmarks/steps.py); training ignores it.
    ratio_per_step: float = 0.0
    # Signal-to-noise ratio below which a frame gets each further step: T is also at most
    # snr_per_step // SNR (exposed.denoise.infer.frame_snr), so a bright scene shot x100 too dark at a
    # low ISO gets fewer passes than a dim one. 0: the ratio alone. Chosen on validation at export
    # (benchmarks/steps_snr.py); training ignores it.
    snr_per_step: float = 0.0
    # The state is clamped to [state_low, state_high] before the network sees it (its noise channel
    # is computed from the clamped state too). Noise at x100-x300 routinely reaches 2 or 3 times
    # white and must stay visible; a lamp clipped in the dark frame is about ``ratio`` times white
    # and must not: no network saw such values in training. Chosen by benchmarks/bounds.py.
    state_low: float = -1.0
    state_high: float = 4.0
    # The result is the plain brightened frame Wiener-filtered with the network's estimate as the
    # pilot, in 8 x 8 DCT blocks this many packed pixels apart (exposed.denoise.infer.wiener_blend):
    # the photo's own tone, colour and texture where the estimate shows signal, its noise removed
    # where it shows none. 0: the estimate as it is. Chosen at export (benchmarks/steps.py); a run
    # trained with it (exposed train --wiener-stride) is scored blended in its loss and validation.
    wiener_stride: int = 0
    # Ratios below which the blend's blocks are twice as many: a second lattice between the first's
    # blocks, half the stride off (exposed.imaging.wiener.dct_wiener's quincunx), +0.1 dB at x1-x20
    # for twice the blend's time. 0: never. Frames a few stops dark get it, where the network's
    # estimate alone is below plain brightening and the blend makes the result; darker ones keep
    # the single lattice and the time issue 18 holds them to (benchmarks/steps.py's quincunx row).
    # Set at export; training blends at wiener_stride (the denser lattice filters the same way).
    dense_below: float = 0.0
    # (ratio, variance) pairs, ratios ascending: the variance of the network's own error at that
    # ratio, which the Wiener blend adds to the estimate's power, so a rough estimate (the twin on
    # a frame one stop dark) shrinks less of the photo's detail. Empty: 0, the estimate trusted.
    # Chosen on validation at export (benchmarks/steps.py).
    pilot_error: tuple[tuple[float, float], ...] = ()
    # The weight of each blend block's own evidence of the estimate's error, added to the table's:
    # the measurement's mean squared difference from the estimate beyond the noise it implies
    # (exposed.imaging.wiener.dct_wiener). A rough estimate that is wrong in places (the twin on
    # a scene unlike its training) is distrusted there, not at the whole ratio. 0: the table alone.
    # Chosen on validation at export (benchmarks/steps.py --residual-error).
    residual_error: float = 0.0
    # The exposure ratios the model was trained on; a request outside them is clamped (with a
    # warning) by exposed.exposure. Set from the training settings when a run saves the model.
    ratio_range: tuple[float, float] = (1.0, 300.0)
    # What the network is told of the noise: "std", the standard deviation per photosite (4
    # channels); "std+log", that and its log2 (4 more). A frame one stop dark has a noise level of
    # about 0.002, a x300 one of 0.05 to 0.3: as a plain input beside a state of 0 to 1 the low
    # levels are all near zero and a network barely tells x1 from x10, so it treats a near-clean
    # frame as a noisy one (benchmarks/residual_paths.py); on a log scale they are a unit apart.
    noise_input: NoiseInput = "std"

    def __post_init__(self) -> None:  # JSON gives lists; keep the config hashable and comparable
        if self.noise_input not in get_args(NoiseInput):
            raise ValueError(f"unknown noise input {self.noise_input!r}; expected 'std' or 'std+log'")
        object.__setattr__(self, "pilot_error", tuple((float(r), float(v)) for r, v in self.pilot_error))
        if self.wiener_stride < 0 or (self.wiener_stride and BLOCK % self.wiener_stride):
            raise ValueError(f"wiener_stride {self.wiener_stride} must be 0 or divide the block of {BLOCK}")
        if self.dense_below > 0 and self.wiener_stride % 2:
            raise ValueError(f"dense_below needs an even wiener_stride (half of it apart), not {self.wiener_stride}")
        object.__setattr__(self, "ratio_range", (float(self.ratio_range[0]), float(self.ratio_range[1])))

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> ModelConfig:
        """The config a model file stores. Files exported before 2026-12-06 carry blend tables
        (``fusion``, ``local_mean``) that the Wiener blend replaced: they load without a blend."""
        return cls(**{k: v for k, v in config.items() if k not in RETIRED_KEYS})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


RETIRED_KEYS = ("fusion", "local_mean")


def input_channels(config: ModelConfig) -> int:
    """The backbone's input channels: the state (4) and the noise level (4, or 8 with its log)."""
    return 12 if config.noise_input == "std+log" else 8


