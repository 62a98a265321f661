"""Reading Bayer raw files through LibRaw (rawpy): the mosaic, its levels, colour and orientation.

``with rawpy.imread(path) as raw:`` happens here and nowhere else. Callers get a :class:`RawImage`
or one of a few typed exceptions whose ``str`` is a one-line reason to print beside the file name.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator

import numpy as np
import rawpy

from exposed.imaging.bayer import PATTERNS, cell_offsets
from exposed.imaging.color import D65, SRGB_TO_XYZ, Calibration, calibration_from_srgb
from exposed.io.exif import ExifInfo, dng_calibrations, noise_profile, read_exif, read_tags, unique_camera_model

# Real raw files hold several bits per photosite even losslessly compressed; far less than this
# means a metadata-only stub or a file cut short that LibRaw filled with nothing.
MIN_BITS_PER_PIXEL = 0.5
# The largest picture exposed takes, raw or photo: above the largest sensors made (150 MP) and what a
# 24 GB machine processes in strips and tiles; a file claiming more is refused before allocation.
MAX_MEGAPIXELS = 200.0


class RawError(Exception):
    """A file exposed cannot use. ``str(error)`` is a one-line reason."""


class NotRawError(RawError):
    """Not a raw image LibRaw can read: another format, empty, truncated or corrupt."""


class UnsupportedRawError(RawError):
    """A readable raw that is not a Bayer mosaic (X-Trans, Foveon, demosaiced DNG, film scanner)."""


@dataclass
class RawImage:
    """The Bayer mosaic of a raw file, cropped to the camera's default crop, and what it needs.

    mosaic: (H, W) sensor values, H and W even, Bayer phase unchanged by the crop.
    pattern: Bayer order of the top-left 2x2 cell. black: (2, 2) black level of each cell position.
    white: saturation level. wb: as-shot white-balance multipliers (R, G, B) with green 1.
    cam_to_srgb: (3, 3) camera RGB to linear sRGB for white-balanced data (rows sum to 1).
    xyz_to_cam: (3, 3) the file's colour matrix when it has one. orientation: LibRaw's flip code
    (0 none, 3 rotate 180, 5 rotate 90 counter-clockwise, 6 rotate 90 clockwise).
    calibrations: the camera's colour calibrations for a DNG written from it: a DNG's own pair,
    else one D65 matrix (LibRaw's, or derived from cam_to_srgb).
    """

    path: Path
    mosaic: np.ndarray
    pattern: str
    black: np.ndarray
    white: float
    wb: np.ndarray
    wb_source: str
    daylight_wb: np.ndarray | None
    cam_to_srgb: np.ndarray
    colour_source: str
    xyz_to_cam: np.ndarray | None
    orientation: int
    exif: ExifInfo
    noise_profile: list[tuple[float, float]] | None
    calibrations: tuple[Calibration, ...] = ()
    unique_camera_model: str | None = None

    @property
    def scale(self) -> float:
        """White minus black: the DN value of a normalised 1.0."""
        return float(self.white - self.black.mean())

    def normalised(self) -> np.ndarray:
        """(H, W) float32 with black at 0 and white at 1; values below black are kept (noise is unbiased)."""
        h, w = self.mosaic.shape
        cells = self.mosaic.reshape(h // 2, 2, w // 2, 2).astype(np.float32)
        cells -= self.black.astype(np.float32)[None, :, None, :]
        cells *= np.float32(1.0 / self.scale)
        return cells.reshape(h, w)

    def packed(self) -> np.ndarray:
        """(1, 4, H/2, W/2) float32: :meth:`normalised`, packed in canonical order
        (:func:`exposed.imaging.bayer.pack`), made in one pass from the raw data."""
        h, w = self.mosaic.shape
        out = np.empty((1, 4, h // 2, w // 2), dtype=np.float32)
        for plane, (r, c) in zip(out[0], cell_offsets(self.pattern)):
            np.subtract(self.mosaic[r::2, c::2], np.float32(self.black[r, c]), out=plane, dtype=np.float32)
        out *= np.float32(1.0 / self.scale)
        return out


# Held while one decode silences standard error (outside silenced_stderr): whoever prints to
# standard error from another thread takes it too, so no message of exposed's own is lost.
STDERR_LOCK = threading.RLock()
_silenced = False  # silenced_stderr is in force: decodes need neither the lock nor their own silencing


@contextlib.contextmanager
def silenced_stderr() -> Iterator[None]:
    """For a whole command-line run: file descriptor 2, where LibRaw prints its decoder complaints,
    goes to /dev/null, while Python's ``sys.stderr`` (and so rich, warnings, ``-v`` tracebacks)
    writes to a copy of the original. Decoding then holds no lock and ``-j N`` decodes N files at
    once. Where ``sys.stderr`` is not descriptor 2 (a test runner capturing it) it is left alone."""
    global _silenced
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    original = sys.stderr
    try:
        swap = original is not None and original.fileno() == 2
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both of the last two
        swap = False
    if swap:
        original.flush()
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=original.encoding,
                               errors=original.errors)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
    _silenced = True
    try:
        yield
    finally:
        _silenced = False
        if swap:
            sys.stderr.flush()
            sys.stderr.close()
            sys.stderr = original
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """LibRaw prints decoder complaints straight to file descriptor 2; keep them off the user's terminal."""
    if _silenced:
        yield
        return
    with STDERR_LOCK:
        try:
            saved = os.dup(2)
        except OSError:
            yield
            return
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


_LIBRAW_REASONS = {
    "LibRawFileUnsupportedError": "not a raw format LibRaw can read",
    "LibRawIOError": "truncated or unreadable raw data",
    "LibRawDataError": "corrupt raw data",
    "LibRawRequestForNonexistentImageError": "no raw image in the file",
    "LibRawTooBigError": "image too large for LibRaw",
}


def check_regular_file(path: Path, what: str = "a raw file") -> int:
    """The size of ``path`` if it is a regular file (links followed); else the reason, before any
    open: a FIFO would block for ever and a device (/dev/zero) never ends."""
    try:
        info = path.stat()
    except OSError as error:
        raise NotRawError(error.strerror or "cannot be read") from None
    if stat.S_ISDIR(info.st_mode):
        raise NotRawError(f"is a folder, not {what}")
    if not stat.S_ISREG(info.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode)
                else "a device")
        raise NotRawError(f"is {kind}, not {what}")
    if info.st_size == 0:
        raise NotRawError("empty file")
    return info.st_size


