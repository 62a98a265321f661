"""GP mode: low-light sRGB enhancement by a Gaussian process fitted on k-means centres (Loh, after
Loh, Liang and Chan 2019), in torch, vectorised, on any device.

For one photo: a reference enhancement (:mod:`exposed.gp.reference`, a small CNN run on a thumbnail)
gives pairs of dark and enhanced p x q patches; k-means++ and Lloyd's iterations reduce them to k
centres; a GP with a squared-exponential kernel, fitted on the centres, maps every dark patch of
the full-resolution photo to its enhanced centre pixel. The GP learns this photo's own mapping
from k points, so the CNN only has to be right on average and only on the thumbnail.

Where this differs from the paper, and why:
- colour: the paper's RGB model pools the three channels' patches into one GP, so a dark value maps
  to the same bright value whatever its channel: the colour skew of its failure cases. The default
  ``colour="joint"`` regresses RGB patches to RGB pixels (one kernel on the whole colour patch,
  three outputs), which keeps each channel's own mapping. ``colour="pooled"`` is the paper's model,
  kept for comparison (benchmarks/gp.py, tests/test_gp.py).
- mean: the GP's prior mean is the centres' mean output, not zero, so a patch unlike every centre
  is brought to the photo's average enhancement rather than to black. ``prior="zero"`` (the
  paper's) and ``prior="linear"`` (a global tone term: an affine map of the patch fitted to the
  centres by least squares, the GP modelling what it leaves) are kept for comparison
  (benchmarks/gp_camera.py).
- hyperparameters: length scale and noise by maximum marginal likelihood over a grid (the signal
  variance in closed form), not hand-set.
- patch size: p = q = 1 (pixel pairs, which the paper's conclusion also names) by default: on
  darkened CBSD68 it scored 0.6 dB above 3 x 3 patches, with or without noise (benchmarks/gp.py);
  30 centres cover a 3-dimensional colour far better than a 27-dimensional patch.
- grain: a per-pixel map brightens a dim photo's noise with it. The photo (and the thumbnail the
  GP is fitted on, the CNN having seen it unsmoothed) first goes through a guided filter scaled to
  its own noise level (:func:`smooth`); on dim camera photos that lifted PSNR from 21.19 to
  22.03 dB and SSIM from 0.664 to 0.720 (benchmarks/gp_camera.py, k = 10).
- k: 10 by default, not 30: on dim camera photos more centres follow noise and lose PSNR and SSIM
  (21.45 dB, 0.689 at k = 30); on noise-free gamma darkenings they gain 0.7 dB (benchmarks/gp.py).

Shapes: images (1, 3, H, W) in [0, 1]; data (N, d); outputs (N, m).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from exposed.imaging.filters import guided_filter, noise_sigma

Colour = Literal["joint", "pooled"]
Prior = Literal["constant", "zero", "linear"]
SMOOTHING = 3.0  # the guided filter's eps in noise levels: measured in benchmarks/gp_camera.py


def squared_distances(a: Tensor, b: Tensor) -> Tensor:
    """|a_i - b_j|^2 for (N, d) and (M, d): (N, M), never negative."""
    return (a.square().sum(1, keepdim=True) - 2 * a @ b.T + b.square().sum(1)).clamp_min_(0.0)


def kmeans_plus_plus(x: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """Greedy k-means++ seeding (Arthur and Vassilvitskii; the variant scikit-learn uses): each next
    centre is the best, by the potential it leaves, of 2 + log k candidates drawn with probability
    proportional to their squared distance from the nearest centre so far. x: (N, d); returns (k, d).

    Plain k-means++ (one candidate) often puts two seeds in one cluster and none in another; the
    greedy draw rarely does (tests/test_gp.py). The seeding is sequential, so each step is a few
    tensor operations with no trip to the host: candidates are inverse-CDF lookups of uniforms drawn
    up front (a point at distance 0 is never drawn, unless every point is, when fewer than k are
    distinct).
    """
    n = x.shape[0]
    trials = 2 + int(math.log(k))
    draws = torch.rand(k, trials, generator=generator, device=generator.device if generator else "cpu")
    draws = draws.to(x.device, x.dtype)
    picks = torch.empty(k, dtype=torch.long, device=x.device)
    picks[:1] = (draws[0, :1] * n).long().clamp_max(n - 1)
    nearest = (x - x[picks[:1]]).square().sum(1)
    for i in range(1, k):
        cumulative = nearest.cumsum(0)
        candidates = torch.searchsorted(cumulative, draws[i] * cumulative[-1:], right=True).clamp_max(n - 1)
        after = torch.minimum(nearest, squared_distances(x[candidates], x))  # (trials, N)
        best = after.sum(1).argmin()
        picks[i:i + 1] = candidates[best]
        nearest = after[best]
    return x[picks]


@dataclass
class KMeans:
    centres: Tensor  # (k, d)
    labels: Tensor  # (N,)
    inertia: float  # sum of squared distances to the assigned centres
    iterations: int


def kmeans(x: Tensor, k: int, generator: torch.Generator | None = None, init: Tensor | None = None,
           max_iterations: int = 100, tol: float = 1e-4) -> KMeans:
    """Lloyd's algorithm from k-means++ seeds (or ``init``), until no point changes cluster or the
    centres move less than ``tol`` times the data's mean variance (summed squared shifts, as
    scikit-learn's rule). An empty cluster keeps its centre. x: (N, d)."""
    centres = (kmeans_plus_plus(x, k, generator) if init is None else init).clone()
    labels = torch.full((x.shape[0],), -1, dtype=torch.long, device=x.device)
    small_shift = tol * float(x.var(0).mean()) if x.shape[0] > 1 else 0.0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 (the count is returned)
        new = squared_distances(x, centres).argmin(1)
        if torch.equal(new, labels):
            break
        labels = new
        members = F.one_hot(labels, k).to(x.dtype)  # sums by matrix product: much faster than index_add_
        counts = members.sum(0)
        sums = members.T @ x
        filled = counts > 0
        moved = sums[filled] / counts[filled, None]
        shift = float((moved - centres[filled]).square().sum())
        centres[filled] = moved
        if shift <= small_shift:
            labels = squared_distances(x, centres).argmin(1)
            break
    inertia = float(squared_distances(x, centres).gather(1, labels[:, None]).sum())
    return KMeans(centres, labels, inertia, iteration)


