"""The learning-rate schedule of every training run: linear warm-up, then half a cosine."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from exposed.training.config import TrainConfig


def learning_rate(config: TrainConfig, iteration: int, seconds: float = 0.0) -> float:
    """Warm-up over ``warmup`` iterations, then cosine decay by the run's progress: the share of its
    iterations done or, with a time budget, the share of its minutes spent, whichever is larger."""
    if iteration < config.warmup:
        return config.lr * (iteration + 1) / config.warmup
    progress = (iteration - config.warmup) / max(1, config.iters - config.warmup)
    if config.minutes > 0:
        progress = max(progress, seconds / (60.0 * config.minutes))
    return cosine_decay(config.lr, config.lr_min, progress)


def cosine_decay(high: float, low: float, progress: float) -> float:
    """Half a cosine from ``high`` (progress 0) to ``low`` (progress 1 and beyond)."""
    return low + 0.5 * (high - low) * (1 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