def size_problem(width: int, height: int) -> str | None:
    """Why a picture of this size is refused before its pixels are allocated (None: it is not)."""
    if width * height > MAX_MEGAPIXELS * 1e6:
        return f"too large: {width} x {height} pixels is more than {MAX_MEGAPIXELS:g} megapixels"
    return None


def read_raw(path: str | Path) -> RawImage:
    """Read the Bayer mosaic, levels, colour data, orientation and EXIF of a raw file."""
    path = Path(path)
    size = check_regular_file(path)
    tags = read_tags(path)
    try:
        with _quiet_stderr(), rawpy.imread(str(path)) as raw:
            too_large = size_problem(raw.sizes.raw_width, raw.sizes.raw_height)
            if too_large:
                raise NotRawError(too_large)
            pattern, cell = _bayer_pattern(raw, path, read_exif(path, tags))
            visible = raw.raw_image_visible
            top, left, height, width = default_crop(raw.sizes, visible.shape)
            mosaic = np.array(visible[top:top + height, left:left + width], dtype=np.uint16)
            black = np.asarray(raw.black_level_per_channel, dtype=np.float64)[cell]
            white = float(raw.white_level)
            as_shot = _white_balance(raw.camera_whitebalance)
            daylight = _white_balance(raw.daylight_whitebalance)
            cam_to_srgb, colour_source, xyz_to_cam = _colour(raw)
            orientation = int(raw.sizes.flip)
            libraw_other = getattr(raw, "other", None)
    except rawpy.LibRawError as error:
        reason = _LIBRAW_REASONS.get(type(error).__name__, "not a readable raw file")
        small = _tiny_image(tags)
        raise NotRawError(f"too small to read ({small}; LibRaw needs at least 22 pixels a side)" if small
                          else reason) from None
    if mosaic.size == 0:
        raise NotRawError("no image data (a metadata-only or truncated file)")
    if not np.all(np.isfinite(black)) or not np.isfinite(white) or white <= black.max():
        raise NotRawError(f"its levels leave no range for light: black {black.max():g}, white {white:g}")
    if size * 8 < MIN_BITS_PER_PIXEL * mosaic.size:
        raise NotRawError("no image data (a metadata-only or truncated file)")
    if mosaic.min() == mosaic.max():
        level = float(mosaic.min())
        what = ("every photosite is saturated (a completely overexposed frame)" if level >= white else
                "every photosite is at the black level (no light reached the sensor)" if level <= black.min() else
                "every photosite holds the same value")
        raise NotRawError(f"{what}: nothing to enhance")
    if as_shot is not None:
        wb, wb_source = as_shot, "as shot"
    elif daylight is not None:
        wb, wb_source = daylight, "daylight"
    else:
        wb, wb_source = np.ones(3), "none"
    calibrations = dng_calibrations(tags) or (
        (Calibration(D65, xyz_to_cam),) if xyz_to_cam is not None
        else (calibration_from_srgb(cam_to_srgb, daylight if daylight is not None else wb),))
    return RawImage(path, mosaic, pattern, black, white, wb, wb_source, daylight, cam_to_srgb, colour_source,
                    xyz_to_cam, orientation, read_exif(path, tags, libraw_other), noise_profile(tags),
                    calibrations, unique_camera_model(tags))


