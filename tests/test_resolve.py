"""The DaVinci Resolve script against a fake of Resolve's API, a real server and real clips."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import soundfile as sf
from test_server import ServerProcess, free_port

from foleyspace.client import Client
from foleyspace.errors import FoleySpaceError
from foleyspace.install import (
    INSTALLED_NAME,
    install_resolve,
    render_script,
    resolve_scripts_dir,
)
from foleyspace.jobspec import job_from_spec
from foleyspace.pipeline import spatialize

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "host_plugins" / "resolve" / "foleyspace_resolve.py"
FAKE_DIR = Path(__file__).resolve().parent / "fake_resolve"
START = 86400  # 01:00:00:00 at 24 fps
SMALL = (160, 96)


def load_script(path: Path = SCRIPT, name: str = "foleyspace_resolve") -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script()


@pytest.fixture
def dvr(monkeypatch) -> ModuleType:
    """The fake ``DaVinciResolveScript`` module, importable the way Resolve's is."""
    monkeypatch.syspath_prepend(str(FAKE_DIR))
    sys.modules.pop("DaVinciResolveScript", None)
    import DaVinciResolveScript

    yield DaVinciResolveScript
    DaVinciResolveScript.close_resolve()
    sys.modules.pop("DaVinciResolveScript", None)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("resolve_server")
    (base / "home").mkdir()
    srv = ServerProcess(base / "home", tmp_path_factory.getbasetemp(), workers=2).start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with server.client(timeout=5, retries=2) as c:
        yield c


@pytest.fixture
def clips(clip_factory) -> dict[str, Path]:
    return {
        "lr": clip_factory(motion="cross_lr", duration_s=2.0, size=SMALL),
        "rl": clip_factory(motion="cross_rl", duration_s=1.0, size=SMALL),
        "silent": clip_factory(motion="cross_lr", duration_s=1.0, size=SMALL, audio=None),
    }


def settings(script: ModuleType, out: Path, track: int | None = None):
    return script.Settings(track=track, output_dir=out, job_timeout_s=60, request_timeout_s=5, request_retries=2)


def audio_on(app, track: int) -> list:
    return app.timeline.audio_clips(track)


# ------------------------------------------------------------------ current item
def test_current_item_lands_on_new_stereo_track_at_absolute_record_frame(script, dvr, server, clips, tmp_path,
                                                                        monkeypatch):
    app = dvr.make_resolve(fps="24", start_frame=START)
    media = app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50)
    app.timeline.place(1, media, offset=48, duration=24, left_offset=10)
    app.timeline.place(1, media, offset=0, duration=24, left_offset=0, name="earlier")  # not under the playhead
    app.timeline.playhead = START + 50
    monkeypatch.setenv("FOLEYSPACE_HOME", str(server.home))
    monkeypatch.setenv("FOLEYSPACE_SERVER", server.address)
    monkeypatch.setenv("FOLEYSPACE_RESOLVE_OUTPUT", str(tmp_path / "stems"))
    monkeypatch.delenv("FOLEYSPACE_RESOLVE_TRACK", raising=False)
    lines: list[str] = []
    assert script.main({}, log=lines.append) is True  # no `resolve` global: DaVinciResolveScript.scriptapp
    assert app.timeline.GetTrackCount("audio") == 2 and audio_on(app, 1) == []
    assert app.timeline.GetTrackName("audio", 2) == "FoleySpace"
    assert app.timeline.tracks["audio"][1].subtype == "stereo"
    (placed,) = audio_on(app, 2)
    assert placed.kind == "audio"  # mediaType 2
    assert placed.start == START + 48 and placed.duration == 24
    assert placed.media.path == str(tmp_path / "stems" / f"{clips['lr'].stem}_{START + 48}_binaural.wav")
    assert sf.info(placed.media.path).frames == 48000  # 24 frames at 24 fps
    assert any("placed 1 stem(s) on audio track(s) A2" in line for line in lines), lines
    assert any("analyze" in line and "%" in line for line in lines), "progress lines are printed"


