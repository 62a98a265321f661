"""Issue 16's cases, each as a shell meets it: one clear line naming the file, the batch goes on,
no traceback, nothing left behind. Every test here failed on the code before that issue."""

import math
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from conftest import synthetic_dng, tiny_model, tiny_reference


def run(*args, timeout=300, **kwargs):
    return subprocess.run([sys.executable, "-m", "exposed", *map(str, args)], capture_output=True, timeout=timeout,
                          **kwargs)


def _one_clean_error(done, name: str) -> bytes:
    """The stderr line about ``name``; asserts there is exactly one and no traceback anywhere."""
    assert b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
    lines = [line for line in done.stderr.splitlines() if line.startswith(b"error:") and name.encode() in line]
    assert len(lines) == 1, done.stderr.decode(errors="replace")
    return lines[0]


def _dng_with_levels(path: Path, black: float, white: int, value: int | None = None) -> Path:
    """A small CFA DNG with the given levels (and, if given, every photosite at ``value``)."""
    from exposed.imaging.color import D65, Calibration
    from exposed.io.dng import DngMetadata, write_dng

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 4000, (64, 96)).astype(np.uint16) if value is None else np.full((64, 96), value, np.uint16)
    return write_dng(path, pixels, DngMetadata("RGGB", np.full((2, 2), black), white,
                                               (Calibration(D65, np.eye(3)),), np.ones(3)))


def test_black_at_the_white_level_is_one_line_and_the_batch_goes_on(tmp_path):
    bad = _dng_with_levels(tmp_path / "flat.dng", 1000, 1000)
    good = synthetic_dng(tmp_path / "good.dng")
    done = run("enhance", bad, good, "-o", f"{tmp_path}/out/", "--mode", "amplify", "--ratio", "10")
    assert done.returncode == 1
    assert b"no range for light" in _one_clean_error(done, "flat.dng")
    assert (tmp_path / "out" / "good.jpg").exists() and not (tmp_path / "out" / "flat.jpg").exists()


def test_infinite_and_nan_exif_values_are_read_as_absent(tmp_path, monkeypatch):
    """ExposureTime and FNumber as infinite or NaN DOUBLEs, an infinite Orientation and
    SensitivityType, BrightnessValue 1e20: the picture is enhanced, its EXIF written without them."""
    import exposed.io.dng as dng

    entries = sorted([(33434, "d", 1, math.inf), (33437, "d", 1, math.nan), (274, "d", 1, math.inf),
                      (34864, "d", 1, math.inf), (37379, "d", 1, 1e20)])
    monkeypatch.setattr(dng, "exif_entries", lambda exif: entries)
    shot = synthetic_dng(tmp_path / "inf.dng")
    from exposed.io.exif import read_exif

    exif = read_exif(shot)
    assert exif.exposure_time is None and exif.f_number is None and exif.orientation is None
    assert exif.brightness is None
    for mode in ("amplify", "gp"):
        done = run("enhance", shot, "-o", tmp_path / f"{mode}.jpg", "--mode", mode,
                   *(["--model", tiny_reference(tmp_path / "ref.pt")] if mode == "gp" else ["--ratio", "10"]))
        assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr
        assert iio.imread(tmp_path / f"{mode}.jpg").shape == (64, 96, 3)


