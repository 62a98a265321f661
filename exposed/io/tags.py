"""The EXIF tags exposed writes, in one list for every output: the EXIF IFD of DNG and TIFF files and
the EXIF block of JPEG and PNG files. Entries are TIFF's (code, type, count, value); types: "2I"
rational, "2i" signed rational, "H" short, "I" long, "s" ASCII, "X" undefined, "B" byte, "d" double.

tifffile does not write an EXIF IFD (it filters the ExifIFD pointer out of extra tags), so IFD0
gets a placeholder entry with the next tag code, which sorts to the same place, and once the EXIF
IFD is appended at the end of the file the placeholder becomes the ExifIFD pointer, the TIFF way.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, BinaryIO, cast

import numpy as np

if TYPE_CHECKING:  # exifread is not needed to write tags
    from exposed.io.exif import ExifInfo

Entry = tuple[int, str, int, object]
_EXIF_IFD = 34665
_PLACEHOLDER = _EXIF_IFD + 1  # no tag is written between the two codes, so IFD0 stays sorted
EXIF_PLACEHOLDER = (_PLACEHOLDER, "I", 1, 0, True)  # a tifffile extratag: the ExifIFD pointer to be
# TIFF field types: code and the struct format of one value.
_TYPES = {"B": (1, "B"), "s": (2, "s"), "H": (3, "H"), "I": (4, "I"), "2I": (5, "2I"), "X": (7, "B"),
          "2i": (10, "2i"), "d": (12, "d")}


def rational(value: float, signed: bool = False) -> tuple[int, int]:
    """A TIFF (signed) rational near ``value``: numerator and denominator, each fitting 32 bits."""
    f = Fraction(value).limit_denominator(10_000 if signed else 1_000_000)
    return f.numerator, f.denominator


def rationals(values: np.ndarray | Sequence[float], signed: bool = False) -> tuple[int, ...]:
    return sum((rational(float(v), signed) for v in np.asarray(values, dtype=np.float64).flatten()), ())


def ascii_text(text: str) -> str:
    """TIFF ASCII is 7-bit; a camera or lens name from another encoding must not break the file."""
    return text.encode("ascii", "replace").decode("ascii")


def _usable(value: float | None, low: float, high: float) -> bool:
    return value is not None and math.isfinite(value) and low <= value <= high


def exif_entries(exif: ExifInfo) -> list[Entry]:
    """The EXIF IFD's entries (code, type, count, value) for what ``exif`` knows; values no tag can
    hold (an ExifInfo built by hand with NaN, infinity or a negative time) are left out."""
    entries: list[Entry] = [(36864, "X", 4, b"0231")]  # ExifVersion
    if exif.exposure_time and _usable(exif.exposure_time, 1e-7, 1e6):
        entries.append((33434, "2I", 1, rational(exif.exposure_time)))
    if exif.f_number and _usable(exif.f_number, 0.1, 1e4):
        entries.append((33437, "2I", 1, rational(exif.f_number)))
    if exif.iso and _usable(exif.iso, 1.0, 2.0**32 - 1):
        entries.append((34855, "H", 1, int(min(round(exif.iso), 65535))))  # ISOSpeedRatings
        if exif.iso > 65535:  # EXIF 2.3: SensitivityType 2 says RecommendedExposureIndex holds it
            entries += [(34864, "H", 1, 2), (34866, "I", 1, int(round(exif.iso)))]
    if exif.datetime:
        entries.append((36867, "s", 0, ascii_text(exif.datetime)))  # DateTimeOriginal
    if exif.exposure_bias is not None and _usable(exif.exposure_bias, -1e4, 1e4):
        entries.append((37380, "2i", 1, rational(exif.exposure_bias, signed=True)))
    if exif.focal_length and _usable(exif.focal_length, 1e-3, 1e6):
        entries.append((37386, "2I", 1, rational(exif.focal_length)))
    if exif.lens:
        entries.append((42036, "s", 0, ascii_text(exif.lens)))  # LensModel
    return sorted(entries)


def picture_entries(size: tuple[int, int] | None = None, jpeg: bool = False) -> list[Entry]:
    """The EXIF IFD entries a rendered sRGB picture adds to :func:`exif_entries`, as EXIF 2.3 asks:
    its colour space; for JPEG and PNG its (width, height) ``size`` (a TIFF has its own), and for
    JPEG the order of its components (Y, Cb, Cr)."""
    entries: list[Entry] = [(40960, "X", 4, b"0100"), (40961, "H", 1, 1)]  # FlashpixVersion, ColorSpace sRGB
    if size is not None:
        entries += [(40962, "I", 1, int(size[0])), (40963, "I", 1, int(size[1]))]  # PixelX/YDimension
    if jpeg:
        entries.append((37121, "X", 4, bytes((1, 2, 3, 0))))  # ComponentsConfiguration
    return entries


def _encode_ifd(entries: list[Entry], offset: int, order: str) -> bytes:
    """One TIFF IFD at file ``offset``: entries, a zero next-IFD pointer, then the values that do
    not fit in an entry's four bytes (each on a word boundary)."""
    head = struct.calcsize(f"{order}H") + 12 * len(entries) + 4
    table, data = [struct.pack(f"{order}H", len(entries))], b""
    for code, kind, count, value in entries:
        type_code, fmt = _TYPES[kind]
        if kind == "s":
            payload = str(value).encode("ascii") + b"\0"
            count = len(payload)
        elif kind == "X":
            payload = value if isinstance(value, bytes) else bytes(cast(Iterable[int], value))
        else:
            values = value if isinstance(value, tuple) else (value,)
            payload = struct.pack(f"{order}{len(values)}{fmt[-1]}", *values)
        if len(payload) <= 4:
            table.append(struct.pack(f"{order}HHI", code, type_code, count) + payload.ljust(4, b"\0"))
        else:
            table.append(struct.pack(f"{order}HHII", code, type_code, count, offset + head + len(data)))
            data += payload + b"\0" * (len(payload) & 1)
    return b"".join(table) + struct.pack(f"{order}I", 0) + data


def append_exif_ifd(f: BinaryIO, entries: list[Entry]) -> None:
    """Append an EXIF IFD to a classic TIFF (a seekable stream open for reading and writing) and
    turn IFD0's placeholder entry (:data:`EXIF_PLACEHOLDER`) into the ExifIFD pointer (a LONG) to it."""
    f.seek(0)
    order = {b"II": "<", b"MM": ">"}[f.read(2)]
    _, ifd0 = struct.unpack(f"{order}HI", f.read(6))
    f.seek(ifd0)
    (count,) = struct.unpack(f"{order}H", f.read(2))
    for i in range(count):
        code, _, _ = struct.unpack(f"{order}HHI", f.read(8))
        if code == _PLACEHOLDER:
            entry_at = ifd0 + 2 + 12 * i
            break
        f.read(4)
    else:
        raise ValueError("no placeholder entry for the EXIF IFD")
    end = f.seek(0, 2)
    start = end + (end & 1)
    f.write(b"\0" * (start - end) + _encode_ifd(entries, start, order))
    f.seek(entry_at)
    f.write(struct.pack(f"{order}HHII", _EXIF_IFD, _TYPES["I"][0], 1, start))
