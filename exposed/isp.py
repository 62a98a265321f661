"""A simple camera pipeline in torch, from a normalised Bayer mosaic to display sRGB.

Pure tensor functions on the model's device: demosaicing (Malvar-He-Cutler), white balance with
highlight clipping, the camera-to-sRGB matrix, an optional gentle tone curve, the sRGB transfer
curve and orientation. Shapes: mosaics (B, 1, H, W), images (B, 3, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from exposed.bayer import cell_offsets
from exposed.color import apply_matrix, linear_to_srgb

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


def demosaic(raw: Tensor, pattern: str) -> Tensor:
    """Malvar-He-Cutler demosaicing: (B, 1, H, W) mosaic to (B, 3, H, W), H and W even.

    Each site keeps its own measured colour; the two missing ones are bilinear estimates corrected
    by the local gradient of the measured colour, which removes most of bilinear's zipper and blur.
    """
    b, _, h, w = raw.shape
    padded = F.pad(raw, (2, 2, 2, 2), mode="reflect")
    responses = F.conv2d(padded, _MHC.to(raw.device, raw.dtype)[:, None])  # (B, 4, H, W)
    out = raw.new_empty(b, 3, h, w)
    letters = {pos: colour for pos, colour in zip(cell_offsets(pattern), "RGGB")}
    for (r, c), colour in letters.items():
        out[:, _INDEX[colour], r::2, c::2] = raw[:, 0, r::2, c::2]
        if colour == "G":
            across, down = letters[(r, 1 - c)], letters[(1 - r, c)]
            out[:, _INDEX[across], r::2, c::2] = responses[:, 1, r::2, c::2]
            out[:, _INDEX[down], r::2, c::2] = responses[:, 2, r::2, c::2]
        else:
            other = "B" if colour == "R" else "R"
            out[:, 1, r::2, c::2] = responses[:, 0, r::2, c::2]
            out[:, _INDEX[other], r::2, c::2] = responses[:, 3, r::2, c::2]
    return out


def white_balance(image: Tensor, multipliers: Tensor) -> Tensor:
    """Scale R, G, B by the multipliers (B, 3) and clip at white, so saturated highlights stay
    neutral instead of turning magenta (the sensor clips green first)."""
    return (image * multipliers.to(image)[:, :, None, None]).clamp(0.0, 1.0)


def tone_curve(x: Tensor, strength: float = 0.5) -> Tensor:
    """A gentle S-curve on display values in [0, 1]: part way to smoothstep (3x^2 - 2x^3), which
    keeps black, mid-grey and white where they are and adds a little contrast between them."""
    x = x.clamp(0.0, 1.0)
    return x + strength * (x * x * (3.0 - 2.0 * x) - x)


def orient(image: Tensor, flip: int) -> Tensor:
    """Apply LibRaw's orientation code: 3 rotates 180 degrees, 5 a quarter turn counter-clockwise,
    6 a quarter turn clockwise; anything else leaves the image as it is."""
    if flip == 3:
        return image.flip(-1).flip(-2)
    if flip == 5:
        return image.rot90(1, dims=(-2, -1))
    if flip == 6:
        return image.rot90(-1, dims=(-2, -1))
    return image


def render(raw: Tensor, pattern: str, multipliers: Tensor, cam_to_srgb: Tensor, flip: int = 0,
           tone: bool = False) -> Tensor:
    """Normalised mosaic (B, 1, H, W) to display sRGB in [0, 1], (B, 3, H', W') after orientation."""
    linear = white_balance(demosaic(raw.clamp(0.0, 1.0), pattern), multipliers)
    display = linear_to_srgb(apply_matrix(linear, cam_to_srgb))
    return orient(tone_curve(display) if tone else display, flip)
