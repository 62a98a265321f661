"""Empirical Wiener filtering in sliding DCT blocks, with a pilot estimate: BM3D's second step
without the block matching.

A denoising network's estimate tells well which frequencies of a patch hold signal and reproduces
them less well: it smooths fine texture and shifts tone a little. The Wiener filter keeps the
measurement and asks the pilot only how much of each DCT coefficient to keep, P^2 / (P^2 + sigma^2):
a coefficient the pilot says is signal keeps the photo's own value (with its noise, small beside
it), one the pilot says is noise is shrunk away. Blocks overlap (every pixel lies in
(block / stride)^2 of them) and their estimates are averaged with BM3D's weights,
1 / (sigma^2 * sum of squared gains), so blocks that kept less noise count for more.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from exposed.imaging.wiener_numpy import BLOCK, NOISE_FLOOR, STRIDE, block_strips


def dct_matrix(size: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
    """The orthonormal DCT-II matrix (size, size): row u is the u-th cosine, so ``D @ x`` transforms x."""
    k = torch.arange(size, dtype=torch.float64)
    d = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * size)) * math.sqrt(2 / size)
    d[0] /= math.sqrt(2)
    return d.to(device=device, dtype=dtype)


def dct_wiener(noisy: Tensor, pilot: Tensor, variance: Tensor, pilot_error: Tensor | float = 0.0,
               block: int = BLOCK, stride: int = STRIDE, residual_error: float = 0.0,
               quincunx: bool = False) -> Tensor:
    """``noisy`` filtered plane by plane with Wiener gains from ``pilot`` and the noise ``variance``
    of each pixel of ``noisy`` (independent noise, its variance taken as constant within a block).
    All (B, C, H, W) (the same shape); returns (B, C, H, W) in float32.

    ``pilot_error``: the variance of the pilot's own error per pixel, a number, one per image (B,)
    or a map (B, 1, H, W) (taken per block as the noise is, its pixels' mean); a coefficient's
    signal power is then taken as P^2 plus that. A pilot known to be rough (a network far from its
    training regime, or where it saw only part of a photosite) then shrinks less of what the
    measurement shows, and the result leans on the measurement; 0 trusts the pilot fully.
    ``residual_error``: the weight of each block's own evidence of that error, added to it: the
    mean squared difference of measurement and pilot beyond the noise variance (over the image's
    planes, at least 0). A pilot that is wrong in places (a rough network on a scene unlike its
    training) is then distrusted there and only there.

    ``quincunx``: only every other block start, those whose row and column (in strides) sum to an
    even number: the blocks of a lattice at twice the stride and those centred between them. Half
    the work of the full lattice, and most of its gain over the sparse one (each pixel is seen
    through twice the sparse lattice's blocks, in offsets that cover both diagonals).

    ``block`` must be a multiple of ``stride``. The frame is mirrored at its edges, so every pixel
    lies in the same number of blocks.
    """
    if block % stride:
        raise ValueError(f"block {block} must be a multiple of stride {stride}")
    b, c, h, w = noisy.shape
    steps = block // stride  # block starts per block side
    pad = block - stride
    # Blocks start every ``stride`` pixels from the padded frame's corner until every pixel lies in
    # ``steps`` of them along each axis; the far edge is padded to a whole number of strides.
    extra_h, extra_w = -h % stride, -w % stride
    mode = "reflect" if min(h, w) > pad + max(extra_h, extra_w) else "replicate"

    def planes(x: Tensor) -> Tensor:
        x = F.pad(x.reshape(b * c, 1, h, w).float(), (pad, pad + extra_w, pad, pad + extra_h), mode=mode)
        return x.reshape(b * c, x.shape[-2], x.shape[-1])

    measured, guide = planes(noisy), planes(pilot)
    n, height, width = measured.shape
    starts_h, starts_w = (height - block) // stride + 1, (width - block) // stride + 1

    def per_block(x: Tensor) -> Tensor:  # (B, C, H, W) -> each block's mean (n, starts_h, starts_w)
        return F.avg_pool2d(F.avg_pool2d(planes(x)[:, None], stride), steps, stride=1)[:, 0]

    # Each block's noise variance, its pixels' mean, for every block start at once.
    # Floored far below any real noise (a 16-bit file's rounding is 2e-11), so a coefficient with
    # neither signal nor noise is kept, and high enough that its square is no subnormal: gradients
    # through the gains stay finite.
    noise = per_block(variance)
    error = torch.as_tensor(pilot_error, dtype=torch.float32, device=noisy.device)
    if error.dim() == 4:  # a map: each block's mean, the same in every plane
        error = per_block(error.expand(b, c, h, w))
    else:  # one per image
        error = error.reshape(-1, 1).expand(b, c).reshape(n, 1, 1).expand(n, starts_h, starts_w)
    if residual_error:
        excess = (per_block((noisy.float() - pilot.float()).square()) - noise).view(b, c, starts_h, starts_w)
        excess = excess.mean(1, keepdim=True).clamp_min(0.0).expand(b, c, starts_h, starts_w).reshape(error.shape)
        error = error + residual_error * excess
    noise = noise.clamp_min_(NOISE_FLOOR)
    d = dct_matrix(block, device=noisy.device)
    dt = d.T.contiguous()
    out = torch.zeros_like(measured)
    # In place where nothing is to be differentiated: a strip's fresh temporaries cost a fifth of the time.
    in_place = not (torch.is_grad_enabled() and any(t.requires_grad for t in (noisy, pilot, variance)))
    share = torch.zeros(n, starts_h, starts_w, device=noisy.device)  # each block's weight, at its start

    for (top, cols), (cell_rows, cell_cols), rows, across in block_strips(starts_h, starts_w, block, stride,
                                                                          quincunx):
        window, starts = (slice(None), top, cols), (slice(None), cell_rows, cell_cols)

        def transform(x: Tensor) -> Tensor:  # (n, rows*block, across*block) -> (n, rows, u, across*v)
            x = torch.matmul(x.reshape(n, rows * block, across, block), dt)
            return torch.matmul(d, x.reshape(n, rows, block, across * block))

        kept, weight = _shrink(transform(measured[window]), transform(guide[window]), error[starts], noise[starts],
                               in_place)
        back = torch.matmul(torch.matmul(dt, kept).reshape(n, rows * block, across, block), d)
        out[window] += back.reshape(n, rows * block, across * block)
        share[starts] = weight

    # A pixel's total weight: the shares of the blocks covering it, which start in the
    # ``steps`` x ``steps`` stride cells up and to the left of its own (one value per cell).
    cells = F.pad(share, (steps - 1, steps - 1, steps - 1, steps - 1))
    total = sum(cells[:, i:i + starts_h + steps - 1, j:j + starts_w + steps - 1]
                for i in range(steps) for j in range(steps))
    # Cells of the padding a quincunx leaves without a block have no weight (and are cropped away).
    total = total.clamp_min(1e-30)  # type: ignore[union-attr]
    out.view(n, height // stride, stride, width // stride, stride).div_(total[:, :, None, :, None])
    return out[:, pad:pad + h, pad:pad + w].reshape(b, c, h, w)


def _shrink(coefficients: Tensor, guide: Tensor, error: Tensor, sigma2: Tensor,
            in_place: bool) -> tuple[Tensor, Tensor]:
    """One strip's Wiener-kept coefficients, weighted, and its blocks' weights: gains (P^2 + e) /
    (P^2 + e + s2) on the pilot's coefficients ``guide`` (both (n, rows, u, across * v), e and s2
    per block (n, rows, across)), each block weighted as BM3D does,
    1 / (s2 * sum of squared gains) (a block with no gain at all keeps nothing; the weights are
    constants to autograd). ``in_place`` overwrites ``guide``; autograd needs the other way."""
    n, rows, block, width = coefficients.shape
    per_block = (n, rows, block, width // block, block)
    block_sigma2, block_error = sigma2[:, :, None, :, None], error[:, :, None, :, None]
    if in_place:
        gain = guide.square_()
        gain.view(per_block).add_(block_error)
        gain.view(per_block).div_(gain.view(per_block) + block_sigma2)
    else:
        power = guide.square().view(per_block) + block_error
        gain = (power / (power + block_sigma2)).view(coefficients.shape)
    # The weights only share each pixel out among its blocks: gradients do not go through them
    # (through 1 / x of a near-empty block they would not be finite).
    weight = gain.detach().square().sum(2).view(n, rows, width // block, block).sum(-1).mul_(sigma2.detach())
    weight = weight.clamp_min_(1e-30).reciprocal_()
    block_weight = weight[:, :, None, :, None]
    if in_place:
        gain.view(per_block).mul_(block_weight).mul_(coefficients.view(per_block))
        return gain, weight
    return (gain.view(per_block) * block_weight * coefficients.view(per_block)).view(coefficients.shape), weight
