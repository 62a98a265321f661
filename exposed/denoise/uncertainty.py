"""Where the exposure process is unsure: the spread of its answers over several seeds.

ExposureDiffusion's exposure process draws photons between its steps, so runs with different seeds
give different results where the dark frame leaves the picture open; where it does not, they agree.
The spread is measured on the brightness a person sees: the white-balanced mean of a 2 x 2 cell's
four photosites on the sRGB curve, so a shadow's uncertainty counts as much as a highlight's.
A single network pass (T = 0, what the default does for frames up to about x100) draws nothing, so
the runs behind a map take at least one exposure step (:func:`varied_steps`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from exposed.imaging.color import linear_to_srgb


POOL = 3  # cells a spread is averaged over, each way


def varied_steps(steps: int) -> int:
    """The exposure steps of the runs behind an uncertainty map: at least one, so photons are drawn."""
    return max(steps, 1)


def display_value(packed: Tensor, wb: Tensor | None = None) -> Tensor:
    """(B, 1, h, w) brightness on the sRGB curve of a packed raw (B, 4, h, w) in [0, 1], its sites
    scaled by the white balance ``wb`` (B, 3) multipliers for R, G, B (default 1)."""
    if wb is None:
        wb = torch.ones(packed.shape[0], 3, device=packed.device)
    per_site = wb[:, [0, 1, 1, 2]].to(packed)[:, :, None, None]
    return linear_to_srgb((packed * per_site).mean(1, keepdim=True).clamp(0.0, 1.0))


def spread(results: Sequence[Tensor], wb: Tensor | None = None, pool: int = POOL) -> Tensor:
    """(B, 1, h, w) standard deviation over runs of their :func:`display_value`, averaged over
    ``pool`` x ``pool`` neighbouring cells: a standard deviation from a few runs is itself noisy,
    and its neighbours' pool their samples (on validation this lifts the rank correlation with the
    error from 0.24-0.33 to 0.32-0.40: benchmarks/uncertainty.py). results: packed (B, 4, h, w)
    each, two or more."""
    if len(results) < 2:
        raise ValueError("a spread needs two or more runs")
    deviation = torch.stack([display_value(r.float(), wb) for r in results]).std(dim=0)
    if pool <= 1:
        return deviation
    padded = F.pad(deviation, (pool // 2,) * 4, mode="replicate")
    return F.avg_pool2d(padded, pool, stride=1)


def packed_spread(runs: Sequence[np.ndarray], wb: np.ndarray) -> np.ndarray:
    """(H / 2, W / 2) float32: :func:`spread` of (1, 4, H / 2, W / 2) packed results (numpy, as
    either runtime gives them) under white balance ``wb`` (3,)."""
    cells = spread([torch.from_numpy(run) for run in runs], torch.from_numpy(wb)[None].float())
    return cells[0, 0].numpy().astype(np.float32)
