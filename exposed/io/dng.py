"""Writing DNG files with tifffile: Bayer (CFA) raws and demosaiced LinearRaw images.

A CFA DNG holds the mosaic as LibRaw and raw editors expect a camera's raw: 16-bit samples,
CFAPattern and BlackLevel given for the 2x2 cell at the top-left of the stored image (the stored
image is the active area, so nothing has to be re-aligned to an ActiveArea corner), the camera's
colour calibration (ColorMatrix, CalibrationIlluminant, ForwardMatrix) and AsShotNeutral. The shot
data (exposure, f-number, ISO, lens, date) go in an EXIF IFD (:func:`exposed.io.tags.append_exif_ifd`,
as for TIFF outputs).

The same writer makes every raw fixture of the test suite and the demo's dark raw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence

import numpy as np

from exposed.imaging.bayer import PATTERNS
from exposed.imaging.color import Calibration
from exposed.io.exif import ExifInfo
from exposed.io.atomic import atomic_write
from exposed.io.images import SOFTWARE
from exposed.io.tags import EXIF_PLACEHOLDER, append_exif_ifd, ascii_text, exif_entries, rational, rationals

_CFA_CODES = {"R": 0, "G": 1, "B": 2}


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
    tags.append(EXIF_PLACEHOLDER)

    import tifffile  # here, not at the top: only writing a DNG needs it (15 ms of every start)

    def write(tmp: Path) -> None:
        tifffile.imwrite(tmp, pixels, photometric=34892 if linear else 32803, planarconfig="contig",
                         software=SOFTWARE, extratags=tags, metadata=None, byteorder="<", bigtiff=False)
        with open(tmp, "r+b") as f:
            append_exif_ifd(f, exif_entries(exif))

    return atomic_write(path, write)
