"""GP mode's reference CNN: training resumes where it stopped and writes a file that loads safely."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import torch

from exposed.io.checkpoint import load_checkpoint
from exposed.gp.reference import ReferenceConfig, load_reference, train_reference


def test_training_resumes_and_ships_a_weights_only_file(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        iio.imwrite(folder / f"{i}.png", rng.integers(0, 256, (140, 150, 3), dtype=np.uint8))
    config = ReferenceConfig(images=str(folder), val_images=str(folder), out=str(tmp_path / "run"), width=4,
                             batch_size=2, iterations=2, val_every=1)
    lines: list[str] = []
    first = train_reference(config, log=lines.append)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["train"]["iteration"] == 2
    config.iterations = 3
    train_reference(config, log=lines.append)
    assert "resumed at iteration 2" in lines
    assert load_checkpoint(tmp_path / "run" / "last.pt")["train"]["iteration"] == 3
    model = load_reference(first)  # torch.load(weights_only=True) inside
    assert model.width == 4 and all(p.dtype == torch.float32 for p in model.parameters())
    assert model(torch.rand(1, 3, 37, 41)).shape == (1, 3, 37, 41)
