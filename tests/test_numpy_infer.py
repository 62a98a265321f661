"""The exposure process on numpy arrays (the CPU runtime's) against torch's, itself tested against
its formulas in tests/test_process.py: the same network in both, so any difference is the runtime's."""

import math

import numpy as np
import pytest
import torch

from exposed.denoise import numpy_infer
from exposed.denoise.config import ModelConfig
from exposed.denoise.infer import denoise, wiener_blend
from exposed.denoise.model import ExposureModel
from exposed.sensor.noise import SensorScale


def model_and_backbone(kind: str = "diffusion", **config):
    torch.manual_seed(1)
    model = ExposureModel(ModelConfig("unet", 4, kind, noise_input="std+log", **config)).eval()

    def backbone(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.backbone(torch.from_numpy(x)).numpy()

    return model, backbone


def dark_frame(height: int, width: int, seed: int = 0):
    """A dark frame with a clipped lamp in it, and its saturated photosites."""
    rng = np.random.default_rng(seed)
    clean = np.clip(rng.random((1, 4, height, width)) * 0.01, 0, None)
    dark = (clean + rng.normal(0.0, 0.002, clean.shape)).astype(np.float32)
    dark[..., 5:9, 6:11] = 1.0
    return dark, dark >= 1.0


GAIN, READ = np.array([1e-4, 1.2e-4, 1.1e-4, 0.9e-4]), np.array([2e-7, 2e-7, 3e-7, 2.5e-7])


@pytest.mark.parametrize("kind", ["diffusion", "feedforward"])
@pytest.mark.parametrize("tile", [None, 64])
@pytest.mark.parametrize("dense_below", [0.0, 100.0])
def test_one_pass_and_its_blend_are_torchs(kind, tile, dense_below):
    """T = 0 draws nothing: the numpy runtime's result is torch's to float32 rounding, tiles, noise
    channels, output layer, Wiener blend (with a pilot-error table, the blocks' own evidence of
    the error, and the denser lattice at this ratio or not) and saturated photosites alike."""
    model, backbone = model_and_backbone(kind, steps=1, ratio_per_step=100.0, wiener_stride=4,
                                         pilot_error=((10.0, 1e-4), (100.0, 1e-6)), state_high=1.5,
                                         residual_error=1.0, dense_below=dense_below)
    dark, saturated = dark_frame(100, 130)
    ratio = 60.0
    expected = denoise(model, torch.from_numpy(dark), torch.tensor([ratio]),
                       SensorScale(torch.from_numpy(GAIN[None]), torch.from_numpy(READ[None])), 0, None, "fp32", tile,
                       saturated=torch.from_numpy(saturated)).numpy()
    got = numpy_infer.denoise(backbone, model.config, dark, saturated, ratio, GAIN, READ, 0, 0, tile)
    assert got.dtype == np.float32 and got.shape == dark.shape
    np.testing.assert_allclose(got, expected, atol=2e-5, rtol=0)
    assert (got[saturated] == 1.0).all()


def test_the_blend_takes_the_quincunx_below_the_models_dense_ratio(monkeypatch):
    """Below ``dense_below`` the blend is the quincunx at half the stride (twice the blocks), from
    there the model's own stride, in both runtimes; odd strides have no half and are refused."""
    config = ModelConfig("unet", 4, wiener_stride=4, dense_below=30.0)
    assert numpy_infer.blend_lattice(config, 29.9) == (2, True)
    assert numpy_infer.blend_lattice(config, 30.0) == (4, False)
    assert numpy_infer.blend_lattice(ModelConfig("unet", 4, wiener_stride=4), 1.0) == (4, False)
    with pytest.raises(ValueError, match="even wiener_stride"):
        ModelConfig("unet", 4, wiener_stride=1, dense_below=30.0)
    import exposed.denoise.infer as infer

    model, backbone = model_and_backbone("feedforward", wiener_stride=4, dense_below=30.0)
    dark, saturated = dark_frame(64, 80, seed=5)
    sensor = SensorScale(torch.from_numpy(GAIN[None]), torch.from_numpy(READ[None]))
    seen = []
    for module, blend, where in ((infer, infer.wiener_blend, 4), (numpy_infer, numpy_infer.wiener_blend, 6)):
        def spy(*args, blend=blend, where=where, **kwargs):
            seen.append((args[where], kwargs["quincunx"]))
            return blend(*args, **kwargs)

        monkeypatch.setattr(module, "wiener_blend", spy)
    for ratio in (20.0, 40.0):
        denoise(model, torch.from_numpy(dark), torch.tensor([ratio]), sensor, 0, saturated=torch.from_numpy(saturated))
        numpy_infer.denoise(backbone, model.config, dark, saturated, ratio, GAIN, READ, 0)
    assert seen == [(2, True), (2, True), (4, False), (4, False)]


@pytest.mark.parametrize("bound", [math.inf, 1.5])
def test_the_wiener_blend_is_torchs_on_a_brightened_frame_above_white(bound):
    """Band by band, with the brightened frame made in each band: torch's blend of the whole frame,
    photosites the network saw bounded (a glow at 4 times white in one channel) trusted alike."""
    rng = np.random.default_rng(3)
    dark, saturated = dark_frame(150, 70, seed=3)
    dark[0, 1, 60:75, 20:40] = 0.05
    ratio = 80.0
    estimate = np.clip(dark * ratio + rng.normal(0, 0.01, dark.shape), 0, 1).astype(np.float32)
    bright = torch.from_numpy(dark * np.float32(ratio)).masked_fill_(torch.from_numpy(saturated), 1.0)
    expected = wiener_blend(torch.from_numpy(estimate), bright, torch.tensor([ratio]),
                            SensorScale(torch.from_numpy(GAIN[None]), torch.from_numpy(READ[None])), 4, 1e-5,
                            bound=bound)
    got = numpy_infer.wiener_blend(estimate, dark, saturated, ratio, GAIN, READ, 4, 1e-5, band=32, bound=bound)
    np.testing.assert_allclose(got, expected.numpy(), atol=2e-5, rtol=0)


def test_a_step_draws_the_photons_its_estimate_implies():
    """One exposure step from x1 to x2 (a constant network estimate e): the new state is
    (state + Poisson(e / 2 / K) * K) * 2 / 2, so its mean over the frame is (state + e / 2) and
    its variance K * e / 2 (times the rescaling's square); torch's process draws the same law."""
    config = ModelConfig("unet", 4, "feedforward", state_high=4.0)
    level, gain = 0.5, 1e-3
    seen = []

    def backbone(x: np.ndarray) -> np.ndarray:
        seen.append(x[:, :4].copy())
        return np.full((1, 4, *x.shape[-2:]), level, np.float32)

    dark = np.zeros((1, 4, 64, 200), np.float32)
    numpy_infer.run_process(backbone, config, dark, dark > 1, 2.0, np.full(4, gain), np.zeros(4), 1,
                            np.random.SeedSequence(0))
    second = seen[1]  # the state at exposure 2 of 2, amplified: (0 + photons * K) * 2 / 2
    assert second.mean() == pytest.approx(level / 2, rel=0.01)
    assert second.var() == pytest.approx(gain * level / 2, rel=0.05)


def test_the_choice_of_steps_follows_the_ratio_and_the_frames_snr():
    config = ModelConfig("unet", 4, "diffusion", steps=3, ratio_per_step=100.0, snr_per_step=6.0)
    assert numpy_infer.steps_for(config, 50.0) == 0 and numpy_infer.steps_for(config, 250.0) == 2
    assert numpy_infer.steps_for(config, 300.0, snr=2.5) == 2 and numpy_infer.steps_for(config, 300.0, snr=1.0) == 3
    assert numpy_infer.steps_for(ModelConfig("unet", 4, "feedforward", steps=3), 300.0) == 0
    dark = np.full((1, 4, 20, 20), 0.01, np.float32)
    assert numpy_infer.frame_snr(dark, 1e-4, 1e-6) == pytest.approx(0.01 / np.sqrt(1e-6 + 1e-6))


def test_a_step_draws_by_the_seed_alone():
    """Bands drawn on several threads: the same seed gives the same state however the threads run,
    another seed another one, and the photons' mean is the formula's."""
    estimate = np.full((1, 4, 150, 40), 0.3, np.float32)
    gain = np.full(4, 1e-3)

    def step(seed: int, band: int) -> np.ndarray:
        state = np.zeros_like(estimate)
        numpy_infer.expose(state, estimate, 1.0, 50.0, 100.0, gain, np.random.SeedSequence(seed), band)
        return state

    assert np.array_equal(step(3, 64), step(3, 64)) and not np.array_equal(step(3, 64), step(4, 64))
    assert step(3, 16).mean() == pytest.approx(0.3 * 49 / 50, rel=0.01)


@pytest.mark.parametrize("height, width, tile", [(100, 700, 512), (1416, 2120, 512), (600, 600, 768),
                                                  (90, 70, 512), (90, 70, None)])
def test_the_network_shape_is_the_one_each_pass_is_run_at(height, width, tile):
    """What a session compiles ahead of a frame (OpenVinoSession.prepare) is every tile's shape,
    padding included: a second shape would be compiled while the photo waits."""
    config = ModelConfig("unet", 4, "feedforward")
    seen = set()

    def backbone(x: np.ndarray) -> np.ndarray:
        seen.add(x.shape[-2:])
        return x[:, :4]
    frame = np.full((1, 4, height, width), 0.2, dtype=np.float32)
    numpy_infer.predict(backbone, config, frame, frame, tile)
    assert seen == {numpy_infer.network_shape(height, width, tile)}
