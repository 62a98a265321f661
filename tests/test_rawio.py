import numpy as np
import pytest
import rawpy

from exposed.imaging.bayer import PATTERNS, pack
from exposed.io.raw import NotRawError, UnsupportedRawError, read_raw

from conftest import broken_files, shared_file, synthetic_dng


@pytest.mark.parametrize("pattern", PATTERNS)
def test_levels_and_cfa_of_every_bayer_order(tmp_path, pattern):
    black = np.array([[510.0, 512.0], [514.0, 516.0]])
    path = synthetic_dng(tmp_path / f"{pattern}.dng", pattern, black=black, white=15000, exposure_time=0.01)
    raw = read_raw(path)
    assert raw.pattern == pattern
    np.testing.assert_array_equal(raw.black, black)
    assert raw.white == 15000
    with rawpy.imread(str(path)) as reference:
        np.testing.assert_array_equal(raw.mosaic, reference.raw_image_visible)
        # Each photosite's black level follows its colour, as LibRaw reports per colour.
        colours = reference.raw_colors_visible[:2, :2]
        np.testing.assert_array_equal(raw.black, np.asarray(reference.black_level_per_channel)[colours])
    norm = raw.normalised()
    assert norm.dtype == np.float32
    np.testing.assert_allclose(norm[0, 0], (raw.mosaic[0, 0] - black[0, 0]) / (15000 - black.mean()), rtol=1e-6)
    # Packed straight from the raw data: the normalised frame packed, to the bit.
    packed = raw.packed()
    assert packed.dtype == np.float32
    np.testing.assert_array_equal(packed, pack(norm[None, None], pattern))


def test_white_balance_and_colour_come_from_the_file(tmp_path):
    raw = read_raw(synthetic_dng(tmp_path / "a.dng"))
    np.testing.assert_allclose(raw.wb, [2.0, 1.0, 1.6], rtol=1e-4)
    np.testing.assert_allclose(raw.cam_to_srgb.sum(axis=1), 1.0, rtol=1e-6)
    assert raw.exif.make == "Sony" and raw.exif.model == "ILCE-7SM2"


def test_real_dng_with_a_crop_keeps_the_bayer_phase():
    raw = read_raw(shared_file("raw", "blackmagic-pocket-4k.dng"))
    assert raw.pattern == "RGGB" and raw.mosaic.shape == (2160, 4096)
    assert raw.black.tolist() == [[512, 512], [512, 512]] and raw.white == 65535
    with rawpy.imread(str(shared_file("raw", "blackmagic-pocket-4k.dng"))) as reference:
        s = reference.sizes  # the crop starts at (8, 16): even, so the phase is unchanged
        top, left = s.crop_top_margin, s.crop_left_margin
        np.testing.assert_array_equal(raw.mosaic, reference.raw_image_visible[top:top + 2160, left:left + 4096])


def test_grbg_sensor_and_orientation_of_real_files():
    assert read_raw(shared_file("raw", "kodak-dc50.kdc")).pattern == "GRBG"
    pixel = read_raw(shared_file("raw", "pixel7-dark-frame.dng"))
    assert pixel.orientation == 5 and pixel.noise_profile is not None and len(pixel.noise_profile) == 3


@pytest.mark.parametrize("name,kind,words", [
    ("canon-eos-6d-linear.dng", UnsupportedRawError, "linear DNG"),
    ("nikon-coolscan-scanner.nef", UnsupportedRawError, "film scanner"),
])
def test_non_bayer_files_say_what_they_are(name, kind, words):
    with pytest.raises(kind, match=words) as info:
        read_raw(shared_file("raw", name))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["CanonRaw.cr2", "CanonRaw.cr3", "DNG.dng", "FujiFilm.raf", "Issue247-1.nef",
                                  "Nikon.nef", "Panasonic.rw2", "Sigma.x3f"])
def test_stub_files_are_refused_with_a_reason(name):
    with pytest.raises(NotRawError) as info:
        read_raw(shared_file("raw", "stubs", name))
    assert str(info.value) and "\n" not in str(info.value)


def test_broken_files(tmp_path):
    cut, empty, fake = broken_files(tmp_path)
    for path, words in ((cut, "truncated|no image data|corrupt"), (empty, "empty"), (fake, "not a raw"),
                        (tmp_path / "missing.nef", "No such file")):
        with pytest.raises(NotRawError, match=words):
            read_raw(path)


def test_a_run_silences_libraw_once_and_decodes_without_a_lock():
    """Under silenced_stderr, what C code writes to descriptor 2 (LibRaw's complaints) is dropped,
    what Python writes to sys.stderr (exposed's messages) arrives, and a decode's own silencing
    no longer waits for the print lock, so parallel jobs decode at once."""
    import subprocess
    import sys

    code = (
        "import os, sys, threading\n"
        "from exposed.io.raw import STDERR_LOCK, _quiet_stderr, silenced_stderr\n"
        "with silenced_stderr():\n"
        "    os.write(2, b'libraw complains\\n')\n"
        "    print('exposed says', file=sys.stderr)\n"
        "    held, release = threading.Event(), threading.Event()\n"
        "    def hold():\n"
        "        with STDERR_LOCK:\n"
        "            held.set(); release.wait(10)\n"
        "    t = threading.Thread(target=hold); t.start(); held.wait(10)\n"
        "    done = threading.Event()\n"
        "    def decode():\n"
        "        with _quiet_stderr():\n"
        "            done.set()\n"
        "    threading.Thread(target=decode).start()\n"
        "    print('decoded while the lock was held' if done.wait(5) else 'blocked', file=sys.stderr)\n"
        "    release.set(); t.join()\n"
        "os.write(2, b'restored\\n')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines() == ["exposed says", "decoded while the lock was held", "restored"]
