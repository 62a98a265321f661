"""A camera's own noise calibration: the profile file ``exposed calibrate`` writes and
``enhance --profile``, ``info --profile`` and ``train --profile`` read.

The file is JSON (``"format": "exposed-noise-profile"``, version 1), every figure in the camera's
digital numbers (DN) and per CFA site in exposed's packed order (R, G on red rows, G on blue rows, B):

- ``white``, ``black``: the levels the frames state; ``width``, ``height``: the mosaic's size.
- ``isos``: one entry per ISO calibrated: ``offset`` (the true black minus the stated one),
  ``read_sigma`` (pixel read noise without row noise or rounding), ``row_sigma``, ``tukey_lambda``
  and ``tukey_scale`` (the ELD read-noise shape), ``K`` (DN per electron from flat pairs, or null)
  and how many ``dark_frames`` and ``flat_pairs`` went into it.
- ``gain_fit``: ``log K = slope * log ISO + intercept`` over the ISOs with flats (null without).
- ``hot_pixels``: [row, column] of photosites far above black in every dark frame.

Between calibrated ISOs the read and row noise are interpolated log-linearly in ISO (ELD found them
log-linear in the gain, which is proportional to ISO); outside, the nearest ISO's figures are used
and the reason noted.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from exposed.io.atomic import atomic_write

if TYPE_CHECKING:  # only sampling for training needs torch; reading a profile for a photo does not
    import torch

    from exposed.sensor.noise import NoiseModel, NoiseParams

FORMAT = "exposed-noise-profile"
VERSION = 1


@dataclass(frozen=True)
class IsoFit:
    """The noise of one ISO setting, in DN; per-site tuples in packed order."""

    iso: float
    offset: tuple[float, ...]
    read_sigma: tuple[float, ...]
    row_sigma: float
    tukey_lambda: float
    tukey_scale: float
    K: tuple[float, ...] | None = None
    dark_frames: int = 1
    flat_pairs: int = 0


@dataclass(frozen=True)
class IsoNoise:
    """What a file shot at one ISO gets from a calibration, in normalised units (black 0, white 1),
    except ``offset`` (DN per site, to add to the stated black level)."""

    gains: tuple[float, ...] | None
    read_vars: tuple[float, ...]
    offset: tuple[float, ...]
    name: str
    note: str | None = None


@dataclass(frozen=True)
class SensorCalibration:
    """A camera's calibration (see the module docstring for the file's fields)."""

    make: str | None
    model: str | None
    white: float
    black: tuple[float, ...]
    width: int
    height: int
    isos: tuple[IsoFit, ...]
    gain_fit: tuple[float, float] | None = None
    hot_pixels: tuple[tuple[int, int], ...] = field(default=())
    path: str | None = None  # where it was read from, for reports

    @property
    def scale(self) -> float:
        """White minus black: the DN of a normalised 1.0."""
        return self.white - sum(self.black) / len(self.black)

    @property
    def label(self) -> str:
        return f"camera profile {Path(self.path).name}" if self.path else "camera profile"

    def k_at(self, iso: float) -> float | None:
        """System gain in DN per electron at an ISO, from the fit (None without flat frames)."""
        if self.gain_fit is None:
            return None
        slope, intercept = self.gain_fit
        return math.exp(slope * math.log(iso) + intercept)

    def at_iso(self, iso: float | None) -> IsoNoise:
        """The noise of a file shot at ``iso`` (the first calibrated ISO when the file has none)."""
        fits = self.isos
        note = None
        if not iso:
            iso, note = fits[0].iso, f"the file has no ISO; the profile's ISO {fits[0].iso:g} was used"
        elif not fits[0].iso <= iso <= fits[-1].iso and len(fits) > 1 or len(fits) == 1 and iso != fits[0].iso:
            note = f"ISO {iso:g} is outside the calibrated {fits[0].iso:g} to {fits[-1].iso:g}: the nearest used"
        read_sigma, row_sigma, nearest = self._interpolated(iso)
        s = self.scale
        read_vars = tuple((r**2 + row_sigma**2 + 1.0 / 12.0) / s**2 for r in read_sigma)
        k = self.k_at(iso)
        gains = None if k is None else tuple(k / s for _ in range(4))
        return IsoNoise(gains, read_vars, nearest.offset, f"{self.label} at ISO {iso:g}", note)

    def _interpolated(self, iso: float) -> tuple[tuple[float, ...], float, IsoFit]:
        """Read sigma per site and row sigma at ``iso``, log-linear between the calibrated ISOs, and
        the nearest calibrated ISO (whose black offset a file gets)."""
        fits = self.isos
        nearest = min(fits, key=lambda f: abs(math.log(f.iso / iso)))
        i = bisect_left([f.iso for f in fits], iso)
        if i == 0 or i == len(fits):
            return nearest.read_sigma, nearest.row_sigma, nearest
        lo, hi = fits[i - 1], fits[i]
        w = math.log(iso / lo.iso) / math.log(hi.iso / lo.iso)

        def between(a: float, b: float) -> float:
            return math.exp((1 - w) * math.log(max(a, 1e-9)) + w * math.log(max(b, 1e-9)))

        sigma = tuple(between(a, b) for a, b in zip(lo.read_sigma, hi.read_sigma))
        return sigma, between(lo.row_sigma, hi.row_sigma), nearest

    def sample(self, n: int, model: NoiseModel = "pg", generator: torch.Generator | None = None,
               black: float = 512.0, white: float = 16383.0) -> NoiseParams:
        """n noise settings of this camera for training: ISO log-uniform over the calibrated range,
        figures rescaled from the camera's DN to a frame of the given levels (the normalised noise
        is the camera's)."""
        import torch

        from exposed.sensor.noise import NoiseParams

        if self.gain_fit is None:
            raise ValueError(f"{self.label} has no gain (calibrate it with --flat frames to train on it)")
        lo, hi = math.log(self.isos[0].iso), math.log(self.isos[-1].iso)
        isos = (lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)).exp().tolist()
        to_frame = (white - black) / self.scale
        ks, reads, rows, lams = [], [], [], []
        for iso in isos:
            sigma, row, nearest = self._interpolated(iso)
            k = self.k_at(iso)
            assert k is not None  # gain_fit was checked above
            ks.append(k * to_frame)
            reads.append((sum(sigma) / 4 if model == "pg" else nearest.tukey_scale) * to_frame)
            rows.append(row * to_frame if model == "eld" else 0.0)
            lams.append(nearest.tukey_lambda if model == "eld" else 0.0)
        return NoiseParams.create(K=ks, read_sigma=reads, row_sigma=rows, tukey_lambda=lams, black=black,
                                  white=white, model=model)

    def save(self, path: str | Path) -> Path:
        data: dict[str, Any] = {"format": FORMAT, "version": VERSION, **asdict(self)}
        data.pop("path")
        text = json.dumps(data, indent=1) + "\n"

        def write(tmp: Path) -> None:
            tmp.write_text(text, encoding="utf-8")

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> SensorCalibration:
        """Read a profile; ValueError naming what is wrong with it."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path}: not a readable noise profile ({error})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path}: not an exposed noise profile (made by `exposed calibrate`)")
        if data.get("version") != VERSION:
            raise ValueError(f"{path}: profile version {data.get('version')} is not {VERSION}")
        try:
            isos = tuple(sorted((_iso_fit(f) for f in data["isos"]), key=lambda f: f.iso))
            fit = data.get("gain_fit")
            calibration = cls(data.get("make"), data.get("model"), float(data["white"]),
                              tuple(float(b) for b in data["black"]), int(data["width"]), int(data["height"]),
                              isos, None if fit is None else (float(fit[0]), float(fit[1])),
                              tuple((int(r), int(c)) for r, c in data.get("hot_pixels", [])), str(path))
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: a noise profile with a missing or malformed field ({error})") from None
        if not isos or any(len(f.read_sigma) != 4 or len(f.offset) != 4 or f.iso <= 0 for f in isos):
            raise ValueError(f"{path}: a noise profile needs ISO entries with four sites each")
        return calibration


def _iso_fit(entry: dict[str, Any]) -> IsoFit:
    """One ``isos`` entry of a profile file."""
    def sites(key: str) -> tuple[float, ...]:
        return tuple(float(v) for v in entry[key])

    return IsoFit(float(entry["iso"]), sites("offset"), sites("read_sigma"), float(entry["row_sigma"]),
                  float(entry["tukey_lambda"]), float(entry["tukey_scale"]),
                  None if entry.get("K") is None else sites("K"), int(entry.get("dark_frames", 1)),
                  int(entry.get("flat_pairs", 0)))
