import math

import pytest
import torch

from conftest import DEVICES
from exposed.denoise.infer import default_steps, denoise, predict
from exposed.sensor.noise import NoiseParams
from exposed.denoise.config import ModelConfig
from exposed.denoise.model import ExposureModel
from exposed.denoise.process import expose, exposure_schedule, noise_std, run_process
from exposed.sensor.noise import SensorScale


def test_linear_schedule_matches_the_supplement_for_x300():
    # Supplement: for x300 in three steps the exposures are 1, 100, 200, 300 times the input's.
    assert exposure_schedule(torch.tensor([300.0]), 3).tolist() == [[1.0, 100.0, 200.0, 300.0]]


def test_schedule_never_goes_backwards_for_small_or_fractional_ratios():
    lam = exposure_schedule(torch.tensor([1.5, 0.5, 37.3]), 4)
    assert (lam[:, 1:] >= lam[:, :-1]).all()
    assert lam[:, -1].tolist() == pytest.approx([1.5, 1.0, 37.3])
    random = exposure_schedule(torch.full((1000,), 250.0), 2, torch.Generator().manual_seed(0), random=True)
    assert (random[:, 1:] >= random[:, :-1]).all() and (random[:, -1] == 250).all()
    assert random[:, 1].std() > 30  # intermediate exposures really vary


def test_expose_adds_poisson_photons_with_the_rate_the_estimate_implies():
    gain, ratio = 2e-4, 100.0
    sensor = SensorScale(torch.tensor([gain]), torch.tensor([0.0]))
    estimate = torch.full((1, 4, 500, 500), 0.3)
    state = torch.zeros_like(estimate)  # no photons yet, so the next state holds only the new ones
    nxt = expose(state, estimate, torch.tensor([1.0]), torch.tensor([51.0]), torch.tensor([ratio]), sensor,
                 torch.Generator().manual_seed(0))
    photons = nxt * 51.0 / ratio / gain
    rate = 50.0 / ratio * 0.3 / gain  # 750 photo-electrons
    assert photons.mean().item() == pytest.approx(rate, rel=0.002)
    assert photons.var().item() == pytest.approx(rate, rel=0.02)
    assert torch.allclose(photons, photons.round(), atol=1e-2)


def test_expose_keeps_the_photons_already_collected():
    sensor = SensorScale(torch.tensor([1e-3]), torch.tensor([0.0]))
    state = torch.full((1, 4, 8, 8), 0.5)
    nxt = expose(state, torch.zeros_like(state), torch.tensor([10.0]), torch.tensor([20.0]), torch.tensor([20.0]),
                 sensor, torch.Generator().manual_seed(0))
    torch.testing.assert_close(nxt, state * 10 / 20)  # nothing new arrives when the estimate is black


def test_straight_through_gradient_reaches_the_estimate():
    sensor = SensorScale(torch.tensor([1e-3]), torch.tensor([0.0]))
    estimate = torch.full((1, 4, 4, 4), 0.2, requires_grad=True)
    nxt = expose(torch.zeros(1, 4, 4, 4), estimate, torch.tensor([1.0]), torch.tensor([3.0]), torch.tensor([3.0]),
                 sensor, torch.Generator().manual_seed(0), straight_through=True)
    nxt.sum().backward()
    # d(next)/d(estimate) = extra exposure fraction (2/3) / gain * gain * ratio / next exposure = 2/3.
    torch.testing.assert_close(estimate.grad, torch.full_like(estimate, 2 / 3))


def test_noise_std_matches_shot_plus_read_noise_of_a_real_draw():
    noise = NoiseParams.create(K=2.0, read_sigma=5.0)
    sensor = SensorScale.from_noise(noise)
    clean = torch.full((1, 4, 400, 400), 0.4)
    scale = noise.scale.item()
    ratio = 200.0
    photons = torch.poisson(clean * scale / ratio / 2.0, generator=torch.Generator().manual_seed(0))
    dark = (photons * 2.0 + 5.0 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))) / scale
    amplified = dark * ratio
    predicted = noise_std(clean, torch.tensor([1.0]), torch.tensor([ratio]), sensor)
    assert amplified.std().item() == pytest.approx(predicted.mean().item(), rel=0.01)