def se_kernel(a: Tensor, b: Tensor, length: float | Tensor, variance: float | Tensor = 1.0) -> Tensor:
    """Squared-exponential covariance variance * exp(-|a - b|^2 / (2 length^2)): (N, M)."""
    return variance * torch.exp(-0.5 * squared_distances(a, b) / length**2)


@dataclass
class GaussianProcess:
    """A fitted GP regression: predictive mean = mean + x @ slope + k(x, inputs) @ alpha."""

    inputs: Tensor  # (k, d)
    alpha: Tensor  # (k, m): (K + noise I)^-1 (y - prior mean)
    mean: Tensor  # (m,)
    slope: Tensor | None  # (d, m): the prior mean's linear term (None: a constant prior mean)
    length: float
    variance: float
    noise: float
    log_likelihood: float

    def predict(self, x: Tensor, chunk: int = 1 << 16) -> Tensor:
        """Predictive means for (N, d) inputs: (N, m). The plain form; images go through
        :func:`predict`, which computes the same by convolutions."""
        x = x.to(self.alpha.dtype)
        return torch.cat([self.prior_mean(part)
                          + se_kernel(part, self.inputs, self.length, self.variance) @ self.alpha
                          for part in x.split(chunk)])

    def prior_mean(self, x: Tensor) -> Tensor:
        """The prior mean at (N, d) inputs: (N, m)."""
        return self.mean + (x @ self.slope if self.slope is not None else 0.0)


def log_marginal_likelihood(x: Tensor, y: Tensor, length: float, variance: float, noise: float) -> float:
    """log p(y | x) of a zero-mean GP, summed over the m outputs of (k, m) targets (as scikit-learn)."""
    k, m = y.shape
    kernel = se_kernel(x, x, length, variance) + noise * torch.eye(k, dtype=x.dtype, device=x.device)
    chol = torch.linalg.cholesky(kernel)
    alpha = torch.cholesky_solve(y, chol)
    log_det = 2 * torch.log(torch.diagonal(chol)).sum()
    return float(-0.5 * (y * alpha).sum() - 0.5 * m * log_det - 0.5 * m * k * math.log(2 * math.pi))