def test_stem_equals_direct_pipeline_over_the_same_source_range(script, dvr, client, clips, tmp_path):
    # a 25 fps clip on a 24 fps timeline: the offset counts clip frames, the length timeline frames
    app = dvr.make_resolve(fps="24", start_frame=START)
    media = app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50)
    app.timeline.place(2, media, offset=240, duration=30, left_offset=7)
    app.timeline.playhead = START + 250
    report = script.spatialize_timeline(app, client, settings(script, tmp_path / "stems"), log=lambda _: None)
    assert report.ok and len(report.placed) == 1
    stem = Path(report.placed[0].path)
    spec = {"video": str(clips["lr"]), "output_dir": str(tmp_path), "name": "direct.wav",
            "start_s": 7 / 25, "end_s": 7 / 25 + 30 / 24}
    direct = spatialize(job_from_spec(spec))
    ours, rate = sf.read(str(stem), dtype="int32")
    theirs, _ = sf.read(str(direct.stem), dtype="int32")
    assert rate == 48000 and ours.shape == theirs.shape == (int(round(30 / 24 * 48000)), 2)
    assert np.array_equal(ours, theirs)
    (clip,) = audio_on(app, 2)
    assert clip.start == START + 240 and clip.duration == 30


def test_current_item_without_a_clip_under_the_playhead(script, dvr, client, tmp_path):
    app = dvr.make_resolve()
    lines: list[str] = []
    report = script.spatialize_timeline(app, client, settings(script, tmp_path / "stems"), log=lines.append)
    assert not report.ok and "no video clip under the playhead" in report.error
    assert app.timeline.GetTrackCount("audio") == 1 and not (tmp_path / "stems").exists()


# ------------------------------------------------------------------ track mode
def test_track_mode_does_every_clip_and_reports_each_skip(script, dvr, client, clips, tmp_path):
    app = dvr.make_resolve(fps="24", start_frame=START)
    pool, tl = app.media_pool, app.timeline
    lr = pool.add_media(str(clips["lr"]), fps=25.0, frames=50)
    rl = pool.add_media(str(clips["rl"]), fps=25.0, frames=25)
    silent = pool.add_media(str(clips["silent"]), fps=25.0, frames=25)
    no_file = pool.add_media("", fps=24.0, frames=100, name="Compound Clip 1")
    tl.place(1, rl, offset=0, duration=24, name="on V1, not processed")
    tl.place(2, lr, offset=0, duration=24, left_offset=5, name="lr")
    tl.place(2, None, offset=30, duration=10, name="Text+")
    tl.place(2, no_file, offset=48, duration=12, name="Compound Clip 1")
    tl.place(2, silent, offset=72, duration=24, name="silent")
    tl.place(2, rl, offset=100, duration=20, left_offset=2, name="rl")
    lines: list[str] = []
    report = script.spatialize_timeline(app, client, settings(script, tmp_path / "stems", track=2), log=lines.append)
    assert report.ok
    assert sorted((p.clip.name, p.record_frame, p.frames) for p in report.placed) == [
        ("lr", START, 24), ("rl", START + 100, 20)]
    reasons = dict(report.skipped)
    assert set(reasons) == {"Text+", "Compound Clip 1", "silent"}
    assert "no media pool item" in reasons["Text+"]
    assert reasons["Compound Clip 1"] == "clip has no file path"
    assert "failed" in reasons["silent"] and "no audio track" in reasons["silent"]
    assert tl.GetTrackCount("audio") == 2 and report.tracks == [2]
    assert [(c.start, c.duration) for c in audio_on(app, 2)] == [(START, 24), (START + 100, 20)]
    assert any("skipped 3" in line for line in lines) and any("clip has no file path" in line for line in lines)


@pytest.mark.parametrize("track, message", [(3, "video track 3 does not exist (the timeline has 2)"),
                                            (1, "video track 1 has no clips")])
def test_track_mode_bad_track(script, dvr, client, tmp_path, track, message):
    app = dvr.make_resolve()
    report = script.spatialize_timeline(app, client, settings(script, tmp_path, track=track), log=lambda _: None)
    assert not report.ok and message in report.error
    assert app.timeline.GetTrackCount("audio") == 1


def test_settings_from_env(script):
    assert script.Settings.from_env({}).track is None
    assert script.Settings.from_env({"FOLEYSPACE_RESOLVE_TRACK": "current"}).track is None
    assert script.Settings.from_env({"FOLEYSPACE_RESOLVE_TRACK": " 2 "}).track == 2
    for bad in ({"FOLEYSPACE_RESOLVE_TRACK": "0"}, {"FOLEYSPACE_RESOLVE_TRACK": "V1"},
                {"FOLEYSPACE_RESOLVE_JOB_TIMEOUT": "inf"}, {"FOLEYSPACE_RESOLVE_REQUEST_RETRIES": "1.5"}):
        with pytest.raises(script.ScriptError, match="FOLEYSPACE_RESOLVE_"):
            script.Settings.from_env(bad)


