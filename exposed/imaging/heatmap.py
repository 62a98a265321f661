"""A heat map a person can read: a single-channel map in false colour, dark to bright."""

from __future__ import annotations

import numpy as np

# Black, deep blue, magenta, orange, pale yellow: brightness rises steadily along the ramp, so the
# map reads in grey too and for the colour-blind.
_RAMP = np.array([[0, 0, 0], [40, 20, 110], [180, 40, 130], [245, 130, 40], [255, 245, 190]], dtype=np.float64)


def heat_map(values: np.ndarray, top: float) -> np.ndarray:
    """(H, W, 3) uint8 of (H, W) ``values``: 0 black, ``top`` and above the ramp's end, linear between."""
    if not top > 0:
        return np.zeros((*values.shape, 3), dtype=np.uint8)
    t = np.clip(values / top, 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.minimum(t.astype(np.int64), len(_RAMP) - 2)
    frac = (t - low)[..., None]
    return np.round(_RAMP[low] * (1 - frac) + _RAMP[low + 1] * frac).astype(np.uint8)
