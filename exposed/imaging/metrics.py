"""Image quality metrics on (B, C, H, W) tensors in [0, 1]: PSNR and SSIM per image; and a rank
correlation, for how well one map (an uncertainty) orders another (an error)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(estimate: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB for a peak of 1, per image: (B,)."""
    mse = ((estimate.double() - target.double()) ** 2).flatten(1).mean(dim=1)
    return -10.0 * torch.log10(mse.clamp_min(1e-20))


def pooled_psnr(estimate: Tensor, target: Tensor) -> float:
    """PSNR in dB (peak 1) of all the pixels of any shape together, the estimate clipped to [0, 1]."""
    return float(psnr(estimate.clamp(0.0, 1.0).reshape(1, -1), target.reshape(1, -1))[0])


def masked_psnr(estimate: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """PSNR over the pixels where ``mask`` (broadcastable bool) is set, per image: (B,); NaN where none is."""
    weight = mask.expand_as(target).double()
    mse = (((estimate.double() - target.double()) ** 2) * weight).flatten(1).sum(1) / weight.flatten(1).sum(1)
    return -10.0 * torch.log10(mse.clamp_min(1e-20))


def ring(mask: Tensor, inner: int, outer: int) -> Tensor:
    """The pixels within ``outer`` pixels of a set pixel of ``mask`` (B, C, H, W) but further than
    ``inner`` from all of them (square neighbourhoods), any channel counting: (B, 1, H, W) bool."""
    any_channel = mask.any(dim=1, keepdim=True).float()

    def dilate(r: int) -> Tensor:
        return F.max_pool2d(any_channel, 2 * r + 1, stride=1, padding=r) > 0

    return dilate(outer) & ~dilate(inner)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(estimate: Tensor, target: Tensor) -> Tensor:
    """Structural similarity (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03),
    averaged over channels and over the pixels whose window fits inside the image. (B,)."""
    x, y = estimate.double(), target.double()
    c = x.shape[1]
    g = _gaussian_window().to(x.device)
    window = (g[:, None] * g[None, :]).expand(c, 1, -1, -1).contiguous()

    def blur(z: Tensor) -> Tensor:
        return F.conv2d(z, window, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(dim=1)


def spearman(x: Tensor, y: Tensor) -> float:
    """Spearman's rank correlation of two equally long 1-D samples (ties share their mean rank),
    in float64: how well the order of one predicts the order of the other."""
    if x.shape != y.shape or x.dim() != 1 or x.numel() < 2:
        raise ValueError("spearman needs two 1-D tensors of the same length, at least 2")

    def ranks(v: Tensor) -> Tensor:
        values, inverse, counts = torch.unique(v.double(), return_inverse=True, return_counts=True)
        ends = counts.cumsum(0).double()
        return ((ends - counts.double() + 1 + ends) / 2)[inverse]  # mean of each tie group's positions

    rx, ry = ranks(x), ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / (rx.norm() * ry.norm()))
