"""`--uncertainty`: the spread of the exposure process over seeds, its maps, and whether it orders the error."""

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch
import torch.nn.functional as F

from conftest import shared_file, synthetic_dng, tiny_model
from exposed.denoise.uncertainty import display_value, spread, varied_steps
from exposed.imaging.color import linear_to_srgb
from exposed.imaging.heatmap import heat_map
from exposed.imaging.metrics import spearman
from test_cli_enhance import run


def _ranks_by_hand(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return np.array(ranks)


def test_spearman_matches_the_textbook_formula_and_handles_ties():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(500, generator=g), torch.rand(500, generator=g)
    y = 0.6 * x + 0.4 * y
    rx, ry = _ranks_by_hand(x.tolist()), _ranks_by_hand(y.tolist())
    n = len(rx)
    assert spearman(x, y) == pytest.approx(1 - 6 * ((rx - ry) ** 2).sum() / (n * (n**2 - 1)), abs=1e-12)
    assert spearman(x, x.exp()) == pytest.approx(1.0) and spearman(x, -x) == pytest.approx(-1.0)
    tied_x, tied_y = torch.tensor([1.0, 2, 2, 3, 3, 3, 4]), torch.tensor([2.0, 1, 3, 3, 5, 4, 6])
    rx, ry = _ranks_by_hand(tied_x.tolist()), _ranks_by_hand(tied_y.tolist())
    assert spearman(tied_x, tied_y) == pytest.approx(float(np.corrcoef(rx, ry)[0, 1]), abs=1e-12)


def test_the_spread_is_the_standard_deviation_of_the_brightness_pooled_over_neighbours():
    g = torch.Generator().manual_seed(1)
    runs = [torch.rand(1, 4, 10, 12, generator=g) * 0.5 for _ in range(4)]
    wb = torch.tensor([[2.0, 1.0, 1.5]])
    brightness = [linear_to_srgb((r * torch.tensor([2.0, 1, 1, 1.5])[None, :, None, None]).mean(1, keepdim=True)
                                 .clamp(0, 1)) for r in runs]
    assert torch.allclose(display_value(runs[0], wb), brightness[0])
    reference = torch.stack(brightness).double().std(0)
    assert torch.allclose(spread(runs, wb, pool=1).double(), reference, atol=1e-6)
    pooled = F.avg_pool2d(F.pad(reference, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    assert torch.allclose(spread(runs, wb).double(), pooled, atol=1e-6)
    assert spread([runs[0], runs[0].clone()]).abs().max() == 0
    assert varied_steps(0) == 1 and varied_steps(3) == 3


def test_the_heat_map_runs_from_black_to_the_ramps_end_brightening_steadily():
    values = np.linspace(0.0, 2.0, 201)[None, :]
    colours = heat_map(values, top=1.0)[0].astype(np.float64)
    assert (colours[0] == 0).all() and (colours[100:] == colours[-1]).all()
    luma = colours @ np.array([0.2126, 0.7152, 0.0722])
    assert (np.diff(luma[:101]) >= -1e-9).all() and luma[100] > 200


@pytest.fixture
def shot(tmp_path):
    return synthetic_dng(tmp_path / "night.dng", orientation=6)


def test_enhance_writes_both_maps_beside_the_output_and_leaves_the_result_unchanged(shot, tmp_path):
    model = tiny_model(tmp_path / "tiny.pt")
    plain = run("enhance", shot, "--model", model, "--ratio", "300", "-o", tmp_path / "plain.png", "--bits", "16")
    assert plain.returncode == 0, plain.stderr
    done = run("enhance", shot, "--model", model, "--ratio", "300", "-o", tmp_path / "out.png", "--bits", "16",
               "--uncertainty", "--runs", "3", text=True)
    assert done.returncode == 0, done.stderr
    assert "uncertainty:" in done.stderr
    assert (tmp_path / "out.png").read_bytes() == (tmp_path / "plain.png").read_bytes()
    image = iio.imread(tmp_path / "out.png")
    values = tifffile.imread(tmp_path / "out.uncertainty.tif")
    heat = iio.imread(tmp_path / "out.uncertainty.png")
    assert values.dtype == np.uint16 and values.shape == image.shape[:2]  # upright, as the picture is
    assert heat.shape == image.shape and heat.dtype == np.uint8
    assert values.max() > 0  # x300: the process draws photons, its runs differ


def test_uncertainty_is_refused_where_nothing_is_drawn_at_random(shot, tmp_path):
    for extra in (("--mode", "amplify"), ("--mode", "feedforward"), ("-o", "-")):
        done = run("enhance", shot, "--uncertainty", *extra, text=True)
        assert done.returncode == 2 and "--uncertainty needs --mode diffusion" in done.stderr


def test_the_spread_orders_the_error_on_validation_crops(tmp_path):
    """A small run of benchmarks/uncertainty.py (README has the full one): the spread's rank
    correlation with the delivered result's error is clearly positive at every ratio."""
    shared_file("images", "val")
    out = tmp_path / "u.json"
    done = subprocess.run([sys.executable, "benchmarks/uncertainty.py", "--limit", "6", "--crop", "256", "--out",
                           str(out)], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
                          timeout=900)
    assert done.returncode == 0, done.stderr
    for ratio, row in json.loads(out.read_text())["ratios"].items():
        assert row["pixels"] >= 0.25 and row["blocks_8x8"] >= 0.5, (ratio, row)
