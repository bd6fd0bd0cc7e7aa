"""The diffusion renderer: model, schedules, sampler, checkpoints and the ``diffusion`` backend.

Real model code with random weights (the ``tiny`` config; ``paper`` built once on the CPU); nothing
is downloaded.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")

from foleyspace.backends import Backends  # noqa: E402
from foleyspace.cli import main  # noqa: E402
from foleyspace.diffusion.checkpoint import (Checkpoint, load, load_for_inference, rng_state, save,  # noqa: E402
                                             set_rng_state)
from foleyspace.diffusion.config import DiffusionRendererSettings, named_config  # noqa: E402
from foleyspace.diffusion.model import (BinauralDiffWave, condition_reach, condition_trajectory,  # noqa: E402
                                        delay_by_distance, expand_trajectory, parameter_count,
                                        trajectory_slice)
from foleyspace.diffusion.renderer import DiffusionRenderer, model_positions  # noqa: E402
from foleyspace.diffusion.sampler import (chunk_starts, crossfade_weights, position_noise, sample,  # noqa: E402
                                          sample_chunk)
from foleyspace.diffusion.schedule import (align_steps, fast_schedule, kept_steps, q_sample,  # noqa: E402
                                           respaced_schedule, reverse_step, training_schedule)
from foleyspace.errors import Cancelled  # noqa: E402
from foleyspace.jobspec import SpecError, job_from_spec, spec_from_job  # noqa: E402
from foleyspace.pipeline import setting_files  # noqa: E402
from foleyspace.render import DspRendererConfig, Waypoints, segment_bounds  # noqa: E402

TINY = named_config("tiny")


def tiny_model(seed: int = 0) -> BinauralDiffWave:
    """A tiny model whose zero-initialised output layer is randomised, so its noise estimate is not 0."""
    torch.manual_seed(seed)
    model = BinauralDiffWave(TINY)
    torch.nn.init.normal_(model.output_projection.weight, std=0.05)
    return model.eval()


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    model = tiny_model()
    ema = {k: v + 0.01 for k, v in model.state_dict().items()}
    return save(tmp_path_factory.mktemp("ckpt") / "tiny.pt", Checkpoint(TINY, model.state_dict(), step=7, ema=ema))


# --- the trajectory contract ----------------------------------------------------------------------

@pytest.mark.parametrize("n_samples, n_positions", [(8000, 25), (1000, 7), (16000, 200), (5, 2), (123457, 200),
                                                    (7, 6)])
def test_expand_trajectory_holds_each_position_over_its_eq8_segment(n_samples, n_positions):
    xyz = torch.stack([torch.arange(n_positions, dtype=torch.float64), -torch.arange(n_positions) * 2.0,
                       torch.full((n_positions,), 3.0)], dim=1)
    out = expand_trajectory(xyz, n_samples)
    assert out.shape == (1, 3, n_samples) and out.dtype == torch.float64
    bounds = segment_bounds(n_samples, n_positions)
    for i in range(n_positions):
        seg = out[0, :, bounds[i]: bounds[i + 1]]
        assert torch.all(seg[0] == i) and torch.all(seg[1] == -2.0 * i) and torch.all(seg[2] == 3.0)


def test_expand_trajectory_batches_and_slices_agree():
    xyz = torch.randn(3, 25, 3)
    full = expand_trajectory(xyz, 9000)
    assert full.shape == (3, 3, 9000)
    assert torch.equal(expand_trajectory(xyz[1], 9000)[0], full[1])
    assert torch.equal(trajectory_slice(xyz, 9000, 1234, 5678), full[:, :, 1234:5678])
    assert torch.equal(expand_trajectory(xyz.numpy(), 9000), full)


# --- the model ------------------------------------------------------------------------------------

def hand_count(cfg) -> int:
    """Parameters of the binaural DiffWave counted from its layers."""
    c, h, e, cc, k = cfg.residual_channels, cfg.embedding_hidden, cfg.embedding_dim, cfg.condition_channels, cfg.condition_kernel
    per_layer = (c * 2 * c * 3 + 2 * c) + (h * c + c) + (cc * 2 * c + 2 * c) + (c * 2 * c + 2 * c)
    inputs = 4 + (cfg.trajectory_condition == "direction")  # (x, y, z) or (unit direction, r/6), and the mono
    condition = (inputs * cc * k + cc) + (cfg.condition_layers - 1) * (cc * cc * k + cc)
    embedding = (e * h + h) + (h * h + h)
    return (2 * c + c) + embedding + condition + cfg.residual_layers * per_layer + (c * c + c) + (c * 2 + 2)


@pytest.mark.parametrize("name", ["tiny", "small", "paper"])
def test_model_shapes_and_parameter_count(name):
    cfg = named_config(name)
    model = BinauralDiffWave(cfg).eval()
    count = parameter_count(model)
    print(f"{name}: {count:,} parameters")
    assert count == hand_count(cfg)
    if name == "paper":
        assert count == 13_204_674
    n = 300
    with torch.no_grad():
        out = model(torch.randn(2, 2, n), torch.randn(2, 1, n), expand_trajectory(torch.randn(2, 10, 3), n),
                    torch.tensor([0, cfg.diffusion_steps - 1]))
        assert out.shape == (2, 2, n)
        bias = model.output_projection.bias.view(1, 2, 1)
        assert torch.equal(out, bias.expand_as(out))  # DiffWave zero-initialises the last projection's weight
    with pytest.raises(ValueError):
        model(torch.randn(1, 2, n), torch.randn(1, 1, n + 1), torch.randn(1, 3, n), torch.tensor([0]))


@pytest.mark.parametrize("name", ["tiny", "small", "paper"])
def test_the_condition_reaches_over_the_distance_delay(name):
    """Regression (the tiny model rendered no direction): the fine-scheme targets are the mono
    delayed by up to 16.8 ms (distance, §IV-A) and filtered by the HRIR (~1 ms). Tiny's 4 layers
    reach 16 samples (2 ms at 8 kHz) — not the 134 of the delay — so it needs ``condition_delay``."""
    cfg = named_config(name)
    dsp = DspRendererConfig(distance_delay=True)
    needed = (0.0 if cfg.condition_delay else dsp.max_delay_s) + 0.001
    assert condition_reach(cfg) >= needed * cfg.sample_rate
    if name == "paper":  # the paper feeds the mono as it is, and the trajectory in metres
        assert not cfg.condition_delay and cfg.trajectory_condition == "xyz"


def test_condition_reach_by_hand():
    assert condition_reach(replace(TINY, residual_layers=4, dilation_cycle=4, condition_layers=2)) == 2 + 2 + 4 + 8
    assert condition_reach(replace(TINY, residual_layers=8, dilation_cycle=8, condition_layers=2)) == 2 + 254


def test_delay_by_distance_takes_the_mono_at_its_arrival_delay():
    mono = torch.arange(1.0, 21.0).view(1, 1, 20)
    traj = torch.zeros(1, 3, 20)
    traj[0, 0, :10] = 0.1  # nearer than 0.25 m: no delay
    traj[0, 1, 10:] = -(0.25 + 343.0 * 3 / 8000)  # to the right, 3 samples of delay at 8 kHz
    out = delay_by_distance(mono, traj, 8000)
    assert out[0, 0].tolist() == list(range(1, 11)) + list(range(8, 18))
    far = torch.zeros(1, 3, 20)
    far[0, 2] = 100.0  # clamped to 6 m: 134 samples, before the start: silence
    assert torch.count_nonzero(delay_by_distance(mono, far, 8000)) == 0


def test_direction_condition_is_unit_direction_and_distance_over_6_m():
    traj = torch.tensor([[3.0, 0.0, 0.0], [0.0, -4.0, 3.0], [0.0, 0.0, 0.0]]).T.unsqueeze(0)
    assert condition_trajectory(traj, "xyz") is traj
    out = condition_trajectory(traj, "direction")
    expected = torch.tensor([[1, 0, 0, 0.5], [0, -0.8, 0.6, 5 / 6], [1, 0, 0, 0]], dtype=torch.float32).T
    torch.testing.assert_close(out[0], expected)


@pytest.mark.parametrize("gain_db", [0.0, 30.0])
def test_an_oracle_noise_model_samples_the_target_at_the_data_level(gain_db):
    """The chain training → sampler in the diffusion space of ``data_gain_db``: a model that knows the
    target (× gain, as training feeds it) and returns the exact noise of x_t gives the target back,
    in the data's units, with the standard schedule."""
    cfg = replace(TINY, data_gain_db=gain_db)
    target = torch.from_numpy(0.01 * np.sin(np.arange(2 * 600) * 0.07).reshape(2, 600).astype(np.float32))
    bar = torch.as_tensor(training_schedule(cfg).alpha_bar, dtype=torch.float32)

    class Oracle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cfg = cfg

        def forward(self, noisy, mono, trajectory, step):
            a = bar[step.long()].view(-1, 1, 1)
            assert torch.allclose(mono[0, 0], torch.full((600,), 0.1 * cfg.data_gain))  # the mono × gain
            return (noisy - a.sqrt() * target * cfg.data_gain) / (1 - a).sqrt()

    out = sample(Oracle(), cfg, np.full(600, 0.1, np.float32), np.array([[1.0, 0.0, 0.0]]), "standard", device="cpu")
    np.testing.assert_allclose(out, target.numpy(), atol=1e-4)


