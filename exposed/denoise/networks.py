"""Backbones: the SID UNet and a NAFNet-style network, for packed 4-channel Bayer raws.

Both map (B, in_channels, H, W) to (B, out_channels, H, W) for H and W multiples of ``multiple``;
:func:`pad_to_multiple` and :func:`crop_to` let callers feed any size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Reflect-pad the bottom and right of (B, C, H, W) so H and W are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


def crop_to(x: Tensor, height: int, width: int) -> Tensor:
    return x[..., :height, :width]


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))


class UNet(nn.Module):
    """The Learning-to-See-in-the-Dark UNet: four 2x poolings, widths w, 2w, 4w, 8w, 16w.

    LeakyReLU 0.2 and no normalisation, as in SID; width 32 is the paper's 7.76 M-parameter net.
    """

    multiple = 16

    def __init__(self, in_channels: int, out_channels: int, width: int = 32):
        super().__init__()
        widths = [width * 2**i for i in range(5)]
        self.down = nn.ModuleList([_double_conv(in_channels, widths[0])] +
                                  [_double_conv(widths[i - 1], widths[i]) for i in range(1, 5)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i], widths[i - 1], 2, stride=2) for i in range(4, 0, -1)])
        self.merge = nn.ModuleList([_double_conv(widths[i], widths[i - 1]) for i in range(4, 0, -1)])
        self.out = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.out(x)


def widen_unet(weights: dict[str, Tensor], width: int, factor: int, noise: float = 1e-2,
               generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """A UNet's weights (its state dict, at ``width``) for one ``factor`` times as wide that computes
    almost the same function, so a wider network can start from a trained narrow one.

    Every hidden channel becomes ``factor`` copies and each layer reading them takes 1 / factor of
    its weight from each copy: the same function exactly. But copies with equal weights get equal
    updates from Adam (it normalises their gradients' scale) and would stay copies forever, so each
    copy's incoming weights also move by ``noise`` times the layer's spread, in directions that sum
    to zero over the copies: the function then changes only where a LeakyReLU bends (second order).
    """
    if factor < 1:
        raise ValueError(f"a UNet can only be widened by a whole factor of at least 1, not {factor}")
    if factor == 1:
        return weights
    widths = [width * 2**i for i in range(5)]

    def copies(c: int, device: torch.device) -> Tensor:
        """The old channel of each new one."""
        return torch.arange(factor * c, device=device) % c

    def grow_out(w: Tensor, c: int, dim: int) -> Tensor:
        """Output channels (along ``dim``) repeated, each copy's weights moved apart."""
        wide = w.index_select(dim, copies(c, w.device)).movedim(dim, 0)
        jitter = torch.randn(factor, c, *wide.shape[1:], generator=generator, dtype=w.dtype)  # on the CPU
        jitter = (jitter - jitter.mean(0, keepdim=True)).reshape(wide.shape).to(w.device) * (noise * w.std())
        return (wide + jitter).movedim(0, dim)

    def grow_in(w: Tensor, parts: list[int], dim: int) -> Tensor:
        """Input channels made of consecutive widened parts (a concatenation), each read 1 / factor."""
        index = torch.cat([copies(c, w.device) + sum(parts[:i]) for i, c in enumerate(parts)])
        return w.index_select(dim, index) / factor

    out: dict[str, Tensor] = {}
    for name, w in weights.items():
        module, index, *rest = name.split(".")
        i = int(index) if index.isdigit() else 0
        if module == "down":  # down.i.{0,2}: level i, from level i - 1 (or the input) to level i
            c = widths[i]
            if w.dim() == 1:
                out[name] = w[copies(c, w.device)]
                continue
            w = grow_out(w, c, 0)
            out[name] = w if (i == 0 and rest[0] == "0") else grow_in(w, [widths[i - 1] if rest[0] == "0" else c], 1)
        elif module == "up":  # up.j: ConvTranspose2d (in, out, 2, 2) from level 4 - j to 3 - j
            level = 4 - i
            if w.dim() == 1:
                out[name] = w[copies(widths[level - 1], w.device)]
                continue
            out[name] = grow_in(grow_out(w, widths[level - 1], 1), [widths[level]], 0)
        elif module == "merge":  # merge.j.{0,2}: the concatenation [up, skip] (or the level) to level 3 - j
            c = widths[3 - i]
            if w.dim() == 1:
                out[name] = w[copies(c, w.device)]
                continue
            out[name] = grow_in(grow_out(w, c, 0), [c, c] if rest[0] == "0" else [c], 1)
        elif module == "out":  # the 1 x 1 output convolution: outputs unchanged
            out[name] = w if w.dim() == 1 else grow_in(w, [widths[0]], 1)
        else:
            raise ValueError(f"not a UNet weight: {name}")
    return out


class LayerNorm2d(nn.Module):
    """Layer norm over channels at each pixel."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        return (x - mean) / (var + self.eps).sqrt() * self.weight[:, None, None] + self.bias[:, None, None]


class NAFBlock(nn.Module):
    """Nonlinear-activation-free block (Chen et al., ECCV 2022): gated depthwise conv and channel attention."""

    def __init__(self, channels: int):
        super().__init__()
        hidden = 2 * channels
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = nn.Conv2d(channels, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, channels, 1))
        self.conv2 = nn.Conv2d(channels, channels, 1)
        self.norm2 = LayerNorm2d(channels)
        self.ffn1 = nn.Conv2d(channels, hidden, 1)
        self.ffn2 = nn.Conv2d(channels, channels, 1)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    @staticmethod
    def _gate(x: Tensor) -> Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b

    def forward(self, x: Tensor) -> Tensor:
        y = self._gate(self.dwconv(self.conv1(self.norm1(x))))
        y = self.conv2(y * self.attention(y))
        x = x + y * self.beta
        y = self.ffn2(self._gate(self.ffn1(self.norm2(x))))
        return x + y * self.gamma


class NAFNet(nn.Module):
    """A NAFNet-style UNet: strided-conv downsampling, pixel-shuffle upsampling, additive skips."""

    def __init__(self, in_channels: int, out_channels: int, width: int = 16,
                 encoder_blocks: tuple[int, ...] = (1, 1, 1, 1), middle_blocks: int = 1,
                 decoder_blocks: tuple[int, ...] = (1, 1, 1, 1)):
        super().__init__()
        self.multiple = 2 ** len(encoder_blocks)
        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.encoders, self.downs, self.ups, self.decoders = (nn.ModuleList() for _ in range(4))
        ch = width
        for n in encoder_blocks:
            self.encoders.append(nn.Sequential(*[NAFBlock(ch) for _ in range(n)]))
            self.downs.append(nn.Conv2d(ch, 2 * ch, 2, stride=2))
            ch *= 2
        self.middle = nn.Sequential(*[NAFBlock(ch) for _ in range(middle_blocks)])
        for n in decoder_blocks:
            self.ups.append(nn.Sequential(nn.Conv2d(ch, 2 * ch, 1, bias=False), nn.PixelShuffle(2)))
            ch //= 2
            self.decoders.append(nn.Sequential(*[NAFBlock(ch) for _ in range(n)]))
        self.ending = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.intro(x)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.middle(x)
        for up, decoder in zip(self.ups, self.decoders):
            x = decoder(up(x) + skips.pop())
        return self.ending(x)


def build_backbone(arch: str, in_channels: int, out_channels: int, width: int) -> UNet | NAFNet:
    """A backbone by name: ``unet`` or ``nafnet``."""
    if arch == "unet":
        return UNet(in_channels, out_channels, width)
    if arch == "nafnet":
        return NAFNet(in_channels, out_channels, width)
    raise ValueError(f"unknown architecture {arch!r}; expected 'unet' or 'nafnet'")
