"""OTIO batch rendering: stems aligned to the clips' range_in_parent, read back from the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
import soundfile as sf

from foleyspace.cli import main
from foleyspace.jobspec import job_from_spec
from foleyspace.otio_batch import media_path, render_otio, source_range_seconds
from foleyspace.pipeline import spatialize
from conftest import chirp_source_times
from serverproc import ServerProcess

RATE = 25
RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


def frames(n: int, rate: int = RATE) -> otio.opentime.RationalTime:
    return RT(n, rate)


def video_clip(name: str, path: Path, start: int, duration: int, media_frames: int, media_start: int = 0):
    ref = otio.schema.ExternalReference(target_url=path.resolve().as_uri(),
                                        available_range=TR(frames(media_start), frames(media_frames)))
    return otio.schema.Clip(name=name, media_reference=ref, source_range=TR(frames(media_start + start), frames(duration)))


def gap(n: int) -> otio.schema.Gap:
    return otio.schema.Gap(source_range=TR(frames(0), frames(n)))


@pytest.fixture
def timeline(clip_factory, tmp_path) -> tuple[Path, otio.schema.Timeline]:
    """A Resolve-style multi-clip timeline with gaps, trims, a transition and things to skip."""
    a = clip_factory(motion="cross_lr", duration_s=4.0, size=(160, 96))
    b = clip_factory(motion="cross_rl", duration_s=4.0, size=(160, 96))
    c = clip_factory(motion="bob_center", duration_s=3.0, size=(160, 96))
    silent = clip_factory(motion="cross_lr", duration_s=2.0, size=(160, 96), audio=None)
    tl = otio.schema.Timeline(name="edit", global_start_time=RT(3600 * RATE, RATE))
    tl.metadata["Resolve_OTIO"] = {"Resolve OTIO Meta Version": "1.0"}
    v1 = otio.schema.Track(name="Video 1", kind=otio.schema.TrackKind.Video)
    v1.append(gap(10))
    v1.append(video_clip("A", a, start=5, duration=50, media_frames=100))
    v1.append(otio.schema.Transition(name="dissolve", in_offset=frames(5), out_offset=frames(5)))
    # B's media carries a source timecode of 01:00:00:00: the file's first frame is 90000
    v1.append(video_clip("B", b, start=12, duration=40, media_frames=100, media_start=3600 * RATE))
    v1.append(gap(7))
    v1.append(video_clip("offline", tmp_path / "gone.mov", start=0, duration=20, media_frames=50))
    v1.append(otio.schema.Clip(name="bars", media_reference=otio.schema.GeneratorReference(generator_kind="SMPTEBars"),
                               source_range=TR(frames(0), frames(15))))
    v1.append(video_clip("no sound", silent, start=0, duration=20, media_frames=50))
    nested = otio.schema.Stack(name="compound")
    inner = otio.schema.Track(kind=otio.schema.TrackKind.Video)
    inner.append(video_clip("C inner", c, start=0, duration=10, media_frames=75))
    nested.append(inner)
    v1.append(nested)
    v2 = otio.schema.Track(name="Video 2", kind=otio.schema.TrackKind.Video)
    v2.append(gap(30))
    v2.append(video_clip("C", c, start=3, duration=25, media_frames=75))
    a1 = otio.schema.Track(name="Audio 1", kind=otio.schema.TrackKind.Audio)
    a1.append(video_clip("dialogue", a, start=0, duration=60, media_frames=100))
    tl.tracks.extend([v1, v2, a1])
    path = tmp_path / "edit.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path, tl


def stems_by_source(out: otio.schema.Timeline) -> dict[str, otio.schema.Clip]:
    return {clip.metadata["foleyspace"]["source_clip"]: clip
            for track in out.tracks if track.name.startswith("FoleySpace") for clip in track.find_clips()}


def check_output(out_path: Path, original: otio.schema.Timeline) -> dict[str, otio.schema.Clip]:
    out = otio.adapters.read_from_file(str(out_path))
    assert out.global_start_time == original.global_start_time
    assert out.metadata["Resolve_OTIO"] == {"Resolve OTIO Meta Version": "1.0"}
    names = [t.name for t in out.tracks]
    assert names == ["Video 1", "Video 2", "Audio 1", "FoleySpace Video 1", "FoleySpace Video 2"]
    assert all(t.kind == otio.schema.TrackKind.Audio for t in out.tracks[3:])
    assert otio.adapters.write_to_string(out.tracks[0]) == otio.adapters.write_to_string(original.tracks[0])
    stems = stems_by_source(out)
    assert sorted(stems) == ["A", "B", "C"]
    video = {c.name: c for c in original.find_clips(shallow_search=False) if c.name in ("A", "B", "C")}
    for name, stem in stems.items():
        assert stem.range_in_parent() == video[name].range_in_parent(), name
        path = media_path(stem.media_reference.target_url, out_path.parent)
        info = sf.info(str(path))
        assert info.samplerate == 48000 and info.channels == 2
        assert info.frames == round(video[name].source_range.duration.to_seconds() * 48000)
    reasons = {s["name"]: s["reason"] for s in out.metadata["foleyspace"]["skipped"]}
    assert "transition" in reasons["dissolve"]
    assert "not found" in reasons["offline"]
    assert "generator" in reasons["bars"]
    assert "no audio track" in reasons["no sound"]
    assert "nested" in reasons["compound"]
    assert out.metadata["foleyspace"]["rendered"] == 3
    return stems


def test_source_range_respects_media_start(timeline):
    _, tl = timeline
    clips = {c.name: c for c in tl.find_clips()}
    assert source_range_seconds(clips["A"]) == pytest.approx((0.2, 2.2))
    assert source_range_seconds(clips["B"]) == pytest.approx((12 / 25, 52 / 25))


def test_render_in_process_aligns_stems_and_matches_direct_runs(timeline, tmp_path):
    src, original = timeline
    out_path = tmp_path / "out" / "edit_binaural.otio"
    out_path.parent.mkdir()
    report = render_otio(src, out_path, options={"scheme": "fine"})
    assert len(report.rendered) == 3 and len(report.skipped) == 5
    stems = check_output(out_path, original)
    # the B stem is what the pipeline makes of B's used source range, exactly
    b = stems["B"]
    spec = {"video": b.metadata["foleyspace"]["video"], "output_dir": str(tmp_path), "name": "direct.wav",
            "start_s": 12 / 25, "end_s": 52 / 25}
    direct = spatialize(job_from_spec(spec))
    stem_audio = sf.read(str(media_path(b.media_reference.target_url, tmp_path)), dtype="int32")[0]
    assert np.array_equal(stem_audio, sf.read(str(direct.stem), dtype="int32")[0])
    assert (tmp_path / "out" / "edit_binaural_stems").is_dir()


def test_render_through_the_server(timeline, tmp_path, tmp_path_factory, monkeypatch):
    src, original = timeline
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("FOLEYSPACE_HOME", str(home))  # the client finds the server's token there
    srv = ServerProcess(home, tmp_path_factory.getbasetemp(), workers=2).start()
    try:
        out_path = tmp_path / "served.otio"
        report = render_otio(src, out_path, server=srv.address)
        assert all(task.job for task in report.rendered)
        stems = check_output(out_path, original)
        assert all(s.metadata["foleyspace"]["job"] for s in stems.values())
    finally:
        srv.stop()


def test_cli_render_otio_and_bad_input(timeline, tmp_path, capsys):
    src, _ = timeline
    out = tmp_path / "cli.otio"
    assert main(["-q", "render-otio", str(src), "-o", str(out), "--stems", str(tmp_path / "stems")]) == 0
    text = capsys.readouterr().out
    assert "3 stem(s), 5 skipped" in text and out.is_file()
    assert len(list((tmp_path / "stems").glob("*.wav"))) == 3

    assert main(["-q", "render-otio", str(tmp_path / "missing.otio"), "-o", str(tmp_path / "x.otio")]) == 2
    assert "no such timeline file" in capsys.readouterr().err
    junk = tmp_path / "junk.otio"
    junk.write_text("{ not json")
    assert main(["-q", "render-otio", str(junk), "-o", str(tmp_path / "x.otio")]) == 2
    assert "cannot read the timeline" in capsys.readouterr().err
    empty = otio.schema.Timeline(tracks=[otio.schema.Track(kind=otio.schema.TrackKind.Video)])
    empty.tracks[0].append(gap(10))
    otio.adapters.write_to_file(empty, str(tmp_path / "empty.otio"))
    assert main(["-q", "render-otio", str(tmp_path / "empty.otio"), "-o", str(tmp_path / "x.otio")]) == 2
    assert "no video clip" in capsys.readouterr().err
    assert not (tmp_path / "x.otio").exists()


def test_nothing_renderable_writes_no_timeline(clip_factory, tmp_path, capsys):
    silent = clip_factory(motion="cross_lr", duration_s=2.0, size=(160, 96), audio=None)
    tl = otio.schema.Timeline(tracks=[otio.schema.Track(kind=otio.schema.TrackKind.Video)])
    tl.tracks[0].append(video_clip("mute", silent, start=0, duration=25, media_frames=50))
    otio.adapters.write_to_file(tl, str(tmp_path / "mute.otio"))
    assert main(["-q", "render-otio", str(tmp_path / "mute.otio"), "-o", str(tmp_path / "out.otio")]) == 2
    assert "no clip could be spatialized" in capsys.readouterr().err
    assert not (tmp_path / "out.otio").exists()


def test_no_server_is_a_clear_error(timeline, tmp_path, capsys, monkeypatch):
    from serverproc import free_port

    monkeypatch.setenv("FOLEYSPACE_HOME", str(tmp_path / "nohome"))
    src, _ = timeline
    code = main(["-q", "render-otio", str(src), "-o", str(tmp_path / "x.otio"), "--server",
                 f"tcp://127.0.0.1:{free_port()}"])
    assert code == 2
    assert "no FoleySpace server answers" in capsys.readouterr().err
    assert not (tmp_path / "x.otio").exists()


def single_clip_timeline(path: Path, clip: Path, effect=None) -> Path:
    rate = 25
    ref = otio.schema.ExternalReference(target_url=clip.resolve().as_uri(), available_range=TR(RT(0, rate), RT(50, rate)))
    item = otio.schema.Clip(name="shot", media_reference=ref, source_range=TR(RT(0, rate), RT(25, rate)))
    if effect is not None:
        item.effects.append(effect)
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    track.append(item)
    timeline = otio.schema.Timeline(name="t")
    timeline.tracks.append(track)
    otio.adapters.write_to_file(timeline, str(path))
    return path


def test_retimed_clips_play_the_source_the_picture_shows(clip_factory, tmp_path):
    """×2, ×0.5 and reversed clips of a chirp clip: each stem lasts its clip's time on the track,
    and the chirp's pitch in it says which source second each part came from — the second the
    picture shows there, by OTIO's convention (source_range.start + k·t; reversed from its far end)."""
    from foleyspace.timewarp import TimeWarp

    clip = clip_factory(motion="cross_lr", duration_s=6.0, size=(160, 96), audio="chirp")
    ref = otio.schema.ExternalReference(target_url=clip.resolve().as_uri(), available_range=TR(frames(0), frames(150)))
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    shots = {"fast": (25, 25, 2.0), "slow": (25, 50, 0.5), "back": (50, 38, -1.0), "held": (75, 20, 0.0)}
    for name, (start, duration, speed) in shots.items():
        item = otio.schema.Clip(name=name, media_reference=ref.clone(), source_range=TR(frames(start), frames(duration)))
        item.effects.append(otio.schema.FreezeFrame() if speed == 0 else otio.schema.LinearTimeWarp(time_scalar=speed))
        track.append(item)
    timeline = otio.schema.Timeline(name="t")
    timeline.tracks.append(track)
    source = tmp_path / "in.otio"
    otio.adapters.write_to_file(timeline, str(source))
    report = render_otio(source, tmp_path / "out.otio", stems_dir=tmp_path / "stems")
    assert [s.name for s in report.skipped] == ["held"] and "freeze frame" in report.skipped[0].reason
    written = otio.adapters.read_from_file(str(tmp_path / "out.otio"))  # kept: clips need their parents
    out = stems_by_source(written)
    assert sorted(out) == ["back", "fast", "slow"]
    for name, (start, duration, speed) in shots.items():
        if speed == 0:
            continue
        stem = out[name]
        placed = next(c for c in timeline.find_clips() if c.name == name).range_in_parent()
        assert stem.range_in_parent() == placed and stem.metadata["foleyspace"]["speed"] == speed
        stereo, rate = sf.read(str(media_path(stem.media_reference.target_url, tmp_path)), always_2d=True)
        assert len(stereo) == round(duration / RATE * rate), name  # the clip's time on the track, to the sample
        t, heard = chirp_source_times(stereo.T, rate, speed, 6.0)
        media_start = start / RATE
        shown = TimeWarp(speed).source_time(t, media_start, media_start + abs(speed) * duration / RATE)
        inner = (t > 0.05) & (t < t[-1] - 0.05)
        err = np.abs(heard[inner] - shown[inner])
        assert err.max() < 0.04, f"{name}: source second heard vs shown differ by up to {err.max():.3f} s"


