"""A simple camera pipeline in torch, from a normalised Bayer mosaic to display sRGB.

Pure tensor functions on the model's device: demosaicing (Malvar-He-Cutler), white balance with
highlight clipping, the camera-to-sRGB matrix, an optional gentle tone curve, the sRGB transfer
curve and orientation. Shapes: mosaics (B, 1, H, W), images (B, 3, H, W).
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F
from torch import Tensor

from exposed.imaging.bayer import cell_offsets, pack
from exposed.imaging.color import apply_matrix, linear_to_srgb
from exposed.io.orientation import orient

# Malvar, He and Cutler (ICASSP 2004), gradient-corrected linear interpolation, in eighths.
_MHC = torch.tensor([
    # green at red and blue sites
    [[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]],
    # the colour of the horizontal neighbours, at a green site
    [[0, 0, 0.5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0], [0, 0, 0.5, 0, 0]],
    # the colour of the vertical neighbours, at a green site
    [[0, 0, -1, 0, 0], [0, -1, 4, -1, 0], [0.5, 0, 5, 0, 0.5], [0, -1, 4, -1, 0], [0, 0, -1, 0, 0]],
    # red at blue sites and blue at red sites
    [[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0], [0, 0, -1.5, 0, 0]],
], dtype=torch.float32) / 8.0

_INDEX = {"R": 0, "G": 1, "B": 2}


@cache  # four patterns; a large frame is rendered in many strips
def _packed_kernel(pattern: str) -> Tensor:
    """The Malvar-He-Cutler filters as one 3 x 3 convolution on the packed raw.

    A 5 x 5 window around any photosite lies within the 3 x 3 packed cells around its own, so every
    output (3 colours x 4 sites of the cell) is a fixed linear map of a 3 x 3 x 4 packed
    neighbourhood. Output channel ``colour * 4 + 2 * row + column`` is laid out for pixel_shuffle.
    """
    sites = cell_offsets(pattern)  # packed channel i holds the raw site sites[i]
    channel_of = {pos: i for i, pos in enumerate(sites)}
    letters = {pos: colour for pos, colour in zip(sites, "RGGB")}
    weight = torch.zeros(12, 4, 3, 3, dtype=torch.float64)
    for (r, c), colour in letters.items():
        filters = {_INDEX[colour]: torch.zeros(5, 5, dtype=torch.float64)}
        filters[_INDEX[colour]][2, 2] = 1.0
        if colour == "G":
            filters[_INDEX[letters[(r, 1 - c)]]] = _MHC[1].double()
            filters[_INDEX[letters[(1 - r, c)]]] = _MHC[2].double()
        else:
            filters[1] = _MHC[0].double()
            filters[_INDEX["B" if colour == "R" else "R"]] = _MHC[3].double()
        for k, taps in filters.items():
            for dy in range(-2, 3):
                for dx in range(-2, 3):
                    y, x = r + dy, c + dx
                    site = channel_of[(y % 2, x % 2)]
                    weight[k * 4 + 2 * r + c, site, y // 2 + 1, x // 2 + 1] += taps[dy + 2, dx + 2]
    return weight


def demosaic(raw: Tensor, pattern: str) -> Tensor:
    """Malvar-He-Cutler demosaicing: (B, 1, H, W) mosaic to (B, 3, H, W), H and W even.

    Each site keeps its own measured colour; the two missing ones are bilinear estimates corrected
    by the local gradient of the measured colour, which removes most of bilinear's zipper and blur.
    Computed as one convolution on the packed raw and a pixel shuffle.
    """
    packed = F.pad(pack(raw, pattern), (1, 1, 1, 1), mode="reflect")
    return F.pixel_shuffle(F.conv2d(packed, _packed_kernel(pattern).to(raw.device, raw.dtype)), 2)


def white_balance(image: Tensor, multipliers: Tensor) -> Tensor:
    """Scale R, G, B by the multipliers (B, 3) and clip at white, so saturated highlights stay
    neutral instead of turning magenta (the sensor clips green first)."""
    return (image * multipliers.to(image)[:, :, None, None]).clamp(0.0, 1.0)


def tone_curve(x: Tensor, strength: float = 0.5) -> Tensor:
    """A gentle S-curve on display values in [0, 1]: part way to smoothstep (3x^2 - 2x^3), which
    keeps black, mid-grey and white where they are and adds a little contrast between them."""
    x = x.clamp(0.0, 1.0)
    return x + strength * (x * x * (3.0 - 2.0 * x) - x)


def render(raw: Tensor, pattern: str, multipliers: Tensor, cam_to_srgb: Tensor, flip: int = 0,
           tone: bool = False) -> Tensor:
    """Normalised mosaic (B, 1, H, W) to display sRGB in [0, 1], (B, 3, H', W') after orientation."""
    linear = white_balance(demosaic(raw.clamp(0.0, 1.0), pattern), multipliers)
    display = linear_to_srgb(apply_matrix(linear, cam_to_srgb))
    return orient(tone_curve(display) if tone else display, flip)
