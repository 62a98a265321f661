"""Writing DNG files with tifffile: Bayer (CFA) raws and demosaiced LinearRaw images.

A CFA DNG holds the mosaic as LibRaw and raw editors expect a camera's raw: 16-bit samples,
CFAPattern and BlackLevel given for the 2x2 cell at the top-left of the stored image (the stored
image is the active area, so nothing has to be re-aligned to an ActiveArea corner), the camera's
colour calibration (ColorMatrix, CalibrationIlluminant, ForwardMatrix) and AsShotNeutral. The shot
data (exposure, f-number, ISO, lens, date) go in an EXIF IFD, which tifffile does not write (it
filters the ExifIFD pointer out of extra tags): IFD0 gets a placeholder entry with the next tag
code, which sorts to the same place, and once the EXIF IFD is appended at the end of the file the
placeholder becomes the ExifIFD pointer to it, the TIFF way.

The same writer makes every raw fixture of the test suite and the demo's dark raw.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterable, Sequence
from typing import cast

import numpy as np
import tifffile

from exposed.imaging.bayer import PATTERNS
from exposed.imaging.color import Calibration
from exposed.io.exif import ExifInfo
from exposed.io.atomic import atomic_write
from exposed.io.images import SOFTWARE
from exposed.io.tags import Entry, ascii_text, exif_entries, rational, rationals

_CFA_CODES = {"R": 0, "G": 1, "B": 2}
_EXIF_IFD = 34665
_PLACEHOLDER = _EXIF_IFD + 1  # no tag is written between the two codes, so IFD0 stays sorted
# TIFF field types: code and the struct format of one value.
_TYPES = {"B": (1, "B"), "s": (2, "s"), "H": (3, "H"), "I": (4, "I"), "2I": (5, "2I"), "X": (7, "B"),
          "2i": (10, "2i"), "d": (12, "d")}


@dataclass
class DngMetadata:
    """What a DNG says besides its pixels; levels in the file's own DN.

    orientation is a TIFF Orientation value (1 upright, 3 rotated 180, 6 and 8 quarter turns).
    ``noise_reduction_applied`` is None (unknown: leave the tag out), 0 (none) or 1 (fully denoised:
    an editor should not denoise again). ``description`` goes in ImageDescription.
    """

    pattern: str = "RGGB"  # ignored for linear (3-sample) images
    black: np.ndarray = field(default_factory=lambda: np.zeros((2, 2)))
    white: int = 65535
    calibrations: Sequence[Calibration] = ()
    as_shot_neutral: np.ndarray | None = None  # reciprocal white-balance multipliers (R, G, B)
    unique_camera_model: str | None = None  # default: make and model
    orientation: int = 1
    exif: ExifInfo = field(default_factory=ExifInfo)
    noise_profile: list[tuple[float, float]] | None = None
    baseline_exposure: float = 0.0
    noise_reduction_applied: float | None = None
    description: str | None = None
    original_name: str | None = None


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


def _append_exif_ifd(path: Path, entries: list[Entry]) -> None:
    """Append an EXIF IFD to a classic TIFF and turn IFD0's placeholder entry into the ExifIFD
    pointer (a LONG) to it."""
    with open(path, "r+b") as f:
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
            raise ValueError(f"{path}: no placeholder entry for the EXIF IFD")
        end = f.seek(0, 2)
        start = end + (end & 1)
        f.write(b"\0" * (start - end) + _encode_ifd(entries, start, order))
        f.seek(entry_at)
        f.write(struct.pack(f"{order}HHII", _EXIF_IFD, _TYPES["I"][0], 1, start))


def write_dng(path: str | Path, pixels: np.ndarray, meta: DngMetadata) -> Path:
    """Write a DNG atomically: a (H, W) uint16 Bayer mosaic as a CFA raw, or an (H, W, 3) uint16
    camera-RGB image (demosaiced, not white-balanced) as a LinearRaw one."""
    if pixels.dtype != np.uint16 or not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        raise ValueError("a DNG needs a (H, W) or (H, W, 3) uint16 array")
    linear = pixels.ndim == 3
    if not linear and meta.pattern not in PATTERNS:
        raise ValueError(f"unsupported Bayer pattern {meta.pattern!r}")
    if not meta.calibrations:
        raise ValueError("a colour DNG needs at least one colour calibration (ColorMatrix1)")
    exif = meta.exif
    make, model = exif.make, exif.model
    if not (make or model) and meta.unique_camera_model and " " in meta.unique_camera_model:
        make, model = meta.unique_camera_model.split(" ", 1)  # as LibRaw reads a DNG without them
    unique = meta.unique_camera_model or " ".join(v for v in (make, model) if v) or "unknown camera"
    tags: list[tuple[int, str, int, object, bool]] = [(code, "s", 0, ascii_text(value), True)
                                                      for code, value in ((271, make), (272, model)) if value]
    tags += [
        (274, "H", 1, meta.orientation, True),
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),  # DNGBackwardVersion
        (50708, "s", 0, ascii_text(unique), True),  # UniqueCameraModel
        (50730, "2i", 1, rational(meta.baseline_exposure, signed=True), True),  # BaselineExposure
    ]
    if linear:
        tags += [(50713, "H", 2, (1, 1), True), (50714, "2I", 3, rationals(np.zeros(3)), True),
                 (50717, "I", 3, (int(meta.white),) * 3, True)]
    else:
        black = np.broadcast_to(np.asarray(meta.black, dtype=np.float64), (2, 2))
        tags += [
            (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
            (33422, "B", 4, tuple(_CFA_CODES[c] for c in meta.pattern), True),  # CFAPattern
            (50710, "B", 3, (0, 1, 2), True),  # CFAPlaneColor
            (50711, "H", 1, 1, True),  # CFALayout: rectangular
            (50713, "H", 2, (2, 2), True),  # BlackLevelRepeatDim
            (50714, "2I", 4, rationals(black), True),  # BlackLevel, row by row from the top-left cell
            (50717, "I", 1, int(meta.white), True),  # WhiteLevel
        ]
    for i, calibration in enumerate(meta.calibrations[:2]):
        tags += [(50721 + i, "2i", 9, rationals(calibration.colour_matrix, signed=True), True),
                 (50778 + i, "H", 1, int(calibration.illuminant), True)]
        if calibration.forward_matrix is not None:
            tags.append((50964 + i, "2i", 9, rationals(calibration.forward_matrix, signed=True), True))
    if meta.as_shot_neutral is not None:
        tags.append((50728, "2I", 3, rationals(meta.as_shot_neutral), True))
    if meta.noise_reduction_applied is not None:
        tags.append((50935, "2I", 1, rational(meta.noise_reduction_applied), True))
    if meta.noise_profile:
        values = tuple(float(v) for pair in meta.noise_profile for v in pair)
        tags.append((51041, "d", len(values), values, True))
    if meta.description:
        tags.append((270, "s", 0, ascii_text(meta.description), True))
    if meta.original_name:
        tags.append((50827, "s", 0, ascii_text(meta.original_name), True))  # OriginalRawFileName
    if exif.datetime:
        tags.append((306, "s", 0, ascii_text(exif.datetime), True))  # DateTime
    tags.append((_PLACEHOLDER, "I", 1, 0, True))  # becomes the ExifIFD pointer once the EXIF IFD is appended

    def write(tmp: Path) -> None:
        tifffile.imwrite(tmp, pixels, photometric=34892 if linear else 32803, planarconfig="contig",
                         software=SOFTWARE, extratags=tags, metadata=None, byteorder="<", bigtiff=False)
        _append_exif_ifd(tmp, exif_entries(exif))

    return atomic_write(path, write)