def test_fractional_step_embedding_interpolates_the_table():
    emb = tiny_model().embedding
    whole = emb(torch.tensor([3, 4]))
    assert torch.allclose(emb(torch.tensor([3.0, 4.0])), whole)
    half = emb.table[3] + 0.25 * (emb.table[4] - emb.table[3])
    expected = torch.nn.functional.silu(emb.projection2(torch.nn.functional.silu(emb.projection1(half))))
    assert torch.allclose(emb(torch.tensor([3.25]))[0], expected, atol=1e-6)


# --- the schedules --------------------------------------------------------------------------------

def test_training_schedule_by_hand():
    sched = training_schedule(TINY)
    assert len(sched) == 200 and sched.beta[0] == pytest.approx(1e-4) and sched.beta[-1] == pytest.approx(0.02)
    bar = 1.0
    for t in range(200):
        bar *= 1.0 - (1e-4 + t * (0.02 - 1e-4) / 199)
    assert sched.alpha_bar[-1] == pytest.approx(bar, rel=1e-12)
    assert sched.alpha_bar[-1] == pytest.approx(0.13218, abs=1e-5)  # ᾱ_T: the signal is not fully destroyed at T = 200


def test_respaced_schedule_keeps_alpha_bar_at_the_kept_steps():
    train, sched = training_schedule(TINY), respaced_schedule(TINY)
    kept = kept_steps(200, 50)
    assert len(sched) == 50 and kept[0] == 0 and kept[-1] == 199 and kept[1] == 4  # round(199/49) = 4
    np.testing.assert_array_equal(sched.model_steps, kept)
    np.testing.assert_allclose(sched.alpha_bar, train.alpha_bar[kept], rtol=1e-12)
    assert sched.beta[0] == pytest.approx(train.beta[0])
    assert sched.beta[1] == pytest.approx(1 - train.alpha_bar[4] / train.alpha_bar[0])
    assert np.all((sched.beta > 0) & (sched.beta < 1)) and sched.sigma[0] == 0.0


