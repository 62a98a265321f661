"""A built-in example scene, so a newcomer sees exposed work without files of their own, and the
synthetic dark DNGs that the demo, the tests and the benchmarks are made of.

The scene is drawn here rather than shipped: a colour checker (the published sRGB values of the 24
X-Rite ColorChecker patches), a smooth sky-like gradient and a zone plate for fine detail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from exposed.imaging.bayer import mosaic, pack
from exposed.sensor.cameras import CAMERAS
from exposed.imaging.color import CAMERA_XYZ, D65, Calibration, rgb_to_camera
from exposed.io.dng import DngMetadata, write_dng
from exposed.io.exif import ExifInfo
from exposed.imaging.metrics import pooled_psnr
from exposed.modes import Mode
from exposed.pipeline import Enhancer, Settings
from exposed.sensor.noise import NoiseModel, NoiseParams, synthesize_dark
from exposed.io.images import save_image
from exposed.io.raw import read_raw
from exposed.training.unprocess import CameraColour, unprocess

COLORCHECKER_SRGB = (
    (115, 82, 68), (194, 150, 130), (98, 122, 157), (87, 108, 67), (133, 128, 177), (103, 189, 170),
    (214, 126, 44), (80, 91, 166), (193, 90, 99), (94, 60, 108), (157, 188, 64), (224, 163, 46),
    (56, 61, 150), (70, 148, 73), (175, 54, 60), (231, 199, 31), (187, 86, 149), (8, 133, 161),
    (243, 243, 242), (200, 200, 200), (160, 160, 160), (122, 122, 121), (85, 85, 85), (52, 52, 52),
)


def example_scene(height: int = 512, width: int = 768) -> Tensor:
    """The example scene as sRGB in [0, 1], shape (1, 3, height, width); height and width even."""
    y = torch.linspace(0.0, 1.0, height)[:, None].expand(height, width)
    x = torch.linspace(0.0, 1.0, width)[None, :].expand(height, width)
    # Sky: a blue-to-warm gradient from top to bottom.
    image = torch.stack([0.35 + 0.45 * y, 0.45 + 0.25 * y, 0.75 - 0.35 * y])
    # Zone plate in the lower right: concentric rings whose frequency rises outwards.
    r2 = ((x - 0.86) * width) ** 2 + ((y - 0.72) * height) ** 2
    plate = 0.5 + 0.4 * torch.cos(math.pi * r2 / (1.2 * min(height, width)))
    inside = r2.sqrt() < 0.18 * min(height, width)
    image = torch.where(inside, plate.expand(3, -1, -1), image)
    # Colour checker: 6 x 4 patches in the left two thirds.
    patch_h, patch_w = height // 6, width // 10
    top, left = height // 8, width // 20
    for i, rgb in enumerate(COLORCHECKER_SRGB):
        row, col = divmod(i, 6)
        y0, x0 = top + row * (patch_h + patch_h // 8), left + col * (patch_w + patch_w // 8)
        image[:, y0:y0 + patch_h, x0:x0 + patch_w] = torch.tensor(rgb, dtype=torch.float32)[:, None, None] / 255.0
    return image[None].clamp(0.0, 1.0)


@dataclass
class DemoResult:
    """What :func:`run_demo` made: its files, the noise it used, and how each rendering scores."""

    files: list[Path]
    noise: NoiseParams
    psnr: dict[str, float]
    grey_patches: list[dict[str, float]] = field(default_factory=list)


SONY_XYZ = CAMERA_XYZ["Sony ILCE-7S / 7S II"]


@dataclass
class SyntheticShot:
    """A synthetic dark raw as written: the file, and the clean and dark mosaics it came from
    ((1, 1, H, W), normalised; the clean one at the reference exposure)."""

    path: Path
    clean: Tensor
    dark: Tensor


def write_synthetic_dng(path: str | Path, scene: Tensor, ratio: float, noise: NoiseParams, pattern: str = "RGGB",
                        generator: torch.Generator | None = None, gains: tuple[float, float, float] = (2.1, 1.0, 1.7),
                        lights: Tensor | None = None, black_cell: np.ndarray | None = None,
                        exif: ExifInfo | None = None, **meta: Any) -> SyntheticShot:
    """A dark, noisy CFA DNG of an sRGB ``scene`` (1, 3, H, W), as a Sony A7S II would record it
    ``ratio`` times too dark with ``noise``, written with exposed's own DNG writer.

    ``gains``: the white-balance multipliers the scene is un-balanced by (AsShotNeutral is their
    reciprocal); ``lights``: (1, 3, H, W) linear camera RGB added before the mosaic, where light
    sources may exceed white; ``black_cell``: a 2x2 black level per CFA site (default the noise's
    black everywhere); ``meta``: further :class:`exposed.io.dng.DngMetadata` fields.
    """
    colour = CameraColour(torch.from_numpy(rgb_to_camera(SONY_XYZ))[None].float(), torch.tensor([gains]))
    camera = unprocess(scene, colour)
    clean = mosaic(camera if lights is None else camera + lights, pattern)
    dark = synthesize_dark(clean, torch.tensor([ratio]), noise, generator)
    h, w = clean.shape[-2:]
    cell = np.full((2, 2), noise.black.item()) if black_cell is None else np.broadcast_to(black_cell, (2, 2))
    white = noise.white.item()
    dn = np.clip(np.round(dark[0, 0].numpy() * noise.scale.item() + np.tile(cell, (h // 2, w // 2))), 0, white)
    tags = DngMetadata(pattern, np.asarray(cell, dtype=np.float64), int(white), (Calibration(D65, SONY_XYZ),),
                       1.0 / np.asarray(gains), exif=exif or ExifInfo(), **meta)
    return SyntheticShot(write_dng(path, dn.astype(np.uint16), tags), clean, dark)


def run_demo(out_dir: str | Path, ratio: float = 100.0, iso: float = 3200.0, camera: str = "sony-a7s2",
             model: NoiseModel = "pg", seed: int = 0, mode: Mode = "diffusion") -> DemoResult:
    """Make a dark raw of the example scene with a real camera's noise, and enhance it.

    Writes dark.dng (the short exposure, a DNG any raw editor opens), reference.jpg (the scene at the
    full exposure through the same pipeline), amplified.jpg (the dark raw brightened, not denoised)
    and enhanced.jpg (exposed's result), and checks the noise measured on the six grey patches
    against K * signal + read variance.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scene = example_scene()
    noise = CAMERAS[camera].at_iso(iso, model)
    shot = write_synthetic_dng(out_dir / "dark.dng", scene, ratio, noise, generator=torch.Generator().manual_seed(seed),
                               exif=ExifInfo(make="exposed", model=f"demo ({camera} noise)", exposure_time=1 / 100,
                                             f_number=2.8, iso=int(iso)))
    dng, clean, dark = shot.path, shot.clean, shot.dark
    scale = noise.scale.item()

    reference = Enhancer(Settings(mode="amplify", ratio=1.0)).render
    raw = read_raw(dng)
    plan = Enhancer(Settings(mode="amplify", ratio=ratio)).plan(raw)
    images = {"reference": reference(plan, clean.numpy())}
    for name, settings in (("amplified", Settings(mode="amplify", ratio=ratio)),
                           ("enhanced", Settings(mode=mode, ratio=ratio, seed=seed))):
        images[name], _ = Enhancer(settings).enhance(dng)
    files = [dng] + [save_image(out_dir / f"{name}.jpg", image, "jpg", raw.exif) for name, image in images.items()]
    psnr = {name: pooled_psnr(torch.from_numpy(images[name] / 255.0), torch.from_numpy(images["reference"] / 255.0))
            for name in ("amplified", "enhanced")}

    packed_clean, packed_dark = pack(clean, "RGGB"), pack(dark, "RGGB")
    h, w = scene.shape[-2:]
    patch_h, patch_w = h // 6, w // 10
    greys = []
    for i in range(18, 24):  # the neutral row of the checker, in half-resolution packed coordinates
        row, col = divmod(i, 6)
        y0 = (h // 8 + row * (patch_h + patch_h // 8)) // 2 + 4
        x0 = (w // 20 + col * (patch_w + patch_w // 8)) // 2 + 4
        region = (slice(y0, y0 + patch_h // 2 - 8), slice(x0, x0 + patch_w // 2 - 8))
        signal = packed_clean[0, 1][region].mean().item() * scale / ratio
        measured = (packed_dark[0, 1][region] * scale).var().item()
        expected = noise.variance(torch.tensor([signal])).item()
        greys.append({"signal_dn": signal, "measured_var": measured, "expected_var": expected})
    return DemoResult(files, noise, psnr, greys)
