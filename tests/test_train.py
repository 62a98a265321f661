import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from exposed.denoise.checkpoint import load_model
from exposed.io.checkpoint import load_checkpoint
from exposed.training.evaluate import evaluate, make_eval_set
from exposed.denoise.infer import default_steps, denoise
from exposed.training.config import TrainConfig, load_config
from exposed.training.schedule import learning_rate
from exposed.training.train import train

TINY = ["--arch", "unet", "--width", "4", "--patch", "64", "--batch", "2", "--val-count", "2", "--log-every", "1",
        "--threads", "1", "--warmup", "2"]


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        smooth = rng.random((9, 12, 3))
        image = np.kron(smooth, np.ones((16, 16, 1)))  # 144 x 192 blocks of colour
        iio.imwrite(folder / f"{i}.png", (image * 255).astype(np.uint8))
    return folder


def _run(args, **kwargs):
    return subprocess.run([sys.executable, "-m", "exposed", "train", *args], capture_output=True, text=True, **kwargs)


def test_config_file_then_options(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('width = 8\nkind = "feedforward"\nlr = 1e-3\n')
    config = load_config(path, width=12, lr=None)
    assert (config.width, config.kind, config.lr) == (12, "feedforward", 1e-3)
    path.write_text("widht = 8\n")
    with pytest.raises(ValueError, match="widht"):
        load_config(path)


def test_learning_rate_warms_up_then_decays_to_its_floor():
    c = TrainConfig(iters=1000, warmup=100, lr=1e-3, lr_min=1e-6)
    assert learning_rate(c, 0) == pytest.approx(1e-5)
    assert learning_rate(c, 99) == pytest.approx(1e-3)
    assert learning_rate(c, 550) == pytest.approx((1e-3 + 1e-6) / 2, rel=1e-3)
    assert learning_rate(c, 999) == pytest.approx(1e-6, rel=1e-2)
    # With a time budget the decay follows whichever is further along, iterations or minutes.
    timed = TrainConfig(iters=1000, warmup=100, lr=1e-3, lr_min=1e-6, minutes=10)
    assert learning_rate(timed, 550, seconds=0) == pytest.approx(learning_rate(c, 550))
    assert learning_rate(timed, 200, seconds=300) == pytest.approx((1e-3 + 1e-6) / 2, rel=1e-3)
    assert learning_rate(timed, 200, seconds=600) == pytest.approx(1e-6)


def test_a_time_budget_ends_the_run_with_weights_and_an_average_that_resumes(tmp_path, images):
    """--minutes stops a run with far more iterations than fit; the last checkpoint holds the
    average of the weights as its model (what ships) and the optimised weights to resume from."""
    from exposed.denoise.checkpoint import export_model

    out = tmp_path / "run"
    config = TrainConfig(width=4, patch=64, batch=2, val_count=2, log_every=1, threads=1, warmup=2, iters=10**6,
                         minutes=0.05, ema=0.5, lr=2e-3, val_every=10**6, images=str(images),
                         val_images=str(images), out=str(out))
    state = load_checkpoint(train(config))
    done = state["train"]["iteration"]
    assert 0 < done < 10**6 and 3 <= state["train"]["wall_seconds"] < 60
    assert set(state["model"]) == set(state["optimised"])
    assert any(not torch.equal(state["model"][k], state["optimised"][k]) for k in state["model"])
    assert load_checkpoint(out / "best.pt")["train"]["iteration"] == done  # validated at the end
    exported = export_model(state)
    assert all(torch.equal(exported["model"][k].float(), state["model"][k].half().float()) for k in state["model"])
    # A longer budget resumes the same run: its average carries on from the saved one.
    state2 = load_checkpoint(train(TrainConfig(**{**config.__dict__, "minutes": 0.1})))
    assert state2["train"]["iteration"] > done
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any(r.get("resumed") == done for r in log)


@pytest.mark.parametrize("kind", ["diffusion", "feedforward"])
def test_training_lowers_the_loss_and_checkpoints_load_without_code(tmp_path, images, kind):
    config = TrainConfig(width=4, patch=64, batch=2, val_count=2, log_every=1, threads=1, warmup=2, iters=40,
                         lr=2e-3, val_every=40, kind=kind, images=str(images), val_images=str(images),
                         out=str(tmp_path / "run"))
    last = train(config)
    state = load_checkpoint(last)  # weights_only=True inside
    assert state["train"]["iteration"] == 40 and state["model_config"]["kind"] == kind
    json.dumps(state["model_config"]), json.dumps(state["train"]["config"])
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert np.mean(losses[-10:]) < np.mean(losses[:5])
    assert any("val" in r for r in log)
    model = load_model(tmp_path / "run" / "best.pt")
    assert model.config.kind == kind and not model.training
    # Validation scores the model as it is used: T steps for diffusion, one pass for the twin.
    best = load_checkpoint(tmp_path / "run" / "best.pt")["train"]
    val_set = make_eval_set(images, (100.0, 300.0), config.camera, config.noise_model, seed=1234, limit=2, crop=256)
    g = torch.Generator().manual_seed(0)
    scores = evaluate(lambda dark, ratio, sensor: denoise(model, dark, ratio, sensor, default_steps(model), g,
                                                          best["precision"]), val_set)
    assert scores["x100"]["psnr"] == pytest.approx(best["val"]["x100"]["psnr"], abs=1e-4)


def test_the_twin_trains_in_one_pass_and_diffusion_in_t_plus_one():
    from exposed.denoise.config import ModelConfig
    from exposed.denoise.model import ExposureModel
    from exposed.training.train import TrainingStep

    for kind, passes in (("feedforward", 1), ("diffusion", 3)):
        model, calls = ExposureModel(ModelConfig("unet", 4, kind, steps=2)), []
        model.register_forward_hook(lambda *args: calls.append(1))
        x = torch.rand(1, 4, 16, 16) * 0.01
        TrainingStep(model, 2)(x, x * 100, torch.tensor([100.0]), torch.tensor([1e-4]), torch.tensor([1e-7]), None)
        assert len(calls) == passes


def test_with_a_wiener_stride_the_loss_also_scores_the_blended_result_and_trains_through_it():
    """The last estimate, Wiener-blended with the brightened frame, is one more L1 term, and its
    gradient reaches the network through the blend."""
    from dataclasses import replace

    from exposed.denoise.infer import wiener_blend
    from exposed.denoise.config import ModelConfig
    from exposed.denoise.model import ExposureModel
    from exposed.denoise.process import run_process
    from exposed.exposure import brighten
    from exposed.sensor.noise import SensorScale
    from exposed.training.train import TrainingStep

    torch.manual_seed(0)
    model = ExposureModel(ModelConfig("unet", 4, "feedforward"))
    clean = torch.rand(2, 4, 16, 16) * 0.5
    noisy = clean / 10 + 0.002 * torch.randn(2, 4, 16, 16)
    ratio, sensor = torch.tensor([10.0, 10.0]), SensorScale(torch.tensor([1e-4, 1e-4]), torch.tensor([1e-7, 1e-7]))
    plain = TrainingStep(model, 0)(noisy, clean, ratio, sensor.gain, sensor.read_var, None)
    model.config = replace(model.config, wiener_stride=4)
    blended = TrainingStep(model, 0)(noisy, clean, ratio, sensor.gain, sensor.read_var, None)
    with torch.no_grad():
        [estimate] = run_process(model, noisy, ratio, sensor, 0, None, training=True)
        result = wiener_blend(estimate, brighten(noisy, ratio), ratio, sensor, 4)
    torch.testing.assert_close(blended.detach(), plain.detach() + (result - clean).abs().mean(), rtol=1e-5, atol=1e-6)
    blended.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_result_only_scores_the_blend_alone_each_sample_at_the_steps_inference_gives_its_ratio():
    """With ratio_per_step 75 and T = 1, a x10 sample runs one pass and a x100 sample two, in batch
    order whatever order they run in; the loss is the blended result's L1 and nothing else."""
    from exposed.denoise.infer import wiener_blend
    from exposed.denoise.config import ModelConfig
    from exposed.denoise.model import ExposureModel
    from exposed.denoise.process import run_process
    from exposed.exposure import brighten
    from exposed.sensor.noise import SensorScale
    from exposed.training.train import TrainingStep

    torch.manual_seed(0)
    model = ExposureModel(ModelConfig("unet", 4, "diffusion", steps=1, ratio_per_step=75.0, wiener_stride=4))
    clean = torch.rand(2, 4, 16, 16) * 0.5
    ratio = torch.tensor([100.0, 10.0])
    noisy = clean / ratio[:, None, None, None] + 0.001 * torch.randn(2, 4, 16, 16)
    sensor = SensorScale(torch.tensor([1e-4, 1e-4]), torch.tensor([1e-7, 1e-7]))
    sizes: list[int] = []
    model.register_forward_hook(lambda module, args, out: sizes.append(args[0].shape[0]))
    step = TrainingStep(model, 1, result_only=True)
    loss = step(noisy, clean, ratio, sensor.gain, sensor.read_var, torch.Generator().manual_seed(0))
    assert sorted(sizes) == [1, 1, 1]  # x10: one pass; x100: two
    results = step._results(noisy, ratio, sensor, torch.Generator().manual_seed(0))
    with torch.no_grad():  # the x10 sample has no photon draws: its result is the plain pass, in place 1
        [alone] = run_process(model, noisy[1:], ratio[1:], SensorScale(sensor.gain[1:], sensor.read_var[1:]), 0,
                              None, training=True)
    torch.testing.assert_close(results[1:], alone)
    blended = wiener_blend(results, brighten(noisy, ratio), ratio, sensor, 4).masked_fill(noisy >= 1.0, 1.0)
    torch.testing.assert_close(loss, (blended - clean).abs().mean(), rtol=1e-5, atol=1e-7)
    anchored = TrainingStep(model, 1, result_only=True, estimate_weight=0.25)(
        noisy, clean, ratio, sensor.gain, sensor.read_var, torch.Generator().manual_seed(0))
    torch.testing.assert_close(anchored, loss + 0.25 * (results - clean).abs().mean(), rtol=1e-5, atol=1e-7)
    high_only = TrainingStep(model, 1, result_only=True, estimate_weight=0.25, estimate_from=50.0)(
        noisy, clean, ratio, sensor.gain, sensor.read_var, torch.Generator().manual_seed(0))
    torch.testing.assert_close(high_only, loss + 0.25 * (results[:1] - clean[:1]).abs().mean() / 2,
                               rtol=1e-5, atol=1e-7)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.config = ModelConfig("unet", 4, "diffusion", steps=1)
    with pytest.raises(ValueError, match="wiener_stride"):
        TrainingStep(model, 1, result_only=True)


def test_resumes_after_kill_9(tmp_path, images):
    out = tmp_path / "run"
    args = TINY + ["--images", str(images), "--val-images", str(images), "--out", str(out), "--iters", "100000",
                   "--checkpoint-minutes", "0", "--val-every", "100000"]
    proc = subprocess.Popen([sys.executable, "-m", "exposed", "train", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "last.pt").exists():
        time.sleep(0.2)
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = load_checkpoint(out / "last.pt")["train"]["iteration"]
    assert saved >= 1
    done = _run(TINY + ["--images", str(images), "--val-images", str(images), "--out", str(out),
                        "--iters", str(saved + 3), "--val-every", "100000"])
    assert done.returncode == 0, done.stderr
    assert {"resumed": saved} in [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert load_checkpoint(out / "last.pt")["train"]["iteration"] == saved + 3


def test_runs_unchanged_under_torchrun(tmp_path, images):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "exposed",
           "train", *TINY, "--images", str(images), "--val-images", str(images), "--out", str(out), "--iters", "4"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = load_checkpoint(out / "last.pt")
    assert state["train"]["world_size"] == 2 and state["train"]["iteration"] == 4


def test_a_different_model_in_the_same_folder_is_refused(tmp_path, images):
    common = TINY + ["--images", str(images), "--val-images", str(images), "--out", str(tmp_path / "r"), "--iters", "1"]
    assert _run(common).returncode == 0
    refused = _run(common + ["--width", "8", "--iters", "2"])
    assert refused.returncode != 0 and "different model" in refused.stderr


def test_a_run_can_start_from_a_shipped_model_and_continue_its_count(tmp_path, images):
    from exposed.denoise.checkpoint import export_model
    from exposed.io.checkpoint import save_checkpoint

    common = dict(width=4, patch=64, batch=2, val_count=0, threads=1, warmup=2, images=str(images))
    first = train(TrainConfig(**common, iters=3, out=str(tmp_path / "a")))
    shipped = save_checkpoint(tmp_path / "shipped.pt", export_model(load_checkpoint(first)))
    last = train(TrainConfig(**common, iters=5, lr=0.0, lr_min=0.0, out=str(tmp_path / "b"), init=str(shipped)))
    state = load_checkpoint(last)
    assert state["train"]["iteration"] == 5  # 3 from the shipped model, 2 more here
    weights = load_checkpoint(shipped)["model"]
    assert all(torch.equal(state["model"][k], v.float()) for k, v in weights.items())  # lr 0: unchanged


def test_a_fine_tune_can_add_the_log_noise_input_to_a_shipped_model(tmp_path, images):
    from exposed.denoise.checkpoint import export_model
    from exposed.io.checkpoint import save_checkpoint

    common = dict(width=4, patch=64, batch=2, val_count=0, threads=1, warmup=2, images=str(images))
    shipped = save_checkpoint(tmp_path / "shipped.pt", export_model(load_checkpoint(
        train(TrainConfig(**common, iters=2, out=str(tmp_path / "a")))), half=False))
    last = train(TrainConfig(**common, iters=1, lr=0.0, lr_min=0.0, out=str(tmp_path / "b"), init=str(shipped),
                             fine_tune=True, noise_input="std+log"))
    widened, before = load_model(last), load_model(shipped)
    assert widened.config.noise_input == "std+log" and widened.backbone.down[0][0].in_channels == 12
    x = torch.rand(1, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(widened(x, x * 0.02), before(x, x * 0.02))  # lr 0: the same function


def test_a_wider_unet_can_start_from_a_narrower_model_file(tmp_path, images):
    from exposed.denoise.checkpoint import export_model
    from exposed.io.checkpoint import save_checkpoint

    common = dict(patch=64, batch=2, val_count=0, threads=1, warmup=2, images=str(images))
    narrow = save_checkpoint(tmp_path / "narrow.pt", export_model(load_checkpoint(
        train(TrainConfig(**common, width=4, iters=2, out=str(tmp_path / "a")))), half=False))
    last = train(TrainConfig(**common, width=8, iters=1, lr=0.0, lr_min=0.0, out=str(tmp_path / "b"),
                             init=str(narrow), fine_tune=True))
    wide, before = load_model(last), load_model(narrow)
    assert wide.config.width == 8 and wide.backbone.down[0][0].out_channels == 8
    x = torch.rand(1, 4, 32, 32)
    with torch.no_grad():  # lr 0: the narrow model's function, up to the copies' small nudges
        assert (wide(x, x * 0.02) - before(x, x * 0.02)).abs().max().item() < 1e-3
    with pytest.raises(ValueError, match="whole factor"):
        train(TrainConfig(**common, width=6, iters=1, out=str(tmp_path / "c"), init=str(narrow), fine_tune=True))


def test_a_diffusion_model_can_start_from_its_twins_file_and_computes_the_twins_estimate(tmp_path, images):
    from exposed.denoise.checkpoint import export_model
    from exposed.denoise.model import diffusion_from_twin
    from exposed.io.checkpoint import save_checkpoint

    common = dict(width=4, patch=64, batch=2, val_count=0, threads=1, warmup=2, images=str(images))
    twin_file = save_checkpoint(tmp_path / "twin.pt", export_model(load_checkpoint(
        train(TrainConfig(**common, kind="feedforward", iters=2, out=str(tmp_path / "a")))), half=False))
    last = train(TrainConfig(**common, kind="diffusion", iters=3, lr=0.0, lr_min=0.0, out=str(tmp_path / "b"),
                             init=str(twin_file), fine_tune=True))
    diffusion, twin = load_model(last), load_model(twin_file)
    assert diffusion.config.kind == "diffusion" and twin.config.kind == "feedforward"
    x = torch.rand(1, 4, 32, 32) * 1.2
    with torch.no_grad():  # lr 0: the twin's estimate, clipped to [0, 1] by the adaptive layer
        torch.testing.assert_close(diffusion(x, x * 0.02), twin(x, x * 0.02).clamp(0.0, 1.0))
    with pytest.raises(ValueError, match="not a feedforward"):
        diffusion_from_twin(twin.state_dict(), twin.config)
    with pytest.raises(ValueError, match="not a twin's"):
        diffusion_from_twin(diffusion.state_dict(), diffusion.config)
    with pytest.raises(ValueError, match="different model"):  # and not the other way round
        train(TrainConfig(**common, kind="feedforward", iters=1, out=str(tmp_path / "c"), init=str(last)))


def test_night_photography_settings_reach_the_sampler(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('camera = "all"\nnoise_model = "pg,eld"\nbits = [8, 14, 14]\nvaried_black = true\n'
                    'black_error = 2.0\nquantise = true\nnight_share = 0.5\nval_ratios = [5, 300]\n')
    config = load_config(path)
    mix = config.sensors()
    assert mix.cameras[-1] == "virtual" and len(mix.cameras) == 6 and mix.noise_models == ("pg", "eld")
    assert mix.bits == (8, 14, 14) and mix.varied_black and mix.quantise and mix.black_error == 2.0
    assert config.val_ratios == (5.0, 300.0) and config.night_share == 0.5
    assert load_config(None, bits="10,12").bits == (10, 12)


def test_a_fine_tune_starts_its_own_count_and_schedule(tmp_path, images):
    from exposed.denoise.checkpoint import export_model
    from exposed.io.checkpoint import save_checkpoint

    common = dict(width=4, patch=64, batch=2, val_count=0, threads=1, warmup=2, images=str(images))
    first = train(TrainConfig(**common, iters=3, out=str(tmp_path / "a")))
    shipped = save_checkpoint(tmp_path / "shipped.pt", export_model(load_checkpoint(first)))
    last = train(TrainConfig(**common, iters=2, out=str(tmp_path / "b"), init=str(shipped), fine_tune=True,
                             night_share=1.0, camera="all", noise_model="eld", bits=(8, 12), quantise=True))
    state = load_checkpoint(last)
    assert state["train"]["iteration"] == 2
    log = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert {"init_iteration": 3, "fine_tune": True}.items() <= next(r for r in log if "init" in r).items()


def test_relative_l1_weighs_each_sample_by_its_brightened_frames_error():
    from exposed.training.train import relative_l1

    g = torch.Generator().manual_seed(0)
    clean = 0.25 + 0.5 * torch.rand(3, 4, 8, 8, generator=g, dtype=torch.float64)
    scale = torch.tensor([0.003, 0.01, 0.03], dtype=torch.float64).view(3, 1, 1, 1)
    noise = torch.randn(3, 4, 8, 8, generator=g, dtype=torch.float64) * scale
    amplified, estimate = clean + noise, clean + 0.3 * noise.flip(-1)
    # float64 reference: weights from the brightened frame clipped to black and white, floored, mean 1.
    a, c, e = amplified.numpy(), clean.numpy(), estimate.numpy()
    w = 1 / np.maximum(np.abs(np.clip(a, 0, 1) - c).mean(axis=(1, 2, 3)), 2e-3)
    expected = np.mean(np.abs(e - c).mean(axis=(1, 2, 3)) * w / w.mean())
    assert relative_l1(estimate, clean, amplified).item() == pytest.approx(expected, rel=1e-12)
    # Every sample's estimate has 0.3 of its brightened frame's error, so each contributes the
    # same to the loss, although their plain L1s differ tenfold.
    alone = []
    for b in range(3):
        only = clean.clone()
        only[b] = estimate[b]
        alone.append(relative_l1(only, clean, amplified).item())
    assert max(alone) == pytest.approx(min(alone), rel=1e-9)
    plain = (estimate - clean).abs().mean(dim=(1, 2, 3))
    assert plain[2] > 8 * plain[0]


def test_relative_psnr_is_each_samples_db_over_its_brightened_frame():
    from exposed.training.train import relative_psnr

    g = torch.Generator().manual_seed(1)
    clean = 0.25 + 0.5 * torch.rand(3, 4, 8, 8, generator=g, dtype=torch.float64)
    scale = torch.tensor([0.003, 0.01, 0.03], dtype=torch.float64).view(3, 1, 1, 1)
    noise = torch.randn(3, 4, 8, 8, generator=g, dtype=torch.float64) * scale
    amplified = clean + noise
    estimate = clean + torch.tensor([0.5, 0.25, 0.1], dtype=torch.float64).view(3, 1, 1, 1) * noise.flip(-1)
    # float64 reference: PSNRs on [0, 1] of the estimate and the clipped brightened frame, differenced.
    a, c, e = amplified.numpy(), clean.numpy(), estimate.numpy()

    def psnr(x: np.ndarray) -> np.ndarray:
        return -10 * np.log10(((x - c) ** 2).mean(axis=(1, 2, 3)))

    expected = psnr(np.clip(a, 0, 1)) - psnr(e)  # each sample's dB below brightening: 6.0, 12.0, 20.0
    terms = relative_psnr(estimate, clean, amplified, floor=0.0, reduce=False).numpy()
    np.testing.assert_allclose(terms, expected, rtol=1e-9)
    np.testing.assert_allclose(-terms, 20 * np.log10([2.0, 4.0, 10.0]), rtol=1e-9)  # noise scaled by 1/2, 1/4, 1/10
    assert relative_psnr(estimate, clean, amplified).item() == pytest.approx(expected.mean(), abs=1e-3)  # floored
    # The same dB anywhere gets the same gradient in dB: halving any sample's error moves the loss alike.
    moved = []
    for b in range(3):
        better = estimate.clone()
        better[b] = clean[b] + (estimate[b] - clean[b]) / 2
        moved.append(relative_psnr(better, clean, amplified, floor=0.0).item())
    assert max(moved) == pytest.approx(min(moved), rel=1e-9)


def test_training_with_the_relative_loss_runs(tmp_path, images):
    out = tmp_path / "run"
    subprocess.run([sys.executable, "-m", "exposed", "train", *TINY, "--images", str(images), "--val-images",
                    str(images), "--out", str(out), "--loss", "relative", "--iters", "4"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["start"]["loss"] == "relative"
    assert all(np.isfinite(r["loss"]) for r in log if "loss" in r)


def test_the_gpu_training_script_runs_end_to_end_on_the_cpu(tmp_path, images):
    """benchmarks/gpu_train.sh at toy size: the same commands the device calls run, so a call cannot
    fail on a typo. Both models come back exported, at equal optimizer steps; a second lease
    fine-tunes them twice as wide (the next lease's command)."""
    from exposed.training.pack import write_pack

    write_pack(images, tmp_path / "pack.tar")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_train.sh"
    env = {**os.environ, "RUNS": str(tmp_path / "runs"), "MINUTES": "0.05", "BATCH": "2", "PATCH": "64",
           "DEVICE": "cpu", "IMAGES": str(tmp_path / "pack.tar"), "PYTHON": sys.executable,
           "TWIN_MINUTES": "2"}  # a guard a loaded machine cannot hit: the twin takes the default's steps
    first, second = tmp_path / "out", tmp_path / "wider"
    names = {"diffusion": "exposure-diffusion-unet{}-gpu", "feedforward": "feedforward-unet{}-gpu"}
    runs = ((first, {"WIDTH": "4"}),
            (second, {"WIDTH": "8", "LR": "1e-4", "RUNS": str(tmp_path / "runs2"),
                      **{f"INIT_{kind.upper()}": str(first / f"{name.format(4)}.pt") for kind, name in names.items()}}))
    for out, settings in runs:
        result = subprocess.run(["bash", str(script)], env={**env, "OUT": str(out), **settings}, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stdout + result.stderr
        summary = json.loads((out / "summary.json").read_text())
        assert summary["diffusion"]["iterations"] == summary["feedforward"]["iterations"] > 0
        for kind, name in names.items():
            model = load_model(out / f"{name.format(settings['WIDTH'])}.pt")
            assert model.config.kind == kind and model.config.width == int(settings["WIDTH"])
            assert model.config.wiener_stride == 4  # trained through the blend, as the shipped pair
            assert (out / f"{name.format(settings['WIDTH'])}.log.jsonl").stat().st_size > 0
    log = [json.loads(line) for line in (second / "exposure-diffusion-unet8-gpu.log.jsonl").open()]
    assert {"init_width": 4, "fine_tune": True}.items() <= next(r for r in log if "init" in r).items()