def test_fast_schedule_alignment_by_hand():
    train, fast = training_schedule(TINY), fast_schedule(TINY)
    np.testing.assert_allclose(fast.beta, [1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5])
    assert fast.model_steps[0] == pytest.approx(0.0)  # ᾱ'_0 = 1 − 1e-4 = ᾱ_0
    target = math.sqrt((1 - 1e-4) * (1 - 1e-3))
    root = np.sqrt(train.alpha_bar)
    t = max(i for i in range(199) if root[i] >= target)
    assert root[t + 1] < target
    assert fast.model_steps[1] == pytest.approx(t + (root[t] - target) / (root[t] - root[t + 1]))
    assert 3 < fast.model_steps[1] < 4 and np.all(np.diff(fast.model_steps) > 0) and fast.model_steps[-1] < 199
    assert align_steps(train.alpha_bar, [1.0, 1e-6]).tolist() == [0.0, 199.0]


def test_q_sample_and_the_last_reverse_step_invert_each_other():
    x0, noise = torch.randn(3, 2, 50), torch.randn(3, 2, 50)
    bar = training_schedule(TINY).alpha_bar
    t = torch.tensor([0, 57, 199])
    xt = q_sample(x0, t, noise, TINY)
    for i, step in enumerate(t.tolist()):
        expected = math.sqrt(bar[step]) * x0[i] + math.sqrt(1 - bar[step]) * noise[i]
        assert torch.allclose(xt[i], expected, rtol=1e-5, atol=1e-5)
    # with the true noise, the step at t = 0 returns x0 (ᾱ_0 = α_0, so β_0/√(1−ᾱ_0) = √β_0)
    back = reverse_step(xt[:1], noise[:1], training_schedule(TINY), 0, torch.randn(1, 2, 50))
    assert torch.allclose(back, x0[:1], atol=1e-5)


