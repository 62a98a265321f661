import json

import numpy as np
import pytest
import torch
import imageio.v3 as iio
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from exposed.training.evaluate import evaluate, make_eval_set, write_results
from exposed.imaging.metrics import psnr, ssim


def test_metrics_match_scikit_image():
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(2, 4, 40, 56, generator=g, dtype=torch.float64)
    noisy = (clean + 0.05 * torch.randn(clean.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    for i in range(2):
        a, b = noisy[i].numpy(), clean[i].numpy()
        assert psnr(noisy, clean)[i].item() == pytest.approx(peak_signal_noise_ratio(b, a, data_range=1.0), rel=1e-9)
        reference = structural_similarity(a, b, channel_axis=0, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False, data_range=1.0)
        assert ssim(noisy, clean)[i].item() == pytest.approx(reference, rel=1e-9)


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(2):
        iio.imwrite(tmp_path / f"{i}.png", (rng.random((61, 90, 3)) * 255).astype(np.uint8))
    return tmp_path


def test_eval_set_is_seeded_and_covers_every_image_and_ratio(folder):
    a = make_eval_set(folder, (100, 300), seed=3)
    b = make_eval_set(folder, (100, 300), seed=3)
    assert [(i.name, i.ratio) for i in a.items] == [("0.png", 100), ("0.png", 300), ("1.png", 100), ("1.png", 300)]
    assert all(torch.equal(x.dark, y.dark) for x, y in zip(a.items, b.items))
    assert a.items[0].clean.shape == (1, 4, 30, 45)  # odd sizes are trimmed to whole Bayer cells
    assert make_eval_set(folder, (100,), crop=32).items[0].clean.shape == (1, 4, 16, 16)


def test_perfect_and_amplify_methods_score_as_expected(folder, tmp_path):
    eval_set = make_eval_set(folder, (100, 300), seed=0)
    clean = {id(i.dark): i.clean for i in eval_set.items}
    perfect = evaluate(lambda dark, ratio, sensor: clean[id(dark)], eval_set)
    assert perfect["x100"]["psnr"] > 150 and perfect["x300"]["ssim"] == pytest.approx(1.0)
    amplify = evaluate(lambda dark, ratio, sensor: dark * ratio, eval_set)
    assert 10 < amplify["x300"]["psnr"] < amplify["x100"]["psnr"] < 40
    written = write_results(tmp_path / "r.json", {"amplify": amplify}, eval_set.description)
    assert json.loads(written.read_text())["results"]["amplify"]["x100"]["count"] == 2
    csv = write_results(tmp_path / "r.csv", {"amplify": amplify}, eval_set.description).read_text().splitlines()
    assert csv[0] == "method,ratio,psnr,ssim,count" and len(csv) == 3


def test_eval_set_from_a_sensor_mix_has_its_bit_depth_whole_dn_and_rounding_noise(folder):
    """An 8-bit camera's frames: white 255, whole DN, and the scorer told of the rounding's 1/12 DN^2."""
    from exposed.sensor.noise import SensorScale
    from exposed.training.data import SensorMix

    mix = SensorMix(("nikon-d850",), ("pg",), (8,), quantise=True)
    made = make_eval_set(folder, (2, 20), seed=5, sensors=mix)
    assert "camera" not in made.description and made.description["sensors"]["bits"] == (8,)
    items = made.items
    for item in items:
        assert item.quantised and float(item.noise.white) == 255.0 and float(item.noise.black) == 8.0
        dn = item.dark * (item.noise.white - item.noise.black)
        assert torch.equal(dn, dn.round())
        told = item.sensor.read_var
        plain = SensorScale.from_noise(item.noise).read_var
        assert float(told - plain) == pytest.approx(1 / 12 / float(item.noise.scale) ** 2, rel=1e-5)
    one = make_eval_set(folder, (2,), seed=5, sensors=mix, limit=1)
    seen = []
    evaluate(lambda dark, ratio, sensor: seen.append(sensor.read_var) or dark * ratio, one)
    assert float(seen[0]) == pytest.approx(float(SensorScale.from_noise(one.items[0].noise, True).read_var), rel=1e-6)
