"""A batch run through the Python API: the next file is read while the current one is worked on,
and that changes neither the results nor how a bad file is reported."""

import io
import re
import threading
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from rich.console import Console

import exposed.batch.job as job_module
from exposed.batch.report import Reporter
from exposed.batch.run import BatchOptions, run_batch
from exposed.io.raw import read_raw
from exposed.pipeline import Settings

from conftest import synthetic_dng


def _batch(inputs: list[Path], out: Path, settings: Settings) -> tuple[int, str]:
    console = Console(file=io.StringIO(), width=200)
    status = run_batch([str(p) for p in inputs], settings, BatchOptions(output=f"{out}/", fmt="png"),
                       Reporter(console, settings))
    return status, console.file.getvalue()


def test_the_next_raw_is_read_while_the_current_file_is_worked_on(tmp_path, monkeypatch):
    shots = [synthetic_dng(tmp_path / f"{name}.dng", seed=i) for i, name in enumerate("abc")]
    settings = Settings(mode="amplify", ratio=20.0)
    reads: list[tuple[str, str]] = []
    second_read_started = threading.Event()
    overlapped: list[bool] = []

    def reading(path: Path):
        reads.append((Path(path).stem, threading.current_thread().name))
        if Path(path).stem == "b":
            second_read_started.set()
        return read_raw(path)

    plan = job_module.Enhancer.plan

    def planning(self, raw):  # file a's plan waits for file b's read: it comes only if read ahead
        if not overlapped:
            overlapped.append(second_read_started.wait(timeout=30))
        return plan(self, raw)

    monkeypatch.setattr(job_module, "read_raw", reading)
    monkeypatch.setattr(job_module.Enhancer, "plan", planning)
    status, _ = _batch(shots, tmp_path / "ahead", settings)
    assert status == 0 and overlapped == [True]
    assert [name for name, _ in reads] == ["a", "b", "c"]
    assert all(thread.startswith("exposed-read") for _, thread in reads)

    monkeypatch.undo()
    for name in "abc":  # the same pictures as reading each file when its turn comes
        alone, _ = _batch([tmp_path / f"{name}.dng"], tmp_path / f"alone-{name}", settings)
        assert alone == 0
        np.testing.assert_array_equal(iio.imread(tmp_path / "ahead" / f"{name}.png"),
                                      iio.imread(tmp_path / f"alone-{name}" / f"{name}.png"))


def test_the_first_raw_is_read_and_framed_while_the_model_loads(tmp_path, monkeypatch):
    """A single file pays the model's loading once (OpenVINO's or torch's import, the weights): the
    raw is decoded and made ready (Enhancer.frame) on the reading thread meanwhile, not after. Later
    files are only read ahead: their frames are made when their turn comes, so a batch holds one at
    a time."""
    import exposed.pipeline as pipeline

    shots = [synthetic_dng(tmp_path / f"{name}.dng", seed=i) for i, name in enumerate("ab")]
    framed = threading.Event()
    seen_while_loading: list[bool] = []
    framed_on: list[str] = []
    load, frame = pipeline.Enhancer.model_config.fget, pipeline.Enhancer.frame

    def framing(self, raw):
        made = frame(self, raw)
        framed_on.append(threading.current_thread().name)
        framed.set()
        return made

    def loading(self):
        if not seen_while_loading:
            seen_while_loading.append(framed.wait(timeout=30))
        return load(self)

    monkeypatch.setattr(pipeline.Enhancer, "frame", framing)
    monkeypatch.setattr(pipeline.Enhancer, "model_config", property(loading))
    status, _ = _batch(shots, tmp_path / "out", Settings(ratio=20.0, tile=64))
    assert status == 0 and seen_while_loading == [True] and (tmp_path / "out" / "b.png").exists()
    assert framed_on[0].startswith("exposed-read") and framed_on[1] == threading.main_thread().name


def test_a_file_is_written_while_the_next_is_computed_and_told_in_order(tmp_path, monkeypatch):
    """Writing a file (a 24 MP JPEG's encoding is a quarter of a second) happens on its own thread
    while the next file is worked on; each line comes when its file is written, in the files'
    order, a failure among them included."""
    shots = [synthetic_dng(tmp_path / f"{name}.dng", seed=i) for i, name in enumerate("abd")]
    bad = tmp_path / "c.dng"
    bad.write_bytes(b"II*\x00" + bytes(200))
    second_planned = threading.Event()
    overlapped: list[bool] = []
    writers: list[str] = []
    plan, deliver = job_module.Enhancer.plan, job_module.deliver

    planned: list[object] = []

    def planning(self, raw):  # raw: the file's RawImage, or the first file's Frame
        planned.append(raw)
        if len(planned) == 2:
            second_planned.set()
        return plan(self, raw)

    def delivering(*args, **kwargs):  # file a is written only once file b is being worked on
        if not overlapped:
            overlapped.append(second_planned.wait(timeout=30))
        writers.append(threading.current_thread().name)
        return deliver(*args, **kwargs)

    monkeypatch.setattr(job_module.Enhancer, "plan", planning)
    monkeypatch.setattr(job_module, "deliver", delivering)
    status, said = _batch([shots[0], shots[1], bad, shots[2]], tmp_path / "out", Settings(mode="amplify", ratio=20.0))
    assert status == 1 and overlapped == [True] and all(name.startswith("exposed-write") for name in writers)
    told = [re.search(r"(\w+)\.dng", line).group(1) for line in said.splitlines() if ".dng" in line]
    assert told == ["a", "b", "c", "d"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.png", "d.png"]


def test_a_file_that_fails_to_read_ahead_is_reported_as_its_own_and_the_batch_goes_on(tmp_path):
    good = [synthetic_dng(tmp_path / f"{name}.dng", seed=i) for i, name in enumerate("ac")]
    bad = tmp_path / "b.dng"
    bad.write_bytes(b"II*\x00" + bytes(200))
    status, said = _batch([good[0], bad, good[1]], tmp_path / "out", Settings(mode="amplify", ratio=20.0))
    assert status == 1
    errors = [line for line in said.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "b.dng" in errors[0] and "Traceback" not in said
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


def test_a_fault_in_exposed_is_not_blamed_on_the_file(tmp_path, monkeypatch):
    """A programming error while one file is worked on says it is exposed's, names its type and the
    batch goes on; an error numpy or torch raise on a file's values still points at the file."""
    import exposed.pipeline as pipeline

    shots = [synthetic_dng(tmp_path / f"{name}.dng", seed=i) for i, name in enumerate("abc")]
    real_frame = pipeline.Enhancer.frame

    def failing(self, raw):
        if raw.path.stem == "a":
            raise TypeError("an argument exposed passed wrongly")
        if raw.path.stem == "b":
            np.zeros(2).reshape(3)  # numpy's own ValueError, as odd values can cause
        return real_frame(self, raw)

    monkeypatch.setattr(pipeline.Enhancer, "frame", failing)
    status, report = _batch(shots, tmp_path / "out", Settings(mode="amplify", ratio=20.0))
    assert status == 1 and (tmp_path / "out" / "c.png").exists()
    line_a = next(line for line in report.splitlines() if "a.dng" in line)
    line_b = next(line for line in report.splitlines() if "b.dng" in line)
    assert "an internal error (TypeError), not a fault of the file" in line_a
    assert "holds values exposed cannot use" in line_b and "internal" not in line_b