# --- the sampler ----------------------------------------------------------------------------------

def test_position_noise_depends_only_on_seed_step_and_position():
    whole = position_noise(5, 3, 0, 10_000)
    assert whole.shape == (2, 10_000)
    assert torch.equal(position_noise(5, 3, 4000, 9000), whole[:, 4000:9000])
    assert not torch.equal(position_noise(6, 3, 0, 100), whole[:, :100])
    assert not torch.equal(position_noise(5, 4, 0, 100), whole[:, :100])


def test_sampler_is_deterministic_by_seed():
    model, mono = tiny_model(), 0.5 * np.sin(np.arange(4000) * 0.05).astype(np.float32)
    xyz = np.array([[1.0, 1.0, 0.0], [1.0, -1.0, 0.0]])
    a = sample(model, TINY, mono, xyz, "fast", seed=1, device="cpu")
    b = sample(model, TINY, mono, xyz, "fast", seed=1, device="cpu")
    c = sample(model, TINY, mono, xyz, "fast", seed=2, device="cpu")
    assert a.shape == (2, 4000) and a.dtype == np.float32 and np.all(np.isfinite(a))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 0.01 * np.abs(a).mean()


def test_crossfade_weights():
    fade_in, fade_out = crossfade_weights(800)
    np.testing.assert_allclose(fade_in + fade_out, 1.0)
    assert np.all(np.diff(fade_in) > 0) and 0 < fade_in[0] < 0.01 and 0.99 < fade_in[-1] < 1
    fade_in, fade_out = crossfade_weights(800, "equal-power")
    np.testing.assert_allclose(fade_in ** 2 + fade_out ** 2, 1.0)


def test_chunk_starts_cover_the_clip():
    assert chunk_starts(500, 8000, 800) == [(0, 500)]
    chunks = chunk_starts(20_000, 8000, 800)
    assert chunks == [(0, 8000), (7200, 15200), (14400, 20000)]
    for (s0, e0), (s1, _) in zip(chunks, chunks[1:]):
        assert e0 - s1 == 800


def test_chunk_seams_are_cross_faded_and_continuous():
    """2.5 segments: three chunks; in each overlap the output is the previous chunk faded out plus
    the next faded in, and no seam steps more than the signal's typical sample-to-sample change."""
    model = tiny_model()
    n = int(2.5 * TINY.segment_samples)
    rng = np.random.default_rng(0)
    mono = (0.4 * np.sin(np.arange(n) * 2 * np.pi * 300 / 8000) * (1 + 0.3 * rng.standard_normal(n))).astype(np.float32)
    t = np.linspace(0, 1, 63)
    xyz = np.stack([2 + np.cos(3 * t), np.sin(5 * t), 0.2 * t], axis=1)
    fractions = []
    out = sample(model, TINY, mono, xyz, "fast", seed=4, device="cpu", progress=fractions.append)
    chunks = chunk_starts(n, TINY.segment_samples, 800)
    assert len(chunks) == 3 and len(fractions) == 3 * 6 and fractions[-1] == 1.0 and np.all(np.diff(fractions) > 0)
    gain = TINY.data_gain  # sample_chunk works in the diffusion space: the mono × gain in, the result ÷ gain out
    pieces = [sample_chunk(model, torch.from_numpy(mono[s:e] * np.float32(gain)),
                           trajectory_slice(torch.tensor(xyz, dtype=torch.float32), n, s, e)[0],
                           "fast", 4, s, "cpu", None).numpy() / np.float32(gain) for s, e in chunks]
    fade_in, fade_out = crossfade_weights(800)
    np.testing.assert_allclose(out[:, :7200], pieces[0][:, :7200], atol=1e-6)
    np.testing.assert_allclose(out[:, 7200:8000], fade_out * pieces[0][:, 7200:] + fade_in * pieces[1][:, :800], atol=1e-6)
    np.testing.assert_allclose(out[:, 8000:14400], pieces[1][:, 800:7200], atol=1e-6)
    steps = np.abs(np.diff(out, axis=1))
    typical = np.percentile(steps, 99, axis=1)
    for seam in (7200, 8000, 14400, 15200):
        assert np.all(np.abs(out[:, seam] - out[:, seam - 1]) <= typical), seam
    # the chunks start from the same noise where they overlap, so they agree there more than chance
    overlap_a, overlap_b = pieces[0][:, 7200:], pieces[1][:, :800]
    assert np.corrcoef(overlap_a.ravel(), overlap_b.ravel())[0, 1] > 0.5


