"""A training pack: many training images in one file, so they can travel where ../shared cannot.

A pack is a plain, uncompressed tar of JPEG files. JPEG sources are stored byte for byte (no second
compression loss); other images are encoded once at quality 95. Images are taken in a seeded random
order until the size limit, so a pack of a few tens of MB is an even sample of the whole folder.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import imageio.v3 as iio
import torch
from torch import Tensor

from exposed.training.data import find_images, read_rgb8
from exposed.io.atomic import atomic_write

JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
PACK_SUFFIXES = (".tar",)
RECORD = tarfile.RECORDSIZE  # 10240 bytes


def _jpeg_bytes(path: Path) -> bytes:
    if path.suffix.lower() in JPEG_SUFFIXES:
        return path.read_bytes()
    rgb = read_rgb8(path).permute(1, 2, 0).numpy()
    return iio.imwrite("<bytes>", rgb, extension=".jpg", quality=95)


def write_pack(folder: str | Path, out: str | Path, max_bytes: int = 40_000_000, seed: int = 0) -> list[str]:
    """Write the images under ``folder`` (a seeded random subset that fits ``max_bytes``) to the tar
    ``out``, atomically; returns the members' names (their paths under ``folder``)."""
    folder = Path(folder)
    paths = find_images(folder)
    order = torch.randperm(len(paths), generator=torch.Generator().manual_seed(seed)).tolist()
    members: list[tuple[str, bytes]] = []
    total = 1024  # the tar's end-of-archive blocks
    for i in order:
        data = _jpeg_bytes(paths[i])
        size = 512 + -(-len(data) // 512) * 512  # header and data, in tar's 512-byte blocks
        if -(-(total + size) // RECORD) * RECORD > max_bytes:  # tar pads the file to whole records
            continue  # a smaller one later may still fit
        name = paths[i].relative_to(folder).with_suffix(".jpg").as_posix()
        members.append((name, data))
        total += size
    if not members:
        raise ValueError(f"{folder}: no image fits in {max_bytes} bytes")
    members.sort()

    def write(tmp: Path) -> None:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

    atomic_write(out, write)
    return [name for name, _ in members]


def is_pack(path: str | Path) -> bool:
    return Path(path).is_file() and Path(path).suffix.lower() in PACK_SUFFIXES


def read_pack(path: str | Path) -> list[Tensor]:
    """The pack's images in name order, each (3, H, W) uint8."""
    with tarfile.open(path, "r:") as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
        images = []
        for member in members:
            data = tar.extractfile(member)
            if data is None:
                raise ValueError(f"{path}: {member.name} cannot be read from the pack")
            images.append(read_rgb8(data.read()))
        return images
