"""Writing output files: atomically, in the format the name asks for, with the shot's EXIF.

Every file goes through :func:`exposed.io.atomic.atomic_write`, so an interrupted run leaves either
no file or a whole one, never half.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

import numpy as np

from exposed import __version__
from exposed.io.atomic import atomic_write

if TYPE_CHECKING:  # the training path (and a GPU machine without exifread) never needs it
    from exposed.io.exif import ExifInfo

FORMATS = ("jpg", "png", "tiff")
SOFTWARE = f"exposed {__version__}"


def _exif_bytes(exif: ExifInfo | None) -> bytes:
    """An EXIF block for JPEG and PNG: camera, date and exposure; orientation 1 (pixels are upright)."""
    from PIL import Image
    from PIL.TiffImagePlugin import IFDRational

    from exposed.io.tags import exif_entries

    block = Image.Exif()
    block[0x0131] = SOFTWARE
    block[0x0112] = 1
    if exif is not None:
        for code, value in ((0x010F, exif.make), (0x0110, exif.model), (0x0132, exif.datetime)):
            if value:
                block[code] = value
        # The DNG writer's entries, in PIL's terms: rationals as IFDRational, the rest as they are.
        sub = block.get_ifd(0x8769)
        for code, kind, _, entry in exif_entries(exif):
            sub[code] = IFDRational(*cast(tuple[int, int], entry)) if kind in ("2I", "2i") else entry
    return block.tobytes()


def _png16(stream: IO[bytes], image: np.ndarray, exif: bytes) -> None:
    """A 16-bit RGB PNG (Pillow writes only 8-bit RGB): big-endian rows, filter 0, deflate, and the
    EXIF block as an eXIf chunk (the TIFF structure without JPEG's "Exif" prefix)."""
    h, w, _ = image.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = np.zeros((h, 1 + w * 6), dtype=np.uint8)
    rows[:, 1:] = np.ascontiguousarray(image, dtype=">u2").view(np.uint8).reshape(h, w * 6)
    stream.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                 + chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00"))
                 + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def encode_image(stream: IO[bytes], image: np.ndarray, fmt: str, exif: ExifInfo | None = None,
                 quality: int = 95) -> None:
    """Encode (H, W, 3) uint8 or uint16 as ``jpg``, ``png`` or ``tiff`` into a binary stream."""
    from PIL import Image

    if fmt == "jpg":
        if image.dtype != np.uint8:
            raise ValueError("JPEG holds 8 bits per channel; use png or tiff for 16")
        Image.fromarray(image).save(stream, format="JPEG", quality=quality, exif=_exif_bytes(exif))
    elif fmt == "png":
        if image.dtype == np.uint16:
            _png16(stream, image, _exif_bytes(exif))
        else:
            Image.fromarray(image).save(stream, format="PNG", exif=_exif_bytes(exif))
    elif fmt == "tiff":
        import tifffile

        tags = [(271, "s", 0, exif.make, True)] if exif and exif.make else []
        if exif and exif.model:
            tags.append((272, "s", 0, exif.model, True))
        tifffile.imwrite(stream, image, photometric="rgb", software=SOFTWARE, extratags=tags,
                         datetime=exif.datetime if exif and exif.datetime else None)
    else:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")


def save_image(path: str | Path, image: np.ndarray, fmt: str, exif: ExifInfo | None = None) -> Path:
    """Encode and write atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            encode_image(f, image, fmt, exif)
    return atomic_write(path, write)


def image_bytes(image: np.ndarray, fmt: str, exif: ExifInfo | None = None) -> bytes:
    """The encoded file in memory (for standard output)."""
    buffer = io.BytesIO()
    encode_image(buffer, image, fmt, exif)
    return buffer.getvalue()
