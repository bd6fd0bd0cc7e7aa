"""End to end: real encoded clips through the whole pipeline, and what the stem sounds like."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import level_difference_db, right_ear_lead_s
from foleyspace.config import SpatializeConfig
from foleyspace.coords import to_spherical
from foleyspace.errors import Cancelled
from foleyspace.job import Job, SeedBox
from foleyspace.pipeline import spatialize

RATE = 48000


def run(clip, tmp_path, **job_fields):
    job = Job(video=clip, output=tmp_path / "stem.wav", **job_fields)
    return spatialize(job)


def read_stem(result):
    data, rate = sf.read(str(result.stem), dtype="float64", always_2d=True)
    return data.T, rate


def test_object_crossing_left_to_right_moves_the_sound_left_to_right(clip_factory, tmp_path):
    result = run(clip_factory(motion="cross_lr"), tmp_path)
    stereo, rate = read_stem(result)
    az = to_spherical(result.source_path.xyz)[:, 0]
    fps = 25
    assert az[:fps].mean() > 10, "the first second should be on the left (positive azimuth)"
    assert az[-fps:].mean() < -10, "the last second should be on the right (negative azimuth)"
    first, last = stereo[:, :rate], stereo[:, -rate:]
    assert level_difference_db(first) > 1.0
    assert level_difference_db(last) < -1.0


def test_object_crossing_right_to_left_mirrors(clip_factory, tmp_path):
    result = run(clip_factory(motion="cross_rl"), tmp_path)
    stereo, rate = read_stem(result)
    assert level_difference_db(stereo[:, :rate]) < -1.0 < 1.0 < level_difference_db(stereo[:, -rate:])


def test_object_kept_right_gives_louder_and_earlier_right_ear(clip_factory, tmp_path):
    result = run(clip_factory(motion="bob_right"), tmp_path)
    stereo, rate = read_stem(result)
    assert level_difference_db(stereo) < -3.0, "right channel louder by several dB"
    lead = right_ear_lead_s(stereo, rate)
    assert 0.2e-3 < lead < 0.8e-3, f"right ear should lead by a human ITD, got {lead * 1e3:.3f} ms"


def test_seeded_box_on_the_right_gives_louder_right_ear(clip_factory, tmp_path):
    clip = clip_factory(motion="bob_right")
    w, h = 320, 180
    r = 0.12 * h  # SynthSpec radius: 12 % of the height; object center at t=0: u=0.85, v=0.5
    box = SeedBox(0.85 * w - r, 0.5 * h - r, 2 * r, 2 * r, time_s=0.0)
    result = run(clip, tmp_path, seed_box=box)
    stereo, rate = read_stem(result)
    assert result.source_path.detected.mean() > 0.8
    assert level_difference_db(stereo) < -3.0
    assert right_ear_lead_s(stereo, rate) > 0.2e-3


def test_centered_object_gives_equal_channels(clip_factory, tmp_path):
    result = run(clip_factory(motion="bob_center"), tmp_path)
    stereo, rate = read_stem(result)
    assert abs(level_difference_db(stereo)) < 0.5
    assert abs(right_ear_lead_s(stereo, rate)) < 0.05e-3


def test_stem_format_range_and_sidecar(clip_factory, tmp_path):
    clip = clip_factory(motion="cross_lr", duration_s=4.0)
    result = run(clip, tmp_path, start_s=1.0, end_s=2.5)
    info = sf.info(str(result.stem))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (48000, 2, "PCM_24", 72000)
    meta = json.loads(result.sidecar.read_text())
    assert meta["source"]["start_s"] == 1.0 and meta["source"]["end_s"] == 2.5
    assert meta["stem"]["samples"] == 72000
    frames = meta["frames"]
    assert len(frames) == 38  # ceil(1.5 s * 25 fps)
    assert frames[1]["t"] == pytest.approx(0.04)
    keys = {"u_px", "v_px", "depth", "x", "y", "z", "azimuth_deg", "elevation_deg", "distance_m", "confidence"}
    assert keys <= set(frames[0])
    # the object moves right over the range: u grows, azimuth falls
    assert frames[-1]["u_px"] > frames[0]["u_px"]
    assert frames[-1]["azimuth_deg"] < frames[0]["azimuth_deg"]
    assert meta["settings"]["trajectory"]["x_max_m"] == 1.47


def test_stem_carries_the_clip_audio_of_the_range(clip_factory, tmp_path):
    """The stem is the clip's own audio over exactly the requested range, rendered along the path."""
    from foleyspace.hrtf import SphericalHeadHrirSet
    from foleyspace.mono import ClipAudio
    from foleyspace.render import DspRenderer, Waypoints

    clip = clip_factory(motion="bob_center", duration_s=4.0)
    result = run(clip, tmp_path, start_s=1.0, end_s=3.0)
    stereo, rate = read_stem(result)
    renderer = DspRenderer(SphericalHeadHrirSet(RATE))
    path = Waypoints(result.source_path.render_times_s, result.source_path.render_xyz)
    gain = 10 ** (result.gain_db / 20)

    def error(start: float, end: float) -> float:
        expected = renderer.render(ClipAudio(clip).mono(start, end, RATE), path, RATE) * gain
        return float(np.abs(expected - stereo).max())

    assert error(1.0, 3.0) < 1e-4  # 24-bit quantization is 1.2e-7; AAC decoding differs slightly after seeks
    assert error(1.02, 3.02) > 0.05  # 20 ms off is clearly another signal


