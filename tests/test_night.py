"""Night photography: light sources far above white, clipped highlights, and what the model sees of them."""

from __future__ import annotations

import numpy as np
import pytest
import rawpy
import torch

from conftest import synthetic_dng, tiny_model
from exposed.training.data import ImageBank, SensorMix, SyntheticRaw
from exposed.denoise.infer import denoise
from exposed.training.night import NightScenes, light_source
from exposed.pipeline import Enhancer, Settings
from exposed.denoise.config import ModelConfig
from exposed.denoise.model import ExposureModel
from exposed.denoise.process import noise_std, run_process
from exposed.sensor.noise import SensorScale
from exposed.io.raw import read_raw


@pytest.mark.parametrize("seed", range(8))
def test_a_light_source_peaks_at_its_brightness_in_a_lamp_colour(seed):
    light = light_source(64, 80, 50.0, torch.Generator().manual_seed(seed))
    assert light.shape == (3, 64, 80) and light.min() >= 0
    peak_colour = light.flatten(1)[:, light.sum(0).argmax()]
    assert peak_colour.max().item() <= 50.0 + 1e-4
    ratios = peak_colour / peak_colour.max()
    assert ratios.max() == pytest.approx(1.0) and ratios.min() >= 0.1 - 1e-6


def test_night_scenes_change_their_share_of_crops_and_nothing_else():
    camera = torch.rand(400, 3, 32, 32) * 0.9
    out = NightScenes(share=0.3).apply(camera, torch.Generator().manual_seed(0))
    changed = (out != camera).flatten(1).any(1)
    assert changed.float().mean().item() == pytest.approx(0.3, abs=0.07)
    assert (out[changed].amax(dim=(1, 2, 3)) > 1.0).float().mean() > 0.9  # lamps pass white
    assert torch.equal(NightScenes(share=0.0).apply(camera), camera)


@pytest.fixture
def bank(tmp_path):
    import imageio.v3 as iio

    rng = np.random.default_rng(0)
    for i in range(3):
        iio.imwrite(tmp_path / f"{i}.png", rng.integers(0, 256, (160, 160, 3), dtype=np.uint8))
    return ImageBank.from_folder(tmp_path, 64)


def test_night_batches_clip_the_reference_and_the_dark_frame_at_white(bank):
    data = SyntheticRaw(bank, patch=64, batch_size=32, night=NightScenes(share=1.0))
    batch = data.make_batch(torch.Generator().manual_seed(0))
    assert batch.clean.max() <= 1.0 and (batch.clean == 1.0).any()
    saturated = batch.noisy >= 1.0
    assert saturated.any() and batch.noisy.max() <= 1.0
    # Light that filled the dark frame's photosites also fills the reference exposure's.
    assert (batch.clean[saturated] == 1.0).float().mean() > 0.99


def test_sensor_mix_scales_the_calibration_to_each_bit_depth_in_whole_dn(bank):
    mix = SensorMix(cameras=("sony-a7s2", "virtual"), noise_models=("eld",), bits=tuple(range(8, 15)),
                    varied_black=True, black_error=2.0, quantise=True)
    noise, offset = mix.sample(4000, torch.Generator().manual_seed(0))
    bits = torch.log2(noise.white + 1)
    assert set(bits.round().tolist()) == set(range(8, 15)) and torch.allclose(bits, bits.round())
    assert (noise.black == 0).float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert (noise.black <= noise.white / 16 + 1).all() and torch.equal(offset, offset.round())
    assert offset.abs().max() <= 2
    # The same electrons in fewer bits: gain per DN-range is independent of the bit depth.
    sony = SensorMix(noise_models=("pg",), bits=(8, 14)).sample(4000, torch.Generator().manual_seed(1))[0]
    k_per_range = (sony.K / sony.scale).log()
    low, high = k_per_range[sony.white < 300], k_per_range[sony.white > 10000]
    assert low.mean().item() == pytest.approx(high.mean().item(), abs=0.15)  # the same log-uniform K range
    data = SyntheticRaw(bank, patch=64, batch_size=16, sensors=mix)
    batch = data.make_batch(torch.Generator().manual_seed(2))
    dn = batch.noisy * batch.noise.scale.view(-1, 1, 1, 1)
    torch.testing.assert_close(dn, dn.round(), atol=2e-3, rtol=0)
    floor = -batch.noise.black.view(-1, 1, 1, 1) / batch.noise.scale.view(-1, 1, 1, 1)
    assert (batch.noisy >= floor - 1e-6).all()


