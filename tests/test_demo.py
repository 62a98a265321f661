import subprocess
import sys

import imageio.v3 as iio
import pytest
from click.testing import CliRunner

from exposed.cli import main
from exposed.demo import run_demo
from exposed.io.raw import read_raw


def test_demo_writes_a_dark_dng_and_its_enhancements(tmp_path):
    result = run_demo(tmp_path, ratio=100, iso=3200, mode="amplify")
    assert sorted(p.name for p in result.files) == ["amplified.jpg", "dark.dng", "enhanced.jpg", "reference.jpg"]
    raw = read_raw(tmp_path / "dark.dng")
    assert raw.pattern == "RGGB" and raw.exif.iso == 3200 and raw.mosaic.shape == (512, 768)
    for name in ("reference", "amplified", "enhanced"):
        assert iio.imread(tmp_path / f"{name}.jpg").shape == (512, 768, 3)
    assert not list(tmp_path.glob(".*part*"))  # no temporary files left behind
    for patch in result.grey_patches:
        # About 2000 pixels per patch: the sample variance is within a few percent of the formula.
        assert patch["measured_var"] == pytest.approx(patch["expected_var"], rel=0.15)
    assert 10 < result.psnr["amplified"] < 30


def test_demo_command_runs_from_the_cli(tmp_path):
    out = CliRunner().invoke(main, ["demo", "-o", str(tmp_path / "d"), "--noise", "eld", "--ratio", "300"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "d" / "enhanced.jpg").exists()


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "exposed", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "exposed" in out.stdout