def test_coarse_scheme_moves_once_per_second(clip_factory, tmp_path):
    result = run(clip_factory(motion="cross_lr"), tmp_path, config=SpatializeConfig.for_scheme("coarse"))
    assert len(result.source_path.render_times_s) == 4
    az = to_spherical(result.source_path.render_xyz)[:, 0]
    assert az[0] > 0 > az[-1]
    assert len(np.unique(np.round(az, 6))) == len(az) or az[0] != az[-1]


def test_real_video_with_a_real_recording(bikes_mp4, speech_wav, tmp_path):
    result = spatialize(Job(video=bikes_mp4, output=tmp_path / "bikes.wav", audio=speech_wav, start_s=0.0, end_s=4.0))
    stereo, rate = read_stem(result)
    assert stereo.shape == (2, 4 * RATE)
    assert np.all(np.isfinite(stereo)) and np.abs(stereo).max() > 0.01
    assert result.source_path.detected.mean() > 0.5
    assert np.all(np.isfinite(result.source_path.xyz))
    az, el, r = to_spherical(result.source_path.xyz).T
    assert np.all(np.abs(az) <= 90) and np.all((r >= 1.0) & (r <= 6.0 + 1.47))


def test_sofa_hrtf_renders_the_same_side(clip_factory, ku100_sofa, tmp_path):
    result = run(clip_factory(motion="bob_right"), tmp_path, hrtf=ku100_sofa)
    stereo, rate = read_stem(result)
    assert level_difference_db(stereo) < -3.0
    assert right_ear_lead_s(stereo, rate) > 0.2e-3


def test_cancel_stops_the_job_and_writes_nothing(clip_factory, tmp_path):
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return len(calls) > 3

    job = Job(video=clip_factory(motion="cross_lr"), output=tmp_path / "stem.wav")
    with pytest.raises(Cancelled):
        spatialize(job, cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_progress_reports_every_stage_in_order(clip_factory, tmp_path):
    seen: list[tuple[str, float]] = []
    run_job = Job(video=clip_factory(motion="cross_lr"), output=tmp_path / "stem.wav")
    spatialize(run_job, progress=lambda stage, f: seen.append((stage, f)))
    stages = list(dict.fromkeys(s for s, _ in seen))
    assert stages == ["analyze", "depth", "audio", "render", "write"]
    assert all(0.0 <= f <= 1.0 for _, f in seen)
    analyze = [f for s, f in seen if s == "analyze"]
    assert analyze == sorted(analyze) and len(analyze) > 2


def test_cancel_during_write_keeps_the_previous_stem(clip_factory, tmp_path):
    out = tmp_path / "stem.wav"
    out.write_bytes(b"previous take")
    stages: list[str] = []

    def cancel() -> bool:
        return "write" in stages  # cancel arrives once writing has begun

    job = Job(video=clip_factory(motion="cross_lr"), output=out, overwrite=True)  # not our file: allowed here
    with pytest.raises(Cancelled):
        spatialize(job, progress=lambda stage, f: stages.append(stage), cancel=cancel)
    assert out.read_bytes() == b"previous take"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stem.wav"]
