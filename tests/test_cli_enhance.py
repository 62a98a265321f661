"""The enhance and info commands as a shell sees them: exit codes, stderr lines, stdout bytes, files."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from conftest import SHARED, broken_files, imports_torch, shared_file, synthetic_dng, tiny_model


def run(*args, cwd=None, stdin=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "exposed", *map(str, args)], capture_output=True, cwd=cwd,
                          input=stdin, timeout=300, **kwargs)


def _no_partial_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".part" in p.name]


@pytest.fixture
def shots(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    synthetic_dng(folder / "a.dng", exposure_time=1 / 50, iso=3200, f_number=2.8)
    synthetic_dng(folder / "b.dng", pattern="BGGR", seed=1)
    return folder


@pytest.fixture
def model(tmp_path):
    return tiny_model(tmp_path / "tiny.pt")


def test_amplify_a_folder_then_skip_what_exists(shots, tmp_path):
    out = tmp_path / "out"
    first = run("enhance", shots, "-o", f"{out}/", "--mode", "amplify", "--ratio", "50")
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.jpg"]
    assert iio.imread(out / "a.jpg").shape == (64, 96, 3)
    again = run("enhance", shots, "-o", out, "--mode", "amplify")
    assert again.returncode == 0 and b"exists" in again.stderr
    forced = run("enhance", shots, "-o", out, "--mode", "amplify", "--overwrite", "-f", "png", "--bits", "16")
    assert forced.returncode == 0 and (out / "a.png").exists()


def test_amplify_never_imports_torch(shots, tmp_path):
    """Plain brightening is numpy from the raw to the JPEG and the DNG: torch's import (over a
    second) is left to the modes with a network (issue 18)."""
    used_torch, _ = imports_torch(*(["enhance", shots, "-o", f"{tmp_path / 'out'}/", "--mode", "amplify", "-f", fmt]
                                    for fmt in ("jpg", "dng")))
    assert not used_torch
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a-exposed.dng", "a.jpg", "b-exposed.dng", "b.jpg"]


def test_diffusion_and_feedforward_with_a_model_file(shots, model, tmp_path):
    done = run("enhance", shots / "a.dng", "-o", tmp_path / "a.png", "--model", model, "--steps", "2", "-v")
    assert done.returncode == 0, done.stderr
    assert b"noise:" in done.stderr and iio.imread(tmp_path / "a.png").dtype == np.uint8
    twin = tiny_model(tmp_path / "twin.pt", "feedforward")
    assert run("enhance", shots / "a.dng", "-o", tmp_path / "b.tif", "--model", twin, "--mode", "feedforward",
               "-f", "tiff").returncode == 0
    assert iio.imread(tmp_path / "b.tif").dtype == np.uint16


def test_standard_output_carries_only_the_image(shots):
    done = run("enhance", shots / "a.dng", "-o", "-", "--mode", "amplify")
    assert done.returncode == 0
    assert done.stdout[:2] == b"\xff\xd8" and done.stdout[-2:] == b"\xff\xd9"
    assert iio.imread(done.stdout, extension=".jpg").shape == (64, 96, 3)
    piped = run("enhance", "-", "--mode", "amplify", "-f", "png", stdin=(shots / "a.dng").read_bytes())
    assert piped.returncode == 0 and piped.stdout[:4] == b"\x89PNG"


def test_dry_run_writes_nothing(shots):
    done = run("enhance", shots, "--dry-run", "--mode", "amplify")
    assert done.returncode == 0 and b"a.jpg" in done.stderr and b"ISO 3200" in done.stderr
    assert sorted(p.name for p in shots.iterdir()) == ["a.dng", "b.dng"]


def test_every_bad_input_gets_one_line_and_the_batch_goes_on(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    bad = broken_files(folder)
    (tmp_path / "nothing").mkdir()
    stubs = sorted((SHARED / "raw" / "stubs").glob("*")) if (SHARED / "raw" / "stubs").exists() else []
    out = tmp_path / "out"
    done = run("enhance", folder / "good.dng", *bad, *stubs, tmp_path / "nothing", "-o", f"{out}/", "--mode", "amplify")
    assert done.returncode == 1
    errors = [line for line in done.stderr.decode().splitlines() if line.startswith("error:")]
    assert len(errors) == len(bad) + len(stubs) + 1
    assert b"Traceback" not in done.stderr and done.stdout == b""
    for path in [*bad, *stubs]:
        assert any(str(path) in line for line in errors)
    assert (out / "good.jpg").exists() and _no_partial_files(tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["good.jpg"]


def test_non_bayer_files_are_named_with_what_they_are(tmp_path):
    linear = shared_file("raw", "canon-eos-6d-linear.dng")
    done = run("enhance", linear, shared_file("raw", "nikon-coolscan-scanner.nef"), "-o", f"{tmp_path}/",
               "--mode", "amplify")
    assert done.returncode == 1
    assert b"linear DNG" in done.stderr and b"film scanner" in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_read_only_output_folder(shots, tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        done = run("enhance", shots / "a.dng", "-o", out, "--mode", "amplify")
    finally:
        out.chmod(0o755)
    assert done.returncode == 1 and b"permission denied" in done.stderr and list(out.iterdir()) == []


def test_unwritable_output_as_root_too(shots, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    done = run("enhance", shots / "a.dng", "-o", blocker / "x.jpg", "--mode", "amplify")
    assert done.returncode == 1 and done.stderr.count(b"\n") == 1 and b"Traceback" not in done.stderr


def test_usage_errors_exit_2(shots, tmp_path):
    assert run("enhance", shots / "a.dng", "--ratio", "2", "--ev", "1").returncode == 2
    assert run("enhance", shots / "a.dng", shots / "b.dng", "-o", tmp_path / "one.jpg").returncode == 2
    assert run("enhance", shots / "a.dng", "-f", "jpg", "--bits", "16").returncode == 2
    assert run("enhance", shots / "a.dng", "--mode", "sharpen").returncode == 2
    assert run("enhance").returncode == 2
    device = run("enhance", shots / "a.dng", "--device", "gpu0", "-o", tmp_path / "d.jpg")
    assert device.returncode == 2 and b"unknown device 'gpu0'" in device.stderr and not (tmp_path / "d.jpg").exists()


def test_the_program_ends_with_its_commands_status_after_the_exit_handlers_and_all_output(shots, model, tmp_path):
    """The program skips the interpreter's teardown (torch's takes half a second), not what an
    ordinary exit does for the user: the status, the exit handlers, every byte written (stdout
    fully buffered here, as in a pipe; a picture on stdout: test_standard_output_carries_only_the_image)."""
    code = ("import atexit, sys\n"
            "from exposed.cli import entry\n"
            "atexit.register(print, 'handler ran')\n"
            "class Held:\n"
            "    def __del__(self):\n"
            "        print('torn down')\n"  # by the interpreter's teardown, which is skipped
            "held = Held()\n"
            "sys.stdout.write('buffered, ')\n"
            "sys.argv[0] = 'exposed'\n"
            "entry()\n"
            "print('after the end')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}

    def program(*args):
        return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                              timeout=300, env=env)

    done = program("enhance", shots / "a.dng", "-o", tmp_path / "a.png", "--model", model, "--steps", "1")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "buffered, handler ran\n" and iio.imread(tmp_path / "a.png").shape == (64, 96, 3)
    usage = program("enhance", "--no-such-option")
    assert usage.returncode == 2 and "No such option" in usage.stderr
    assert usage.stdout == "buffered, handler ran\n"
    failed = program("enhance", shots / "missing.dng", "-o", tmp_path / "m.png")
    assert failed.returncode == 1 and "missing.dng" in failed.stderr and failed.stdout == "buffered, handler ran\n"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_leaves_no_partial_file_and_exits_130(tmp_path, model, jobs):
    shots = [synthetic_dng(tmp_path / f"big{i}.dng", height=400, width=600, seed=i) for i in range(3)]
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "exposed", "enhance", *map(str, shots), "-o", f"{out}/",
                             "--model", str(model), "--steps", "300", "--jobs", jobs],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            # a shell's background job starts with SIGINT ignored, and Python then
                            # installs no Ctrl-C handler: give the child a terminal's default
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = proc.stderr.readline()  # the first picture is done; the next one is being computed
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=600)
    assert proc.returncode == 130, first + rest
    assert b"Traceback" not in rest and _no_partial_files(out)
    assert 1 <= len(list(out.iterdir())) < 3
    for done in out.iterdir():  # whatever was finished before Ctrl-C is whole
        assert iio.imread(done).shape == (400, 600, 3)


def test_info_json(shots):
    done = run("info", shots / "a.dng", shots / "b.dng", "--json", "--mode", "amplify")
    assert done.returncode == 0
    records = json.loads(done.stdout)
    assert [r["cfa"] for r in records] == ["RGGB", "BGGR"]
    assert records[0]["iso"] == 3200 and records[0]["exposure_time"] == pytest.approx(0.02)
    assert records[0]["black"] == [[512, 512], [512, 512]] and records[0]["ratio"] > 1


def test_info_reports_bad_files_and_exits_1(tmp_path):
    (tmp_path / "x.dng").write_bytes(b"nonsense")
    done = run("info", tmp_path / "x.dng")
    assert done.returncode == 1 and done.stderr.startswith(b"error:") and b"Traceback" not in done.stderr


def test_libraw_isp_gives_the_same_frame_as_exposeds(tmp_path):
    raw = synthetic_dng(tmp_path / "r.dng", orientation=6)
    ours = run("enhance", raw, "-o", tmp_path / "ours.png", "--mode", "amplify", "--ratio", "50")
    theirs = run("enhance", raw, "-o", tmp_path / "theirs.png", "--mode", "amplify", "--ratio", "50", "--isp", "libraw")
    assert ours.returncode == theirs.returncode == 0, theirs.stderr
    a, b = iio.imread(tmp_path / "ours.png"), iio.imread(tmp_path / "theirs.png")
    assert a.shape == b.shape == (96, 64, 3)  # rotated a quarter turn by the file's orientation
    # Two different pipelines (demosaicing, colour): the same picture, not the same pixels.
    assert np.corrcoef(a.astype(float).ravel(), b.astype(float).ravel())[0, 1] > 0.9


def test_python_api_matches_the_command_line(shots, tmp_path):
    import exposed

    image = exposed.enhance(shots / "a.dng", mode="amplify", ratio=50)
    done = run("enhance", shots / "a.dng", "-o", tmp_path / "a.png", "--mode", "amplify", "--ratio", "50")
    assert done.returncode == 0
    np.testing.assert_array_equal(image, iio.imread(tmp_path / "a.png"))


def test_the_output_name_sets_the_format(shots, tmp_path):
    for name, magic in (("x.png", b"\x89PNG"), ("x.tif", b"II*\x00"), ("x.jpeg", b"\xff\xd8")):
        assert run("enhance", shots / "a.dng", "-o", tmp_path / name, "--mode", "amplify").returncode == 0
        assert (tmp_path / name).read_bytes()[:4].startswith(magic)
    clash = run("enhance", shots / "a.dng", "-o", tmp_path / "y.png", "-f", "jpg", "--mode", "amplify")
    assert clash.returncode == 2 and not (tmp_path / "y.png").exists()


def test_strength_zero_is_amplify_bit_for_bit_and_a_half_lies_between(shots, model, tmp_path):
    """Issue 17, item 3: --strength blends the denoised result with plain brightening in linear raw."""
    outputs = {}
    for name, extra in (("amplify", ["--mode", "amplify"]), ("s0", ["--model", model, "--strength", "0"]),
                        ("s1", ["--model", model]), ("half", ["--model", model, "--strength", "0.5"])):
        done = run("enhance", shots / "a.dng", "-o", tmp_path / f"{name}.png", "--bits", "16", "--ratio", "30", *extra)
        assert done.returncode == 0, done.stderr
        outputs[name] = iio.imread(tmp_path / f"{name}.png").astype(np.int64)
    assert (tmp_path / "s0.png").read_bytes() == (tmp_path / "amplify.png").read_bytes()
    assert not np.array_equal(outputs["s1"], outputs["amplify"])
    low, high = np.minimum(outputs["amplify"], outputs["s1"]), np.maximum(outputs["amplify"], outputs["s1"])
    # the blend is in linear raw, before demosaicing and the tone curve: between the two up to rounding
    inside = ((outputs["half"] >= low - 64) & (outputs["half"] <= high + 64)).mean()
    assert inside > 0.99
    assert run("enhance", shots / "a.dng", "--strength", "1.5").returncode == 2


def test_shards_split_a_sorted_batch_with_nothing_twice_or_left_out(tmp_path):
    """Issue 17, item 7: --shard K/N takes the K-th of N slices of the sorted inputs."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(7):
        synthetic_dng(folder / f"s{i}.dng", height=32, width=48, seed=i)
    done_by = {}
    for k in (1, 2, 3):
        out = tmp_path / f"out{k}"
        done = run("enhance", *sorted(folder.iterdir(), reverse=True), "-o", f"{out}/", "--mode", "amplify",
                   "--ratio", "4", "--shard", f"{k}/3")
        assert done.returncode == 0, done.stderr
        done_by[k] = sorted(p.stem for p in out.iterdir())
    assert sorted(sum(done_by.values(), [])) == [f"s{i}" for i in range(7)]
    assert [len(v) for v in done_by.values()] == [2, 2, 3] and done_by[1] == ["s0", "s1"]
    assert run("enhance", folder, "--shard", "4/3").returncode == 2


def test_o_with_a_plain_name_and_several_inputs_makes_that_folder(tmp_path):
    shots = [synthetic_dng(tmp_path / f"{n}.dng") for n in "ab"]
    done = run("enhance", *shots, "-o", tmp_path / "developed", "--mode", "amplify", "--quality", "80")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "developed").iterdir()) == ["a.jpg", "b.jpg"]
    help_text = " ".join(run("enhance", "--help").stdout.decode().split())
    assert "a name ending .jpg, .png, .tif or .dng), - for standard output, or else a folder" in help_text
