"""Writing output files: atomically, in the format the name asks for, with the shot's EXIF.

Each file is written to a temporary name in the destination folder and renamed over the final name
only once it is complete, so an interrupted run leaves either no file or a whole one, never half.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import IO, TYPE_CHECKING
from collections.abc import Callable

import numpy as np

from exposed import __version__

if TYPE_CHECKING:  # the training path (and a GPU machine without exifread) never needs it
    from exposed.exif import ExifInfo

FORMATS = ("jpg", "png", "tiff")
SOFTWARE = f"exposed {__version__}"


# The process's umask, read once while nothing else runs (reading it means setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)`` and move the result to ``path``; remove the temporary on failure.

    The result gets the permissions of a file created the ordinary way (0666 less the umask), not
    the owner-only ones of a temporary file.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _exif_bytes(exif: ExifInfo | None) -> bytes:
    """An EXIF block for JPEG and PNG: camera, date and exposure; orientation 1 (pixels are upright)."""
    from fractions import Fraction

    from PIL import Image
    from PIL.TiffImagePlugin import IFDRational

    def rational(value: float) -> IFDRational:
        f = Fraction(value).limit_denominator(100000)
        return IFDRational(f.numerator, f.denominator)

    block = Image.Exif()
    block[0x0131] = SOFTWARE
    block[0x0112] = 1
    if exif is not None:
        for code, value in ((0x010F, exif.make), (0x0110, exif.model), (0x0132, exif.datetime)):
            if value:
                block[code] = value
        sub: dict[int, IFDRational | int | str] = {}
        if exif.exposure_time:
            sub[0x829A] = rational(exif.exposure_time)
        if exif.f_number:
            sub[0x829D] = rational(exif.f_number)
        if exif.iso:
            sub[0x8827] = int(min(exif.iso, 65535))
        if exif.datetime:
            sub[0x9003] = exif.datetime
        if exif.lens:
            sub[0xA434] = exif.lens
        if sub:
            block.get_ifd(0x8769).update(sub)
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
