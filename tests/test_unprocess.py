import math

import numpy as np
import torch

from exposed.imaging.color import CAMERA_XYZ, linear_to_srgb, rgb_to_camera, srgb_to_linear
from exposed.training.data import read_rgb8
from exposed.demo import example_scene
from exposed.training.unprocess import CameraColour, reprocess, unprocess

from conftest import shared_file


def _srgb_decode_reference(v: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1 in float64."""
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / torch.mean((a.double() - b.double()) ** 2).item())


def test_transfer_curve_matches_the_standard_and_inverts():
    v = np.linspace(0, 1, 10001)
    ours = srgb_to_linear(torch.from_numpy(v)).numpy()
    np.testing.assert_allclose(ours, _srgb_decode_reference(v), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(linear_to_srgb(torch.from_numpy(ours)).numpy(), v, atol=1e-12)


def test_camera_matrices_keep_white_white():
    for m in CAMERA_XYZ.values():
        np.testing.assert_allclose(rgb_to_camera(m).sum(axis=1), np.ones(3), rtol=0, atol=1e-12)


def test_unprocessed_white_is_the_inverse_white_balance():
    colour = CameraColour.random(4, torch.Generator().manual_seed(0))
    camera = unprocess(torch.ones(4, 3, 2, 2), colour)
    torch.testing.assert_close(camera[:, :, 0, 0], 1.0 / colour.gains)
    assert (colour.gains[:, 0] >= 1.9).all() and (colour.gains[:, 2] <= 1.9).all()


def _round_trip_psnr(srgb: torch.Tensor) -> float:
    colour = CameraColour.random(srgb.shape[0], torch.Generator().manual_seed(1))
    camera = unprocess(srgb, colour)
    assert camera.min() >= 0 and camera.max() <= 1
    return _psnr(reprocess(camera, colour), srgb)


def test_unprocess_then_reprocess_recovers_the_example_scene():
    assert _round_trip_psnr(example_scene().expand(3, -1, -1, -1)) > 40


def test_unprocess_then_reprocess_recovers_photographs():
    folder = shared_file("images", "val", "CBSD68")
    images = [read_rgb8(p)[:, :320, :320].float() / 255 for p in sorted(folder.glob("*.png"))[:8]]
    assert _round_trip_psnr(torch.stack(images)) > 40
