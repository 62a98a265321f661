"""GP mode's k-means and Gaussian process against scikit-learn, and what the colour model does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans as SkKMeans
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.linear_model import Ridge

from exposed.gp import enhance as gp


def _blobs(n: int, k: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(k, d, generator=g, dtype=torch.float64) * 10
    return means[torch.randint(k, (n,), generator=g)] + torch.randn(n, d, generator=g, dtype=torch.float64)


def test_lloyd_iterations_match_scikit_learn_from_the_same_seeds():
    x = _blobs(3000, 12, 6, 0) + torch.randn(3000, 6, dtype=torch.float64) * 3  # overlapping: many iterations
    init = gp.kmeans_plus_plus(x, 12, torch.Generator().manual_seed(1))
    ours = gp.kmeans(x, 12, init=init, tol=0.0)
    theirs = SkKMeans(12, init=init.numpy(), n_init=1, algorithm="lloyd", tol=0.0, max_iter=300).fit(x.numpy())
    assert ours.iterations > 3
    assert np.allclose(ours.centres.numpy(), theirs.cluster_centers_, atol=1e-8)
    assert np.array_equal(ours.labels.numpy(), theirs.labels_)
    assert ours.inertia == pytest.approx(theirs.inertia_, rel=1e-9)


def test_kmeans_plus_plus_finds_separated_clusters_as_well_as_scikit_learn():
    x = _blobs(4000, 20, 8, 2)
    ours = [gp.kmeans(x, 20, torch.Generator().manual_seed(s)).inertia for s in range(5)]
    theirs = SkKMeans(20, n_init=5, random_state=0).fit(x.numpy()).inertia_
    assert np.median(ours) <= theirs * 1.02


def test_seeding_spreads_the_centres():
    """D^2 sampling: seeds from 20 far-apart blobs land in nearly all of them (random picks do not)."""
    x = _blobs(4000, 20, 8, 3)
    truth = SkKMeans(20, n_init=5, random_state=0).fit(x.numpy())
    covered = [len(set(truth.predict(gp.kmeans_plus_plus(x, 20, torch.Generator().manual_seed(s)).numpy())))
               for s in range(10)]
    random = [len(set(truth.labels_[np.random.default_rng(s).choice(4000, 20, replace=False)])) for s in range(10)]
    assert np.mean(covered) >= 18 > np.mean(random)


@pytest.mark.parametrize("outputs", [1, 3])
def test_gp_prediction_and_likelihood_match_scikit_learn(outputs):
    g = torch.Generator().manual_seed(outputs)
    x = torch.rand(60, 5, generator=g, dtype=torch.float64)
    y = torch.stack([torch.sin(3 * x[:, 0] + i) + x[:, 1] * i for i in range(outputs)], 1)
    model = gp.fit_gp(x, y)
    kernel = ConstantKernel(model.variance, "fixed") * RBF(model.length, "fixed") + WhiteKernel(model.noise, "fixed")
    mean = y.mean(0).numpy()
    oracle = GaussianProcessRegressor(kernel, alpha=0.0, optimizer=None, normalize_y=False)
    oracle.fit(x.numpy(), y.numpy() - mean)
    test = torch.rand(200, 5, generator=g, dtype=torch.float64)
    expected = oracle.predict(test.numpy()).reshape(200, outputs) + mean
    assert np.allclose(model.predict(test).numpy(), expected, atol=1e-8)
    assert model.log_likelihood == pytest.approx(oracle.log_marginal_likelihood_value_, rel=1e-8)
    assert gp.log_marginal_likelihood(x, y - y.mean(0), model.length, model.variance, model.noise) == pytest.approx(
        oracle.log_marginal_likelihood_value_, rel=1e-8)


def test_grid_hyperparameters_come_close_to_scikit_learns_optimiser():
    g = torch.Generator().manual_seed(7)
    x = torch.rand(80, 4, generator=g, dtype=torch.float64)
    y = (torch.sin(4 * x[:, :1]) + 0.05 * torch.randn(80, 1, generator=g, dtype=torch.float64))
    ours = gp.fit_gp(x, y)
    kernel = ConstantKernel(1.0, (1e-5, 1e5)) * RBF(1.0, (1e-3, 1e3)) + WhiteKernel(1e-2, (1e-8, 1e1))
    oracle = GaussianProcessRegressor(kernel, n_restarts_optimizer=3, random_state=0)
    oracle.fit(x.numpy(), (y - y.mean()).numpy())
    assert ours.log_likelihood >= oracle.log_marginal_likelihood_value_ - 2.0


def test_linear_prior_is_a_ridge_fit_with_scikit_learns_gp_on_its_residuals():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(40, 3, generator=g, dtype=torch.float64)
    y = torch.stack([2 * x[:, 0] - x[:, 2] + 0.1 * torch.sin(9 * x[:, 1]), x.sum(1)], 1)
    model = gp.fit_gp(x, y, prior="linear")
    ridge = Ridge(alpha=gp.LINEAR_RIDGE * float((x - x.mean(0)).square().mean()) * 40).fit(x.numpy(), y.numpy())
    assert np.allclose(model.slope.numpy(), ridge.coef_.T, atol=1e-10)
    assert np.allclose(model.mean.numpy(), ridge.intercept_, atol=1e-10)
    kernel = ConstantKernel(model.variance, "fixed") * RBF(model.length, "fixed") + WhiteKernel(model.noise, "fixed")
    residual = y.numpy() - ridge.predict(x.numpy())
    oracle = GaussianProcessRegressor(kernel, alpha=0.0, optimizer=None).fit(x.numpy(), residual)
    test = torch.rand(100, 3, generator=g, dtype=torch.float64)
    expected = oracle.predict(test.numpy()) + ridge.predict(test.numpy())
    assert np.allclose(model.predict(test).numpy(), expected, atol=1e-8)


def test_prior_mean_decides_what_lies_beyond_the_centres():
    """Fitted on dark values up to 0.3 of a doubling tone curve, far from every centre (beyond the
    longest length scale the fit may choose) the constant prior returns the centres' mean, the zero
    prior black, the linear prior the curve."""
    x = torch.linspace(0.0, 0.3, 12, dtype=torch.float64)[:, None]
    far = torch.tensor([[30.0]], dtype=torch.float64)
    predicted = {prior: float(gp.fit_gp(x, 2 * x, prior=prior).predict(far))
                 for prior in ("constant", "zero", "linear")}
    assert predicted["linear"] == pytest.approx(60.0, rel=1e-3)
    assert predicted["constant"] == pytest.approx(0.3, abs=0.01)
    assert predicted["zero"] == pytest.approx(0.0, abs=0.01)
    with pytest.raises(ValueError, match="prior mean"):
        gp.fit_gp(x, 2 * x, prior="quadratic")  # type: ignore[arg-type]


@pytest.mark.parametrize("colour", ["joint", "pooled"])
@pytest.mark.parametrize("patch", [1, 3])
@pytest.mark.parametrize("prior", ["constant", "linear"])
def test_image_prediction_by_convolutions_is_the_gp_of_every_patch(colour, patch, prior):
    g = torch.Generator().manual_seed(3)
    dark = torch.rand(1, 3, 20, 31, generator=g, dtype=torch.float64)
    model = gp.fit(dark, dark.sqrt(), k=15, patch=patch, colour=colour, generator=torch.Generator().manual_seed(0),
                   prior=prior)
    image = gp.predict(model, dark, patch=patch, colour=colour, rows=7)
    if colour == "joint":
        plain = model.predict(gp.patch_vectors(dark, patch)).reshape(20, 31, 3).permute(2, 0, 1)[None]
    else:
        plain = model.predict(gp.patch_vectors(dark.reshape(3, 1, 20, 31), patch)).reshape(1, 3, 20, 31)
    assert torch.allclose(image, plain.clamp(0, 1), atol=1e-10)


def test_prediction_in_strips_equals_one_pass_and_keeps_the_size():
    g = torch.Generator().manual_seed(0)
    dark = torch.rand(1, 3, 37, 53, generator=g, dtype=torch.float64)
    reference = dark.sqrt()
    model = gp.fit(dark, reference, k=20, generator=torch.Generator().manual_seed(0))
    whole = gp.predict(model, dark, rows=1000)
    strips = gp.predict(model, dark, rows=5)
    assert whole.shape == dark.shape and torch.allclose(whole, strips, atol=1e-10)
    # float32, as photos run, stays within a twentieth of an 8-bit level of float64
    assert (gp.predict(model, dark.float()).double() - whole).abs().max() < 2e-4


def _cast_scene() -> tuple[torch.Tensor, torch.Tensor]:
    """A colourful scene; its dark version is a gamma darkening, its bright one also changes the
    white balance, which only a model that knows the channel can learn."""
    g = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 128), indexing="ij")
    scene = torch.stack([0.2 + 0.7 * x, 0.3 + 0.5 * y, 0.9 - 0.6 * x * y])[None]
    scene = (scene + 0.03 * torch.randn(scene.shape, generator=g)).clamp(0, 1)
    dark = scene ** 3
    bright = (scene * torch.tensor([1.0, 0.85, 0.6]).view(1, 3, 1, 1)).clamp(0, 1)
    return dark, bright


def test_joint_colour_keeps_each_channels_mapping_where_the_papers_pooled_model_skews_it():
    dark, bright = _cast_scene()
    errors = {}
    for colour in ("joint", "pooled"):
        model = gp.fit(dark, bright, k=40, colour=colour, generator=torch.Generator().manual_seed(0))
        out = gp.predict(model, dark, colour=colour)
        errors[colour] = (out.mean((2, 3)) / out.mean() - bright.mean((2, 3)) / bright.mean()).abs().max().item()
    assert errors["joint"] < 0.01 and errors["pooled"] > 10 * errors["joint"], errors  # measured 0.0012, 0.25


def test_more_centres_fit_the_reference_better():
    dark, bright = _cast_scene()
    error = []
    for k in (5, 20, 80):
        model = gp.fit(dark, bright, k=k, generator=torch.Generator().manual_seed(0))
        error.append((gp.predict(model, dark) - bright).abs().mean().item())
    assert error[0] > error[1] > error[2]


def test_sampled_patches_are_rows_of_the_patch_matrix():
    image = torch.rand(2, 3, 9, 13, dtype=torch.float64)
    index = torch.tensor([0, 5, 12, 13, 116, 117, 233])
    assert torch.equal(gp._patches_at(image, 3, index), gp.patch_vectors(image, 3)[index])


def test_thumbnail_is_an_area_average():
    image = torch.rand(1, 3, 64, 96, dtype=torch.float64)
    small = gp.thumbnail(image, 64 * 96 // 4)
    assert small.shape == (1, 3, 32, 48)
    assert torch.allclose(small, image.reshape(1, 3, 32, 2, 48, 2).mean((3, 5)))
    assert gp.thumbnail(image, 10**6) is image


def test_smoothing_drops_the_grain_and_keeps_a_clean_photo():
    """A known curve as the reference: on a grainy dim photo the smoothed GP lands nearer the curve
    of the clean scene than the unsmoothed one; on the clean dim photo smoothing changes little."""
    g = torch.Generator().manual_seed(3)
    y, x = torch.meshgrid(torch.linspace(0, 1, 120), torch.linspace(0, 1, 160), indexing="ij")
    scene = torch.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * (x > 0.5)])[None]  # ramps and an edge
    dark = scene ** 3

    def curve(image: torch.Tensor) -> torch.Tensor:
        return image.clamp_min(0) ** (1 / 3)

    grainy = (dark + 0.01 * torch.randn(dark.shape, generator=g)).clamp(0, 1)
    errors = {}
    for smoothing in (0.0, 3.0):
        out = gp.enhance_image(grainy, curve, smoothing=smoothing, generator=torch.Generator().manual_seed(0))
        errors[smoothing] = (out - scene).square().mean().item()
    assert errors[3.0] < 0.5 * errors[0.0], errors
    clean = [gp.enhance_image(dark, curve, smoothing=s, generator=torch.Generator().manual_seed(0)) for s in (0.0, 3.0)]
    assert (clean[0] - clean[1]).abs().max() < 2 / 255
