"""Writing output files: atomically, in the format the name asks for, with the shot's EXIF and an
embedded sRGB ICC profile (so a colour-managed viewer or editor never has to guess the colours).

Every file goes through :func:`exposed.io.atomic.atomic_write`, so an interrupted run leaves either
no file or a whole one, never half.
"""

from __future__ import annotations

import io
import struct
import zlib
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

import numpy as np

from exposed import __version__
from exposed.io.atomic import atomic_write

if TYPE_CHECKING:  # the training path (and a GPU machine without exifread) never needs it
    from exposed.io.exif import ExifInfo

FORMATS = ("jpg", "png", "tiff")
SOFTWARE = f"exposed {__version__}"
JPEG_QUALITY = 95
FULL_CHROMA_QUALITY = 90  # from this JPEG quality up, colour is kept at full resolution (4:4:4)


@lru_cache(maxsize=1)
def srgb_icc() -> bytes:
    """An sRGB ICC profile (littleCMS's built-in one, through Pillow), for every picture written.

    littleCMS stamps the profile with the time it was made; the stamp is set to a fixed date and
    the profile ID (an optional MD5) to zero, "not computed", so the same input gives the same bytes
    on every run."""
    from PIL import ImageCms

    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc[24:36] = struct.pack(">6H", 2000, 1, 1, 0, 0, 0)
    icc[84:100] = bytes(16)
    return bytes(icc)


def _exif_bytes(exif: ExifInfo | None, image: np.ndarray, jpeg: bool) -> bytes:
    """An EXIF block for JPEG and PNG: camera, date and exposure; orientation 1 (pixels are upright);
    sRGB colour space, size and resolution."""
    from PIL import Image, TiffTags
    from PIL.TiffImagePlugin import IFDRational

    from exposed.io.tags import exif_entries, picture_entries

    # Pillow does not know ComponentsConfiguration's type (UNDEFINED) and would write it as bytes.
    TiffTags.TAGS_V2_GROUPS[0x8769].setdefault(
        37121, TiffTags.TagInfo(37121, "ComponentsConfiguration", TiffTags.UNDEFINED, 4))
    block = Image.Exif()
    block[0x0131] = SOFTWARE
    block[0x0112] = 1
    block[0x011A] = block[0x011B] = IFDRational(72, 1)  # X and YResolution, per inch (ResolutionUnit 2)
    block[0x0128] = 2
    if jpeg:
        block[0x0213] = 1  # YCbCrPositioning: centred
    for code, value in ((0x010F, exif.make if exif else None), (0x0110, exif.model if exif else None),
                        (0x0132, exif.datetime if exif else None)):
        if value:
            block[code] = value
    # The DNG writer's entries, in PIL's terms: rationals as IFDRational, the rest as they are.
    sub = block.get_ifd(0x8769)
    entries = (exif_entries(exif) if exif else []) + picture_entries((image.shape[1], image.shape[0]), jpeg)
    for code, kind, _, entry in entries:
        sub[code] = IFDRational(*cast(tuple[int, int], entry)) if kind in ("2I", "2i") else entry
    return block.tobytes()


def _png16(stream: IO[bytes], image: np.ndarray, exif: bytes) -> None:
    """A 16-bit RGB PNG (Pillow writes only 8-bit RGB): big-endian rows, filter 0, deflate, the
    sRGB profile as an iCCP chunk and the EXIF block as an eXIf chunk (the TIFF structure without
    JPEG's "Exif" prefix)."""
    h, w, _ = image.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = np.zeros((h, 1 + w * 6), dtype=np.uint8)
    rows[:, 1:] = np.ascontiguousarray(image, dtype=">u2").view(np.uint8).reshape(h, w * 6)
    stream.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                 + chunk(b"iCCP", b"sRGB\x00\x00" + zlib.compress(srgb_icc()))
                 + chunk(b"eXIf", exif.removeprefix(b"Exif\x00\x00"))
                 + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def encode_image(stream: IO[bytes], image: np.ndarray, fmt: str, exif: ExifInfo | None = None,
                 quality: int = JPEG_QUALITY) -> None:
    """Encode (H, W, 3) uint8 or uint16 as ``jpg``, ``png`` or ``tiff`` into a binary stream.

    ``quality``: JPEG's, 1 to 100; from :data:`FULL_CHROMA_QUALITY` up the colour is not subsampled.
    """
    from PIL import Image

    if fmt == "jpg":
        if image.dtype != np.uint8:
            raise ValueError("JPEG holds 8 bits per channel; use png or tiff for 16")
        if not 1 <= quality <= 100:
            raise ValueError(f"JPEG quality {quality}: expected 1 to 100")
        Image.fromarray(image).save(stream, format="JPEG", quality=quality, exif=_exif_bytes(exif, image, True),
                                    icc_profile=srgb_icc(), subsampling=0 if quality >= FULL_CHROMA_QUALITY else 2)
    elif fmt == "png":
        if image.dtype == np.uint16:
            _png16(stream, image, _exif_bytes(exif, image, False))
        else:
            Image.fromarray(image).save(stream, format="PNG", exif=_exif_bytes(exif, image, False),
                                        icc_profile=srgb_icc())
    elif fmt == "tiff":
        _tiff(stream, image, exif)
    else:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _tiff(stream: IO[bytes], image: np.ndarray, exif: ExifInfo | None) -> None:
    """An RGB TIFF with the sRGB profile (InterColorProfile) and the same EXIF IFD as a DNG's."""
    import tifffile

    from exposed.io.tags import EXIF_PLACEHOLDER, append_exif_ifd, ascii_text, exif_entries, picture_entries

    tags: list[tuple[int, str | int, int, object, bool]] = [(34675, 7, len(srgb_icc()), srgb_icc(), True)]
    for code, value in ((271, exif.make if exif else None), (272, exif.model if exif else None)):
        if value:
            tags.append((code, "s", 0, ascii_text(value), True))
    tags.append(EXIF_PLACEHOLDER)
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image, photometric="rgb", software=SOFTWARE, extratags=tags, metadata=None,
                     datetime=exif.datetime if exif and exif.datetime else None, byteorder="<", bigtiff=False)
    append_exif_ifd(buffer, sorted((exif_entries(exif) if exif else []) + picture_entries()))
    stream.write(buffer.getvalue())


def save_image(path: str | Path, image: np.ndarray, fmt: str, exif: ExifInfo | None = None,
               quality: int = JPEG_QUALITY) -> Path:
    """Encode and write atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            encode_image(f, image, fmt, exif, quality)
    return atomic_write(path, write)


def save_gray16(path: str | Path, values: np.ndarray, description: str) -> Path:
    """A single-channel 16-bit TIFF of (H, W) ``values`` in [0, 1] (scaled to 0..65535), atomically."""
    import tifffile

    data = np.round(np.clip(values, 0.0, 1.0) * 65535.0).astype(np.uint16)

    def write(tmp: Path) -> None:
        tifffile.imwrite(tmp, data, photometric="minisblack", software=SOFTWARE, description=description,
                         metadata=None)
    return atomic_write(path, write)


def image_bytes(image: np.ndarray, fmt: str, exif: ExifInfo | None = None, quality: int = JPEG_QUALITY) -> bytes:
    """The encoded file in memory (for standard output)."""
    buffer = io.BytesIO()
    encode_image(buffer, image, fmt, exif, quality)
    return buffer.getvalue()