LINEAR_RIDGE = 1e-3  # the linear prior's ridge, relative to the inputs' mean variance: k = 10 points fit 4 terms


def fit_prior_mean(x: Tensor, y: Tensor, prior: Prior) -> tuple[Tensor, Tensor | None]:
    """The prior mean's constant (m,) and linear term (d, m) or None, fitted to (k, d) inputs and
    (k, m) outputs: their mean (``constant``), zero, or a ridge least-squares affine map (``linear``)."""
    if prior == "zero":
        return torch.zeros_like(y[0]), None
    if prior == "constant":
        return y.mean(0), None
    if prior != "linear":
        raise ValueError(f"unknown prior mean {prior!r}; expected constant, zero or linear")
    centre = x.mean(0)
    design = x - centre
    ridge = LINEAR_RIDGE * float(design.square().mean().clamp_min(1e-12)) * x.shape[0]
    gram = design.T @ design + ridge * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    slope = torch.linalg.solve(gram, design.T @ (y - y.mean(0)))
    return y.mean(0) - centre @ slope, slope


def fit_gp(x: Tensor, y: Tensor, length_factors: Tensor | None = None,
           noise_ratios: Tensor | None = None, prior: Prior = "constant") -> GaussianProcess:
    """Fit a GP to (k, d) inputs and (k, m) outputs (after subtracting the ``prior`` mean,
    :func:`fit_prior_mean`), choosing the length scale and noise by maximum marginal likelihood.

    Length scales are ``length_factors`` times the median distance between inputs; the noise is a
    ratio of the signal variance, and for each pair the signal variance that maximises the
    likelihood is closed-form (y' K^-1 y / (k m) with K the unit-variance kernel). One eigendecomposition
    per length scale, K = Q diag(lambda) Q', serves every noise ratio r at once: (K + r I)^-1 is
    Q diag(1 / (lambda + r)) Q' and its log-determinant sum(log(lambda + r)). That is 1.5 times faster
    than a Cholesky factorisation per grid point at k = 100 to 200 (benchmarks/gp.py).
    """
    x, y = x.double(), y.double()
    k, m = y.shape
    mean, slope = fit_prior_mean(x, y, prior)
    centred = y - mean - (x @ slope if slope is not None else 0.0)
    if length_factors is None:
        length_factors = torch.logspace(-1.5, 1.5, 13, dtype=torch.float64)
    if noise_ratios is None:
        noise_ratios = torch.logspace(-6, -1, 6, dtype=torch.float64)
    d2 = squared_distances(x, x)
    positive = d2[d2 > 0]
    median = float(positive.median().sqrt()) if positive.numel() else 1.0
    lengths = length_factors.to(x) * median
    ratios = noise_ratios.to(x)
    eigenvalues, vectors = torch.linalg.eigh(torch.exp(-0.5 * d2 / lengths[:, None, None] ** 2))  # (L, k), (L, k, k)
    projected = vectors.transpose(1, 2) @ centred  # (L, k, m)
    shifted = eigenvalues[:, None, :] + ratios[None, :, None]  # (L, R, k): the eigenvalues of K + r I
    quadratic = (projected.square().sum(2)[:, None, :] / shifted).sum(2)  # (L, R): y' (K + r I)^-1 y
    variance = (quadratic / (k * m)).clamp_min(1e-300)
    log_det = torch.log(shifted.clamp_min(1e-300)).sum(2)
    log_likelihood = -0.5 * m * (k * torch.log(variance) + log_det) - 0.5 * m * k * (1 + math.log(2 * math.pi))
    # Not positive definite in float64 (where a Cholesky factorisation would fail): never chosen.
    log_likelihood[shifted.amin(2) <= 1e-12 * shifted.amax(2)] = -math.inf
    best = int(log_likelihood.argmax())
    li, ri = divmod(best, len(ratios))
    alpha = vectors[li] @ (projected[li] / shifted[li, ri][:, None])
    return GaussianProcess(x, alpha / variance[li, ri], mean, slope, float(lengths[li]), float(variance[li, ri]),
                           float(ratios[ri] * variance[li, ri]), float(log_likelihood[li, ri]))


