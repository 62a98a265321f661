"""The CPU runtime: model files converted to OpenVINO's form, kept and reused, the network's outputs
against torch's, and the choice between the runtimes."""

import numpy as np
import pytest
import torch

from conftest import imports_torch, synthetic_dng, tiny_model
from exposed.denoise import openvino
from exposed.denoise.checkpoint import load_model
from exposed.modes import default_model_path

pytestmark = pytest.mark.skipif(not openvino.available(), reason="OpenVINO is not installed")


def test_a_converted_model_computes_what_torchs_does_and_carries_its_settings(tmp_path):
    path = tiny_model(tmp_path / "m.pt")
    session = openvino.OpenVinoSession(path, "fp32")
    model = load_model(path)
    assert session.config == model.config and session.ratio_range == model.ratio_range
    x = np.random.default_rng(0).random((1, 12 if model.config.noise_input == "std+log" else 8, 48, 80),
                                        dtype=np.float32)
    with torch.no_grad():
        expected = model.backbone(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.backbone(x), expected, atol=1e-4, rtol=1e-4)


def test_a_session_keeps_a_few_compiled_shapes_and_recompiles_the_rest(tmp_path):
    """Frames of many sizes in one batch: the networks compiled for the latest few tile shapes
    are kept, and a shape dropped is compiled again, with the same result."""
    session = openvino.OpenVinoSession(tiny_model(tmp_path / "m.pt"), "fp32")
    rng = np.random.default_rng(1)
    inputs = [rng.random((1, 8, 16 * k, 32), dtype=np.float32) for k in range(1, openvino.KEPT_SHAPES + 3)]
    first = session.backbone(inputs[0])
    for x in inputs[1:]:
        session.backbone(x)
    assert len(session._compiled) == openvino.KEPT_SHAPES and inputs[0].shape not in session._compiled
    np.testing.assert_array_equal(session.backbone(inputs[0]), first)


def test_a_conversion_is_kept_for_its_own_file_only(tmp_path, monkeypatch):
    """The cache holds a model's conversion by the file's SHA-256: a second session converts
    nothing, and a different file of the same name gets its own."""
    path = tiny_model(tmp_path / "m.pt")
    first = openvino.converted_path(path)
    assert first.parent == openvino.cache_dir() and first.with_suffix(".bin").is_file()
    stamp = first.stat().st_mtime_ns
    monkeypatch.setattr(openvino, "convert", lambda *args: pytest.fail("converted again"))
    assert openvino.converted_path(path) == first and first.stat().st_mtime_ns == stamp
    monkeypatch.undo()
    (tmp_path / "other").mkdir()
    other = tiny_model(tmp_path / "other" / "m.pt", "feedforward")
    assert openvino.converted_path(other) != first


def test_a_session_says_when_it_converted_its_model(tmp_path, monkeypatch):
    monkeypatch.setenv("EXPOSED_CACHE", str(tmp_path / "fresh-cache"))
    path = tiny_model(tmp_path / "m.pt")
    first = openvino.OpenVinoSession(path, "fp32")
    _ = first.config
    assert first.converted is not None and "converted for it once" in first.describe()
    again = openvino.OpenVinoSession(path, "fp32")
    _ = again.config
    assert again.converted is None and again.describe().endswith("fp32")


def test_a_cache_that_cannot_be_written_converts_for_the_process_alone(tmp_path, monkeypatch):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("EXPOSED_CACHE", str(blocked))
    path = tiny_model(tmp_path / "m.pt")
    converted = openvino.converted_path(path)
    assert converted.is_file() and not converted.is_relative_to(blocked)
    assert openvino.OpenVinoSession(path).config == load_model(path).config


@pytest.mark.parametrize("name", ["exposure-diffusion-unet16", "feedforward-unet16"])
def test_the_shipped_models_ship_their_own_conversion(name):
    """models/NAME.xml was converted from models/NAME.pt as it is now (`exposed convert`): a model
    file changed without it would be converted on every user's first run instead."""
    pt = default_model_path(f"{name}.pt")
    assert openvino.converted_path(pt) == pt.with_suffix(".xml")


def test_the_runtime_is_openvino_on_the_cpu_and_torch_on_a_gpu(monkeypatch):
    monkeypatch.setattr(openvino, "gpu_likely", lambda: False)
    assert openvino.runtime_for("auto", "auto") == "openvino" == openvino.runtime_for("auto", "cpu")
    assert openvino.runtime_for("torch", "cpu") == "torch" and openvino.runtime_for("auto", "cuda") == "torch"
    monkeypatch.setattr(openvino, "gpu_likely", lambda: True)
    assert openvino.runtime_for("auto", "auto") == "torch"
    with pytest.raises(ValueError, match="on the CPU"):
        openvino.runtime_for("openvino", "cuda")
    monkeypatch.setattr(openvino, "available", lambda: False)
    assert openvino.runtime_for("auto", "cpu") == "torch"
    with pytest.raises(ValueError, match="not installed"):
        openvino.runtime_for("openvino", "cpu")


def test_a_photo_on_the_cpu_never_imports_torch(tmp_path):
    """The default mode on the CPU runs without torch (its import is over a second, issue 18), and
    gives the torch runtime's photo (fp32 both: bf16 roundings differ between the two)."""
    raw = synthetic_dng(tmp_path / "a.dng", height=160, width=192)
    used_torch, said = imports_torch(["enhance", raw, "-o", tmp_path / "ov.png", "--device", "cpu", "--precision",
                                      "fp32", "--bits", "16", "-v"])
    assert not used_torch and "network: OpenVINO" in said and "fp32" in said
    from exposed.cli import main

    with pytest.raises(SystemExit) as torch_run:
        main(["enhance", str(raw), "-o", str(tmp_path / "torch.png"), "--runtime", "torch", "--device", "cpu",
              "--precision", "fp32", "--bits", "16"])
    assert torch_run.value.code == 0
    import imageio.v3 as iio

    a, b = (iio.imread(tmp_path / f"{n}.png").astype(np.float64) for n in ("ov", "torch"))
    assert np.abs(a - b).max() <= 65535 * 2e-3


@pytest.mark.parametrize("tile", [None, 64])
def test_planning_a_photo_compiles_the_network_it_will_run(tmp_path, monkeypatch, tile):
    """The plan starts the compilation for the photo's tiles (on a thread of its own, while the
    noise and ratio are worked out); the denoising then runs that network and compiles nothing more."""
    from exposed.io.raw import read_raw
    from exposed.pipeline import Enhancer, Settings

    compiled = []
    original = openvino.OpenVinoSession._compile
    monkeypatch.setattr(openvino.OpenVinoSession, "_compile",
                        lambda self, shape: compiled.append(shape) or original(self, shape))
    enhancer = Enhancer(Settings(model=tiny_model(tmp_path / "m.pt"), runtime="openvino", device="cpu",
                                 precision="fp32", tile=tile))
    plan = enhancer.plan(read_raw(synthetic_dng(tmp_path / "a.dng", height=200, width=232)))
    assert len(enhancer.session._compiled) == 1
    enhancer.enhance_mosaic(plan)
    assert len(compiled) == 1 and compiled[0][-2:] == ((112, 128) if tile is None else (64, 64))