def _model(kind="diffusion"):
    torch.manual_seed(0)
    return ExposureModel(ModelConfig("unet", 8, kind)).eval()


def test_feedforward_twin_makes_one_pass_unless_asked_for_steps():
    sensor = SensorScale(torch.tensor([1e-4]), torch.tensor([1e-7]))
    dark = torch.rand(1, 4, 16, 16) * 0.01
    twin, calls = _model("feedforward"), []
    twin.register_forward_hook(lambda *args: calls.append(1))
    denoise(twin, dark, torch.tensor([100.0]), sensor)
    assert len(calls) == 1
    denoise(twin, dark, torch.tensor([100.0]), sensor, steps=3)  # the paper's iterated baseline (Fig. 6)
    assert len(calls) == 1 + 4
    with torch.no_grad():
        assert len(list(run_process(_model(), dark, torch.tensor([100.0]), sensor, 5))) == 6


@pytest.mark.parametrize("ratio,passes", [(3.5, 1), (99.9, 1), (100.0, 2), (250.0, 3), (300.0, 4), (1000.0, 4)])
def test_default_steps_grow_with_the_ratio_up_to_the_models_own(ratio, passes):
    """T = min(steps, ratio // ratio_per_step): one pass below one step's ratio, the model's T at most."""
    from dataclasses import replace

    model, calls = _model(), []
    model.config = replace(model.config, steps=3, ratio_per_step=100.0)
    model.register_forward_hook(lambda *args: calls.append(1))
    sensor = SensorScale(torch.tensor([1e-4]), torch.tensor([1e-7]))
    denoise(model, torch.rand(1, 4, 16, 16) * 0.01, torch.tensor([ratio]), sensor)
    assert len(calls) == passes
    assert default_steps(model, ratio) == passes - 1 and default_steps(_model(), ratio) == _model().config.steps