def test_progress_raising_cancels_sampling():
    def cancel(fraction: float) -> None:
        if fraction > 0.3:
            raise Cancelled("the job was cancelled")

    with pytest.raises(Cancelled):
        sample(tiny_model(), TINY, np.ones(3000, np.float32), np.zeros((4, 3)), "fast", device="cpu", progress=cancel)


# --- checkpoints ----------------------------------------------------------------------------------

def test_checkpoint_round_trip(tmp_path):
    model = tiny_model(1)
    ema = tiny_model(2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(1, 2, 64), torch.randn(1, 1, 64), torch.randn(1, 3, 64), torch.tensor([3])).pow(2).mean().backward()
    opt.step()
    np.random.seed(3)
    state = rng_state()
    expected = (torch.rand(3), np.random.rand(3))
    path = save(tmp_path / "ck.pt", Checkpoint(TINY, model.state_dict(), step=123, ema=ema.state_dict(),
                                                optimizer=opt.state_dict(), rng=state,
                                                extra={"data": {"epoch": 2, "index": 17}}))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temporary file left
    ck = load(path)
    assert ck.config == TINY and ck.step == 123 and ck.extra == {"data": {"epoch": 2, "index": 17}}
    assert ck.code_version.startswith("0.")
    for k, v in model.state_dict().items():
        assert torch.equal(ck.model[k], v)
    opt2 = torch.optim.Adam(tiny_model(1).parameters(), lr=1e-3)
    opt2.load_state_dict(ck.optimizer)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    set_rng_state(ck.rng)
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(3), expected[1])
    net, cfg = load_for_inference(path)
    assert cfg == TINY and not net.training
    for k, v in ema.state_dict().items():  # inference runs the EMA weights
        assert torch.equal(net.state_dict()[k], v)