# ------------------------------------------------------------------ placement failures
def test_occupied_spot_is_retried_on_another_new_track(script, dvr, client, clips, tmp_path):
    app = dvr.make_resolve()
    media = app.media_pool.add_media(str(clips["rl"]), fps=25.0, frames=25)
    app.timeline.place(1, media, offset=12, duration=20)
    app.timeline.playhead = START + 20
    app.timeline.squat_added_audio_tracks = [(START, START + 1000)]  # someone got to the new track first
    lines: list[str] = []
    report = script.spatialize_timeline(app, client, settings(script, tmp_path / "stems"), log=lines.append)
    assert report.ok and report.tracks == [2, 3] and report.placed[0].track == 3
    assert [c.name for c in audio_on(app, 2)] == ["squatter"]
    (clip,) = audio_on(app, 3)
    assert clip.start == START + 12 and clip.duration == 20
    assert any("retrying on new audio track 3" in line for line in lines)


def write_stem(path: Path, seconds: float) -> Path:
    sf.write(str(path), np.zeros((int(round(seconds * 48000)), 2)), 48000, subtype="PCM_24")
    return path


def test_hollow_returned_item_is_confirmed_on_the_track(script, dvr, tmp_path):
    app = dvr.make_resolve()
    app.timeline.append_mode = "hollow"
    clip = script.Clip("shot", "/abs/shot.mov", 0.0, 1.0, START + 100, 24)
    stem = script.Stem(clip, str(write_stem(tmp_path / "shot_binaural.wav", 1.0)), 1.0)
    report = script.place_stems(app.project, app.timeline, [stem], log=lambda _: None)
    assert [(p.track, p.record_frame, p.frames, p.confirmed_by) for p in report.placed] == [
        (2, START + 100, 24, "track lookup")]
    assert [(c.start, c.duration) for c in audio_on(app, 2)] == [(START + 100, 24)]


def test_phantom_item_is_reported_not_counted(script, dvr, tmp_path):
    app = dvr.make_resolve()
    app.timeline.append_mode = "phantom"  # an empty item back, and nothing on the track
    clip = script.Clip("shot", "/abs/shot.mov", 0.0, 1.0, START, 24)
    stem = script.Stem(clip, str(write_stem(tmp_path / "shot_binaural.wav", 1.0)), 1.0)
    report = script.place_stems(app.project, app.timeline, [stem], log=lambda _: None)
    assert report.placed == [] and report.tracks == [2, 3]
    assert "nothing starts at frame 86400 on audio track 3" in report.skipped[0][1]


def test_stem_shorter_than_the_item_is_placed_at_its_own_length(script, dvr, tmp_path):
    app = dvr.make_resolve(fps="23.976")
    clip = script.Clip("end of clip", "/abs/shot.mov", 0.0, 4.2, START, 100)
    stem = script.Stem(clip, str(write_stem(tmp_path / "short.wav", 90 * 1001 / 24000)), 90 * 1001 / 24000)
    report = script.place_stems(app.project, app.timeline, [stem], log=lambda _: None)
    assert [(p.record_frame, p.frames) for p in report.placed] == [(START, 90)]


def test_hollow_source_item_is_skipped_with_a_reason(script, dvr, clips):
    app = dvr.make_resolve()
    media = app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50)
    real = app.timeline.place(1, media, offset=0, duration=24)
    with pytest.raises(script.Skip, match="no media pool item"):
        script.clip_from_item(dvr.FakeTimelineItem(real, hollow=True), 24.0)
    clip = script.clip_from_item(dvr.FakeTimelineItem(real), 24.0)
    assert (clip.record_frame, clip.frames, clip.start_s, clip.end_s) == (START, 24, 0.0, 1.0)