def test_inference_is_deterministic_under_a_seed():
    model = _model()
    sensor = SensorScale(torch.tensor([1e-4]), torch.tensor([1e-7]))
    dark = torch.rand(1, 4, 32, 32) * 0.01
    runs = [denoise(model, dark, torch.tensor([150.0]), sensor, 3, torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    assert runs[0].min() >= 0 and runs[0].max() <= 1


def _generator(device):
    """Photon draws on the device where it has a Poisson sampler (MPS has none: the CPU's serves)."""
    return torch.Generator(device="cpu" if device == "mps" else device).manual_seed(0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("precision,tolerance", [("fp32", 2e-3), ("bf16", 2e-2)])
def test_tiled_and_whole_frame_inference_agree(precision, tolerance, device):
    model = _model().to(device)
    sensor = SensorScale(torch.tensor([1e-4]), torch.tensor([1e-6]))
    dark = (torch.rand(1, 4, 96, 136) * 0.004).to(device)
    whole = denoise(model, dark, torch.tensor([200.0]), sensor, 2, _generator(device), precision)
    tiled = denoise(model, dark, torch.tensor([200.0]), sensor, 2, _generator(device), precision, tile=48, overlap=16)
    assert whole.device.type == device
    assert (whole - tiled).abs().mean().item() < tolerance
    assert 10 * math.log10(1 / ((whole - tiled) ** 2).mean().item()) > 40


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_inference_is_close_to_fp32(device):
    model = _model().to(device)
    sensor = SensorScale(torch.tensor([1e-4]), torch.tensor([1e-6]))
    dark = (torch.rand(1, 4, 64, 64) * 0.004).to(device)
    fp32 = denoise(model, dark, torch.tensor([100.0]), sensor, 1, _generator(device), "fp32")
    bf16 = denoise(model, dark, torch.tensor([100.0]), sensor, 1, _generator(device), "bf16")
    assert (fp32 - bf16).abs().mean().item() < 0.01


def test_predict_tiles_cover_the_frame_exactly_once_in_weight():
    calls = []

    class Echo(torch.nn.Module):
        def forward(self, amplified, std):
            calls.append(amplified.shape)
            return amplified

    x = torch.rand(1, 4, 70, 90)
    out = predict(Echo(), x, x, tile=32, overlap=8)  # type: ignore[arg-type]
    torch.testing.assert_close(out, x)
    assert len(calls) > 4


def test_photons_are_drawn_on_the_generators_device():
    # A CPU generator with data elsewhere is how MPS (no Poisson sampler) is served; on a CPU-only
    # machine the data already is on the CPU, so this checks the path gives the same draws.
    sensor = SensorScale(torch.tensor([1e-3]), torch.tensor([0.0]))
    state = torch.zeros(1, 4, 8, 8)
    estimate = torch.full((1, 4, 8, 8), 0.5)
    a = expose(state, estimate, torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([2.0]), sensor,
               torch.Generator(device="cpu").manual_seed(3))
    b = expose(state, estimate, torch.tensor([1.0]), torch.tensor([2.0]), torch.tensor([2.0]), sensor,
               torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.device == state.device


def test_the_pilot_error_is_log_linear_between_the_table_and_held_at_its_ends():
    from exposed.denoise.infer import pilot_error

    table = ((2.0, 1e-4), (200.0, 1e-6))
    got = pilot_error(table, torch.tensor([1.0, 2.0, 20.0, 200.0, 1000.0]))
    torch.testing.assert_close(got, torch.tensor([1e-4, 1e-4, 1e-5, 1e-6, 1e-6]), rtol=1e-5, atol=0)
    assert pilot_error(((50.0, 3e-5),), torch.tensor([1.0, 500.0])).tolist() == pytest.approx([3e-5, 3e-5])
    assert pilot_error((), torch.tensor([1.0, 500.0])).tolist() == [0.0, 0.0]


def test_the_site_transform_is_orthonormal_and_its_first_plane_is_the_sites_sum():
    from exposed.denoise.infer import SITE_TRANSFORM

    t = SITE_TRANSFORM.double()
    torch.testing.assert_close(t @ t.T, torch.eye(4, dtype=torch.float64))
    torch.testing.assert_close(t[0], torch.full((4,), 0.5, dtype=torch.float64))


def test_the_wiener_blend_keeps_a_lamps_light_out_of_its_dark_surroundings():
    """A lamp at 50 times white beside a dark area, the estimate right: the brightened frame counts
    at most one noise standard deviation above white, so the dark side moves by a small fraction
    of that (blocks straddle the edge), not by the lamp's light; an estimate equal to a noiseless
    brightened frame comes back as it is, give or take the few coefficients of the edge too small
    beside the noise to keep."""
    from exposed.denoise.infer import wiener_blend

    ratio, sensor = torch.tensor([100.0]), SensorScale(torch.tensor([1e-5]), torch.tensor([1e-8]))
    estimate = torch.full((1, 4, 24, 24), 0.05)
    estimate[..., :, 12:] = 1.0
    amplified = estimate.clone()
    amplified[..., :, 12:] = 50.0
    out = wiener_blend(estimate, amplified, ratio, sensor)
    std_white = math.sqrt(1e-5 * 100 + 1e-8 * 100**2)
    assert (out - estimate)[..., :, :12].abs().max() < std_white / 2
    torch.testing.assert_close(wiener_blend(estimate, estimate, ratio, sensor), estimate, rtol=0,
                               atol=std_white / 300)


@pytest.mark.parametrize("glow", [1.2, 3.0])
def test_the_wiener_blend_trusts_the_estimate_less_where_a_photosite_is_clipped(glow):
    """Beside a lamp one channel of which is clipped (above white; at 3 x white also above the
    state's bound), the network saw part of the photosite's colour cut off or bounded: an estimate
    that wiped the other channels' texture there is trusted less (CLIPPED_ERROR, BOUNDED_ERROR),
    so the texture as shot comes back; a block away from the lamp nothing changes."""
    from exposed.denoise.infer import wiener_blend

    g = torch.Generator().manual_seed(0)
    ratio, sensor = torch.tensor([20.0]), SensorScale(torch.tensor([2e-6]), torch.tensor([1e-9]))
    x = torch.arange(48.0)
    truth = (0.5 + 0.1 * torch.sin(x[None, :] * 1.3) * torch.cos(x[:, None] * 0.9)).expand(1, 4, 48, 48).clone()
    truth[0, 0, :, :16] = glow  # the lamp's glow, red only
    amplified = truth + 0.003 * torch.randn(truth.shape, generator=g)
    estimate = torch.full_like(truth, 0.5)  # the texture wiped beside the lamp and everywhere else
    estimate[0, 0, :, :16] = 1.0
    trusting = wiener_blend(estimate, amplified, ratio, sensor, 4, 1e-6, clipped_error=0.0, bounded_error=0.0)
    shipped = wiener_blend(estimate, amplified, ratio, sensor, 4, 1e-6, bound=1.5)
    beside, away = (slice(1, 4), slice(None), slice(0, 16)), (slice(None), slice(None), slice(32, None))
    error = {name: (out[0][beside] - truth[0][beside]).square().mean() for name, out in
             (("trusting", trusting), ("shipped", shipped))}
    assert error["shipped"] < 0.2 * error["trusting"]
    torch.testing.assert_close(shipped[0][away], trusting[0][away], rtol=0, atol=1e-6)


@pytest.mark.parametrize("stride", [2, 4])
def test_the_wiener_blend_in_bands_is_the_whole_frames(stride):
    """Bands with the rows their blocks reach beyond them give the frame's result, at any band
    that is a multiple of the stride, the last band short or not; and it is the sites' planes
    filtered one by one and mixed back."""
    from exposed.denoise.infer import SITE_TRANSFORM, wiener_blend
    from exposed.imaging.wiener import dct_wiener

    g = torch.Generator().manual_seed(stride)
    estimate = 0.8 * torch.rand(2, 4, 38, 30, generator=g)  # the brightened frame below white: nothing capped
    amplified = estimate + 0.03 * torch.randn(2, 4, 38, 30, generator=g)
    ratio = torch.tensor([20.0, 100.0])
    sensor = SensorScale(torch.tensor([2e-5, 1e-5]), torch.tensor([1e-8, 1e-8]))
    whole = wiener_blend(estimate, amplified, ratio, sensor, stride, torch.tensor([1e-6, 0.0]), band=1000)
    for band in (stride * 2, 12, 36):
        got = wiener_blend(estimate, amplified, ratio, sensor, stride, torch.tensor([1e-6, 0.0]), band=band)
        torch.testing.assert_close(got, whole, rtol=0, atol=1e-6)
    t = SITE_TRANSFORM
    shot, read = (sensor.gain * ratio).view(-1, 1, 1, 1), (sensor.read_var * ratio**2).view(-1, 1, 1, 1)
    variance = estimate.clamp(0, 1) * shot + read
    planes = dct_wiener(torch.einsum("pc,bchw->bphw", t, amplified), torch.einsum("pc,bchw->bphw", t, estimate),
                        torch.einsum("pc,bchw->bphw", t.square(), variance), torch.tensor([1e-6, 0.0]), stride=stride)
    torch.testing.assert_close(whole, torch.einsum("pc,bphw->bchw", t, planes), rtol=0, atol=1e-5)


def test_a_model_with_a_wiener_stride_holds_saturated_photosites_white():
    from dataclasses import replace

    model = _model()
    model.config = replace(model.config, wiener_stride=4)
    sensor = SensorScale(torch.tensor([1e-4]), torch.tensor([1e-7]))
    dark = torch.rand(1, 4, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.01
    dark[..., 10:13, 10:13] = 1.0  # a lamp clipped in the dark frame
    out = denoise(model, dark, torch.tensor([50.0]), sensor, 0)
    assert (out[..., 10:13, 10:13] == 1.0).all()
    unblended = denoise(model, dark, torch.tensor([50.0]), sensor, 0, blend=False)
    assert not torch.equal(out, unblended)


def test_a_blended_model_keeps_a_barely_noisy_frame_as_brightening_does():
    """A frame two stops dark with little noise: whatever an (untrained) network says, the blend
    gives back nearly the brightened frame; without a stride, or with ``blend=False``, it does not."""
    from dataclasses import replace

    model = _model()
    sensor = SensorScale(torch.tensor([1e-6]), torch.tensor([1e-9]))
    dark = torch.rand(1, 4, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.25
    amplified = dark * 4
    plain = denoise(model, dark, torch.tensor([4.0]), sensor, 0)
    model.config = replace(model.config, wiener_stride=4)
    blended = denoise(model, dark, torch.tensor([4.0]), sensor, 0)
    assert (blended - amplified).abs().max() < 0.01 < (plain - amplified).abs().max()
    assert torch.equal(denoise(model, dark, torch.tensor([4.0]), sensor, 0, blend=False), plain)
    model.config = replace(model.config, pilot_error=((1.0, 1e-2), (300.0, 1e-2)))  # an estimate not to trust
    distrusted = denoise(model, dark, torch.tensor([4.0]), sensor, 0)
    assert (distrusted - amplified).abs().max() < 0.1 * (blended - amplified).abs().max()


def test_the_frames_snr_is_its_median_level_over_the_sensors_noise_there():
    """Of every 7th photosite: a median of a million values is as good as of twelve million."""
    from exposed.denoise.infer import frame_snr

    dark = torch.rand(1, 4, 20, 30, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.02 - 0.002
    sensor = SensorScale(torch.tensor([[2e-4, 2e-4, 2e-4, 2e-4]]), torch.tensor([[1e-7, 2e-7, 2e-7, 3e-7]]))
    sample = dark.flatten()[::7].clamp_min(0).sort().values  # every 7th photosite
    level = float(sample[(sample.numel() - 1) // 2])  # the lower middle value, as torch's median
    assert frame_snr(dark, sensor) == pytest.approx(level / math.sqrt(2e-4 * level + 2e-7), rel=1e-6)


@pytest.mark.parametrize("snr,steps", [(1.0, 3), (1.9, 3), (2.1, 2), (3.1, 1), (5.9, 1), (6.1, 0), (100.0, 0)])
def test_a_clean_frame_takes_fewer_steps_than_its_ratio_alone_would_give(snr, steps):
    """T = min(ratio rule, snr_per_step // SNR): with snr_per_step 6 and T = 3 at x300, a frame of SNR
    above 6 gets one pass, below 2 all three steps."""
    from dataclasses import replace

    from exposed.denoise.numpy_infer import steps_for_snr

    model = _model()
    model.config = replace(model.config, steps=3, ratio_per_step=100.0, snr_per_step=6.0)
    assert default_steps(model, 300.0, snr) == min(3, steps) == steps_for_snr(3, 6.0, snr)
    assert default_steps(model, 150.0, snr) == min(1, steps)  # never more than the ratio gives
    assert default_steps(model, 300.0) == 3 and steps_for_snr(3, 0.0, snr) == 3


def test_tiles_are_few_equal_on_the_pooling_grid_and_leave_every_seam_its_overlap():
    from exposed.denoise.infer import tiling

    for tile, overlap in ((512, 32), (256, 32), (48, 16)):
        for size in range(8, 3000, 7):
            length, starts = tiling(size, tile, overlap)
            assert length <= tile and starts[0] == 0 and starts[-1] + length == size
            fewest = 1 if size <= tile else -(-(size - overlap) // (tile - overlap))
            assert fewest <= len(starts) <= fewest + 1
            assert all(b - a <= length - overlap for a, b in zip(starts, starts[1:]))  # each seam keeps its overlap
            assert size <= tile or (length % 16 == 0 and all(a % 16 == 0 for a in starts[:-1]))
