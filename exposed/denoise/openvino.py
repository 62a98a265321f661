"""The exposure models on the CPU through OpenVINO, without torch: the runtime a photo gets on a
machine with no GPU (:func:`runtime_for`).

Why: on a 2-core CPU ``import torch`` alone took 0.9 to 1.3 s, more than a third of darktable-cli's
whole conversion of a 12 MP raw, and OpenVINO runs the UNet faster than torch's eager kernels
(bf16 on CPUs with AMX, fp32 elsewhere; benchmarks/backends.py). Everything around the network is
numpy (:mod:`exposed.denoise.numpy_infer`).

A model file (``.pt``) is converted once to OpenVINO's form (``.xml`` and ``.bin``, float16
weights, as the shipped ``.pt`` files hold them) and the conversion kept: next to a shipped model
(``exposed export`` writes it), else in exposed's cache folder (``$EXPOSED_CACHE``, by default
``~/.cache/exposed``). Converting needs torch, once per model file; the converted model records the
SHA-256 of the file it came from and is used only for that file. Its settings (the
:class:`~exposed.denoise.config.ModelConfig`) travel in its runtime information as JSON: an
OpenVINO model file holds a graph and weights, no code.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np

from exposed.denoise.config import ModelConfig, input_channels
from exposed.denoise.numpy_infer import TILE_MULTIPLE, denoise, network_shape
from exposed.sensor.estimate import NoiseLevel

Runtime = Literal["auto", "torch", "openvino"]
PRECISIONS = ("auto", "fp32", "bf16", "int8")
INFO = "exposed"  # the runtime-information section the model's settings are kept in
KEPT_SHAPES = 4  # networks compiled for a tile shape that a session keeps (tens of MB each)
CONVERSION_SIDE = 64  # packed pixels of the example frame a conversion exports (any multiple of 16)


def available() -> bool:
    """Whether OpenVINO is installed (it is an optional dependency: ``pip install exposed[openvino]``)."""
    return importlib.util.find_spec("openvino") is not None


def gpu_likely() -> bool:
    """Whether torch may find a GPU here, judged without importing it (which costs a second): Apple
    silicon (MPS), or an NVIDIA driver's device files or tools (CUDA)."""
    if sys.platform == "darwin":
        import platform

        return platform.machine() == "arm64"
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia/version") or \
        shutil.which("nvidia-smi") is not None


def runtime_for(requested: Runtime, device: str) -> Literal["torch", "openvino"]:
    """The runtime a model runs on: ``torch`` and ``openvino`` as asked; ``auto``: OpenVINO where the
    model runs on the CPU (``--device cpu``, or ``auto`` on a machine with no GPU) and OpenVINO is
    installed, torch otherwise. ValueError for OpenVINO on a GPU or when it is not installed."""
    if requested == "torch":
        return "torch"
    on_cpu = device == "cpu" or (device == "auto" and not gpu_likely())
    if requested == "openvino":
        if not on_cpu:
            raise ValueError(f"the OpenVINO runtime runs on the CPU, not on --device {device}")
        if not available():
            raise ValueError("the OpenVINO runtime is not installed (pip install openvino)")
        return "openvino"
    if requested != "auto":
        raise ValueError(f"unknown runtime {requested!r}; expected auto, torch or openvino")
    return "openvino" if on_cpu and available() else "torch"


def computes_bf16(core: Any = None) -> bool:
    """Whether OpenVINO computes in bf16 on this CPU (AMX or AVX-512 bf16)."""
    if core is None:
        import openvino as ov

        core = ov.Core()
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _version() -> str:
    import openvino as ov

    return ov.__version__.split("-")[0]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_dir() -> Path:
    """Where converted models are kept: ``$EXPOSED_CACHE``, else the user's cache folder."""
    root = os.environ.get("EXPOSED_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or
                                                           os.path.expanduser("~/.cache"), "exposed")
    return Path(root) / "openvino"


def _source_digest(xml: Path) -> str | None:
    """The SHA-256 of the model file an OpenVINO model was converted from, read from its XML
    without loading it (None when it has none or cannot be read)."""
    import re

    try:
        head = xml.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found = re.search(r'<source_sha256 value="([0-9a-f]{64})"', head)
    return found.group(1) if found else None


def existing_conversion(model: Path) -> Path | None:
    """The OpenVINO form of the model file ``model`` if one was made of this very file: beside it
    (a shipped model's), else in the cache; None when it has to be converted."""
    digest = file_digest(model)
    for xml in (model.with_suffix(".xml"), cache_dir() / f"{digest[:32]}.xml"):
        if xml.is_file() and _source_digest(xml) == digest:
            return xml
    return None


