"""Clean raw data from sRGB photographs ("unprocessing", after Brooks et al., CVPR 2019).

Each step inverts one stage of a simple camera pipeline, under these assumptions:

1. Transfer curve: the photo is display-referred sRGB with the standard curve and no extra tone
   curve, so decoding the curve gives linear light. Clipped highlights stay clipped.
2. Colour: camera RGB = M * linear sRGB, with M a real camera's matrix (or a random convex mixture
   of several) normalised so white stays white. Colours outside the camera's gamut are clipped to
   [0, 1], since a sensor cannot record negative light.
3. White balance: the camera recorded the scene with a colour cast that the pipeline removed with
   gains (red 1.9 to 2.4, blue 1.5 to 1.9, green 1: typical daylight to tungsten gains), so
   unprocessing divides by them. Gains of at least one never push a value above white.
4. Mosaic: one colour per photosite in any of the four Bayer orders (see :mod:`exposed.imaging.bayer`).

The result is the clean reference exposure, normalised to [0, 1] above black.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from exposed.imaging.color import CAMERA_XYZ, apply_matrix, linear_to_srgb, rgb_to_camera, srgb_to_linear

RED_GAIN = (1.9, 2.4)
BLUE_GAIN = (1.5, 1.9)


@dataclass(frozen=True)
class CameraColour:
    """How one batch of images is turned into camera colour. rgb_to_cam: (B, 3, 3); gains: (B, 3)."""

    rgb_to_cam: Tensor
    gains: Tensor

    @classmethod
    def random(cls, n: int, generator: torch.Generator | None = None) -> CameraColour:
        """n random cameras: convex mixtures of real matrices and realistic white-balance gains."""
        matrices = torch.stack([torch.from_numpy(rgb_to_camera(m)) for m in CAMERA_XYZ.values()])  # (C, 3, 3)
        weights = torch.rand(n, len(matrices), generator=generator, dtype=torch.float64)
        weights = weights / weights.sum(dim=1, keepdim=True)
        rgb_to_cam = torch.einsum("nc,cij->nij", weights, matrices)
        u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        red = RED_GAIN[0] + (RED_GAIN[1] - RED_GAIN[0]) * u[:, 0]
        blue = BLUE_GAIN[0] + (BLUE_GAIN[1] - BLUE_GAIN[0]) * u[:, 1]
        gains = torch.stack([red, torch.ones_like(red), blue], dim=1)
        return cls(rgb_to_cam.float(), gains.float())

    def to(self, device: torch.device | str) -> CameraColour:
        return CameraColour(self.rgb_to_cam.to(device), self.gains.to(device))


def unprocess(srgb: Tensor, colour: CameraColour) -> Tensor:
    """sRGB image in [0, 1] to linear, white-unbalanced camera RGB in [0, 1]. (B, 3, H, W) -> same."""
    colour = colour.to(srgb.device)
    camera = apply_matrix(srgb_to_linear(srgb), colour.rgb_to_cam).clamp(0.0, 1.0)
    return camera / colour.gains[:, :, None, None]


def reprocess(camera: Tensor, colour: CameraColour) -> Tensor:
    """Inverse of :func:`unprocess` with the same colour: white balance, camera to sRGB, sRGB curve."""
    colour = colour.to(camera.device)
    balanced = camera * colour.gains[:, :, None, None]
    return linear_to_srgb(apply_matrix(balanced, torch.linalg.inv(colour.rgb_to_cam)))