def bad_checkpoints(folder: Path, good: Path) -> dict[str, tuple[Path, str]]:
    """Unusable files and the words their one-line error must hold."""
    data = good.read_bytes()
    cases = {"missing": (folder / "missing.pt", "no such checkpoint")}
    (folder / "trunc.pt").write_bytes(data[: len(data) // 2])
    cases["truncated"] = (folder / "trunc.pt", "damaged or truncated")
    (folder / "text.pt").write_text("hello\n")
    cases["not torch"] = (folder / "text.pt", "not a PyTorch checkpoint")
    torch.save({"state": torch.zeros(2)}, folder / "other.pt")
    cases["wrong format"] = (folder / "other.pt", "not a FoleySpace diffusion checkpoint")
    ck = load(good)
    save(folder / "shape.pt", Checkpoint(named_config("tiny", residual_channels=8), ck.model))
    cases["wrong shape"] = (folder / "shape.pt", "do not fit")
    raw = torch.load(good, weights_only=True)
    raw["config"]["flux_capacitor"] = 3
    torch.save(raw, folder / "unknown.pt")
    cases["unknown config"] = (folder / "unknown.pt", "unknown config fields")
    torch.save({"format": "x", "obj": Path("/")}, folder / "pickle.pt")
    cases["not plain data"] = (folder / "pickle.pt", "more than tensors and plain data")
    (folder / "dir.pt").mkdir()
    cases["directory"] = (folder / "dir.pt", "not a checkpoint file")
    return cases


def test_every_bad_checkpoint_is_one_line_and_exit_2(tmp_path, tiny_ckpt, bikes_mp4, speech_wav, capsys):
    for what, (path, words) in bad_checkpoints(tmp_path, tiny_ckpt).items():
        code = main(["spatialize", str(bikes_mp4), "--in", "0", "--out", "0.5", "--audio", str(speech_wav),
                     "--renderer", "diffusion", "--checkpoint", str(path), "--localizer", "motion",
                     "--depth", "box-scale", "-q", "-o", str(tmp_path / "out.wav")])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, what
        assert len(err) == 1 and str(path) in err[0] and words in err[0], (what, err)
    assert not (tmp_path / "out.wav").exists()


def test_bad_checkpoint_in_a_real_process_has_no_traceback(tmp_path, bikes_mp4, speech_wav):
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 not really a zip")
    proc = subprocess.run([sys.executable, "-m", "foleyspace", "spatialize", str(bikes_mp4), "--in", "0", "--out", "0.5",
                           "--audio", str(speech_wav), "--renderer", "diffusion", "--checkpoint", str(tmp_path / "bad.pt"),
                           "--localizer", "motion", "--depth", "box-scale", "-q", "-o", str(tmp_path / "o.wav")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "bad.pt" in proc.stderr


# --- the backend ----------------------------------------------------------------------------------

def spec(tmp_path: Path, video: Path, **options) -> dict:
    return {"video": str(video), "output_dir": str(tmp_path), "options": options}


def test_registry_picks_diffusion_only_with_a_checkpoint(tmp_path, tiny_ckpt, bikes_mp4):
    assert job_from_spec(spec(tmp_path, bikes_mp4)).config.settings.get("renderer:diffusion") is None
    backends = Backends("cpu")
    plain = job_from_spec(spec(tmp_path, bikes_mp4))
    assert backends.choose("renderer", plain).name == "dsp"
    job = job_from_spec(spec(tmp_path, bikes_mp4, checkpoint=str(tiny_ckpt), diffusion_schedule="fast", seed=9))
    assert backends.choose("renderer", job).name == "diffusion"
    assert job.config.settings["renderer:diffusion"] == DiffusionRendererSettings(str(tiny_ckpt), "fast", 9)
    assert str(tiny_ckpt) in setting_files(job)  # a server's path policy judges the checkpoint like the inputs
    again = spec_from_job(job)["options"]
    assert (again["checkpoint"], again["diffusion_schedule"], again["seed"]) == (str(tiny_ckpt), "fast", 9)
    assert job_from_spec({**spec(tmp_path, bikes_mp4), "options": again}).config.settings == job.config.settings
    with pytest.raises(SpecError, match="needs a trained checkpoint"):
        job_from_spec(spec(tmp_path, bikes_mp4, renderer="diffusion"))
    with pytest.raises(SpecError, match="absolute"):
        job_from_spec(spec(tmp_path, bikes_mp4, checkpoint="model.pt"))
    with pytest.raises(SpecError, match="give its checkpoint"):
        job_from_spec(spec(tmp_path, bikes_mp4, seed=3))
    with pytest.raises(SpecError, match="standard, fast"):
        job_from_spec(spec(tmp_path, bikes_mp4, checkpoint=str(tiny_ckpt), diffusion_schedule="slow"))
    with pytest.raises(SpecError, match="integer"):
        job_from_spec(spec(tmp_path, bikes_mp4, checkpoint=str(tiny_ckpt), seed=-1))
    with pytest.raises(SpecError, match="not of 'dsp'"):
        job_from_spec(spec(tmp_path, bikes_mp4, checkpoint=str(tiny_ckpt), renderer="dsp"))


def test_model_positions_follow_the_dsp_segments():
    times = np.arange(50) / 25.0
    xyz = np.stack([1 + times, np.sin(times), 0 * times], axis=1)
    got = model_positions(Waypoints(times, xyz), 96000, 48000, 16000)
    np.testing.assert_allclose(got, xyz, atol=1e-9)  # a position per analysis frame, at the frame's time


def test_renderer_loads_once_per_process_and_renders(tiny_ckpt):
    backends = Backends("cpu")
    settings = DiffusionRendererSettings(str(tiny_ckpt), "fast", 3)
    a = DiffusionRenderer(settings, "cpu", backends.models)
    b = DiffusionRenderer(DiffusionRendererSettings(str(tiny_ckpt), "standard", 4), "cpu", backends.models)
    assert a.loaded is b.loaded and backends.models.names() == ["diffusion tiny.pt on cpu"]
    assert a.describe()["model"]["step"] == 7
    mono = 0.1 * np.sin(np.arange(24000) * 0.03)
    steps = []
    out = a.with_progress(steps.append).render(mono, Waypoints(np.array([0.0, 0.5]), np.array([[1, 1, 0], [1, -1, 0.]])),
                                               48000)
    assert out.shape == (2, 24000) and np.all(np.isfinite(out)) and len(steps) == 6
    assert a._progress is None  # the view reported; the shared renderer keeps none
    np.testing.assert_array_equal(a.render(np.zeros(100), Waypoints(np.zeros(1), np.ones((1, 3))), 48000), 0)
    # the model hears the data's level (RMS mono_level_dbfs) whatever the clip's; the output keeps the clip's
    wp = Waypoints(np.array([0.0]), np.array([[1.0, 0.5, 0.0]]))
    np.testing.assert_allclose(a.render(10 * mono, wp, 48000), 10 * a.render(mono, wp, 48000), rtol=1e-5, atol=1e-9)


def test_spatialize_with_the_diffusion_renderer_end_to_end(tmp_path, tiny_ckpt, bikes_mp4, speech_wav, capsys):
    out = tmp_path / "bikes_binaural.wav"
    code = main(["spatialize", str(bikes_mp4), "--in", "0", "--out", "1.5", "--audio", str(speech_wav),
                 "--checkpoint", str(tiny_ckpt), "--diffusion-steps", "fast", "--seed", "5", "--localizer", "motion",
                 "--depth", "box-scale", "-q", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    stem, rate = sf.read(out)
    info = sf.info(out)
    assert rate == 48000 and stem.shape == (72000, 2) and info.subtype == "PCM_24"
    assert np.all(np.isfinite(stem)) and np.abs(stem).max() > 0
    sidecar = json.loads(out.with_suffix(".json").read_text())
    text = json.dumps(sidecar)
    assert '"diffusion"' in text and str(tiny_ckpt) in text and '"fast"' in text


def test_pipeline_reports_each_sampling_step_and_cancels_between_them(tmp_path, tiny_ckpt, bikes_mp4, speech_wav):
    from foleyspace.pipeline import spatialize

    job = job_from_spec({"video": str(bikes_mp4), "output_dir": str(tmp_path), "start_s": 0.0, "end_s": 0.8,
                         "audio": str(speech_wav), "options": {"checkpoint": str(tiny_ckpt), "localizer": "motion",
                                                                "depth": "box-scale", "diffusion_schedule": "fast"}})
    seen: list[tuple[str, float]] = []
    spatialize(job, Backends("cpu"), lambda stage, f: seen.append((stage, f)))
    render = [f for stage, f in seen if stage == "render"]
    assert render[1:7] == pytest.approx([k / 6 for k in range(1, 7)])  # one chunk, 6 fast steps
    stop = {"now": False}

    def progress(stage: str, fraction: float) -> None:
        stop["now"] = stop["now"] or (stage == "render" and fraction > 0.4)

    with pytest.raises(Cancelled):
        spatialize(job, Backends("cpu"), progress, cancel=lambda: stop["now"])


@pytest.mark.parametrize("override", [{"segment_s": float("nan")}, {"learning_rate": float("nan")},
                                      {"grad_clip": float("inf")}, {"ema_decay": 1.0}, {"learning_rate": 0.0},
                                      {"fast_schedule": (1e-4, float("nan"))}, {"fast_schedule": ()},
                                      {"batch_size": 0}, {"beta_start": float("nan")}])
def test_config_refuses_non_finite_and_out_of_range_values(override):
    with pytest.raises(ValueError, match=next(iter(override))):
        named_config("tiny", **override)