def _png_header_only_large(path: Path, side: int) -> Path:
    """A valid greyscale PNG of side x side black pixels, written row by row (a few hundred KB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_a_photo_too_large_is_refused_before_decoding(tmp_path):
    huge = _png_header_only_large(tmp_path / "huge.png", 15_000)  # 225 MP
    done = run("enhance", huge, "-o", f"{tmp_path}/out/", "--mode", "gp", "--model", tiny_reference(tmp_path / "r.pt"))
    assert done.returncode == 1 and b"too large" in _one_clean_error(done, "huge.png")
    assert b"DecompressionBomb" not in done.stderr


def test_special_files_are_refused_by_type_without_blocking(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    zero = tmp_path / "z.png"
    zero.symlink_to("/dev/zero")
    raw_fifo = tmp_path / "y.dng"
    os.mkfifo(raw_fifo)
    done = run("enhance", fifo, zero, "-o", f"{tmp_path}/out/", "--mode", "gp",
               "--model", tiny_reference(tmp_path / "r.pt"), timeout=60)
    assert done.returncode == 1
    assert b"FIFO" in _one_clean_error(done, "x.png") and b"device" in _one_clean_error(done, "z.png")
    raw = run("enhance", raw_fifo, "-o", f"{tmp_path}/out/", "--mode", "amplify", timeout=60)
    assert raw.returncode == 1 and b"FIFO" in _one_clean_error(raw, "y.dng")


def test_closed_standard_streams_get_a_line(tmp_path):
    shot = synthetic_dng(tmp_path / "a.dng")
    no_stdout = subprocess.run([sys.executable, "-m", "exposed", "enhance", str(shot), "-o", "-", "--mode", "amplify"],
                               stderr=subprocess.PIPE, timeout=120, preexec_fn=lambda: os.close(1))
    assert no_stdout.returncode == 1 and b"Traceback" not in no_stdout.stderr
    assert b"standard output is closed" in no_stdout.stderr
    no_stdin = subprocess.run([sys.executable, "-m", "exposed", "enhance", "-", "-o", str(tmp_path / "x.jpg"),
                               "--mode", "amplify"], capture_output=True, timeout=120,
                              preexec_fn=lambda: os.close(0))
    assert no_stdin.returncode == 1 and b"Traceback" not in no_stdin.stderr
    assert b"standard input is closed" in no_stdin.stderr


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_leave_nothing_behind(tmp_path, sig, code):
    model = tiny_model(tmp_path / "tiny.pt")
    shots = [synthetic_dng(tmp_path / f"big{i}.dng", height=400, width=600, seed=i) for i in range(3)]
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    out.mkdir()
    tmp.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "exposed", "enhance", *map(str, shots), "-o", f"{out}/",
                             "--model", str(model), "--steps", "300"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "TMPDIR": str(tmp)})
    proc.stderr.readline()  # the first picture is done; the next is being computed
    proc.send_signal(sig)
    _, rest = proc.communicate(timeout=600)
    assert proc.returncode == code and b"Traceback" not in rest
    assert not [p for p in out.iterdir() if ".part" in p.name] and list(tmp.iterdir()) == []


def test_sigterm_mid_write_leaves_no_part_file(tmp_path):
    """A signal at moments through the making and writing of a large 16-bit TIFF, once the batch is
    under way (its first, small file done): exit 143 or a finished run, and never a partial file."""
    small = synthetic_dng(tmp_path / "a.dng")
    big = synthetic_dng(tmp_path / "b.dng", height=2000, width=3000)
    out = tmp_path / "out"
    out.mkdir()
    codes = set()
    for delay in (0.0, 0.3, 0.6, 0.9, 1.2, 1.6, 2.0):
        proc = subprocess.Popen([sys.executable, "-m", "exposed", "enhance", str(small), str(big), "-o", f"{out}/",
                                 "--mode", "amplify", "--ratio", "10", "-f", "tiff", "--overwrite"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stderr.readline()
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        codes.add(proc.returncode)
        assert proc.returncode in (0, 143) and b"Traceback" not in err, err
        assert not [p for p in out.iterdir() if ".part" in p.name]
    assert 143 in codes


def test_a_raw_named_like_its_output_is_skipped_and_the_rest_enhanced(tmp_path):
    raw_as_jpg = synthetic_dng(tmp_path / "x.dng").rename(tmp_path / "x.jpg")
    good = synthetic_dng(tmp_path / "good.dng")
    done = run("enhance", raw_as_jpg, good, "--mode", "amplify", "--ratio", "10")
    assert done.returncode == 1 and b"input itself" in _one_clean_error(done, "x.jpg")
    assert (tmp_path / "good.jpg").exists()


def test_names_are_printed_exactly(tmp_path):
    names = ["tab\there.dng", ":thumbs_up:.dng", "[bold]x.dng"]
    paths = [tmp_path / n for n in names]
    for p in paths:
        p.write_bytes(b"not a raw at all" * 10)
    odd = os.fsencode(str(tmp_path)) + b"/caf\xe9.dng"
    with open(odd, "wb") as f:
        f.write(b"not a raw at all" * 10)
    done = subprocess.run([sys.executable, "-m", "exposed", "enhance", *map(str, paths), odd, "--mode", "amplify"],
                          capture_output=True, timeout=120)
    assert done.returncode == 1 and b"Traceback" not in done.stderr
    err = done.stderr.decode()
    assert "tab\\there.dng" in err and ":thumbs_up:.dng" in err and "\N{THUMBS UP SIGN}" not in err
    assert "[bold]x.dng" in err and "caf\\xe9.dng" in err


def test_reasons_a_photographer_understands(tmp_path):
    saturated = _dng_with_levels(tmp_path / "white.dng", 512, 4095, value=4095)
    black = _dng_with_levels(tmp_path / "black.dng", 512, 4095, value=512)
    from exposed.imaging.color import D65, Calibration
    from exposed.io.dng import DngMetadata, write_dng

    tiny = write_dng(tmp_path / "tiny.dng", np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 10,
                     DngMetadata("RGGB", np.zeros((2, 2)), 4095, (Calibration(D65, np.eye(3)),), np.ones(3)))
    singular = write_dng(tmp_path / "singular.dng", np.random.default_rng(0).integers(0, 4000, (64, 96)).astype(
        np.uint16), DngMetadata("RGGB", np.zeros((2, 2)), 4095, (Calibration(D65, np.ones((3, 3))),), np.ones(3)))
    done = run("enhance", saturated, black, tiny, singular, "-o", f"{tmp_path}/out/", "--mode", "amplify",
               "--ratio", "2")
    assert done.returncode == 1
    assert b"saturated" in _one_clean_error(done, "white.dng")
    assert b"black level" in _one_clean_error(done, "black.dng")
    assert b"too small" in _one_clean_error(done, "tiny.dng")
    assert (tmp_path / "out" / "singular.jpg").exists()  # a corrupt colour matrix falls back, it does not fail


def test_a_model_file_that_is_not_one_is_a_usage_error(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "ran"),))

    code = tmp_path / "code.pt"
    code.write_bytes(pickle.dumps(Payload()))
    cut = tmp_path / "cut.pt"
    cut.write_bytes(tiny_model(tmp_path / "good.pt").read_bytes()[:1000])
    reference = tiny_reference(tmp_path / "ref.pt")
    shot = synthetic_dng(tmp_path / "a.dng")
    for model in (code, cut, reference):
        done = run("enhance", shot, "-o", tmp_path / "x.jpg", "--model", model)
        assert done.returncode == 2 and b"Traceback" not in done.stderr, done.stderr
        assert b"not an exposure model" in done.stderr and not (tmp_path / "x.jpg").exists()
    assert not (tmp_path / "ran").exists()


def test_a_corrupt_colour_filter_gets_the_same_answer_whatever_came_before(tmp_path):
    """Issue 16, case 4: DNGs whose colour filter tags are overwritten (the pattern's bytes, its
    type and count, its repeat dimensions) are refused with the same reason alone and after broken
    files in one batch. LibRaw's own answer for such a file depends on what it decoded before."""
    import random

    base = synthetic_dng(tmp_path / "base.dng").read_bytes()
    pattern_at = base.find(struct.pack("<HHI", 33422, 1, 4))  # CFAPattern: 4 BYTEs held in the entry
    dims_at = base.find(struct.pack("<HHI", 33421, 3, 2))  # CFARepeatPatternDim: 2 SHORTs
    assert pattern_at > 0 and dims_at > 0
    rng = random.Random(0)
    shots = []
    for i in range(12):
        data = bytearray(base)
        if i % 3 == 0:
            data[pattern_at + 8:pattern_at + 12] = bytes(rng.randrange(256) for _ in range(4))
        elif i % 3 == 1:
            data[pattern_at + 2:pattern_at + 8] = struct.pack("<HI", rng.choice([3, 4, 7, 12]),
                                                              rng.choice([1, 2, 16, 36, 0xFFFF]))
        else:
            data[dims_at + 8:dims_at + 12] = struct.pack("<HH", rng.choice([0, 1, 4, 6]), rng.choice([0, 1, 4, 6]))
        shots.append(tmp_path / f"cfa{i:02d}.dng")
        shots[-1].write_bytes(bytes(data))
    broken = [tmp_path / f"broken{i}.dng" for i in range(8)]
    for i, path in enumerate(broken):
        path.write_bytes(base[:200 + 500 * i])

    def reasons(done) -> dict[bytes, bytes]:
        assert b"Traceback" not in done.stderr, done.stderr
        return {line.split(b": ", 2)[1]: line.split(b": ", 2)[2] for line in done.stderr.splitlines()
                if line.startswith(b"error:") and b"/cfa" in line}

    alone: dict[bytes, bytes] = {}
    for shot in shots:
        alone.update(reasons(run("enhance", shot, "-o", f"{tmp_path}/alone/", "--mode", "amplify")))
    batch = reasons(run("enhance", *broken, *shots, "-o", f"{tmp_path}/batch/", "--mode", "amplify"))
    assert batch == alone and len(alone) >= 8
