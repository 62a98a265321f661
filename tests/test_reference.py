"""GP mode's reference CNN: training resumes where it stopped and writes a file that loads safely."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import torch

from exposed.io.checkpoint import load_checkpoint
from exposed.gp.reference import ReferenceConfig, load_reference, train_reference


def test_training_resumes_and_ships_a_weights_only_file(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        iio.imwrite(folder / f"{i}.png", rng.integers(0, 256, (140, 150, 3), dtype=np.uint8))
    config = ReferenceConfig(images=str(folder), val_images=str(folder), out=str(tmp_path / "run"), width=4,
                             batch_size=2, iterations=2, val_every=1)
    lines: list[str] = []
    first = train_reference(config, log=lines.append)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["train"]["iteration"] == 2
    config.iterations = 3
    train_reference(config, log=lines.append)
    assert "resumed at iteration 2" in lines
    assert load_checkpoint(tmp_path / "run" / "last.pt")["train"]["iteration"] == 3
    model = load_reference(first)  # torch.load(weights_only=True) inside
    assert model.width == 4 and all(p.dtype == torch.float32 for p in model.parameters())
    assert model(torch.rand(1, 3, 37, 41)).shape == (1, 3, 37, 41)


def test_the_shipped_file_is_the_best_validation_and_a_divergence_goes_back_to_it(tmp_path, monkeypatch):
    """Validations scripted at 20, 25, then 10 dB: the third is a divergence, so training returns
    to iteration 2's weights, and reference.pt stays iteration 2's."""
    import exposed.gp.reference as reference

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(2):
        iio.imwrite(folder / f"{i}.png", rng.integers(0, 256, (140, 150, 3), dtype=np.uint8))
    scripted = iter([20.0, 5.0, 25.0, 5.0, 10.0, 5.0])  # each validation: the model's, then the input's
    monkeypatch.setattr(reference, "pooled_psnr", lambda *_: next(scripted))
    config = ReferenceConfig(images=str(folder), val_images=str(folder), out=str(tmp_path / "run"), width=4,
                             batch_size=2, iterations=3, val_every=1)
    lines: list[str] = []
    shipped = train_reference(config, log=lines.append)
    assert "diverged (10.00 dB against the best 25.00): back to the weights of iteration 2, training on" in lines
    best, last = load_checkpoint(tmp_path / "run" / "best.pt"), load_checkpoint(tmp_path / "run" / "last.pt")
    assert best["train"]["iteration"] == 2 and last["train"]["iteration"] == 3
    assert last["train"]["best_psnr"] == 25.0
    assert all(torch.equal(best["model"][k], v) for k, v in last["model"].items())
    ships = load_checkpoint(shipped)
    assert ships["train"]["iterations_done"] == 2 and ships["train"]["validation_psnr"] == 25.0
    assert all(torch.equal(best["model"][k].half(), v) for k, v in ships["model"].items())


def test_a_camera_dim_photo_is_the_scene_exposed_shorter_with_noise_and_developed_like_a_jpeg():
    """Without noise, the dim photo is the same development of ratio-times less light; with the
    sensor's noise its flat patches spread as the noise model says, and both are 8-bit."""
    import pytest

    from exposed.gp.reference import camera_dark, colour_loss, develop
    from exposed.imaging.isp import tone_curve
    from exposed.sensor.noise import NoiseParams
    from exposed.training.unprocess import CameraColour, unprocess

    g = torch.Generator().manual_seed(0)
    y, x = torch.linspace(0.2, 0.9, 32)[:, None], torch.linspace(0.3, 0.8, 48)[None, :]
    clean = torch.stack([y * x, y.expand(32, 48), x.expand(32, 48) ** 2])[None].repeat(2, 1, 1, 1)  # smooth
    colour = CameraColour.random(2, g)
    silent = NoiseParams.create(K=1e-4, read_sigma=1e-3, black=0.0, white=65535.0)
    ratio = torch.tensor([4.0, 10.0])
    dark, reference = camera_dark(clean, ratio, NoiseParams.cat([silent, silent]), colour, g)
    assert torch.allclose(reference, develop(unprocess(clean, colour), colour))
    # an in-gamut scene comes back as itself through the camera's tone curve, to 8 bits
    assert (reference - tone_curve(clean)).abs().median() < 2 / 255
    assert (dark * 255 - (dark * 255).round()).abs().max() < 1e-4 and (dark < reference)[..., 2:-2, 2:-2].all()
    flat = torch.full((1, 3, 64, 64), 0.5)
    noisy = NoiseParams.create(K=5.0, read_sigma=20.0, black=512.0, white=16383.0)
    one = CameraColour(torch.eye(3)[None], torch.ones(1, 3))
    dark, _ = camera_dark(flat, torch.tensor([8.0]), noisy, one, g)
    quiet, _ = camera_dark(flat, torch.tensor([8.0]), silent, one, g)
    assert dark.std() > 2 / 255 > 4 * quiet.std()  # the short exposure's noise shows in the developed photo
    grey = flat.expand(1, 3, 64, 64)
    tinted = grey * torch.tensor([1.2, 1.0, 0.8])[None, :, None, None]
    assert colour_loss(grey, tinted, 1.0) == pytest.approx(2 * float((grey - tinted).abs().mean()), rel=1e-5)
