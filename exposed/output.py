"""Writing output files so that a reader never sees half a file.

Each file is written to a temporary name in the destination folder and renamed over the final name
only once it is complete, so an interrupted run leaves either the old file or the new one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import imageio.v3 as iio
import numpy as np


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temporary_path)`` and move the result to ``path``; remove the temporary on failure."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 or uint16 image atomically; the format follows the file suffix."""
    return atomic_write(path, lambda tmp: iio.imwrite(tmp, image, extension=Path(path).suffix))
