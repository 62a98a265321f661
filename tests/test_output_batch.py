import io
import struct
import zlib
from pathlib import Path

import exifread
import numpy as np
import pytest
import tifffile

from exposed.batch.files import expand_inputs, plan_outputs
from exposed.io.exif import ExifInfo
from exposed.io.atomic import atomic_write
from exposed.io.images import image_bytes, save_image


def _read_png16(data: bytes) -> np.ndarray:
    """A minimal reader for the PNGs exposed writes (16-bit RGB, filter 0), independent of the writer."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    w, h, depth, colour = header[:4]
    assert (depth, colour) == (16, 2)
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * 6)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].copy().view(">u2").reshape(h, w, 3).astype(np.uint16)


def test_sixteen_bit_png_and_tiff_round_trip(tmp_path):
    image = np.random.default_rng(0).integers(0, 65536, (17, 23, 3), dtype=np.uint16)
    png = save_image(tmp_path / "a.png", image, "png", ExifInfo(make="Nikon", iso=6400))
    np.testing.assert_array_equal(_read_png16(png.read_bytes()), image)
    from PIL import Image
    with Image.open(png) as reread:  # Pillow reads the eXIf chunk of a 16-bit PNG
        assert reread.getexif()[0x010F] == "Nikon"
    np.testing.assert_array_equal(tifffile.imread(save_image(tmp_path / "a.tif", image, "tiff")), image)


def test_jpeg_carries_the_shots_exif():
    exif = ExifInfo(exposure_time=1 / 30, f_number=2.8, iso=3200, make="Sony", model="ILCE-7SM2",
                    datetime="2026:01:02 03:04:05")
    data = image_bytes(np.zeros((8, 8, 3), np.uint8), "jpg", exif)
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    tags = exifread.process_file(io.BytesIO(data), details=False)
    assert str(tags["Image Make"]) == "Sony" and str(tags["EXIF ISOSpeedRatings"]) == "3200"
    assert str(tags["EXIF ExposureTime"]) == "1/30" and str(tags["Image Orientation"]).startswith("Horizontal")


def test_failed_writes_leave_nothing(tmp_path):
    def broken(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(tmp_path / "out.jpg", broken)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="8 bits"):
        save_image(tmp_path / "x.jpg", np.zeros((4, 4, 3), np.uint16), "jpg")
    assert list(tmp_path.iterdir()) == []


def _touch(*paths: Path) -> None:
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def test_name_clashes_keep_the_source_extension(tmp_path):
    _touch(tmp_path / "a.ARW", tmp_path / "a.NEF", tmp_path / "b.dng")
    found, problems = expand_inputs([str(tmp_path)], recursive=False)
    assert not problems
    names = sorted(Path(j.output).name for j in plan_outputs(found, None, "jpg", "")[0])
    assert names == ["a_ARW.jpg", "a_NEF.jpg", "b.jpg"]


def test_recursive_folders_are_mirrored_in_the_output(tmp_path):
    _touch(tmp_path / "in" / "x.dng", tmp_path / "in" / "day2" / "y.cr2", tmp_path / "in" / "notes.txt")
    flat, _ = expand_inputs([str(tmp_path / "in")], recursive=False)
    assert [Path(s).name for s, _ in flat] == ["x.dng"]
    found, _ = expand_inputs([str(tmp_path / "in")], recursive=True)
    (tmp_path / "out").mkdir()
    outputs = {Path(j.source).name: Path(j.output) for j in plan_outputs(found, str(tmp_path / "out"), "png", "-e")[0]}
    assert outputs == {"x.dng": tmp_path / "out" / "x-e.png", "y.cr2": tmp_path / "out" / "day2" / "y-e.png"}


def test_globs_missing_inputs_and_empty_folders_are_reported(tmp_path):
    _touch(tmp_path / "p1.dng", tmp_path / "p2.dng")
    (tmp_path / "empty").mkdir()
    found, problems = expand_inputs([str(tmp_path / "*.dng"), str(tmp_path / "nope.nef"), str(tmp_path / "empty"),
                                     str(tmp_path / "*.orf"), str(tmp_path / "p1.dng")], recursive=False)
    assert [Path(s).name for s, _ in found] == ["p1.dng", "p2.dng"]  # p1 only once
    reasons = {Path(p.source).name: p.reason for p in problems}
    assert reasons["nope.nef"] == "no such file or folder"
    assert "no raw files" in reasons["empty"] and "matches" in reasons["*.orf"]


def test_outputs_that_cannot_work_are_usage_errors(tmp_path):
    _touch(tmp_path / "a.dng", tmp_path / "b.dng")
    found, _ = expand_inputs([str(tmp_path / "a.dng"), str(tmp_path / "b.dng")], recursive=False)
    with pytest.raises(ValueError, match="one file"):
        plan_outputs(found, str(tmp_path / "single.jpg"), "jpg", "")
    with pytest.raises(ValueError, match="standard output"):
        plan_outputs(found, "-", "jpg", "")
    _touch(tmp_path / "c.jpg")
    one, _ = expand_inputs([str(tmp_path / "c.jpg")], recursive=False)
    with pytest.raises(ValueError, match="input itself"):
        plan_outputs(one, str(tmp_path / "c.jpg"), "jpg", "")


def test_an_input_that_would_be_its_own_output_is_skipped_and_the_rest_go_on(tmp_path):
    """Issue 16, case 8: a raw named x.jpg among the inputs, no -o: that one is skipped with its
    reason, the others are planned (the whole batch used to be refused)."""
    _touch(tmp_path / "x.jpg", tmp_path / "a.dng")
    found, _ = expand_inputs([str(tmp_path / "x.jpg"), str(tmp_path / "a.dng")], recursive=False)
    jobs, problems = plan_outputs(found, None, "jpg", "")
    assert [Path(j.source).name for j in jobs] == ["a.dng"]
    assert [Path(p.source).name for p in problems] == ["x.jpg"] and "input itself" in problems[0].reason


EXIF = ExifInfo(exposure_time=1 / 30, f_number=2.8, iso=3200, make="Sony", model="ILCE-7SM2",
                datetime="2026:01:02 03:04:05")


@pytest.mark.parametrize("fmt,dtype", [("jpg", np.uint8), ("png", np.uint8), ("png", np.uint16), ("tiff", np.uint8),
                                       ("tiff", np.uint16)])
def test_every_picture_carries_the_srgb_profile_and_the_shots_exif(tmp_path, fmt, dtype):
    """Read back by exifread (EXIF) and by Pillow's littleCMS (the ICC profile is a valid sRGB one)."""
    from PIL import Image, ImageCms

    image = (np.random.default_rng(0).random((12, 16, 3)) * np.iinfo(dtype).max).astype(dtype)
    path = save_image(tmp_path / f"a.{fmt}", image, fmt, EXIF)
    with open(path, "rb") as f:
        tags = exifread.process_file(f, details=False)
    assert str(tags["EXIF ISOSpeedRatings"]) == "3200" and str(tags["EXIF ExposureTime"]) == "1/30"
    assert str(tags["EXIF FNumber"]) == "14/5" and str(tags["Image Make"]) == "Sony"
    if fmt == "tiff":
        icc = tifffile.TiffFile(path).pages[0].tags["InterColorProfile"].value
        np.testing.assert_array_equal(tifffile.imread(path), image)
    else:
        with Image.open(path) as reread:
            icc = reread.info["icc_profile"]
    profile = ImageCms.ImageCmsProfile(io.BytesIO(bytes(icc)))
    assert "sRGB" in ImageCms.getProfileDescription(profile)