def _tiny_image(tags: dict) -> str | None:
    """"W x H pixels" when the file's TIFF tags describe no image of 22 pixels a side (LibRaw's least)."""
    sizes = []
    for name, tag in tags.items():
        if name.endswith(("ImageWidth", "ImageLength")):
            values = getattr(tag, "values", None)
            if isinstance(values, list) and values and isinstance(values[0], int):
                sizes.append((name.rsplit(" ", 1)[0], name.endswith("Width"), values[0]))
    images: dict[str, dict[bool, int]] = {}
    for ifd, is_width, value in sizes:
        images.setdefault(ifd, {})[is_width] = value
    whole = [(d[True], d[False]) for d in images.values() if True in d and False in d]
    if whole and all(min(w, h) < 22 for w, h in whole):
        w, h = max(whole)
        return f"{w} x {h} pixels"
    return None


def _dng_refusal(path: Path) -> str | None:
    """Why a DNG's own tags say it holds no 2x2 Bayer mosaic; None when they describe one (or
    cannot be parsed, leaving the decision to LibRaw).

    LibRaw's view of a broken colour filter is not always the same from one decode to the next
    (it can depend on what it decoded before: uninitialised state), so for a DNG the tags decide:
    the same file always gets the same line, wherever it stands in a batch."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            pages = list(tif.pages)
            for page in list(pages):
                pages += list(getattr(page, "pages", None) or [])
            kinds = [(int(p.photometric), p.tags.get(33421), p.tags.get(33422)) for p in pages
                     if isinstance(p, tifffile.TiffPage)]
    except Exception:  # tifffile's many errors on a broken file: LibRaw may still read it
        return None
    cfa = [(dims, pattern) for kind, dims, pattern in kinds if kind == 32803]
    if not cfa:
        return "a linear DNG: already demosaiced, so there is no Bayer mosaic to denoise; not supported"
    dims, pattern = cfa[0]
    shape = tuple(dims.value) if dims is not None and isinstance(dims.value, tuple) else None
    if shape is not None and shape != (2, 2):
        return f"a {'x'.join(map(str, shape))} colour filter (X-Trans or similar); only 2x2 Bayer sensors are supported"
    values = pattern.value if pattern is not None else None
    if not isinstance(values, bytes | tuple) or sorted(values) != [0, 1, 1, 2] or \
            "".join("RGB"[v] for v in values) not in PATTERNS:
        return "a DNG whose colour filter tags (CFAPattern) are missing or corrupt: no Bayer mosaic to read"
    return None


def _bayer_pattern(raw: rawpy.RawPy, path: Path, exif: ExifInfo) -> tuple[str, np.ndarray]:
    """The 2x2 colour filter's letters (``RGGB``...) and its colour indices, or the reason there is none."""
    pattern: np.ndarray | None
    try:
        pattern = raw.raw_pattern
    except NotImplementedError:  # rawpy: a filter code it has no pattern for
        pattern = np.zeros((0, 0), dtype=np.uint8)
    if path.suffix.lower() == ".dng":
        refusal = _dng_refusal(path)
        if refusal:
            raise UnsupportedRawError(refusal)
    if pattern is not None and pattern.size == 0:
        raise UnsupportedRawError("a colour filter layout exposed cannot read (not a 2x2 Bayer mosaic)")
    if pattern is None or raw.num_colors not in (3, 4):
        maker = f"{exif.make or ''} {exif.model or ''}".lower()
        if "scan" in maker:
            what = f"a film scanner file ({exif.model}), not a camera raw"
        else:
            what = "not a Bayer mosaic (a Foveon or other full-colour sensor)"
        raise UnsupportedRawError(f"{what}; not supported")
    if pattern.shape != (2, 2):
        raise UnsupportedRawError(f"{pattern.shape[0]}x{pattern.shape[1]} colour filter (X-Trans or similar); "
                                  "only 2x2 Bayer sensors are supported")
    letters = "".join(chr(raw.color_desc[i]) for i in pattern.flatten())
    if letters not in PATTERNS:
        raise UnsupportedRawError(f"colour filter {letters} is not an RGB Bayer pattern")
    return letters, np.array(pattern)


