"""Reading sRGB photographs (JPEG, PNG, TIFF) for GP mode: pixels upright, in [0, 1], with their EXIF.

Errors are :class:`exposed.io.raw.RawError` subclasses, so a batch reports them like a bad raw.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from exposed.io.exif import ExifInfo, read_exif
from exposed.io.orientation import flip_from_tiff, orient
from exposed.io.raw import RawError, check_regular_file, size_problem

if TYPE_CHECKING:
    from torch import Tensor

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".tif", ".tiff"})


class NotAPhotoError(RawError):
    """Not a JPEG, PNG or TIFF photograph that can be decoded."""


def _check_size(path: Path) -> None:
    """Refuse a photo too large to process from its header, before decoding allocates it (Pillow reads
    only the header here; formats it cannot open are left to the decoder)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        limit = 2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6  # where Pillow refuses to decode
        raise NotAPhotoError(f"too large: more than {limit:.0f} megapixels") from None
    except Exception:  # not something Pillow knows: the decoder says what it is
        return
    problem = size_problem(width, height)
    if problem:
        raise NotAPhotoError(problem)


def read_photo(path: str | Path) -> tuple[Tensor, ExifInfo]:
    """(1, 3, H, W) float32 in [0, 1], turned upright by its EXIF orientation, and its EXIF.
    Grey images are repeated to three channels; alpha is dropped."""
    import imageio.v3 as iio
    import torch  # GP mode's, here so that a raw batch that only checks suffixes does not load it

    path = Path(path)
    check_regular_file(path, "a photo")
    _check_size(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own warnings carry no file name; _check_size spoke
            array = np.asarray(iio.imread(path))
    except FileNotFoundError:
        raise NotAPhotoError("no such file") from None
    except MemoryError:
        raise NotAPhotoError("not enough memory to decode it") from None
    except Exception:  # imageio's plugins raise many kinds of errors for files they cannot decode
        raise NotAPhotoError("not a JPEG, PNG or TIFF photo that can be decoded") from None
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] < 3 or array.dtype not in (np.uint8, np.uint16):
        raise NotAPhotoError(f"unsupported picture layout {array.shape} {array.dtype}; expected 8 or 16-bit RGB")
    peak = 255.0 if array.dtype == np.uint8 else 65535.0
    image = torch.from_numpy(array[:, :, :3].astype(np.float32) / np.float32(peak)).permute(2, 0, 1)[None]
    exif = read_exif(path)
    return orient(image, flip_from_tiff(exif.orientation)).contiguous(), exif
