"""Shared test helpers: where the read-only development data lives, and skips when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# The devices this machine has: tests parametrised over them run the same checks on a GPU when
# there is one (the device machine), and on the CPU alone everywhere else.
DEVICES = (["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
           + (["mps"] if torch.backends.mps.is_available() else []))


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or a skip with the reason when this checkout has none."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/data only exists on development machines)")
    return path


def synthetic_dng(path: Path, pattern: str = "RGGB", height: int = 64, width: int = 96, ratio: float = 50.0,
                  black=512.0, white: int = 16383, seed: int = 0, lamps: int = 0, **meta) -> Path:
    """A dark, noisy CFA DNG of a smooth colourful scene, written with exposed's own DNG writer.

    ``lamps``: that many light sources of :func:`exposed.training.night.light_source`, peaking at three times
    what the dark frame can hold, so their cores clip at the white level as street lamps do at night.

    ``meta`` goes to :class:`exposed.io.dng.DngMetadata` (orientation, noise_profile...) or to its
    :class:`exposed.io.exif.ExifInfo` (exposure_time, iso, f_number...).
    """
    import numpy as np
    import torch

    from exposed.demo import write_synthetic_dng
    from exposed.io.dng import DngMetadata
    from exposed.io.exif import ExifInfo
    from exposed.sensor.cameras import CAMERAS
    from exposed.sensor.noise import NoiseParams

    g = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, height)[:, None]
    x = torch.linspace(0, 1, width)[None, :]
    scene = torch.stack([0.2 + 0.6 * x.expand(height, width), 0.3 + 0.4 * y.expand(height, width),
                         0.5 + 0.3 * torch.sin(6 * x + 3 * y)])[None].clamp(0, 1)
    lights = None
    if lamps:
        from exposed.training.night import light_source

        lights = sum(light_source(height, width, 3.0 * ratio, g) for _ in range(lamps))[None]
    black_cell = np.broadcast_to(np.asarray(black, dtype=np.float64), (2, 2))
    scale = white - black_cell.mean()
    a7s2 = CAMERAS["sony-a7s2"].at_iso(3200)
    noise = NoiseParams.create(K=a7s2.K * scale / a7s2.scale, read_sigma=a7s2.read_sigma * scale / a7s2.scale,
                               black=float(black_cell.mean()), white=white)
    shot = {k: meta.pop(k) for k in list(meta)
            if k in ExifInfo.__dataclass_fields__ and k not in DngMetadata.__dataclass_fields__}
    exif = meta.pop("exif", None) or ExifInfo(**{"make": "Sony", "model": "ILCE-7SM2", **shot})
    write_synthetic_dng(path, scene, ratio, noise, pattern, g, gains=(2.0, 1.0, 1.6), lights=lights,
                        black_cell=black_cell, exif=exif, **meta)
    return path


_TINY_MODELS: dict[str, bytes] = {}


def tiny_model(path: Path, kind: str = "diffusion") -> Path:
    """A small, untrained model file in the shipped format (for fast CLI tests). Every call of a
    kind writes the same bytes (the first file's, copied: a file saved again differs, its archive
    names the temporary file it was written as), so the CPU runtime converts each kind once per
    test session, not once per test."""
    if kind not in _TINY_MODELS:
        import torch

        from exposed.denoise.checkpoint import export_model
        from exposed.io.checkpoint import save_checkpoint
        from exposed.denoise.config import ModelConfig
        from exposed.denoise.model import ExposureModel

        torch.manual_seed(0)
        model = ExposureModel(ModelConfig("unet", 4, kind, steps=1))
        save_checkpoint(path, export_model({"model": model.state_dict(), "model_config": model.config.to_dict(),
                                            "train": {"config": {"ratio_low": 1.0, "ratio_high": 300.0}}}))
        _TINY_MODELS[kind] = path.read_bytes()
    path.write_bytes(_TINY_MODELS[kind])
    return path


def tiny_reference(path: Path) -> Path:
    """A small, untrained GP-mode reference network in the shipped format."""
    import torch

    from exposed.gp.reference import ReferenceNet, save_reference

    torch.manual_seed(0)
    return save_reference(path, ReferenceNet(width=4), {"note": "untrained, for tests"})


def broken_files(folder: Path) -> list[Path]:
    """A raw cut short, an empty raw and a JPEG renamed .ARW, beside a good 256 x 256 DNG (good.dng)."""
    import imageio.v3 as iio
    import numpy as np

    good = synthetic_dng(folder / "good.dng", height=256, width=256)
    cut = folder / "cut.dng"
    cut.write_bytes(good.read_bytes()[:4000])
    empty = folder / "empty.nef"
    empty.write_bytes(b"")
    fake = folder / "holiday.ARW"
    iio.imwrite(fake, np.zeros((16, 16, 3), np.uint8), extension=".jpg")
    return [cut, empty, fake]


@pytest.fixture(autouse=True)
def openvino_cache(tmp_path_factory, monkeypatch):
    """Models converted for the CPU runtime go to one folder for the session, not the user's cache."""
    monkeypatch.setenv("EXPOSED_CACHE", str(tmp_path_factory.getbasetemp() / "exposed-cache"))


def imports_torch(*commands: list[str]) -> tuple[bool, str]:
    """Run ``exposed`` commands one after another in a fresh interpreter, each expected to exit 0:
    whether torch was imported by then, and what they wrote to stderr (issue 18: torch's import
    alone takes about a second, so a mode that needs none must not pay it)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from exposed.cli import main\n"
            f"for command in {[list(map(str, c)) for c in commands]!r}:\n"
            "    try:\n"
            "        main(command)\n"
            "    except SystemExit as done:\n"
            "        assert done.code == 0, done.code\n"
            "print('torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip() == "True", done.stderr
