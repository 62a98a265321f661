"""Synthetic raw training data: clean photographs in, (dark noisy raw, clean raw) pairs out.

Images are decoded once and kept in memory as uint8, so a patch costs a crop and a few tensor
operations rather than a JPEG decode; all 200 MP of the development set take about 600 MB.
Augmentation (flips and transposes) happens on the RGB crop, before the mosaic is sampled, so the
colour filter phase is right by construction and each patch also gets a random Bayer order.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator, Sequence

import imageio.v3 as iio
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from exposed.imaging.bayer import PATTERNS, mosaic, pack
from exposed.sensor.cameras import noise_source
from exposed.training.night import NightScenes
from exposed.sensor.noise import NoiseModel, NoiseParams, synthesize_dark
from exposed.training.unprocess import CameraColour, unprocess

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"})


def find_images(folder: str | Path) -> list[Path]:
    """Every image file under ``folder``, recursively, in a stable order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise FileNotFoundError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return paths


def read_rgb8(source: str | Path | bytes) -> Tensor:
    """An image (a file, or its encoded bytes) as a (3, H, W) uint8 tensor: grey is repeated, alpha
    dropped, 16-bit scaled down."""
    array = np.asarray(iio.imread(source))
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype != np.uint8:
        name = "image data" if isinstance(source, bytes) else source
        raise ValueError(f"{name}: unsupported sample type {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(array[:, :, :3])).permute(2, 0, 1).contiguous()


class ImageBank:
    """Decoded training images in memory, with sampling weights proportional to their area."""

    def __init__(self, images: Sequence[Tensor], min_size: int):
        """images: (3, H, W) uint8 each; those smaller than ``min_size`` are skipped (and counted)."""
        self.images = [im for im in images if min(im.shape[1:]) >= min_size]
        if not self.images:
            raise ValueError(f"no image is at least {min_size} pixels on its short side")
        self.skipped = len(images) - len(self.images)
        self.weights = torch.tensor([im.shape[1] * im.shape[2] for im in self.images], dtype=torch.float64)

    @classmethod
    def from_paths(cls, paths: Sequence[str | Path], min_size: int, threads: int = 2) -> ImageBank:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return cls(list(pool.map(read_rgb8, paths)), min_size)

    @classmethod
    def from_folder(cls, folder: str | Path, min_size: int, threads: int = 2) -> ImageBank:
        return cls.from_paths(find_images(folder), min_size, threads)

    @classmethod
    def from_source(cls, source: str | Path, min_size: int) -> ImageBank:
        """A folder of images, or a training pack (:mod:`exposed.training.pack`)."""
        from exposed.training.pack import is_pack, read_pack

        return cls(read_pack(source), min_size) if is_pack(source) else cls.from_folder(source, min_size)

    def to(self, device: torch.device | str) -> ImageBank:
        """The same bank with its images on ``device`` (a GPU's memory holds all 600 MB with ease),
        so crops never cross the bus."""
        bank = ImageBank([im.to(device) for im in self.images], 0)
        bank.skipped = self.skipped
        return bank

    @property
    def device(self) -> torch.device:
        return self.images[0].device

    @property
    def megapixels(self) -> float:
        return float(self.weights.sum()) / 1e6

    def __len__(self) -> int:
        return len(self.images)

    def image(self, index: int) -> Tensor:
        """The decoded image number ``index``, (3, H, W) uint8."""
        return self.images[index]

    def crops(self, n: int, size: int, generator: torch.Generator | None = None) -> Tensor:
        """n random, randomly flipped and transposed size x size crops: (n, 3, size, size) float in [0, 1]."""
        picks = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        flips = torch.randint(0, 2, (n, 3), generator=generator)
        out = []
        for i, pick in enumerate(picks.tolist()):
            image = self.image(pick)
            top = int(u[i, 0] * (image.shape[1] - size + 1))
            left = int(u[i, 1] * (image.shape[2] - size + 1))
            crop = image[:, top:top + size, left:left + size]
            if flips[i, 0]:
                crop = crop.flip(1)
            if flips[i, 1]:
                crop = crop.flip(2)
            if flips[i, 2]:
                crop = crop.transpose(1, 2)
            out.append(crop)
        return torch.stack(out).float().div_(255.0)


@dataclass(frozen=True)
class RatioRange:
    """Exposure ratios to train on: log-uniform over [low, high], with extra weight on ``focus``.

    The default puts three quarters of the samples in x100 to x300, where the SID and ELD benchmarks
    and most hand-held night shots sit, and keeps the rest spread down to x1 so mild cases work too.
    """

    low: float = 1.0
    high: float = 300.0
    focus: tuple[float, float] = (100.0, 300.0)
    focus_weight: float = 0.75

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        log_uniform = torch.exp(math.log(self.low) + (math.log(self.high) - math.log(self.low)) * u[:, 0])
        focused = self.focus[0] + (self.focus[1] - self.focus[0]) * u[:, 0]
        return torch.where(u[:, 1] < self.focus_weight, focused, log_uniform).float()


CALIBRATED_BITS = 14  # the ELD calibrations are in 14-bit DN
# The darkest frames worth learning from. At x300 and the A7S II's highest gain (K 6 DN per
# electron at ISO 6400: the hardest case the benchmarks hold) white is about 9 electrons; noisier
# cameras at that ratio leave a frame of pure noise whose L1 loss would dominate every batch. And
# white must be at least 8 DN in the dark frame: an 8-bit camera is not shot 300 times too dark.
MAX_GAIN_RATIO = 6.0 * 300.0  # K (14-bit DN per electron) times the ratio
MIN_WHITE_DN = 8.0


@dataclass(frozen=True)
class SensorMix:
    """Which sensors the dark frames come from.

    cameras: calibrated camera names or ``virtual``, one drawn per sample. noise_models: one drawn per
    batch (``pg``, ``eld``). bits: the frame's bit depth, drawn uniformly from these values (repeat
    one to weight it); the same
    photo-electrons give 2^(bits - 14) times the 14-bit calibration's DN, so gain and read noise
    scale with it and at 8 bits the quantisation step is larger than the read noise, as on
    machine-vision cameras. varied_black: a quarter of the frames have black 0 (the noise floor
    clipped, as on many compact and industrial sensors), the rest a black between 1/64 and 1/16 of
    the range; otherwise 512 at 14 bits. black_error: the true black differs from the stated one by
    up to this many DN (uniform). quantise: frames are whole DN.
    """

    cameras: tuple[str, ...] = ("sony-a7s2",)
    noise_models: tuple[NoiseModel, ...] = ("pg",)
    bits: tuple[int, ...] = (CALIBRATED_BITS,)
    varied_black: bool = False
    black_error: float = 0.0
    quantise: bool = False

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[NoiseParams, Tensor]:
        """n frames' noise (one model for all) and their black errors in DN, (n,)."""
        model = self.noise_models[int(torch.randint(0, len(self.noise_models), (1,), generator=generator))]
        cameras = torch.randint(0, len(self.cameras), (n,), generator=generator).tolist()
        bits = torch.tensor(self.bits, dtype=torch.float64)[torch.randint(0, len(self.bits), (n,), generator=generator)]
        u = torch.rand(n, 3, generator=generator, dtype=torch.float64)
        white = 2.0**bits - 1.0
        if self.varied_black:
            black = torch.where(u[:, 0] < 0.25, 0.0, (2.0**bits * (1 / 64 + (1 / 16 - 1 / 64) * u[:, 1])).round())
        else:
            black = 512.0 * 2.0 ** (bits - CALIBRATED_BITS)
        noise = NoiseParams.cat([noise_source(self.cameras[c]).sample(1, model, generator) for c in cameras])
        dn = (2.0 ** (bits - CALIBRATED_BITS)).float()
        noise = NoiseParams(noise.K * dn, noise.read_sigma * dn, noise.row_sigma * dn, noise.tukey_lambda,
                            black.float(), white.float(), model)
        offset = self.black_error * (2 * u[:, 2] - 1)
        return noise, (offset.round() if self.quantise else offset).float()

    @staticmethod
    def max_ratio(noise: NoiseParams) -> Tensor:
        """(B,) the largest ratio each frame is darkened by: see MAX_GAIN_RATIO and MIN_WHITE_DN."""
        k14 = noise.K * (2.0**CALIBRATED_BITS - 1) / noise.white
        return torch.minimum(MAX_GAIN_RATIO / k14, noise.scale / MIN_WHITE_DN)


@dataclass
class TrainingBatch:
    """One batch of packed (B, 4, h, w) patches.

    noisy: the dark frame, normalised (black 0, white 1) but not yet multiplied by the ratio.
    clean: the reference exposure in the same units. ratio: (B,). noise: the parameters used;
    quantised: the dark frames are whole DN.
    """

    noisy: Tensor
    clean: Tensor
    ratio: Tensor
    noise: NoiseParams
    quantised: bool = False

    def to(self, device: torch.device | str) -> TrainingBatch:
        return TrainingBatch(self.noisy.to(device), self.clean.to(device), self.ratio.to(device),
                             self.noise.to(device), self.quantised)


class SyntheticRaw(IterableDataset):
    """An endless stream of synthetic training batches (use with ``DataLoader(batch_size=None)``,
    or iterate it directly when the bank is on a GPU).

    Each worker, and each process under torchrun, draws from its own seeded generators, so a run is
    reproducible for a given seed, worker count and device, and no two workers repeat each other.
    The batch is made where the bank's images are: a CPU generator draws the few numbers per sample
    (which crop, camera, ratio, lamps), a generator on the bank's device the per-pixel noise, so on
    a GPU nothing waits on the CPU but those numbers.
    """

    def __init__(self, bank: ImageBank, patch: int = 256, batch_size: int = 4, sensors: SensorMix = SensorMix(),
                 ratios: RatioRange = RatioRange(), night: NightScenes = NightScenes(share=0.0), seed: int = 0):
        if patch % 2:
            raise ValueError("patch size must be even (whole Bayer cells)")
        self.bank, self.patch, self.batch_size = bank, patch, batch_size
        self.sensors, self.ratios, self.night, self.seed = sensors, ratios, night, seed

    def make_batch(self, generator: torch.Generator | None = None,
                   pixels: torch.Generator | None = None) -> TrainingBatch:
        """One batch on the bank's device. generator: a CPU generator for the per-sample draws;
        pixels: one on the bank's device for the noise (default: ``generator``, on a CPU bank)."""
        n = self.batch_size
        device = self.bank.device
        pixels = generator if pixels is None else pixels
        srgb = self.bank.crops(n, self.patch, generator)
        colour = CameraColour.random(n, generator)
        patterns = [PATTERNS[i] for i in torch.randint(0, 4, (n,), generator=generator).tolist()]
        scene = self.night.apply(unprocess(srgb, colour), generator)
        light = torch.cat([mosaic(scene[i:i + 1], p) for i, p in enumerate(patterns)])
        noise, offset = self.sensors.sample(n, generator)
        ratio = torch.minimum(self.ratios.sample(n, generator), self.sensors.max_ratio(noise)).clamp_min(1.0)
        noise, ratio, offset = noise.to(device), ratio.to(device), offset.to(device)
        dark = synthesize_dark(light, ratio, noise, pixels, self.sensors.quantise, offset)
        clean = light.clamp_max(1.0)  # the reference exposure clips at white too
        return TrainingBatch(
            noisy=torch.cat([pack(dark[i:i + 1], p) for i, p in enumerate(patterns)]),
            clean=torch.cat([pack(clean[i:i + 1], p) for i, p in enumerate(patterns)]),
            ratio=ratio, noise=noise, quantised=self.sensors.quantise)

    def __iter__(self) -> Iterator[TrainingBatch]:
        worker = get_worker_info()
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        stream = rank * 1000 + (worker.id if worker else 0)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + stream)
        pixels = None
        if self.bank.device.type != "cpu":
            pixels = torch.Generator(device=self.bank.device).manual_seed(self.seed * 1_000_003 + stream + 1)
        while True:
            yield self.make_batch(generator, pixels)