@pytest.mark.parametrize("where, words", [("clip", "not a constant speed"), ("track", "its track is retimed")])
def test_retimes_that_are_not_a_constant_clip_speed_are_refused(clip_factory, tmp_path, capsys, where, words):
    clip = clip_factory(motion="cross_lr", duration_s=2.0, size=(160, 96))
    source = single_clip_timeline(tmp_path / "in.otio", clip)
    timeline = otio.adapters.read_from_file(str(source))
    ramp = otio.schema.TimeEffect(name="ramp", effect_name="SpeedRamp")
    (timeline.find_clips()[0] if where == "clip" else timeline.tracks[0]).effects.append(ramp)
    otio.adapters.write_to_file(timeline, str(source))
    code = main(["-q", "render-otio", str(source), "-o", str(tmp_path / "out.otio")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0] and "shot" in err[0], err
    assert not (tmp_path / "out.otio").exists()


def test_handles_of_a_retimed_clip_are_in_timeline_time(clip_factory, tmp_path):
    """A reversed clip's head handle is source *after* its range; ×2 reads handles twice as fast."""
    clip = clip_factory(motion="cross_lr", duration_s=4.0, size=(160, 96))
    ref = otio.schema.ExternalReference(target_url=clip.resolve().as_uri(), available_range=TR(frames(0), frames(100)))
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    for name, start, speed in (("fast", 40, 2.0), ("back", 80, -1.0)):
        item = otio.schema.Clip(name=name, media_reference=ref.clone(), source_range=TR(frames(start), frames(10)))
        item.effects.append(otio.schema.LinearTimeWarp(time_scalar=speed))
        track.append(item)
    timeline = otio.schema.Timeline(name="t")
    timeline.tracks.append(track)
    source = tmp_path / "in.otio"
    otio.adapters.write_to_file(timeline, str(source))
    report = render_otio(source, tmp_path / "out.otio", stems_dir=tmp_path / "stems", handles_s=0.4)
    tasks = {t.clip_name: t for t in report.rendered}
    fast, back = tasks["fast"], tasks["back"]
    # fast: media 1.6–2.4 s, handles of 0.8 s of source = 0.4 s of timeline each side
    assert (fast.spec["start_s"], fast.spec["end_s"], fast.spec["speed"]) == (pytest.approx(0.8), pytest.approx(3.2), 2.0)
    assert (fast.head_s, fast.tail_s) == (pytest.approx(0.4), pytest.approx(0.4))
    # back: media 3.2–3.6 s, 0.4 s before the range but only 0.4 s of media after it (to 4.0 s)
    assert (back.spec["start_s"], back.spec["end_s"]) == (pytest.approx(2.8), pytest.approx(4.0))
    assert (back.head_s, back.tail_s) == (pytest.approx(0.4), pytest.approx(0.4))
    out = stems_by_source(otio.adapters.read_from_file(str(tmp_path / "out.otio")))
    for name in ("fast", "back"):
        stem = out[name]
        info = sf.info(str(media_path(stem.media_reference.target_url, tmp_path)))
        assert info.frames == round((0.4 + 0.4 + 0.4) * info.samplerate)  # 10 frames + two handles, timeline time
        assert stem.source_range == TR(frames(10), frames(10))


def test_an_output_format_that_drops_the_stems_fails_and_writes_nothing(clip_factory, tmp_path):
    """A real adapter plug-in (tests/otio_plugin) that keeps only video tracks, like EDL."""
    import os
    import subprocess
    import sys

    clip = clip_factory(motion="cross_lr", duration_s=2.0, size=(160, 96))
    source = single_clip_timeline(tmp_path / "in.otio", clip)
    env = {**os.environ, "OTIO_PLUGIN_MANIFEST_PATH": str(Path(__file__).with_name("otio_plugin") / "plugin_manifest.json")}

    def render(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "foleyspace", "-q", "render-otio", str(source), *extra],
                              capture_output=True, text=True, env=env, timeout=120)

    done = render("-o", str(tmp_path / "out.vonly"), "--stems", str(tmp_path / "stems"))
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "video_only adapter would drop 1 of 1 stem(s)" in lines[0], \
        done.stderr
    assert "nothing was rendered" in lines[0] and not list((tmp_path / "stems").glob("*.wav"))
    assert not (tmp_path / "out.vonly").exists()
    # the adapter's own option keeps them: --adapter-arg reaches it
    done = render("-o", str(tmp_path / "out.vonly"), "--adapter-arg", "keep_audio=true")
    assert done.returncode == 0, done.stderr
    kept = otio.adapters.read_from_file(str(tmp_path / "out.vonly"), adapter_name="otio_json")
    assert any(t.kind == otio.schema.TrackKind.Audio for t in kept.tracks)
    # a format no adapter writes fails before anything is rendered
    done = render("-o", str(tmp_path / "out.nosuchformat"), "--stems", str(tmp_path / "never"))
    assert done.returncode == 2 and "no OTIO adapter" in done.stderr and not (tmp_path / "never").exists()