def test_rounded_pg_frames_have_the_quantisation_the_noise_channel_counts():
    from exposed.sensor.noise import NoiseParams, synthesize_dark

    noise = NoiseParams.create(K=0.05, read_sigma=0.2, black=0.0, white=255.0)
    level = torch.full((1, 1, 400, 400), 0.5)
    dark = synthesize_dark(level, torch.tensor([1.0]), noise, torch.Generator().manual_seed(0), round_dn=True)
    measured = (dark * 255).var().item()
    sensor = SensorScale.from_noise(noise, quantised=True)
    expected = (sensor.gain * 0.5 + sensor.read_var).item() * 255**2
    assert measured == pytest.approx(expected, rel=0.03)
    assert SensorScale.from_noise(noise).read_var.item() * 255**2 == pytest.approx(0.04, rel=1e-5)


class Recorder(torch.nn.Module):
    """Wraps a model and keeps what its network is given."""

    def __init__(self, model: ExposureModel):
        super().__init__()
        self.model, self.config, self.seen = model, model.config, []

    def forward(self, amplified, std):
        self.seen.append((amplified.clone(), std.clone()))
        return self.model(amplified, std)


def _lamp_frame(ratio=100.0):
    dark = torch.rand(1, 4, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.5 / ratio
    dark[..., 10:13, 10:13] = 1.0  # a lamp, clipped in the dark frame
    return dark


def test_the_network_sees_a_bounded_state_and_its_noise_whatever_the_ratio():
    torch.manual_seed(0)
    model = Recorder(ExposureModel(ModelConfig("unet", 4, "diffusion")).eval())
    sensor = SensorScale(torch.tensor([1e-4]), torch.tensor([1e-7]))
    dark = _lamp_frame()
    with torch.no_grad():
        list(run_process(model, dark, torch.tensor([100.0]), sensor, 2, torch.Generator().manual_seed(0)))  # type: ignore[arg-type]
    low, high = model.config.state_low, model.config.state_high
    assert (low, high) == (-1.0, 4.0)
    for state, _ in model.seen:
        assert state.max() <= high and state.min() >= low
    state, std = model.seen[0]
    assert state[..., 11, 11].eq(high).all()  # the lamp (x100 = 100 times white) is seen at the bound
    torch.testing.assert_close(std, noise_std(state, torch.tensor([1.0]), torch.tensor([100.0]), sensor))


@pytest.mark.parametrize("kind,steps", [("diffusion", 2), ("feedforward", None), ("diffusion", 0)])
def test_photosites_saturated_in_the_dark_frame_stay_white(kind, steps):
    torch.manual_seed(1)
    model = ExposureModel(ModelConfig("unet", 4, kind)).eval()
    with torch.no_grad():  # an untrained network says anything; make it say black everywhere
        for p in model.parameters():
            p.zero_()
    sensor = SensorScale(torch.tensor([1e-4]), torch.tensor([1e-7]))
    dark = _lamp_frame()
    out = denoise(model, dark, torch.tensor([100.0]), sensor, steps, torch.Generator().manual_seed(0))
    assert out[..., 10:13, 10:13].eq(1.0).all()
    assert out[..., 20:, 20:].lt(1.0).all()
    mask = torch.zeros_like(dark, dtype=torch.bool)
    mask[..., 0, 0] = True  # an explicit mask replaces the ``dark >= 1`` default
    out = denoise(model, dark, torch.tensor([100.0]), sensor, steps, torch.Generator().manual_seed(0), saturated=mask)
    assert out[..., 0, 0].eq(1.0).all() and out[..., 11, 11].lt(1.0).all()


@pytest.mark.parametrize("mode", ["amplify", "diffusion", "feedforward"])
def test_lamps_clipped_in_the_raw_are_white_in_every_mode_and_the_dng(tmp_path, mode):
    path = synthetic_dng(tmp_path / "night.dng", height=96, width=128, ratio=100.0, lamps=4, seed=3)
    raw = read_raw(path)
    clipped = raw.mosaic >= raw.white
    assert clipped.sum() > 20
    model = tiny_model(tmp_path / "m.pt", "feedforward" if mode == "feedforward" else "diffusion")
    enhancer = Enhancer(Settings(mode=mode, ratio=0.5, model=None if mode == "amplify" else model))
    plan = enhancer.plan(raw)  # x0.5 would darken a lamp below white if nothing held it
    mosaic = enhancer.enhance_mosaic(plan)[0, 0]
    assert (mosaic[clipped] == 1.0).all()
    from exposed.io.dng import write_dng

    write_dng(tmp_path / "out.dng", *enhancer.dng(plan, enhancer.enhance_mosaic(plan)))
    with rawpy.imread(str(tmp_path / "out.dng")) as back:
        assert (back.raw_image_visible[clipped] == 65535).all()
