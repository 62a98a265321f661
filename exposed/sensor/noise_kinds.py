"""The noise models' names, apart from their tensor code in :mod:`exposed.sensor.noise`, so the
command line can offer them without importing torch (issue 18)."""

from __future__ import annotations

from typing import Literal, get_args

NoiseModel = Literal["pg", "eld"]
NOISE_MODELS: tuple[str, ...] = get_args(NoiseModel)