def test_fake_enforces_resolve_rules(dvr, tmp_path):
    """The rules the script is tested against: a fake that accepted anything would prove nothing."""
    app = dvr.make_resolve()
    tl, pool = app.timeline, app.media_pool
    (stem,) = pool.ImportMedia([str(write_stem(tmp_path / "s.wav", 1.0)), str(tmp_path / "missing.wav")])
    assert stem.GetClipProperty("Frames") == "24" and pool.ImportMedia([str(tmp_path / "missing.wav")]) == []
    assert tl.GetItemListInTrack("audio", 0) is None and tl.GetItemListInTrack("audio", 2) is None
    good = {"mediaPoolItem": stem, "startFrame": 0, "endFrame": 23, "mediaType": 2, "trackIndex": 1,
            "recordFrame": START}
    for bad in ({"recordFrame": 0}, {"recordFrame": START - 1}, {"trackIndex": 0}, {"trackIndex": 2},
                {"mediaType": 1}, {"mediaType": 3}, {"endFrame": 24}, {"recordFrame": float(START)},
                {"recordframe": START}):
        assert pool.AppendToTimeline([{**good, **bad}]) == [], bad
    assert tl.AddTrack("audio") and pool.AppendToTimeline([{**good, "trackIndex": 2}]) == []  # mono track
    (item,) = pool.AppendToTimeline([good])
    assert (item.GetStart(), item.GetEnd(), item.GetDuration()) == (START, START + 24, 24)
    assert pool.AppendToTimeline([{**good, "recordFrame": START + 23}]) == []  # occupied
    assert [i.GetStart() for i in tl.GetItemListInTrack("audio", 1)] == [START]


# ------------------------------------------------------------------ server trouble
def test_no_server_is_a_clear_message_and_nothing_is_added(script, dvr, clips, tmp_path, monkeypatch):
    app = dvr.make_resolve()
    media = app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50)
    app.timeline.place(1, media, offset=0, duration=24)
    monkeypatch.setenv("FOLEYSPACE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FOLEYSPACE_SERVER", f"tcp://127.0.0.1:{free_port()}")
    monkeypatch.setenv("FOLEYSPACE_RESOLVE_OUTPUT", str(tmp_path / "stems"))
    monkeypatch.setenv("FOLEYSPACE_RESOLVE_REQUEST_TIMEOUT", "0.3")
    monkeypatch.setenv("FOLEYSPACE_RESOLVE_REQUEST_RETRIES", "1")
    monkeypatch.delenv("FOLEYSPACE_RESOLVE_TRACK", raising=False)
    lines: list[str] = []
    t0 = time.monotonic()
    assert script.main({"resolve": app}, log=lines.append) is False  # the global Resolve provides
    assert time.monotonic() - t0 < 5
    assert "no FoleySpace server answers" in lines[0] and "foleyspace serve" in lines[0]
    assert app.timeline.GetTrackCount("audio") == 1 and len(app.media_pool.items) == 1
    assert not (tmp_path / "stems").exists()


def test_job_timeout_cancels_the_job_and_adds_nothing(script, dvr, client, clip_factory, tmp_path):
    long_clip = clip_factory(motion="cross_lr", duration_s=8.0, size=(640, 360))
    app = dvr.make_resolve()
    app.timeline.place(1, app.media_pool.add_media(str(long_clip), fps=25.0, frames=200), offset=0, duration=190)
    quick = script.Settings(output_dir=tmp_path / "stems", job_timeout_s=0.1, request_timeout_s=5, request_retries=2)
    t0 = time.monotonic()
    report = script.spatialize_timeline(app, client, quick, log=lambda _: None)
    assert time.monotonic() - t0 < 10
    (name, reason), = report.skipped
    assert not report.ok and "no result within 0.1 s" in reason and "cancelled" in reason
    job = reason.split("(job ")[1].split()[0]
    assert client.wait(job, timeout=30)["state"] == "cancelled"
    assert app.timeline.GetTrackCount("audio") == 1


def test_wrong_token_is_reported_not_a_crash(script, dvr, server, clips, tmp_path):
    app = dvr.make_resolve()
    app.timeline.place(1, app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50), offset=0, duration=24)
    with Client(server.address, token="not-the-token", home=tmp_path, timeout=2, retries=1) as c:
        report = script.spatialize_timeline(app, c, settings(script, tmp_path / "stems"), log=lambda _: None)
    assert not report.ok and "refused the connection (unauthorized" in report.error
    assert app.timeline.GetTrackCount("audio") == 1


