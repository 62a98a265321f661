import signal

import numpy as np
import pytest
import torch
import imageio.v3 as iio

from conftest import DEVICES
from exposed.training.data import ImageBank, RatioRange, SensorMix, SyntheticRaw, find_images
from exposed.training.night import NightScenes
from exposed.training.unprocess import CameraColour, unprocess


@pytest.fixture
def colour_folder(tmp_path):
    """Two flat-colour images: any crop, flip or transpose of them has the same colour everywhere."""
    iio.imwrite(tmp_path / "a.png", np.full((300, 400, 3), (200, 120, 40), np.uint8))
    (tmp_path / "sub").mkdir()
    iio.imwrite(tmp_path / "sub" / "b.jpg", np.full((280, 260, 3), 128, np.uint8), quality=100)
    iio.imwrite(tmp_path / "small.png", np.zeros((100, 100, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_find_images_recurses_and_ignores_other_files(colour_folder):
    assert [p.name for p in find_images(colour_folder)] == ["a.png", "small.png", "b.jpg"]


def test_bank_skips_images_smaller_than_a_patch(colour_folder):
    bank = ImageBank.from_folder(colour_folder, min_size=256)
    assert len(bank) == 2 and bank.skipped == 1


def test_batches_have_the_documented_shapes_and_ranges(colour_folder):
    data = SyntheticRaw(ImageBank.from_folder(colour_folder, 64), patch=64, batch_size=6,
                        sensors=SensorMix(noise_models=("eld",)))
    batch = data.make_batch(torch.Generator().manual_seed(0))
    assert batch.noisy.shape == batch.clean.shape == (6, 4, 32, 32)
    assert batch.ratio.shape == (6,) and batch.noise.batch_size == 6 and batch.noise.model == "eld"
    assert batch.clean.min() >= 0 and batch.clean.max() <= 1
    assert ((batch.ratio >= 1) & (batch.ratio <= 300)).all()


def test_cfa_phase_survives_crops_flips_and_transposes(colour_folder):
    # With flat images every packed channel must be constant and hold its own colour, whatever the
    # crop offset, flip, transpose or Bayer order: a phase error would mix red and blue.
    data = SyntheticRaw(ImageBank.from_folder(colour_folder, 256), patch=64, batch_size=64)
    g = torch.Generator().manual_seed(0)
    batch = data.make_batch(g)
    flat = batch.clean.flatten(2)
    assert torch.allclose(flat.amax(2), flat.amin(2))
    orange = flat[:, :, 0][:, 0] > flat[:, :, 0][:, 3]  # red above blue: the orange image
    assert orange.any() and (~orange).any()
    # Expected channel values, recomputed from the colour draws of the same seed.
    g = torch.Generator().manual_seed(0)
    data.bank.crops(64, 64, g)
    colour = CameraColour.random(64, g)
    for i in range(64):
        rgb = torch.tensor([200, 120, 40] if orange[i] else [128, 128, 128]).float()[None, :, None, None] / 255
        camera = unprocess(rgb, CameraColour(colour.rgb_to_cam[i:i + 1], colour.gains[i:i + 1]))[0, :, 0, 0]
        torch.testing.assert_close(flat[i, :, 0], camera[[0, 1, 1, 2]])


def test_noisy_input_is_an_unbiased_dark_version_of_the_clean_target(colour_folder):
    data = SyntheticRaw(ImageBank.from_folder(colour_folder, 256), patch=128, batch_size=32)
    batch = data.make_batch(torch.Generator().manual_seed(0))
    amplified = batch.noisy * batch.ratio[:, None, None, None]
    error = (amplified - batch.clean).mean(dim=(1, 2, 3)) / batch.clean.mean(dim=(1, 2, 3))
    assert error.abs().mean() < 0.02


def test_ratio_sampler_puts_the_stated_weight_on_its_focus():
    r = RatioRange().sample(100_000, torch.Generator().manual_seed(0))
    assert r.min() >= 1 and r.max() <= 300
    expected = 0.75 + 0.25 * np.log(3) / np.log(300)
    assert ((r >= 100) & (r <= 300)).float().mean().item() == pytest.approx(expected, abs=0.01)


def test_stream_is_reproducible_and_workers_differ(colour_folder):
    bank = ImageBank.from_folder(colour_folder, 64)
    a = next(iter(SyntheticRaw(bank, patch=64, batch_size=2, seed=5)))
    b = next(iter(SyntheticRaw(bank, patch=64, batch_size=2, seed=5)))
    c = next(iter(SyntheticRaw(bank, patch=64, batch_size=2, seed=6)))
    assert torch.equal(a.noisy, b.noisy) and not torch.equal(a.noisy, c.noisy)
    loader = torch.utils.data.DataLoader(SyntheticRaw(bank, patch=64, batch_size=2, seed=5), batch_size=None,
                                         num_workers=2)
    # torch leaves its SIGCHLD handler (which asks after its workers) installed for the rest of the
    # process; in the test run it then crashed the process when a later test's child exited while
    # OpenVINO's threads were alive. Workers shut down, the handler before is put back.
    previous = signal.getsignal(signal.SIGCHLD)
    it = iter(loader)
    try:
        first, second = next(it), next(it)
    finally:
        del it
        signal.signal(signal.SIGCHLD, previous)
    assert not torch.equal(first.noisy, second.noisy)


@pytest.mark.parametrize("device", DEVICES)
def test_a_bank_on_a_device_gives_the_cpu_samplers_batches_in_distribution(colour_folder, device):
    """The same CPU seed gives the same scenes, cameras and ratios wherever the bank is; the noise,
    drawn by the device's own generator, differs draw by draw but has the same mean and variance."""
    bank = ImageBank.from_folder(colour_folder, 128)
    settings = dict(patch=128, batch_size=16, sensors=SensorMix(("sony-a7s2", "nikon-d850"), ("eld",), (12, 14)),
                    night=NightScenes(share=0.5))
    ref = SyntheticRaw(bank, **settings).make_batch(torch.Generator().manual_seed(3))
    got = SyntheticRaw(bank.to(device), **settings).make_batch(torch.Generator().manual_seed(3),
                                                               torch.Generator(device=device).manual_seed(11))
    assert got.noisy.device.type == device
    got = got.to("cpu")
    torch.testing.assert_close(got.clean, ref.clean)
    assert torch.equal(got.ratio, ref.ratio) and torch.equal(got.noise.K, ref.noise.K)
    assert not torch.equal(got.noisy, ref.noisy)
    scale = ref.noise.scale.view(-1, 1, 1, 1)
    for batch in (ref, got):  # residuals in DN where the scene is below white (no clipping)
        batch.residual = ((batch.noisy - batch.clean / batch.ratio.view(-1, 1, 1, 1)) * scale)
    keep = ref.clean < 0.95
    for i in range(16):
        a, b = ref.residual[i][keep[i]].double(), got.residual[i][keep[i]].double()
        spread = a.std().item()
        assert abs(a.mean().item() - b.mean().item()) < 0.1 * spread + 0.05
        assert b.var().item() == pytest.approx(a.var().item(), rel=0.08)