def thumbnail(image: Tensor, max_pixels: int) -> Tensor:
    """(B, C, H, W) shrunk by area averaging to at most ``max_pixels`` pixels (unchanged if smaller)."""
    h, w = image.shape[-2:]
    if h * w <= max_pixels:
        return image
    scale = math.sqrt(max_pixels / (h * w))
    return F.interpolate(image, size=(max(1, int(h * scale)), max(1, int(w * scale))), mode="area")


def patch_vectors(image: Tensor, size: int) -> Tensor:
    """Each pixel's size x size neighbourhood (reflected at the borders), channels first:
    (B, C, H, W) to (B * H * W, C * size^2), row by row."""
    if size > 1:
        image = F.pad(image, (size // 2,) * 4, mode="reflect")
    return F.unfold(image, size).transpose(1, 2).reshape(-1, image.shape[1] * size * size)


def _patches_at(image: Tensor, size: int, index: Tensor) -> Tensor:
    """The rows ``index`` of :func:`patch_vectors` (pixels numbered image by image, row by row),
    gathered without unfolding the whole image."""
    b, c, h, w = image.shape
    r = size // 2
    padded = F.pad(image, (r,) * 4, mode="reflect") if r else image
    which, rest = index // (h * w), index % (h * w)
    y, x = rest // w, rest % w
    dy, dx = torch.meshgrid(torch.arange(size, device=image.device), torch.arange(size, device=image.device),
                            indexing="ij")
    rows, cols = y[:, None] + dy.reshape(1, -1), x[:, None] + dx.reshape(1, -1)  # (n, size^2)
    values = padded[which[:, None], :, rows, cols]  # (n, size^2, c)
    return values.permute(0, 2, 1).reshape(len(index), c * size * size)


def _by_channel(image: Tensor, colour: Colour) -> Tensor:
    """The paper's pooled model treats each colour channel as an image of its own."""
    return image.reshape(-1, 1, *image.shape[-2:]) if colour == "pooled" else image


def fit(dark: Tensor, reference: Tensor, k: int = 30, patch: int = 1, colour: Colour = "joint",
        samples: int = 2048, generator: torch.Generator | None = None, prior: Prior = "constant") -> GaussianProcess:
    """The GP of one photo: ``dark`` and its ``reference`` enhancement, (1, 3, h, w) of one size
    (a thumbnail's), give a pair for every pixel: the dark p x q patch and the reference patch, joined
    as the paper does. Up to ``samples`` random pairs are clustered into k centres; the GP maps a
    centre's dark part to its reference centre pixel (three outputs, or one per channel if pooled)."""
    dark, reference = _by_channel(dark, colour), _by_channel(reference, colour)
    n, _, h, w = dark.shape
    count = n * h * w
    device = generator.device if generator is not None else "cpu"
    pick = torch.randperm(count, generator=generator, device=device)[:samples].to(dark.device) if count > samples \
        else torch.arange(count, device=dark.device)
    dark_patches = _patches_at(dark, patch, pick)
    reference_patches = _patches_at(reference, patch, pick)
    joined = torch.cat([dark_patches, reference_patches], 1)
    # Ten of Lloyd's iterations: on CBSD68, 30 gained 0.01 dB and took twice as long (benchmarks/gp.py).
    centres = kmeans(joined, min(k, joined.shape[0]), generator, max_iterations=10).centres
    d = dark_patches.shape[1]
    channels = d // (patch * patch)
    middle = (patch * patch) // 2
    target = centres[:, d:].reshape(-1, channels, patch * patch)[:, :, middle]
    return fit_gp(centres[:, :d], target, prior=prior)


def predict(gp: GaussianProcess, dark: Tensor, patch: int = 1, colour: Colour = "joint",
            rows: int | None = None) -> Tensor:
    """Apply a fitted GP to every pixel of ``dark`` (1, 3, H, W), a strip of ``rows`` rows at a time:
    (1, 3, H, W) in [0, 1]. By default a strip holds about 32k pixels, so its (k, pixels) kernel
    values stay in the CPU's cache through the five passes over them (twice as fast as strips of
    half a million pixels at 12 MP).

    The kernel against every centre c is exp(log s^2 - |x - c|^2 / (2 l^2)) with x the pixel's
    patch; x.c for all pixels is a convolution with the centres as filters, |x|^2 a box filter of
    the squared image and the sum over centres a 1 x 1 convolution, so no patch is ever copied out.
    Exponents are held above -60: terms below e^-60 change nothing, and float32 denormals, which
    lower ones produce, make exp tens of times slower.
    """
    dtype = dark.dtype
    images = _by_channel(dark, colour)
    batch, channels, h, w = images.shape
    log_variance = math.log(gp.variance)
    filters = (gp.inputs / gp.length**2).to(dtype)
    if patch > 1:  # channels-last is several times faster for three input channels
        filters = filters.reshape(-1, channels, patch, patch).contiguous(memory_format=torch.channels_last)
    bias = (log_variance - 0.5 * gp.inputs.square().sum(1) / gp.length**2).to(dtype)[:, None]
    mix, mean = gp.alpha.T.to(dtype), gp.mean.to(dtype)[:, None]
    slope = None if gp.slope is None else gp.slope.T.to(dtype)  # (m, d)
    if slope is not None and patch > 1:
        slope = slope.reshape(-1, channels, patch, patch).contiguous(memory_format=torch.channels_last)
    r = patch // 2
    padded = F.pad(images, (r,) * 4, mode="reflect") if r else images
    out = torch.empty(batch, mix.shape[0], h, w, dtype=dtype, device=dark.device)
    rows = rows or max(1, (1 << 15) // (w * batch))
    for top in range(0, h, rows):
        strip = padded[..., top:min(top + rows, h) + 2 * r, :]
        n = strip.shape[-2] - 2 * r
        if patch == 1:  # (channels, pixels): a plain matrix product
            pixels = strip.transpose(0, 1).reshape(channels, -1)
            z = torch.addmm(bias, filters, pixels)
            norms = pixels.square().sum(0)
            prior = mean if slope is None else torch.addmm(mean, slope, pixels)
        else:
            z = F.conv2d(strip.contiguous(memory_format=torch.channels_last), filters)
            z = z.permute(1, 0, 2, 3).reshape(z.shape[1], -1).add_(bias)
            norms = F.avg_pool2d(strip.square().sum(1, keepdim=True), patch, stride=1).reshape(-1) * (patch * patch)
            prior = mean if slope is None else F.conv2d(strip.contiguous(memory_format=torch.channels_last),
                                                        slope).permute(1, 0, 2, 3).reshape(len(mean), -1).add_(mean)
        z.sub_(norms * (0.5 / gp.length**2)).clamp_(min=min(-60.0, log_variance), max=log_variance).exp_()
        values = torch.addmm(prior, mix, z).reshape(-1, batch, n, w)  # (outputs, batch, rows, W)
        out[..., top:top + n, :] = values.transpose(0, 1)
    return out.reshape(dark.shape).clamp_(0.0, 1.0)


def smooth(image: Tensor, strength: float) -> Tensor:
    """The photo with its grain smoothed before the GP maps it: a guided filter (3 x 3 windows)
    whose eps is (strength x the photo's own noise level)^2, so a clean photo is barely touched and
    a grainy one loses its grain but not its edges. strength 0: unchanged. (1, 3, H, W)."""
    if strength <= 0:
        return image
    return guided_filter(image, 1, (strength * noise_sigma(image)) ** 2)


def enhance_image(dark: Tensor, reference: Callable[[Tensor], Tensor], k: int = 10, patch: int = 1,
                  colour: Colour = "joint", reference_pixels: int = 128 * 128, samples: int = 2048,
                  smoothing: float = SMOOTHING, generator: torch.Generator | None = None,
                  prior: Prior = "constant") -> Tensor:
    """GP mode for one photo (1, 3, H, W) in [0, 1]: ``reference`` (the CNN) enhances a thumbnail of
    at most ``reference_pixels`` pixels, the GP is fitted there (on the thumbnail smoothed by
    :func:`smooth`, the CNN having seen it as it is) and predicts every pixel of ``dark`` smoothed
    the same way, each at its own noise level."""
    small = thumbnail(dark, reference_pixels)
    with torch.no_grad():
        target = reference(small).clamp(0.0, 1.0).to(small.dtype)
    gp = fit(smooth(small, smoothing), target, k, patch, colour, samples, generator, prior)
    return predict(gp, smooth(dark, smoothing), patch, colour)
