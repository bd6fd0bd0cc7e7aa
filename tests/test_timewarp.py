"""Retimed clips: constant speed, reverse and freeze frames (foleyspace.timewarp and the pipeline).

The pipeline tests use a real encoded clip whose sound is a linear chirp, so each stem sample's
pitch says which source second it came from, and whose object crosses left→right, so the stem's
level difference says where the picture's object is.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import chirp_source_times, level_difference_db
from foleyspace.jobspec import SpecError, job_from_spec
from foleyspace.pipeline import spatialize
from foleyspace.timewarp import TimeWarp, warp_path

CLIP_S = 6.0
RATE = 48000


@pytest.fixture(scope="module")
def chirp_clip(clip_factory):
    return clip_factory(duration_s=CLIP_S, audio="chirp", motion="cross_lr")


# ------------------------------------------------------------------------------- the maths
@pytest.mark.parametrize("speed", [2.0, 0.5, -1.0, -2.5, 1.0])
def test_source_and_timeline_time_are_inverse(speed):
    warp = TimeWarp(speed)
    s = np.linspace(1.0, 5.0, 9)
    t = warp.timeline_time(s, 1.0, 5.0)
    assert np.allclose(warp.source_time(t, 1.0, 5.0), s)
    assert t.min() == pytest.approx(0.0) and t.max() == pytest.approx(4.0 / abs(speed))
    assert warp.timeline_duration(1.0, 5.0) == pytest.approx(4.0 / abs(speed))


def test_reverse_starts_at_the_range_end():
    warp = TimeWarp(-1.0)
    assert warp.source_time(np.array([0.0, 1.0, 4.0]), 1.0, 5.0).tolist() == [5.0, 4.0, 1.0]


def test_warp_path_orders_a_reversed_path_and_holds_a_freeze():
    times = np.array([0.0, 1.0, 2.0])
    xyz = np.array([[1.0, 1, 0], [1.0, 0, 0], [1.0, -1, 0]])
    t, p = warp_path(TimeWarp(-2.0), times, xyz, 0.0, 2.0, 0.0)
    assert t.tolist() == [0.0, 0.5, 1.0] and p[:, 1].tolist() == [-1.0, 0.0, 1.0]
    t, p = warp_path(TimeWarp(0.0, 3.0), times, xyz, 1.5, 1.5, 0.0)
    assert t.tolist() == [0.0, 3.0] and np.allclose(p[:, 1], -0.5)


@pytest.mark.parametrize("speed,rate", [(2.0, 24000), (0.5, 96000), (-1.0, 48000), (3.0, 16000)])
def test_varispeed_rate(speed, rate):
    assert TimeWarp(speed).varispeed_rate(48000) == rate


# ---------------------------------------------------------------------------- job specs
def _spec(tmp_path, clip, **extra):
    return {"video": str(clip), "output_dir": str(tmp_path), **extra}


@pytest.mark.parametrize("extra,field,words", [
    ({"speed": "fast"}, "speed", "finite number"),
    ({"speed": float("nan")}, "speed", "finite number"),
    ({"speed": 10**400}, "speed", "finite number"),
    ({"speed": 1000}, "speed", "from 0.01 to 100"),
    ({"speed": 0.001}, "speed", "from 0.01 to 100"),
    ({"speed": 0}, "hold_s", "freeze frame"),
    ({"speed": 0, "hold_s": 2, "end_s": 3}, "end_s", "freeze frame"),
    ({"speed": 2, "hold_s": 2}, "hold_s", "freeze frames (speed 0) only"),
    ({"speed": 0, "hold_s": -1}, "hold_s", "positive"),
    ({"speed": 0, "hold_s": 1e9}, "hold_s", "at most"),
])
def test_spec_refuses_a_bad_warp(tmp_path, chirp_clip, extra, field, words):
    with pytest.raises(SpecError) as err:
        job_from_spec(_spec(tmp_path, chirp_clip, **extra))
    assert err.value.field == field and words in str(err.value)


def test_spec_round_trips_the_warp(tmp_path, chirp_clip):
    from foleyspace.jobspec import spec_from_job

    job = job_from_spec(_spec(tmp_path, chirp_clip, speed=-2, start_s=1.0, end_s=3.0))
    assert job.warp == TimeWarp(-2.0)
    again = job_from_spec(spec_from_job(job))
    assert again.warp == job.warp


# ------------------------------------------------------------------------- the pipeline
def _render(tmp_path, clip, name, **extra):
    job = job_from_spec(_spec(tmp_path, clip, name=name, **extra))
    result = spatialize(job)
    stereo, rate = sf.read(result.stem, always_2d=True)
    return stereo.T, rate, json.loads(result.sidecar.read_text())


@pytest.mark.parametrize("speed", [2.0, 0.5, -1.0])
def test_a_retimed_stem_plays_the_source_the_picture_shows(tmp_path, chirp_clip, speed):
    start, end = 1.0, 5.0
    stereo, rate, side = _render(tmp_path, chirp_clip, "warped.wav", start_s=start, end_s=end, speed=speed)
    assert rate == RATE
    assert stereo.shape[1] == round((end - start) / abs(speed) * RATE)  # exactly the timeline duration
    t, heard = chirp_source_times(stereo, rate, speed, CLIP_S)
    shown = TimeWarp(speed).source_time(t, start, end)
    inner = (t > 0.05) & (t < t[-1] - 0.05)
    err = np.abs(heard[inner] - shown[inner])
    assert np.median(err) < 0.01 and err.max() < 0.04, f"source second heard vs shown: max error {err.max():.3f} s"
    assert side["timeline"]["speed"] == speed and side["timeline"]["duration_s"] == pytest.approx((end - start) / abs(speed))
    rows = side["frames"]
    assert rows[0]["t_timeline"] == pytest.approx(0.0 if speed > 0 else (end - start) / abs(speed), abs=0.05)


def test_a_reversed_stem_pans_against_the_source(tmp_path, chirp_clip):
    """The object crosses left→right in the source, so played backwards it starts on the right."""
    forward, rate, _ = _render(tmp_path, chirp_clip, "fwd.wav", start_s=0.5, end_s=5.5)
    backward, _, _ = _render(tmp_path, chirp_clip, "bwd.wav", start_s=0.5, end_s=5.5, speed=-1)
    q = forward.shape[1] // 4
    fwd_first, fwd_last = level_difference_db(forward[:, :q]), level_difference_db(forward[:, -q:])
    bwd_first, bwd_last = level_difference_db(backward[:, :q]), level_difference_db(backward[:, -q:])
    assert fwd_first > 1.5 and fwd_last < -1.5
    # the same source seconds, heard in the other order: the same level differences, swapped
    assert bwd_first == pytest.approx(fwd_last, abs=1.0) and bwd_last == pytest.approx(fwd_first, abs=1.0)


def test_a_freeze_frame_holds_the_frames_position_and_plays_the_given_sound(tmp_path, chirp_clip):
    sound = tmp_path / "noise.wav"  # 1 s of silence, then noise
    noise = 0.3 * np.random.default_rng(1).standard_normal(4 * RATE)
    noise[:RATE] = 0
    sf.write(sound, noise, RATE)
    stereo, rate, side = _render(tmp_path, chirp_clip, "held.wav", start_s=1.0, speed=0, hold_s=3.0,
                                 audio=str(sound))
    assert stereo.shape[1] == 3 * RATE
    silent, loud = stereo[:, : RATE - 100], stereo[:, RATE + 100:]
    assert np.abs(silent).max() < 1e-3 < np.abs(loud).max()  # the file, in timeline time
    first, second = level_difference_db(loud[:, :RATE]), level_difference_db(loud[:, RATE:])
    assert first > 3 and abs(first - second) < 0.5  # the object is left of centre at 1 s and stays there
    assert side["source"]["analysed_start_s"] == pytest.approx(0.5) and side["timeline"]["hold_s"] == 3.0


def test_a_freeze_frame_of_the_clips_own_sound_is_refused(tmp_path, chirp_clip):
    out = tmp_path / "held.wav"
    run = subprocess.run([sys.executable, "-m", "foleyspace", "spatialize", str(chirp_clip), "-o", str(out),
                          "--in", "1", "--speed", "0", "--hold", "2"], capture_output=True, text=True)
    assert run.returncode == 2 and "freeze frame plays none of the clip's sound" in run.stderr
    assert "Traceback" not in run.stderr and not out.exists()


def test_cli_names_the_flag_of_a_bad_warp(tmp_path, chirp_clip):
    run = subprocess.run([sys.executable, "-m", "foleyspace", "spatialize", str(chirp_clip), "-o",
                          str(tmp_path / "x.wav"), "--speed", "0"], capture_output=True, text=True)
    assert run.returncode == 2 and "--hold" in run.stderr and "Traceback" not in run.stderr


def test_a_separate_sound_is_taken_in_timeline_time(tmp_path, chirp_clip):
    """With a separate sound file the stem plays it as it is, however the picture is retimed."""
    sound = tmp_path / "sweep.wav"
    from foleyspace.synth import chirp_sound

    sf.write(sound, chirp_sound(CLIP_S, RATE), RATE)
    stereo, rate, _ = _render(tmp_path, chirp_clip, "file.wav", start_s=1.0, end_s=5.0, speed=2, audio=str(sound),
                              audio_start_s=1.0)
    assert stereo.shape[1] == 2 * RATE
    t, heard = chirp_source_times(stereo, rate, 1.0, CLIP_S)
    inner = (t > 0.05) & (t < t[-1] - 0.05)
    assert np.abs(heard[inner] - (1.0 + t[inner])).max() < 0.04
