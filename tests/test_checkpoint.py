import pickle

import pytest
import torch

from exposed.denoise.checkpoint import export_model, load_model, model_from_checkpoint
from exposed.io.checkpoint import load_checkpoint, save_checkpoint
from exposed.denoise.infer import denoise
from exposed.denoise.config import ModelConfig
from exposed.denoise.model import ExposureModel
from exposed.sensor.noise import SensorScale


def _state():
    torch.manual_seed(0)
    model = ExposureModel(ModelConfig("unet", 8, "diffusion", steps=3))
    return {"model": model.state_dict(), "model_config": model.config.to_dict(),
            "optimizer": {"state": {}, "param_groups": []},
            "train": {"config": {"width": 8}, "iteration": 7, "wall_seconds": 1.5, "best_psnr": 20.0}}


def test_exported_half_precision_model_predicts_like_the_original(tmp_path):
    state = _state()
    path = save_checkpoint(tmp_path / "m.pt", export_model(state))
    exported = load_checkpoint(path)
    assert "optimizer" not in exported and exported["train"]["iteration"] == 7
    assert all(v.dtype == torch.float16 for v in exported["model"].values())
    original, shipped = model_from_checkpoint(state), load_model(path)
    assert shipped.config == ModelConfig("unet", 8, "diffusion", steps=3)
    sensor = SensorScale(torch.tensor([1e-4]), torch.tensor([1e-6]))
    dark = torch.rand(1, 4, 32, 32) * 0.005
    for steps, worst, mean in ((0, 2e-3, 2e-4), (3, 0.05, 2e-3)):
        # With steps, a rate that moves by a hair can change a Poisson count by one photon somewhere.
        a = denoise(original, dark, torch.tensor([100.0]), sensor, steps, torch.Generator().manual_seed(0))
        b = denoise(shipped, dark, torch.tensor([100.0]), sensor, steps, torch.Generator().manual_seed(0))
        assert (a - b).abs().max().item() < worst and (a - b).abs().mean().item() < mean


def test_a_model_file_cannot_run_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Payload()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path)


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_model(tmp_path / "nope.pt")


