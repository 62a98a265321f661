import subprocess
import sys

import imageio.v3 as iio
import pytest
from click.testing import CliRunner

from exposed.cli import main
from exposed.demo import run_demo


def test_demo_writes_previews_and_its_noise_matches_the_formula(tmp_path):
    result = run_demo(tmp_path, ratio=100, iso=3200)
    assert sorted(p.name for p in result.files) == ["amplified.png", "dark.png", "scene.png"]
    for path in result.files:
        assert iio.imread(path).shape == (256, 384, 3)
    assert not list(tmp_path.glob(".*part*"))  # no temporary files left behind
    for patch in result.grey_patches:
        # About 2000 pixels per patch: the sample variance is within a few percent of the formula.
        assert patch["measured_var"] == pytest.approx(patch["expected_var"], rel=0.15)
    assert 15 < result.amplified_psnr < 30


def test_demo_command_runs_from_the_cli(tmp_path):
    out = CliRunner().invoke(main, ["demo", "-o", str(tmp_path / "d"), "--noise", "eld", "--ratio", "300"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "d" / "amplified.png").exists()


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "exposed", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "exposed" in out.stdout