def test_server_going_away_mid_job_costs_only_the_unfinished_clips(script, dvr, clip_factory, clips, tmp_path_factory):
    base = tmp_path_factory.mktemp("dying_server")
    (base / "home").mkdir()
    srv = ServerProcess(base / "home", tmp_path_factory.getbasetemp(), workers=1).start()
    long_clip = clip_factory(motion="cross_lr", duration_s=8.0, size=(640, 360))
    app = dvr.make_resolve()
    pool, tl = app.media_pool, app.timeline
    tl.place(1, pool.add_media(str(clips["rl"]), fps=25.0, frames=25), offset=0, duration=24, name="first")
    tl.place(1, pool.add_media(str(long_clip), fps=25.0, frames=200), offset=24, duration=190, name="long")
    tl.place(1, pool.add_media(str(clips["lr"]), fps=25.0, frames=50), offset=240, duration=24, name="third")
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if "[1/3]" in line and "done" in line:  # the long job is running now: pull the plug
            srv.kill9()

    try:
        with srv.client(timeout=0.5, retries=2) as c:
            t0 = time.monotonic()
            report = script.spatialize_timeline(app, c, settings(script, base / "stems", track=1) , log=log)
            elapsed = time.monotonic() - t0
    finally:
        srv.stop()
    assert srv.proc.poll() is not None, lines
    assert [(p.clip.name, p.record_frame) for p in report.placed] == [("first", START)]
    reasons = dict(report.skipped)
    assert "went away during the job" in reasons["long"]
    assert "server went away" in reasons["third"]
    assert [c.start for c in audio_on(app, 2)] == [START]
    assert elapsed < 20


# ------------------------------------------------------------------ Resolve not there
def test_no_resolve_is_one_clear_line(script, dvr):
    dvr.close_resolve()
    lines: list[str] = []
    assert script.main({}, log=lines.append) is False
    assert len(lines) == 1 and "DaVinci Resolve is not reachable" in lines[0]


# ------------------------------------------------------------------ installer
def test_install_writes_a_script_that_imports_the_client_in_a_bare_python(tmp_path):
    target = install_resolve(dest=tmp_path / "Utility")
    assert target == tmp_path / "Utility" / INSTALLED_NAME and target.is_file()
    text = target.read_text(encoding="utf-8")
    compile(text, str(target), "exec")
    assert "FOLEYSPACE_PATHS: List[str] = []" not in text and str(ROOT) in text
    assert not list(target.parent.glob(".*.tmp"))
    bare = [sys.executable, "-I", "-S"]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    probe = subprocess.run([*bare, "-c", "import zmq"], check=False, capture_output=True, env=env, timeout=30)
    assert probe.returncode != 0, "the bare interpreter must not see the venv's packages"
    check = ("import runpy, sys; ns = runpy.run_path(sys.argv[1], run_name='sample_rate'); "
             "print(ns['IMPORT_ERROR'] or ns['Client'].__module__)")
    out = subprocess.run([*bare, "-c", check, str(target)], check=False, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "foleyspace.client", out.stderr + out.stdout
    run = subprocess.run([*bare, str(target)], check=False, capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 1 and run.stdout.strip().count("\n") == 0
    assert "DaVinci Resolve is not reachable" in run.stdout


def test_uninstalled_script_explains_how_to_fix_the_import(tmp_path):
    source = SCRIPT.read_text(encoding="utf-8").replace('FOLEYSPACE_PYTHON = ""', 'FOLEYSPACE_PYTHON = "2.7"')
    (tmp_path / "s.py").write_text(source, encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-I", "-S", str(tmp_path / "s.py")], check=False, capture_output=True, text=True,
                         env=env, timeout=60)
    assert run.returncode == 1
    assert "foleyspace install resolve" in run.stdout and "installed for Python 2.7" in run.stdout


def test_install_default_folder_follows_the_platform(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("APPDATA", str(tmp_path / "AppData"))
    target = install_resolve()
    assert target.parent == resolve_scripts_dir() and target.is_file()
    assert str(target).startswith(str(tmp_path))


def test_install_failures_are_one_line_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FoleySpaceError, match="cannot install the Resolve script into"):
        install_resolve(dest=blocker)
    with pytest.raises(FoleySpaceError, match="FOLEYSPACE_PATHS"):
        render_script("print('no constants here')\n", ["/x"])


def test_resolve_scripts_dir_per_platform():
    assert str(resolve_scripts_dir("darwin", {"HOME": "/Users/ana"})) == (
        "/Users/ana/Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Utility")
    assert str(resolve_scripts_dir("linux", {"HOME": "/home/ana"})) == (
        "/home/ana/.local/share/DaVinciResolve/Fusion/Scripts/Utility")
    assert str(resolve_scripts_dir("win32", {"APPDATA": r"C:\Users\ana\AppData\Roaming"})) == (
        r"C:\Users\ana\AppData\Roaming\Blackmagic Design\DaVinci Resolve\Support\Fusion\Scripts\Utility")
    with pytest.raises(FoleySpaceError, match="APPDATA"):
        resolve_scripts_dir("win32", {})
    with pytest.raises(FoleySpaceError, match="does not run on"):
        resolve_scripts_dir("sunos5", {"HOME": "/h"})