@pytest.mark.parametrize("suffix, extra, outcome", [
    (".edl", [], "would drop 1 of 1 stem(s)"),  # CMX 3600 keeps no audio clips
    (".aaf", [], "use_empty_mob_ids=true"),  # AAF needs mob ids for media it did not make
    (".aaf", ["--adapter-arg", "use_empty_mob_ids=true"], None),
    (".xml", [], None),  # FCP 7 XML keeps audio tracks
])
def test_interchange_formats_keep_every_stem_or_fail_before_rendering(clip_factory, tmp_path, capsys,
                                                                       suffix, extra, outcome):
    """The real EDL, AAF and FCP XML adapters (otio-cmx3600-adapter, otio-aaf-adapter, otio-fcp-adapter)."""
    clip = clip_factory(motion="cross_lr", duration_s=2.0, size=(160, 96))
    source = single_clip_timeline(tmp_path / "in.otio", clip)
    out, stems = tmp_path / f"out{suffix}", tmp_path / "stems"
    code = main(["-q", "render-otio", str(source), "-o", str(out), "--stems", str(stems), *extra])
    err = capsys.readouterr().err.strip()
    if outcome is not None:
        assert code == 2 and outcome in err and "nothing was rendered" in err and len(err.splitlines()) == 1, err
        assert not out.exists() and not list(stems.glob("*.wav"))
        return
    assert code == 0, err
    back = otio.adapters.read_from_file(str(out))
    stem_files = [media_path(c.media_reference.target_url, tmp_path) for c in back.find_clips()
                  if c.media_reference.target_url.endswith(".wav")]
    assert len(stem_files) == 1 and stem_files[0].is_file() and sf.info(str(stem_files[0])).frames == 48000


