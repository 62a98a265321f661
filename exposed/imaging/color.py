"""Colour: the sRGB transfer curve, sRGB primaries, and real cameras' colour matrices.

The constants are numpy float64 and the module does not import torch, so reading a raw and
rendering it do not load it; the transfer curves take numpy arrays and tensors alike. The other
image functions take (B, 3, H, W) tensors; matrices are (3, 3) or batched (B, 3, 3).
"""

from __future__ import annotations

from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np

from exposed.imaging.arrays import Array, namespace

if TYPE_CHECKING:
    from torch import Tensor


# Linear sRGB (D65) to CIE XYZ, IEC 61966-2-1.
SRGB_TO_XYZ = np.array([
    [0.4124564, 0.3575761, 0.1804375],
    [0.2126729, 0.7151522, 0.0721750],
    [0.0193339, 0.1191920, 0.9503041],
], dtype=np.float64)

# XYZ (D65) to camera RGB matrices of real cameras (Adobe DNG ColorMatrix2 figures, as tabulated by
# dcraw and LibRaw, divided by 10000). Used to turn sRGB photographs into plausible camera colour.
CAMERA_XYZ: dict[str, np.ndarray] = {name: np.array(values, dtype=np.float64).reshape(3, 3) / 10000.0
                                  for name, values in {
    "Sony ILCE-7S / 7S II": [5838, -1430, -246, -3497, 11477, 2297, -748, 1885, 5778],
    "Sony ILCE-7R": [4913, -541, -202, -6130, 13513, 2906, -1564, 2151, 7183],
    "Canon EOS 70D / 6D": [7034, -804, -1014, -4420, 12564, 2058, -851, 1994, 5758],
    "Canon EOS 5D Mark III": [6722, -635, -963, -4287, 12460, 2028, -908, 2162, 5668],
    "Canon EOS 600D": [6461, -907, -882, -4300, 12184, 2378, -819, 1944, 5931],
    "Canon EOS 7D Mark II": [7268, -1082, -969, -4186, 11839, 2663, -825, 2029, 5839],
}.items()}


D65, STANDARD_A = 21, 17  # EXIF LightSource codes, as DNG's CalibrationIlluminant uses them


@dataclass(frozen=True)
class Calibration:
    """One of a camera's DNG colour calibrations: ``colour_matrix`` maps XYZ to camera RGB under
    ``illuminant`` (an EXIF LightSource code; 0 unknown), ``forward_matrix`` (optional) maps
    white-balanced camera RGB to XYZ D50. Raw editors interpolate between two of them by the
    shot's white balance, so a file's own pair is worth more than one matrix derived from it."""

    illuminant: int
    colour_matrix: np.ndarray
    forward_matrix: np.ndarray | None = None


def calibration_from_srgb(cam_to_srgb: np.ndarray, daylight_wb: np.ndarray) -> Calibration:
    """A D65 calibration for a camera known only by its camera-to-sRGB matrix (for white-balanced
    data, rows summing to one) and its daylight white balance: XYZ white then maps to the camera's
    daylight neutral 1 / wb, as a real colour matrix does."""
    xyz_to_balanced = np.linalg.inv(SRGB_TO_XYZ @ cam_to_srgb)
    return Calibration(D65, np.diag(1.0 / np.asarray(daylight_wb, dtype=np.float64)) @ xyz_to_balanced)


def srgb_to_linear(x: Array) -> Array:
    """Decode the sRGB transfer curve (values in [0, 1]); an array or a tensor."""
    return namespace(x).where(x <= 0.04045, x / 12.92, ((x.clip(min=0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: Array) -> Array:
    """Encode with the sRGB transfer curve; input is clipped to [0, 1] first (display-referred
    output); an array or a tensor."""
    x = x.clip(0.0, 1.0)
    return namespace(x).where(x <= 0.0031308, x * 12.92, x.clip(min=0.0031308) ** (1.0 / 2.4) * 1.055 - 0.055)


D65_WHITE = (0.95047, 1.0, 1.08883)  # XYZ of the D65 white, Y = 1


def srgb_to_lab(x: Tensor) -> Tensor:
    """sRGB (B, 3, H, W) in [0, 1] to CIELAB (D65 white): L* 0 to 100, a* and b* around 0."""
    torch = namespace(x)
    linear = srgb_to_linear(x.clamp(0.0, 1.0))
    white = x.new_tensor(D65_WHITE)[:, None, None]
    xyz = apply_matrix(linear, x.new_tensor(SRGB_TO_XYZ)) / white
    f = torch.where(xyz > (6 / 29) ** 3, xyz.clamp_min(1e-12).pow(1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)


def rgb_to_camera(xyz_to_camera: np.ndarray) -> np.ndarray:
    """Linear sRGB to camera RGB, rows normalised to sum to one.

    Normalising makes sRGB white map to camera (1, 1, 1), i.e. the matrix is "white balanced": the
    camera's own colour cast lives in the white-balance gains, as in a real camera pipeline.
    """
    m = np.asarray(xyz_to_camera, dtype=np.float64) @ SRGB_TO_XYZ
    return m / m.sum(axis=-1, keepdims=True)


def apply_matrix(image: Tensor, matrix: Tensor) -> Tensor:
    """Per-pixel colour transform. image: (B, 3, H, W); matrix: (3, 3) or (B, 3, 3)."""
    b, c, h, w = image.shape
    return (matrix.to(image.dtype) @ image.reshape(b, c, h * w)).reshape(b, -1, h, w)
