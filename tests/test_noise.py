import math

import pytest
import scipy.stats
import torch

from conftest import DEVICES
from exposed.sensor.noise import (NoiseParams, add_noise, sample_poisson, sample_tukey_lambda, synthesize_dark,
                                  tukey_lambda_variance)

N = 1_000_000
POISSON_DEVICES = [d for d in DEVICES if d != "mps"]  # MPS has no Poisson sampler


def _sample(params: NoiseParams, signal: float, seed: int = 0, shape=(1, 1, 1000, 1000),
            device: str = "cpu") -> torch.Tensor:
    g = torch.Generator(device=device).manual_seed(seed)
    return add_noise(torch.full(shape, signal, device=device), params, g).double().cpu()


@pytest.mark.parametrize("signal", [0.0, 3.0, 50.0, 2000.0])
def test_poisson_gaussian_mean_and_variance_follow_formula(signal):
    params = NoiseParams.create(K=2.5, read_sigma=4.0, model="pg")
    x = _sample(params, signal)
    expected_var = 2.5 * signal + 4.0**2
    # Standard error of the mean is sqrt(var / N); of the variance about var * sqrt(2 / N) (plus excess kurtosis).
    assert abs(x.mean().item() - signal) < 5 * math.sqrt(expected_var / N)
    assert x.var().item() == pytest.approx(expected_var, rel=0.01)
    assert params.variance(torch.tensor([signal])).item() == pytest.approx(expected_var)


@pytest.mark.parametrize("device", POISSON_DEVICES)
@pytest.mark.parametrize("lam", [-0.2, 0.0, 0.14])
def test_eld_mean_and_variance_follow_formula(lam, device):
    params = NoiseParams.create(K=1.5, read_sigma=3.0, row_sigma=0.8, tukey_lambda=lam, model="eld")
    signal = 40.0
    x = _sample(params, signal, device=device)
    expected_var = 1.5 * signal + 3.0**2 * scipy.stats.tukeylambda(lam).var() + 0.8**2 + 1 / 12
    assert abs(x.mean().item() - signal) < 5 * math.sqrt(expected_var / N) + 5 * 0.8 / math.sqrt(1000)
    assert x.var().item() == pytest.approx(expected_var, rel=0.02)
    assert params.variance(torch.tensor([signal])).item() == pytest.approx(expected_var, rel=1e-5)


@pytest.mark.parametrize("device", POISSON_DEVICES)
@pytest.mark.parametrize("rate", [5.0, 40.0, 300.0])
def test_poisson_counts_are_independent_of_the_next_draw_from_their_generator(rate, device):
    """Shot noise and whatever is drawn next (read noise, the next step's photons) must not share
    random numbers: on CUDA, torch.poisson alone lets the next draw reuse its sampler's."""
    g = torch.Generator(device=device).manual_seed(0)
    counts = sample_poisson(torch.full((N,), rate, device=device), g).double()
    after = torch.randn(N, generator=g, device=device, dtype=torch.float64)
    assert abs(torch.corrcoef(torch.stack([counts, after]))[0, 1].item()) < 5 / math.sqrt(N)
    assert counts.var().item() == pytest.approx(rate, rel=0.01)
    again = sample_poisson(torch.full((N,), rate, device=device), g).double()
    assert abs(torch.corrcoef(torch.stack([counts, again]))[0, 1].item()) < 5 / math.sqrt(N)


@pytest.mark.parametrize("lam", [-0.24, -0.05, 0.0, 0.13, 0.2])
def test_tukey_lambda_samples_match_scipy(lam):
    g = torch.Generator().manual_seed(1)
    x = sample_tukey_lambda((200_000,), torch.tensor(lam), g).double().numpy()
    result = scipy.stats.kstest(x, scipy.stats.tukeylambda(lam).cdf)
    assert result.statistic < 0.005
    expected = scipy.stats.tukeylambda(lam).var()
    assert tukey_lambda_variance(torch.tensor(lam)).item() == pytest.approx(expected, rel=1e-4)


def test_row_noise_is_constant_along_each_row():
    params = NoiseParams.create(K=1e-6, read_sigma=0.0, row_sigma=5.0, tukey_lambda=0.1, model="eld")
    x = _sample(params, 0.0, shape=(1, 1, 600, 400))
    spread_within_rows = x.amax(dim=-1) - x.amin(dim=-1)
    assert spread_within_rows.max().item() <= 1.0  # only the +-0.5 DN quantisation noise varies along a row
    row_means = x.mean(dim=-1).flatten()
    assert row_means.std().item() == pytest.approx(5.0, rel=0.1)


def test_same_seed_same_noise_other_seed_other_noise():
    params = NoiseParams.create(K=[1.0, 2.0], read_sigma=[2.0, 3.0], row_sigma=1.0, tukey_lambda=0.1, model="eld")
    a = _sample(params, 10.0, seed=7, shape=(2, 1, 32, 32))
    b = _sample(params, 10.0, seed=7, shape=(2, 1, 32, 32))
    c = _sample(params, 10.0, seed=8, shape=(2, 1, 32, 32))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_each_frame_of_a_batch_gets_its_own_parameters():
    params = NoiseParams.create(K=[0.5, 8.0], read_sigma=[1.0, 10.0], model="pg")
    x = _sample(params, 100.0, shape=(2, 1, 500, 500))
    for i in range(2):
        assert x[i].var().item() == pytest.approx(params.variance(torch.tensor([100.0, 100.0]))[i].item(), rel=0.02)


def test_synthesize_dark_is_unbiased_and_clipped_to_the_sensor():
    params = NoiseParams.create(K=1.0, read_sigma=2.0, black=512, white=16383, model="pg")
    scale = 16383 - 512
    clean = torch.full((1, 1, 1000, 1000), 0.3)
    dark = synthesize_dark(clean, torch.tensor([100.0]), params, torch.Generator().manual_seed(0))
    assert (dark * 100).mean().item() == pytest.approx(0.3, rel=0.002)
    # Black pixels dip below zero (the raw keeps values under black) but never under the raw's 0 DN.
    black = synthesize_dark(torch.zeros(1, 1, 100, 100), torch.tensor([1.0]),
                            NoiseParams.create(K=1.0, read_sigma=2000.0), torch.Generator().manual_seed(0))
    assert black.min().item() == pytest.approx(-512 / scale)
    assert black.max().item() <= 1.0