def test_export_command(tmp_path):
    from click.testing import CliRunner

    from exposed.cli import main

    save_checkpoint(tmp_path / "last.pt", _state())
    out = CliRunner().invoke(main, ["export", str(tmp_path / "last.pt"), str(tmp_path / "small.pt"), "--steps", "3",
                                    "--ratio-per-step", "100"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "small.pt").stat().st_size < (tmp_path / "last.pt").stat().st_size
    config = load_model(tmp_path / "small.pt").config
    assert (config.steps, config.ratio_per_step) == (3, 100.0)
    from exposed.denoise import openvino

    if openvino.available():  # the CPU runtime's form beside it, of this very file
        assert openvino.converted_path(tmp_path / "small.pt") == tmp_path / "small.xml"
    assert config.state_high == ModelConfig().state_high  # as trained unless asked
    if openvino.available():  # an int8 form left from the file before is named stale, not used
        (tmp_path / "low.int8.xml").write_bytes((tmp_path / "small.xml").read_bytes())
    out = CliRunner().invoke(main, ["export", str(tmp_path / "small.pt"), str(tmp_path / "low.pt"),
                                    "--state-high", "1.5"])
    assert out.exit_code == 0, out.output
    assert ("low.int8.xml is of the file before" in " ".join(out.output.split())) == openvino.available()
    config = load_model(tmp_path / "low.pt").config
    assert (config.state_high, config.steps, config.ratio_per_step) == (1.5, 3, 100.0)
    bad = CliRunner().invoke(main, ["export", str(tmp_path / "small.pt"), str(tmp_path / "x.pt"),
                                    "--state-high", "0.5"])
    assert bad.exit_code == 2 and not (tmp_path / "x.pt").exists()  # below white would hide the picture itself


def test_a_model_file_from_before_ratio_per_step_loads_with_a_fixed_t(tmp_path):
    state = _state()
    state["model_config"].pop("ratio_per_step", None)
    save_checkpoint(tmp_path / "old.pt", state)
    assert load_model(tmp_path / "old.pt").config.ratio_per_step == 0.0


@pytest.mark.parametrize("name,kind", [("exposure-diffusion-unet16.pt", "diffusion"),
                                       ("feedforward-unet16.pt", "feedforward")])
def test_shipped_models_load_offline_without_code(name, kind):
    from exposed.modes import default_model_path

    path = default_model_path(name)
    state = load_checkpoint(path)
    assert state["model_config"]["kind"] == kind and state["model_config"]["width"] == 16
    assert "optimizer" not in state and path.stat().st_size < 20e6
    model = load_model(path)
    assert model.ratio_range == (1.0, 300.0)


def test_export_sets_the_wiener_stride_and_keeps_it_when_not_asked(tmp_path):
    from click.testing import CliRunner

    from exposed.cli import main

    save_checkpoint(tmp_path / "last.pt", _state())
    last, m = str(tmp_path / "last.pt"), str(tmp_path / "m.pt")
    out = CliRunner().invoke(main, ["export", last, m, "--wiener-stride", "4"])
    assert out.exit_code == 0, out.output
    assert load_model(tmp_path / "m.pt").config.wiener_stride == 4
    out = CliRunner().invoke(main, ["export", str(tmp_path / "m.pt"), str(tmp_path / "n.pt"), "--steps", "1"])
    assert out.exit_code == 0 and load_model(tmp_path / "n.pt").config.wiener_stride == 4
    out = CliRunner().invoke(main, ["export", m, str(tmp_path / "o.pt"), "--wiener-stride", "0"])
    assert out.exit_code == 0 and load_model(tmp_path / "o.pt").config.wiener_stride == 0
    bad = CliRunner().invoke(main, ["export", last, str(tmp_path / "x.pt"), "--wiener-stride", "3"])
    assert bad.exit_code == 2 and "--wiener-stride" in bad.output


def test_export_sets_the_dense_blends_ratio_and_keeps_it_when_not_asked(tmp_path):
    from click.testing import CliRunner

    from exposed.cli import main

    save_checkpoint(tmp_path / "last.pt", _state())
    last, m, n = str(tmp_path / "last.pt"), str(tmp_path / "m.pt"), str(tmp_path / "n.pt")
    out = CliRunner().invoke(main, ["export", last, m, "--wiener-stride", "4", "--dense-below", "30"])
    assert out.exit_code == 0, out.output
    assert load_model(m).config.dense_below == 30.0 and load_model(last).config.dense_below == 0.0
    out = CliRunner().invoke(main, ["export", m, n, "--steps", "1"])
    assert out.exit_code == 0 and load_model(n).config.dense_below == 30.0


def test_export_sets_the_ratios_a_fine_tune_is_offered_and_keeps_them_when_not_asked(tmp_path):
    """A fine-tune on x5 to x30 records that range; --ratio-range gives the file the range it was
    measured on (the automatic ratio is held inside it)."""
    from click.testing import CliRunner

    from exposed.cli import main

    state = _state()
    state["model_config"]["ratio_range"] = [5.0, 30.0]
    save_checkpoint(tmp_path / "last.pt", state)
    last, m, n = str(tmp_path / "last.pt"), str(tmp_path / "m.pt"), str(tmp_path / "n.pt")
    out = CliRunner().invoke(main, ["export", last, m, "--ratio-range", "1:300"])
    assert out.exit_code == 0, out.output
    assert load_model(m).config.ratio_range == (1.0, 300.0) and load_model(last).config.ratio_range == (5.0, 30.0)
    out = CliRunner().invoke(main, ["export", m, n, "--steps", "1"])
    assert out.exit_code == 0 and load_model(n).config.ratio_range == (1.0, 300.0)
    for text in ("300:1", "5", "a:b", "0:10"):
        bad = CliRunner().invoke(main, ["export", last, str(tmp_path / "x.pt"), "--ratio-range", text])
        assert bad.exit_code == 2 and "--ratio-range" in bad.output, text


def test_export_stores_the_pilot_error_table_sorted_and_none_clears_it(tmp_path):
    from click.testing import CliRunner

    from exposed.cli import main

    save_checkpoint(tmp_path / "last.pt", _state())
    out = CliRunner().invoke(main, ["export", str(tmp_path / "last.pt"), str(tmp_path / "m.pt"),
                                    "--pilot-error", "100:5e-5,2:3e-4"])
    assert out.exit_code == 0, out.output
    assert load_model(tmp_path / "m.pt").config.pilot_error == ((2.0, 3e-4), (100.0, 5e-5))
    out = CliRunner().invoke(main, ["export", str(tmp_path / "m.pt"), str(tmp_path / "n.pt"), "--pilot-error", "none"])
    assert out.exit_code == 0 and load_model(tmp_path / "n.pt").config.pilot_error == ()
    bad = CliRunner().invoke(main, ["export", str(tmp_path / "last.pt"), str(tmp_path / "x.pt"),
                                    "--pilot-error", "2,3"])
    assert bad.exit_code == 2 and "RATIO:VARIANCE" in bad.output
    bad = CliRunner().invoke(main, ["export", str(tmp_path / "m.pt"), str(tmp_path / "x.pt"), "--pilot-error", "2:0"])
    assert bad.exit_code == 2 and "positive" in bad.output


def test_export_sets_the_residual_error_keeps_it_when_not_asked_and_refuses_a_negative_one(tmp_path):
    from click.testing import CliRunner

    from exposed.cli import main

    save_checkpoint(tmp_path / "last.pt", _state())
    last, m = str(tmp_path / "last.pt"), str(tmp_path / "m.pt")
    assert load_model(tmp_path / "last.pt").config.residual_error == 0.0
    out = CliRunner().invoke(main, ["export", last, m, "--residual-error", "1"])
    assert out.exit_code == 0, out.output
    assert load_model(tmp_path / "m.pt").config.residual_error == 1.0
    out = CliRunner().invoke(main, ["export", m, str(tmp_path / "n.pt"), "--steps", "1"])
    assert out.exit_code == 0 and load_model(tmp_path / "n.pt").config.residual_error == 1.0
    bad = CliRunner().invoke(main, ["export", last, str(tmp_path / "x.pt"), "--residual-error", "-1"])
    assert bad.exit_code == 2 and "--residual-error" in bad.output


def test_a_model_file_with_the_retired_blend_tables_loads_and_exports_without_them(tmp_path):
    """Files exported before the Wiener blend carry ``fusion`` and ``local_mean`` tables."""
    state = _state()
    state["model_config"] = dict(state["model_config"], fusion=[[2.0, 3e-4]], local_mean=[[2.0, 4]])
    save_checkpoint(tmp_path / "old.pt", state)
    assert load_model(tmp_path / "old.pt").config.wiener_stride == 0
    from exposed.denoise.checkpoint import export_model

    assert "fusion" not in export_model(load_checkpoint(tmp_path / "old.pt"))["model_config"]


def test_a_width_32_model_exports_under_the_device_machines_16_mib_file_limit(tmp_path):
    """The GPU-trained model must come back from the device machine in one file (16 MiB at most);
    the export also drops the optimised copy a training checkpoint with an average carries."""
    model = ExposureModel(ModelConfig("unet", 32, "diffusion"))
    state = {"model": model.state_dict(), "optimised": model.state_dict(), "model_config": model.config.to_dict(),
             "train": {"iteration": 1}}
    path = save_checkpoint(tmp_path / "m.pt", export_model(state))
    assert path.stat().st_size < 16 * 2**20
    assert "optimised" not in load_checkpoint(path) and load_model(path).config.width == 32


def test_model_files_of_the_older_layouts_load_as_the_current_one(tmp_path):
    """GP reference files kept their width in "config" and their progress at the top level; exposure
    models' ratio range was only in the training settings. Both read as today's layout."""
    from exposed.gp.reference import ReferenceNet, load_reference

    net = ReferenceNet(4)
    torch.save({"model": net.state_dict(), "config": {"width": 4}, "iteration": 7, "seconds": 1.5},
               tmp_path / "old-reference.pt")
    state = load_checkpoint(tmp_path / "old-reference.pt")
    assert state["model_config"] == {"kind": "reference", "width": 4}
    assert state["train"] == {"iteration": 7, "seconds": 1.5}
    loaded = load_reference(tmp_path / "old-reference.pt")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), net.state_dict().values()))

    model = ExposureModel(ModelConfig("unet", 4, "diffusion"))
    config = model.config.to_dict()
    config.pop("ratio_range")
    torch.save({"model": model.state_dict(), "model_config": config,
                "train": {"config": {"ratio_low": 2.0, "ratio_high": 100.0}}}, tmp_path / "old-model.pt")
    assert load_model(tmp_path / "old-model.pt").ratio_range == (2.0, 100.0)


def test_a_reference_file_is_not_taken_for_an_exposure_model_or_back(tmp_path):
    from exposed.gp.reference import ReferenceNet, load_reference, save_reference

    path = save_reference(tmp_path / "ref.pt", ReferenceNet(4), {})
    with pytest.raises(ValueError, match="not an exposure model"):
        load_model(path)
    model = ExposureModel(ModelConfig("unet", 4))
    model_path = save_checkpoint(tmp_path / "m.pt", export_model({"model": model.state_dict(),
                                                                 "model_config": model.config.to_dict()}))
    with pytest.raises(ValueError, match="not a GP reference"):
        load_reference(model_path)