def default_crop(sizes: rawpy.ImageSizes, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The camera's default crop inside the visible area, moved to even offsets so the Bayer phase holds."""
    h, w = shape
    top, left = sizes.crop_top_margin, sizes.crop_left_margin
    height, width = sizes.crop_height or h, sizes.crop_width or w
    if top + height > h or left + width > w:
        top, left, height, width = 0, 0, h, w
    top_even, left_even = top + (top & 1), left + (left & 1)
    height = (height - (top_even - top)) & ~1
    width = (width - (left_even - left)) & ~1
    return top_even, left_even, height, width


def _white_balance(multipliers: list[float]) -> np.ndarray | None:
    """R, G, B multipliers relative to green, or None where the file has none that make sense."""
    m = np.asarray(multipliers[:3], dtype=np.float64)
    if not np.all(np.isfinite(m)) or m.min() <= 0:
        return None
    return m / m[1]


def _colour(raw: rawpy.RawPy) -> tuple[np.ndarray, str, np.ndarray | None]:
    """Camera to sRGB from whichever matrix the file carries (LibRaw fills one or the other)."""
    xyz_to_cam = np.asarray(raw.rgb_xyz_matrix, dtype=np.float64)[:3]
    if np.all(np.isfinite(xyz_to_cam)) and np.abs(xyz_to_cam).sum() > 0:
        rgb_to_cam = xyz_to_cam @ SRGB_TO_XYZ
        sums = rgb_to_cam.sum(axis=1, keepdims=True)
        if np.all(np.abs(sums) > 1e-9):
            try:
                return np.linalg.inv(rgb_to_cam / sums), "colour matrix (XYZ to camera)", xyz_to_cam
            except np.linalg.LinAlgError:  # a corrupt matrix: the next source
                pass
    cam_to_rgb = np.asarray(raw.color_matrix, dtype=np.float64)[:3, :3]
    sums = cam_to_rgb.sum(axis=1, keepdims=True)
    if np.all(np.isfinite(cam_to_rgb)) and np.all(np.abs(sums) > 1e-9):
        return cam_to_rgb / sums, "camera to sRGB matrix", None
    return np.eye(3), "none (camera colours shown as they are)", None
