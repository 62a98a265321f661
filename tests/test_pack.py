import tarfile

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from exposed.cli import main
from exposed.training.data import ImageBank, read_rgb8
from exposed.training.pack import read_pack, write_pack


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        image = rng.integers(0, 256, (80 + 8 * i, 96, 3), dtype=np.uint8)
        iio.imwrite(folder / f"{i}.jpg", image, quality=90)
    iio.imwrite(folder / "sub" / "grey.png", rng.integers(0, 256, (90, 90), dtype=np.uint8))
    return folder


def test_a_pack_holds_jpegs_byte_for_byte_and_reads_back_as_the_folder_does(photos, tmp_path):
    names = write_pack(photos, tmp_path / "p.tar", max_bytes=10**8)
    assert names == sorted(["0.jpg", "1.jpg", "2.jpg", "3.jpg", "4.jpg", "5.jpg", "sub/grey.jpg"])
    with tarfile.open(tmp_path / "p.tar") as tar:
        assert tar.extractfile("3.jpg").read() == (photos / "3.jpg").read_bytes()
    images = read_pack(tmp_path / "p.tar")
    for name, image in zip(names, images):
        if name.startswith("sub/"):  # the PNG, encoded once at quality 95: close, not equal
            grey = read_rgb8(photos / "sub" / "grey.png").float()
            assert image.shape == grey.shape and (image.float() - grey).abs().mean() < 12
        else:
            assert torch.equal(image, read_rgb8(photos / name))
    bank = ImageBank.from_source(tmp_path / "p.tar", min_size=64)
    assert len(bank) == 7 and bank.megapixels == pytest.approx(sum(im[0].numel() for im in images) / 1e6)


def test_a_pack_keeps_to_its_size_limit_with_a_seeded_subset(photos, tmp_path):
    limit = 30_000
    a = write_pack(photos, tmp_path / "a.tar", max_bytes=limit, seed=1)
    assert 1 <= len(a) < 7 and (tmp_path / "a.tar").stat().st_size <= limit
    assert write_pack(photos, tmp_path / "b.tar", max_bytes=limit, seed=1) == a
    with pytest.raises(ValueError, match="no image fits"):
        write_pack(photos, tmp_path / "c.tar", max_bytes=600)
    assert not (tmp_path / "c.tar").exists()


def test_pack_command(photos, tmp_path):
    result = CliRunner().invoke(main, ["pack", str(tmp_path / "p.tar"), "--images", str(photos), "--max-mb", "1"])
    assert result.exit_code == 0, result.output
    assert "7 images" in result.output
    bad = CliRunner().invoke(main, ["pack", str(tmp_path / "p.zip"), "--images", str(photos)])
    assert bad.exit_code == 2 and ".tar" in bad.output
