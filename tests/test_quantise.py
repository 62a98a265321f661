"""The int8 form of a model for CPUs without bf16: made from its own file, chosen where it helps,
refused clearly where there is none, and close to fp32 in the photo."""

import math
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner, Result

from conftest import synthetic_dng, tiny_model
from exposed.cli import main
from exposed.denoise import numpy_infer, openvino
from exposed.modes import default_model_path

pytestmark = pytest.mark.skipif(not openvino.available(), reason="OpenVINO is not installed")
SHIPPED = ["exposure-diffusion-unet16", "feedforward-unet16"]


class FakeCore:
    """An OpenVINO core that reports the given CPU capabilities (nothing is compiled here)."""

    def __init__(self, capabilities: list[str]):
        self.capabilities = capabilities

    def get_property(self, device: str, name: str) -> list[str]:
        assert (device, name) == ("CPU", "OPTIMIZATION_CAPABILITIES")
        return self.capabilities


def chosen(path, capabilities: list[str], requested: str = "auto") -> str:
    session = openvino.OpenVinoSession(path, requested)
    session.__dict__["_core"] = FakeCore(capabilities)
    return session.precision


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_models_ship_an_int8_form_of_their_own_file(name):
    """models/NAME.int8.xml was made from models/NAME.pt as it is now (`exposed quantise`): after
    a model changes, a stale int8 form would be ignored and AVX2 machines would fall back to fp32."""
    pt = default_model_path(f"{name}.pt")
    assert openvino.int8_form(pt) == openvino.int8_path(pt)


def test_auto_takes_bf16_where_the_cpu_has_it_else_int8_where_the_model_has_it_else_fp32(tmp_path):
    shipped = default_model_path("exposure-diffusion-unet16.pt")
    plain = tiny_model(tmp_path / "m.pt")
    assert chosen(shipped, ["FP32", "BF16", "INT8"]) == "bf16"
    assert chosen(shipped, ["FP32", "INT8"]) == "int8"
    assert chosen(plain, ["FP32", "INT8"]) == "fp32"
    assert chosen(shipped, ["FP32", "BF16"], "fp32") == "fp32"
    with pytest.raises(ValueError, match=r"m\.pt: no int8 form .*exposed quantise"):
        chosen(plain, ["FP32"], "int8")


def test_an_int8_form_is_used_for_its_own_file_only(tmp_path):
    """A copy of the shipped int8 form beside another model file is not that file's: ignored."""
    shipped = default_model_path("exposure-diffusion-unet16.pt")
    plain = tiny_model(tmp_path / "m.pt")
    for suffix in (".xml", ".bin"):
        target = openvino.int8_path(plain).with_suffix(suffix)
        target.write_bytes(openvino.int8_path(shipped).with_suffix(suffix).read_bytes())
    assert openvino.int8_form(plain) is None and chosen(plain, ["FP32"]) == "fp32"


def scene(height: int = 128, width: int = 160) -> np.ndarray:
    """A packed (1, 4, H, W) clean frame in [0, 1]: colour ramps, a few edges and fine texture."""
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    base = 0.15 + 0.5 * x + 0.2 * np.sin(9 * y) * np.cos(7 * x) + 0.25 * ((x - 0.5) ** 2 + (y - 0.4) ** 2 < 0.05)
    texture = 0.05 * np.sin(2 * np.pi * (x * width / 5 + y * height / 7))
    return np.clip(np.stack([base * g + texture for g in (0.6, 1.0, 1.0, 0.8)])[None], 0, 1).astype(np.float32)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return -10.0 * math.log10(float(np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.mark.parametrize("ratio", [2.0, 20.0, 200.0])
def test_the_shipped_int8_form_denoises_as_well_as_fp32(ratio):
    """Quantised, the default model's photo is at most 0.1 dB below fp32's (benchmarks/runtimes.py
    measures it on validation crops: within 0.01 dB on average) and above plain brightening's,
    from a frame one stop dark to a very dark one; its settings are the model's."""
    path = default_model_path("exposure-diffusion-unet16.pt")
    fp32, int8 = openvino.OpenVinoSession(path, "fp32"), openvino.OpenVinoSession(path, "int8")
    assert int8.config == fp32.config
    clean = scene()
    gain, read_var = 2e-4, 1e-7  # per photo-electron and read variance, in white = 1
    rng = np.random.default_rng(3)
    dark = rng.poisson(clean / ratio / gain) * gain + rng.normal(0, math.sqrt(read_var), clean.shape)
    dark = dark.astype(np.float32)
    outputs = {}
    for session in (fp32, int8):
        outputs[session.precision] = numpy_infer.denoise(session.backbone, session.config, dark, dark >= 1.0, ratio,
                                                         np.full(4, gain), np.full(4, read_var))
    amplified = np.clip(dark * ratio, 0, 1)
    scores = {name: psnr(out, clean) for name, out in outputs.items()}
    assert scores["int8"] > scores["fp32"] - 0.1
    assert scores["int8"] > psnr(amplified, clean)


def test_enhance_refuses_int8_where_it_cannot_be_had_before_any_file(tmp_path):
    shot = synthetic_dng(tmp_path / "a.dng")
    model = tiny_model(tmp_path / "m.pt")

    def enhance(*extra: str) -> Result:
        return CliRunner().invoke(main, ["enhance", str(shot), "-o", str(tmp_path / "out"), "--precision", "int8",
                                         *extra])

    missing = enhance("--model", str(model))
    assert missing.exit_code == 2 and "no int8 form" in missing.output and missing.exception is not None
    assert isinstance(missing.exception, SystemExit)  # a usage error, no traceback
    on_torch = enhance("--runtime", "torch")
    assert on_torch.exit_code == 2 and "CPU runtime only" in on_torch.output
    assert not (tmp_path / "out").exists()


def test_quantise_writes_an_int8_form_the_runtime_then_takes(tmp_path):
    """`exposed quantise` on a small model, calibrated on two pictures: the int8 form is written
    beside the model, records its file, and computes close to the fp32 network."""
    pytest.importorskip("nncf")
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        iio.imwrite(images / f"{i}.png", (rng.random((96, 96, 3)) * 255).astype(np.uint8))
    model = tiny_model(tmp_path / "m.pt")
    done = subprocess.run([sys.executable, "-m", "exposed", "quantise", str(model), "--images", str(images),
                           "--count", "2"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert openvino.int8_form(model) == openvino.int8_path(model)
    assert chosen(model, ["FP32", "INT8"]) == "int8"
    fp32, int8 = openvino.OpenVinoSession(model, "fp32"), openvino.OpenVinoSession(model, "int8")
    x = rng.random((1, 12 if fp32.config.noise_input == "std+log" else 8, 64, 64), dtype=np.float32)
    reference = fp32.backbone(x)
    spread = float(reference.max() - reference.min())
    assert np.abs(int8.backbone(x) - reference).max() < 0.1 * spread + 1e-3

    empty = tmp_path / "empty"
    empty.mkdir()
    refused = subprocess.run([sys.executable, "-m", "exposed", "quantise", str(model), "--images", str(empty)],
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "no images" in refused.stderr and "Traceback" not in refused.stderr