def test_handles_give_the_mixer_extra_source_and_reruns_keep_earlier_stems(clip_factory, tmp_path):
    clip = clip_factory(motion="cross_lr", duration_s=4.0, size=(160, 96))
    rate = 25
    ref = otio.schema.ExternalReference(target_url=clip.resolve().as_uri(), available_range=TR(RT(0, rate), RT(100, rate)))
    track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
    track.append(otio.schema.Clip(name="mid", media_reference=ref, source_range=TR(RT(30, rate), RT(50, rate))))
    track.append(otio.schema.Clip(name="head", media_reference=ref.clone(), source_range=TR(RT(0, rate), RT(25, rate))))
    timeline = otio.schema.Timeline(name="t")
    timeline.tracks.append(track)
    source = tmp_path / "in.otio"
    otio.adapters.write_to_file(timeline, str(source))
    stems = tmp_path / "stems"
    assert main(["-q", "render-otio", str(source), "-o", str(tmp_path / "out.otio"), "--stems", str(stems),
                 "--handles", "0.4"]) == 0
    written = otio.adapters.read_from_file(str(tmp_path / "out.otio"))  # kept: clips need their parents
    out = stems_by_source(written)
    mid, head = out["mid"], out["head"]
    # mid: 0.4 s (10 frames) on each side; the clip uses the middle, placed exactly as before
    assert mid.source_range == TR(RT(10, rate), RT(50, rate))
    assert mid.media_reference.available_range == TR(RT(0, rate), RT(70, rate))
    info = sf.info(str(media_path(mid.media_reference.target_url, tmp_path)))
    assert info.frames == int(2.8 * info.samplerate)
    # head: no source before frame 0, so no head handle
    assert head.source_range == TR(RT(0, rate), RT(25, rate))
    assert head.media_reference.available_range == TR(RT(0, rate), RT(35, rate))
    assert mid.range_in_parent() == TR(RT(0, rate), RT(50, rate)) and head.range_in_parent().start_time == RT(50, rate)
    # a second run into the same folder keeps the first run's stems
    first = {p.name: p.read_bytes() for p in stems.glob("*.wav")}
    assert main(["-q", "render-otio", str(source), "-o", str(tmp_path / "out2.otio"), "--stems", str(stems)]) == 0
    assert {p.name: p.read_bytes() for p in stems.glob("*.wav") if p.name in first} == first
    assert sorted(p.name for p in stems.glob("*_v2.wav")) == ["001_mid_binaural_v2.wav", "002_head_binaural_v2.wav"]
    assert main(["-q", "render-otio", str(source), "-o", str(tmp_path / "out3.otio"), "--stems", str(stems),
                 "--overwrite"]) == 0
    assert not list(stems.glob("*_v3.wav")) and (stems / "001_mid_binaural.wav").read_bytes() != first["001_mid_binaural.wav"]