def test_jpeg_quality_sets_size_and_chroma_resolution():
    from PIL import Image, JpegImagePlugin

    image = (np.random.default_rng(1).random((64, 64, 3)) * 255).astype(np.uint8)
    sizes = {q: len(image_bytes(image, "jpg", None, quality=q)) for q in (50, 80, 95)}
    assert sizes[50] < sizes[80] < sizes[95]
    for quality, sampling in ((95, 0), (80, 2)):  # 0: 4:4:4, 2: 4:2:0
        with Image.open(io.BytesIO(image_bytes(image, "jpg", None, quality=quality))) as jpeg:
            assert JpegImagePlugin.get_sampling(jpeg) == sampling
    with pytest.raises(ValueError, match="quality"):
        image_bytes(image, "jpg", None, quality=0)


def test_an_output_name_without_an_image_extension_is_a_folder(tmp_path):
    _touch(tmp_path / "a.dng", tmp_path / "b.dng")
    found, _ = expand_inputs([str(tmp_path / "a.dng"), str(tmp_path / "b.dng")], recursive=False)
    jobs, _ = plan_outputs(found, str(tmp_path / "developed"), "jpg", "")
    assert [Path(j.output) for j in jobs] == [tmp_path / "developed" / "a.jpg", tmp_path / "developed" / "b.jpg"]
    one, _ = expand_inputs([str(tmp_path / "a.dng")], recursive=False)
    dotted = plan_outputs(one, str(tmp_path / "night.v2"), "png", "")[0][0]
    assert Path(dotted.output) == tmp_path / "night.v2" / "a.png"
    assert plan_outputs(one, str(tmp_path / "one.JPEG"), "jpg", "")[0][0].output == str(tmp_path / "one.JPEG")