def int8_path(model: Path) -> Path:
    """Where a model file's int8 form lives: beside it, ``NAME.int8.xml`` and ``.bin``
    (:mod:`exposed.denoise.quantise` makes it)."""
    return model.with_suffix(".int8.xml")


def int8_form(model: Path) -> Path | None:
    """The int8 form of the model file ``model`` if one was made of this very file, else None."""
    xml = int8_path(model)
    return xml if xml.is_file() and _source_digest(xml) == file_digest(model) else None


def converted_path(model: Path) -> Path:
    """The OpenVINO form of the model file ``model``: :func:`existing_conversion`'s, else one made
    now into the cache (this imports torch). Where the cache cannot be written (a read-only home),
    the conversion is made in a temporary folder that lives as long as the process."""
    found = existing_conversion(model)
    if found is not None:
        return found
    cached = cache_dir() / f"{file_digest(model)[:32]}.xml"
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        return convert(model, cached)
    except OSError:
        scratch = Path(tempfile.mkdtemp(prefix="exposed-model-"))
        atexit.register(shutil.rmtree, scratch, True)
        return convert(model, scratch / "model.xml")


def convert(model: Path, xml: Path) -> Path:
    """Write the OpenVINO form of the exposure model file ``model`` to ``xml`` (and its ``.bin``):
    the network's backbone with any frame size, float16 weights, the settings and the file's
    SHA-256 in its runtime information. Both files are written whole or not at all (the XML, which
    says which file it came from, last). Needs torch."""
    import openvino as ov
    import torch

    from exposed.denoise.checkpoint import load_model

    network = load_model(model).eval()
    example = torch.zeros(1, input_channels(network.config), CONVERSION_SIDE, CONVERSION_SIDE)
    # Any height and width the UNet's pooling takes: multiples of TILE_MULTIPLE (16).
    rows, cols = torch.export.Dim("rows", max=1 << 12), torch.export.Dim("cols", max=1 << 12)
    with _scratch_inductor_cache(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's notes on its own internals, nothing a photographer can act on
        exported = torch.export.export(network.backbone, (example,),
                                       dynamic_shapes=({2: TILE_MULTIPLE * rows, 3: TILE_MULTIPLE * cols},))
        converted = ov.convert_model(exported)
    converted.set_rt_info(json.dumps(network.config.to_dict()), [INFO, "config"])
    converted.set_rt_info(file_digest(model), [INFO, "source_sha256"])
    return save_atomically(converted, xml, compress_to_fp16=True)


def save_atomically(model: Any, xml: Path, compress_to_fp16: bool) -> Path:
    """Save an OpenVINO model to ``xml`` and its ``.bin``, both whole or not at all: the XML, which
    says which model file it came from, replaced last, so a reader never pairs it with a stale
    ``.bin``."""
    import openvino as ov

    with tempfile.TemporaryDirectory(dir=xml.parent, prefix=f".{xml.stem}.") as tmp:
        staged = Path(tmp) / "model.xml"
        ov.save_model(model, staged, compress_to_fp16=compress_to_fp16)
        os.replace(staged.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(staged, xml)
    return xml


@contextmanager
def _scratch_inductor_cache() -> Iterator[None]:
    """torch.export makes a cache folder of its compiler's in the temporary folder and leaves it
    there; a conversion's goes in a folder of its own, removed afterwards (nothing left behind)."""
    key, before = "TORCHINDUCTOR_CACHE_DIR", os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="exposed-convert-") as scratch:
        os.environ[key] = scratch
        try:
            yield
        finally:
            if before is None:
                del os.environ[key]
            else:
                os.environ[key] = before


class OpenVinoSession:
    """An exposure model on the CPU through OpenVINO, the same interface as
    :class:`exposed.denoise.session.DenoiseSession` for a photo (one session per model, loaded once
    for a batch). ``precision``: ``auto`` takes bf16 where the CPU computes in it (AVX-512 bf16 or
    AMX, as torch's runtime does), else the model's int8 form where it has one (:func:`int8_form`;
    on AVX2 it takes 60% of fp32's time), else fp32; or ``fp32`` / ``bf16`` / ``int8`` as asked.
    The model is read on first use; the network is compiled once per tile shape (a frame's tiles
    share one), on a thread of its own from when the photo is planned (:meth:`prepare`)."""

    def __init__(self, path: Path, precision: str = "auto"):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; expected {', '.join(PRECISIONS)}")
        self.path = path
        self.requested = precision
        self._compiled: dict[tuple[int, ...], Future[Any]] = {}  # by input shape, the latest used last
        self.threads: int | None = None  # the network's threads; None: all cores (a batch's -j shares them)
        self.converted: Path | None = None  # where this session put the model's conversion, if it made one
        self._lock = threading.RLock()  # one reading of the model for all threads
        self._compiler: ThreadPoolExecutor | None = None  # compiles one shape at a time, made on first use

    @cached_property
    def _core(self) -> Any:
        import openvino as ov

        return ov.Core()

    @cached_property
    def _model(self) -> Any:
        with self._lock:
            if not self.path.is_file():
                raise FileNotFoundError(f"{self.path}: no such model file")
            if self.precision == "int8":
                return self._core.read_model(int8_form(self.path))
            xml = existing_conversion(self.path)
            if xml is None:
                xml = converted_path(self.path)
                self.converted = xml
            return self._core.read_model(xml)

    @cached_property
    def config(self) -> ModelConfig:
        """The model's settings (reading the model file if need be)."""
        return ModelConfig.from_dict(json.loads(self._model.get_rt_info([INFO, "config"]).astype(str)))

    @property
    def ratio_range(self) -> tuple[float, float]:
        return self.config.ratio_range

    @cached_property
    def precision(self) -> str:
        """What the network runs in: ``fp32``, ``bf16`` or ``int8``. Asking for int8 of a model
        without an int8 form of its own is a ValueError naming the file."""
        if self.requested == "int8" and int8_form(self.path) is None:
            raise ValueError(f"{self.path}: no int8 form of this model file beside it "
                             f"({int8_path(self.path).name}); make one with `exposed quantise`")
        if self.requested != "auto":
            return self.requested
        if computes_bf16(self._core):
            return "bf16"
        return "int8" if int8_form(self.path) is not None else "fp32"

    def prepare(self, height: int, width: int, tile: int | None) -> None:
        """Start compiling the network, on a thread of its own, for the tiles of a packed frame of
        ``height`` x ``width`` (``tile``: as :meth:`denoise` will be given it), so that the frame's
        first pass need not wait for it: a compilation takes a quarter of a second on a 2-core CPU,
        which the planning of the photo (its noise and ratio, numpy on the other core) hides."""
        self._compilation((1, input_channels(self.config), *network_shape(height, width, tile)))

    def _compilation(self, shape: tuple[int, ...]) -> Future[Any]:
        """The network compiled for inputs of ``shape``: kept, under way, or started now."""
        with self._lock:
            compiled = self._compiled.pop(shape, None)
            if compiled is None:
                if self._compiler is None:
                    self._compiler = ThreadPoolExecutor(max_workers=1, thread_name_prefix="exposed-compile")
                compiled = self._compiler.submit(self._compile, shape)
            self._compiled[shape] = compiled  # the most recently used last
            while len(self._compiled) > KEPT_SHAPES:  # a batch of many cameras' frames
                del self._compiled[next(iter(self._compiled))]
        return compiled

    def _compile(self, shape: tuple[int, ...]) -> Any:
        model = self._model.clone()
        model.reshape(list(shape))
        hint = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}[self.precision]  # int8: the rest in f32
        return self._core.compile_model(model, "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": hint,
            **({"INFERENCE_NUM_THREADS": self.threads} if self.threads else {})})

    def backbone(self, x: np.ndarray) -> np.ndarray:
        """The network's outputs for (1, C, h, w) float32 inputs (h and w multiples of 16). Safe
        from several threads (``-j``): each call has its own inference request."""
        return self._compilation(x.shape).result().create_infer_request().infer(x)[0]

    def describe(self) -> str:
        """Where and how the network runs, for ``-v`` (and a conversion made on this first use)."""
        made = f"; {self.path.name} converted for it once, kept as {self.converted}" if self.converted else ""
        return f"OpenVINO {_version()} on the CPU, {self.precision}{made}"

    def share_cores(self, jobs: int) -> None:
        """Give the network 1/jobs of the cores, for ``jobs`` files at once (before its first use)."""
        self.threads = max(1, (os.cpu_count() or 1) // jobs)

    def denoise(self, packed: np.ndarray, saturated: np.ndarray, ratio: float, noise: NoiseLevel,
                steps: int | None, seed: int, tile: int | None,
                on_step: Callable[[int, int], None] | None = None) -> np.ndarray:
        """The brightened, denoised (1, 4, H, W) float32 packed raw in [0, 1]
        (:func:`exposed.denoise.numpy_infer.denoise`)."""
        return denoise(self.backbone, self.config, packed, saturated, ratio, np.array(noise.site_gain),
                       np.array(noise.site_read_var), steps, seed, tile, on_step=on_step)
