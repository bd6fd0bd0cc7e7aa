"""The DaVinci Resolve script against a fake of Resolve's API, a real server and real clips."""

from __future__ import annotations

import importlib.util
import json
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


# ------------------------------------------------------------------ model settings
def test_model_settings_reach_the_job_options(script):
    env = {"FOLEYSPACE_RESOLVE_LOCALIZER": "yolo-world", "FOLEYSPACE_RESOLVE_DEPTH": " box-scale ",
           "FOLEYSPACE_RESOLVE_VOCAB": "imagenet", "FOLEYSPACE_RESOLVE_DETECT_EVERY": "5",
           "FOLEYSPACE_RESOLVE_LABEL": ""}
    s = script.Settings.from_env(env)
    assert (s.localizer, s.depth, s.vocab, s.detect_every, s.label) == ("yolo-world", "box-scale", "imagenet", 5, "")
    # no label: YOLO-World scores the vocabulary
    assert s.job_options("shot.mov") == {"localizer": "yolo-world", "depth": "box-scale", "vocab": "imagenet",
                                         "detect_every": 5}
    assert script.Settings.from_env({**env, "FOLEYSPACE_RESOLVE_LABEL": "-"}).label == ""
    # the default: the clip's name is the label, nothing else is sent (the server's defaults)
    assert script.Settings.from_env({}).job_options("A001_C003.mov") == {"label": "A001_C003.mov"}
    # a label (synonyms as typed) names the object: the vocabulary is not sent
    labelled = script.Settings.from_env({**env, "FOLEYSPACE_RESOLVE_LABEL": " dog, puppy "})
    assert labelled.job_options("shot.mov") == {"label": "dog, puppy", "localizer": "yolo-world",
                                                "depth": "box-scale", "detect_every": 5}
    depth = script.Settings.from_env({"FOLEYSPACE_RESOLVE_DEPTH": "depth-anything",
                                      "FOLEYSPACE_RESOLVE_DEPTH_MODEL": "metric-outdoor-small",
                                      "FOLEYSPACE_RESOLVE_VOCAB": "/lists/birds.txt"})
    assert depth.job_options("x") == {"label": "x", "depth": "depth-anything", "depth_model": "metric-outdoor-small"}
    assert script.Settings(label="", vocab="/lists/birds.txt").job_options("x") == {"vocab": "/lists/birds.txt"}
    # the spec carries them (with the timing fields)
    clip = script.Clip(name="shot.mov", video="/v.mov", start_s=0.0, end_s=1.0, record_frame=0, frames=24)
    spec = clip.spec(Path("/out"), "s.wav", s.job_options(clip.name))
    assert spec["options"] == {"localizer": "yolo-world", "depth": "box-scale", "vocab": "imagenet",
                               "detect_every": 5}


@pytest.mark.parametrize("env, message", [
    ({"FOLEYSPACE_RESOLVE_LOCALIZER": "yolo"}, "FOLEYSPACE_RESOLVE_LOCALIZER must be one of auto, yolo-world, "
                                               "motion, classic, not 'yolo'"),
    ({"FOLEYSPACE_RESOLVE_LOCALIZER": "classic", "FOLEYSPACE_RESOLVE_LABEL": "dog"},
     "FOLEYSPACE_RESOLVE_LOCALIZER=classic finds people or faces, but FOLEYSPACE_RESOLVE_LABEL 'dog' names neither; "
     "set FOLEYSPACE_RESOLVE_LABEL=person|face"),
    ({"FOLEYSPACE_RESOLVE_LOCALIZER": "classic", "FOLEYSPACE_RESOLVE_LABEL": "face",
      "FOLEYSPACE_RESOLVE_DETECT_EVERY": "2"},
     "FOLEYSPACE_RESOLVE_DETECT_EVERY is a setting of the yolo-world localizer, but FOLEYSPACE_RESOLVE_LOCALIZER is "
     "classic"),
    ({"FOLEYSPACE_RESOLVE_LOCALIZER": "seeded"}, "FOLEYSPACE_RESOLVE_LOCALIZER must be one of"),
    ({"FOLEYSPACE_RESOLVE_DEPTH": "box"}, "FOLEYSPACE_RESOLVE_DEPTH must be one of auto, depth-anything, box-scale"),
    ({"FOLEYSPACE_RESOLVE_VOCAB": "birds.txt"}, "FOLEYSPACE_RESOLVE_VOCAB must be one of coco, imagenet, vggsound, "
                                                "audioset or the absolute path of a file of labels"),
    ({"FOLEYSPACE_RESOLVE_DEPTH_MODEL": "huge"}, "FOLEYSPACE_RESOLVE_DEPTH_MODEL must be one of small"),
    ({"FOLEYSPACE_RESOLVE_DETECT_EVERY": "0"}, "FOLEYSPACE_RESOLVE_DETECT_EVERY must be a whole number"),
    ({"FOLEYSPACE_RESOLVE_DETECT_EVERY": "2.5"}, "FOLEYSPACE_RESOLVE_DETECT_EVERY must be a whole number"),
    ({"FOLEYSPACE_RESOLVE_DETECT_EVERY": "251"}, "from 1 to 250, not 251"),
    ({"FOLEYSPACE_RESOLVE_LOCALIZER": "motion", "FOLEYSPACE_RESOLVE_VOCAB": "coco"},
     "FOLEYSPACE_RESOLVE_VOCAB is a setting of the yolo-world localizer"),
    ({"FOLEYSPACE_RESOLVE_DEPTH": "box-scale", "FOLEYSPACE_RESOLVE_DEPTH_MODEL": "large"},
     "FOLEYSPACE_RESOLVE_DEPTH_MODEL is a setting of the depth-anything depth"),
])
def test_bad_model_setting_is_one_line_before_anything_renders(script, dvr, server, clips, tmp_path, monkeypatch,
                                                               env, message):
    app = dvr.make_resolve()
    app.timeline.place(1, app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50), offset=0, duration=24)
    monkeypatch.setenv("FOLEYSPACE_HOME", str(server.home))
    monkeypatch.setenv("FOLEYSPACE_SERVER", server.address)
    monkeypatch.setenv("FOLEYSPACE_RESOLVE_OUTPUT", str(tmp_path / "stems"))
    monkeypatch.delenv("FOLEYSPACE_RESOLVE_TRACK", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with server.client() as c:
        before = len(c.request("list", limit=1000)["jobs"])
    lines: list[str] = []
    assert script.main({"resolve": app}, log=lines.append) is False
    (line,) = lines
    assert line.startswith("FoleySpace: ") and message in line and "\n" not in line
    assert app.timeline.GetTrackCount("audio") == 1 and len(app.media_pool.items) == 1
    assert not (tmp_path / "stems").exists()
    with server.client() as c:
        assert len(c.request("list", limit=1000)["jobs"]) == before
    with pytest.raises(script.ScriptError, match=message.split(",")[0]):
        script.Settings.from_env(env)


def test_classic_localizer_reaches_the_spec_and_needs_people_or_a_face(script):
    """Classic: the spec carries it; the word lists are the core's (a copy: this script imports
    only foleyspace.client); a label naming neither people nor a face is refused in one line."""
    from foleyspace.localize import classic

    assert (script.PEOPLE_WORDS, script.FACE_WORDS) == (classic.PEOPLE_WORDS, classic.FACE_WORDS)
    for label in ("person", "Face", "dog, talking head", " Woman", "dog", "", "dog, puppy", "faceless"):
        assert script.names_people_or_face(label) == (classic.detector_for(label) is not None), label
    s = script.Settings.from_env({"FOLEYSPACE_RESOLVE_LOCALIZER": "classic", "FOLEYSPACE_RESOLVE_LABEL": "person"})
    clip = script.Clip(name="shot.mov", video="/v.mov", start_s=0.0, end_s=1.0, record_frame=0, frames=24)
    spec = clip.spec(Path("/out"), "s.wav", s.job_options(clip.name))
    assert spec["options"] == {"label": "person", "localizer": "classic"}
    job_from_spec(spec)  # the core accepts it
    by_name = script.Settings(localizer="classic")  # the label: each clip's name
    by_name.check_labels(["Speaker", "the runner, man"])  # a synonym is a whole comma-separated part
    with pytest.raises(script.ScriptError) as refused:
        by_name.check_labels(["A001.mov", "face", "dog", "A001.mov", "b", "c"])
    assert str(refused.value) == (
        "FoleySpace: FOLEYSPACE_RESOLVE_LOCALIZER=classic finds people or faces, but the label (each clip's name by "
        "default) 'A001.mov', 'dog', 'b' and 1 more names neither; set FOLEYSPACE_RESOLVE_LABEL=person|face")
    with pytest.raises(script.ScriptError, match="FOLEYSPACE_RESOLVE_LABEL '' names neither"):
        script.Settings.from_env({"FOLEYSPACE_RESOLVE_LOCALIZER": "classic", "FOLEYSPACE_RESOLVE_LABEL": "-"})


def test_classic_with_a_clip_name_naming_neither_stops_before_anything_renders(script, dvr, client, clips, tmp_path):
    app = dvr.make_resolve()
    app.timeline.place(1, app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50), offset=0, duration=24,
                       name="dog barking")
    before = len(client.request("list", limit=1000)["jobs"])
    chosen = settings(script, tmp_path / "stems")
    chosen.localizer = "classic"
    lines: list[str] = []
    report = script.spatialize_timeline(app, client, chosen, log=lines.append)
    assert not report.ok and report.placed == [] and "\n" not in report.error
    assert report.error == ("FoleySpace: FOLEYSPACE_RESOLVE_LOCALIZER=classic finds people or faces, but the label "
                            "(each clip's name by default) 'dog barking' names neither; set "
                            "FOLEYSPACE_RESOLVE_LABEL=person|face")
    assert len(client.request("list", limit=1000)["jobs"]) == before  # nothing was sent
    assert app.timeline.GetTrackCount("audio") == 1 and not (tmp_path / "stems").exists()


def test_model_the_server_lacks_stops_the_run_before_anything_renders(script, dvr, client, clips, tmp_path):
    """The test server has no model weights (tests/conftest.py: FOLEYSPACE_MODELS is an empty folder)."""
    app = dvr.make_resolve()
    app.timeline.place(1, app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50), offset=0, duration=24)
    before = len(client.request("list", limit=1000)["jobs"])
    yolo = settings(script, tmp_path / "stems")
    yolo.localizer = "yolo-world"
    report = script.spatialize_timeline(app, client, yolo, log=lambda _: None)
    assert not report.ok and report.placed == [] and "\n" not in report.error
    assert "FOLEYSPACE_RESOLVE_LOCALIZER=yolo-world is not available on the FoleySpace server" in report.error
    assert "`foleyspace models fetch yolo-world`" in report.error and "set FOLEYSPACE_RESOLVE_LOCALIZER to auto" \
        in report.error
    depth = settings(script, tmp_path / "stems")
    depth.depth = "depth-anything"
    report = script.spatialize_timeline(app, client, depth, log=lambda _: None)
    assert "FOLEYSPACE_RESOLVE_DEPTH=depth-anything is not available" in report.error
    assert "`foleyspace models fetch depth-anything-small`" in report.error
    assert len(client.request("list", limit=1000)["jobs"]) == before  # nothing was sent
    assert app.timeline.GetTrackCount("audio") == 1 and not (tmp_path / "stems").exists()


def test_model_settings_render_with_the_named_backends(script, dvr, client, clips, tmp_path):
    app = dvr.make_resolve()
    app.timeline.place(1, app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50), offset=0, duration=24,
                       name="dog barking")
    chosen = settings(script, tmp_path / "stems")
    chosen.localizer, chosen.depth, chosen.label = "motion", "box-scale", "dog, puppy"
    report = script.spatialize_timeline(app, client, chosen, log=lambda _: None)
    assert report.ok, (report.error, report.skipped)
    sidecar = json.loads(Path(report.placed[0].path).with_suffix(".json").read_text())
    analysis = sidecar["analysis"]
    assert (analysis["localizer"], analysis["depth"], analysis["requested_label"]) == ("motion", "box-scale",
                                                                                      "dog, puppy")


def test_preview_setting_reaches_the_job_options(script):
    """FOLEYSPACE_RESOLVE_PREVIEW=1 (or PREVIEW) asks each job for its preview; off by default."""
    assert script.PREVIEW is False and script.Settings.from_env({}).preview is False
    assert "preview" not in script.Settings.from_env({}).job_options("a.mov")
    on = script.Settings.from_env({"FOLEYSPACE_RESOLVE_PREVIEW": " 1 "})
    assert on.preview is True and on.job_options("a.mov") == {"label": "a.mov", "preview": True}
    assert script.Settings.from_env({"FOLEYSPACE_RESOLVE_PREVIEW": "0"}).preview is False
    with pytest.raises(script.ScriptError, match="FOLEYSPACE_RESOLVE_PREVIEW must be 1 or 0"):
        script.Settings.from_env({"FOLEYSPACE_RESOLVE_PREVIEW": "maybe"})
    clip = script.Clip(name="shot.mov", video="/v.mov", start_s=0.0, end_s=1.0, record_frame=0, frames=24)
    spec = clip.spec(Path("/out"), "s.wav", on.job_options(clip.name))
    assert spec["options"] == {"label": "shot.mov", "preview": True}
    assert not {"box", "box_time_s", "more_boxes"} & set(spec)  # Resolve gives no box to send


def test_preview_is_written_and_reported(script, dvr, client, clips, tmp_path):
    app = dvr.make_resolve()
    app.timeline.place(1, app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50), offset=0, duration=24)
    chosen = settings(script, tmp_path / "stems")
    chosen.preview = True
    lines: list[str] = []
    report = script.spatialize_timeline(app, client, chosen, log=lines.append)
    assert report.ok, (report.error, report.skipped)
    (placed,) = report.placed
    preview = Path(placed.path).with_suffix(".preview.mp4")
    assert placed.preview == str(preview) and preview.is_file()
    assert any(line.endswith(f"preview -> {preview}") for line in lines), lines
    assert any(line.endswith(f"Preview: {preview}") for line in lines), lines
    assert len(audio_on(app, report.tracks[0])) == 1  # the preview is reported, not placed



# ------------------------------------------------------------------ HRTF and renderer settings
def test_hrtf_and_renderer_settings_reach_the_job_options(script, tmp_path):
    """FOLEYSPACE_RESOLVE_HRTF/_HRTF_INTERP/_HRTF_DIRECTIONS/_RENDERER/_CHECKPOINT/_DIFFUSION_STEPS/_SEED
    (or the constants) become job options: files absolute, a fetched set's name as given, defaults
    left out; the choices are the core's, and the core accepts the specs."""
    from foleyspace.diffusion.config import MAX_SEED, SCHEDULES
    from foleyspace.hrtf.catalog import CATALOG, is_name
    from foleyspace.hrtf.directions import DIRECTION_SETS
    from foleyspace.hrtf.interpolate import METHODS

    assert (script.HRTF_INTERPS, script.HRTF_DIRECTION_SETS, script.DIFFUSION_SCHEDULES) == (
        tuple(METHODS), tuple(DIRECTION_SETS), tuple(SCHEDULES))
    assert script.HRTF_SETS == tuple(CATALOG) and script.MAX_SEED == MAX_SEED
    for text in ("hutubs:96", "SADIE:H3", "hutubs:", "/h/a.sofa", "C:\\h.sofa", "sadie:a/b", "x:1"):
        assert script.is_hrtf_name(text) == is_name(text), text
    sofa, ckpt = tmp_path / "head.sofa", tmp_path / "tiny.pt"
    sofa.write_bytes(b"x")
    ckpt.write_bytes(b"x")
    env = {"FOLEYSPACE_RESOLVE_LABEL": "-", "FOLEYSPACE_RESOLVE_HRTF": f" {sofa} ",
           "FOLEYSPACE_RESOLVE_HRTF_INTERP": "nearest", "FOLEYSPACE_RESOLVE_HRTF_DIRECTIONS": "all",
           "FOLEYSPACE_RESOLVE_RENDERER": "diffusion", "FOLEYSPACE_RESOLVE_CHECKPOINT": str(ckpt),
           "FOLEYSPACE_RESOLVE_DIFFUSION_STEPS": "fast", "FOLEYSPACE_RESOLVE_SEED": "3"}
    s = script.Settings.from_env(env)
    assert s.job_options("x") == {"hrtf": str(sofa), "hrtf_interp": "nearest", "renderer": "diffusion",
                                  "checkpoint": str(ckpt), "diffusion_schedule": "fast", "seed": 3}
    named = script.Settings.from_env({"FOLEYSPACE_RESOLVE_LABEL": "-", "FOLEYSPACE_RESOLVE_HRTF": "hutubs:96",
                                      "FOLEYSPACE_RESOLVE_HRTF_DIRECTIONS": "coarse",
                                      "FOLEYSPACE_RESOLVE_CHECKPOINT": str(ckpt),
                                      "FOLEYSPACE_RESOLVE_DIFFUSION_STEPS": "standard",
                                      "FOLEYSPACE_RESOLVE_SEED": "0"})
    # renderer auto with a checkpoint: the server picks diffusion; standard and seed 0 are the defaults
    assert named.job_options("x") == {"hrtf": "hutubs:96", "hrtf_directions": "coarse", "checkpoint": str(ckpt)}
    defaults = script.Settings.from_env({"FOLEYSPACE_RESOLVE_LABEL": "-", "FOLEYSPACE_RESOLVE_HRTF_INTERP": "aligned",
                                         "FOLEYSPACE_RESOLVE_HRTF_DIRECTIONS": "all",
                                         "FOLEYSPACE_RESOLVE_RENDERER": "auto",
                                         "FOLEYSPACE_RESOLVE_DIFFUSION_STEPS": "standard",
                                         "FOLEYSPACE_RESOLVE_SEED": "0"})
    assert defaults.job_options("x") == {}  # the defaults are not sent, and need no HRTF or checkpoint
    assert script.Settings.from_env({"FOLEYSPACE_RESOLVE_LABEL": "-", "FOLEYSPACE_RESOLVE_RENDERER": "dsp"}
                                    ).job_options("x") == {"renderer": "dsp"}
    assert script.Settings(label="", hrtf=str(sofa), hrtf_interp="linear").job_options("x") == {
        "hrtf": str(sofa), "hrtf_interp": "linear"}  # the constants
    clip = script.Clip(name="shot.mov", video="/v.mov", start_s=0.0, end_s=1.0, record_frame=0, frames=24)
    spec = clip.spec(tmp_path, "s.wav", s.job_options(clip.name))
    assert spec["options"] == s.job_options("x")
    video = tmp_path / "v.mov"
    video.write_bytes(b"x")
    job = job_from_spec({**spec, "video": str(video)})  # the core accepts it
    assert job.config.settings_for("renderer", "diffusion").seed == 3


BAD_RENDER_SETTINGS = [
    ({"FOLEYSPACE_RESOLVE_HRTF": "head.sofa"}, "FOLEYSPACE_RESOLVE_HRTF must be the absolute path of a SOFA file, or "
                                               "a fetched set named SET:SUBJECT (hutubs:96, sadie:H3), not 'head.sofa'"),
    ({"FOLEYSPACE_RESOLVE_HRTF": "/no/such/head.sofa"}, "FOLEYSPACE_RESOLVE_HRTF: no such file: /no/such/head.sofa"),
    ({"FOLEYSPACE_RESOLVE_HRTF_INTERP": "cubic"},
     "FOLEYSPACE_RESOLVE_HRTF_INTERP must be one of nearest, linear, aligned, not 'cubic'"),
    ({"FOLEYSPACE_RESOLVE_HRTF_INTERP": "nearest"},
     "FOLEYSPACE_RESOLVE_HRTF_INTERP is a setting of a measured HRTF, but FOLEYSPACE_RESOLVE_HRTF is not set"),
    ({"FOLEYSPACE_RESOLVE_HRTF_DIRECTIONS": "coarse"},
     "FOLEYSPACE_RESOLVE_HRTF_DIRECTIONS is a setting of a measured HRTF, but FOLEYSPACE_RESOLVE_HRTF is not set"),
    ({"FOLEYSPACE_RESOLVE_RENDERER": "neural"}, "FOLEYSPACE_RESOLVE_RENDERER must be one of auto, dsp, diffusion, "
                                                "not 'neural'"),
    ({"FOLEYSPACE_RESOLVE_RENDERER": "diffusion"}, "FOLEYSPACE_RESOLVE_RENDERER=diffusion needs "
                                                   "FOLEYSPACE_RESOLVE_CHECKPOINT, the absolute path of a trained "
                                                   "checkpoint"),
    ({"FOLEYSPACE_RESOLVE_CHECKPOINT": "/no/such/model.pt"}, "FOLEYSPACE_RESOLVE_CHECKPOINT: no such file: "
                                                             "/no/such/model.pt"),
    ({"FOLEYSPACE_RESOLVE_CHECKPOINT": str(SCRIPT), "FOLEYSPACE_RESOLVE_RENDERER": "dsp"},
     "FOLEYSPACE_RESOLVE_CHECKPOINT is a setting of the diffusion renderer, but FOLEYSPACE_RESOLVE_RENDERER is dsp"),
    ({"FOLEYSPACE_RESOLVE_DIFFUSION_STEPS": "fast"},
     "FOLEYSPACE_RESOLVE_DIFFUSION_STEPS is a setting of the diffusion renderer: set FOLEYSPACE_RESOLVE_CHECKPOINT too"),
    ({"FOLEYSPACE_RESOLVE_DIFFUSION_STEPS": "6"}, "FOLEYSPACE_RESOLVE_DIFFUSION_STEPS must be one of standard, fast, "
                                                  "not '6'"),
    ({"FOLEYSPACE_RESOLVE_SEED": "3"},
     "FOLEYSPACE_RESOLVE_SEED is a setting of the diffusion renderer: set FOLEYSPACE_RESOLVE_CHECKPOINT too"),
    ({"FOLEYSPACE_RESOLVE_SEED": "-1"}, "FOLEYSPACE_RESOLVE_SEED must be a whole number from 0 to "
                                        "9223372036854775807, not '-1'"),
    ({"FOLEYSPACE_RESOLVE_SEED": "9223372036854775808"}, "FOLEYSPACE_RESOLVE_SEED must be a whole number from 0 to"),
]


@pytest.mark.parametrize("env, message", BAD_RENDER_SETTINGS)
def test_bad_hrtf_or_renderer_setting_is_one_line_before_anything_renders(script, dvr, server, clips, tmp_path,
                                                                          monkeypatch, env, message):
    test_bad_model_setting_is_one_line_before_anything_renders(script, dvr, server, clips, tmp_path, monkeypatch,
                                                               env, message)


@pytest.fixture
def hrtf_server(tmp_path_factory, ku100_sofa, monkeypatch):
    """A server whose HRTF folder holds the KU100 set as the fetched ``hutubs:96``."""
    import shutil

    base = tmp_path_factory.mktemp("resolve_hrtf_server")
    (base / "home").mkdir()
    target = base / "hrtf" / "hutubs" / "pp96_HRIRs_measured.sofa"
    target.parent.mkdir(parents=True)
    shutil.copy(ku100_sofa, target)
    monkeypatch.setenv("FOLEYSPACE_HRTF_DIR", str(base / "hrtf"))
    srv = ServerProcess(base / "home", tmp_path_factory.getbasetemp(), workers=1).start()
    yield srv
    srv.stop()


def test_fetched_hrtf_set_by_name_renders_with_its_interpolation(script, dvr, hrtf_server, clips, tmp_path):
    """FOLEYSPACE_RESOLVE_HRTF=hutubs:96 is resolved on the server (its HRTF folder); Nearest and the
    coarse directions reach the renderer (the sidecar says so)."""
    app = dvr.make_resolve()
    app.timeline.place(1, app.media_pool.add_media(str(clips["rl"]), fps=25.0, frames=25), offset=0, duration=20)
    chosen = settings(script, tmp_path / "stems")
    chosen.hrtf, chosen.hrtf_interp, chosen.hrtf_directions = "hutubs:96", "nearest", "coarse"
    with hrtf_server.client(timeout=5, retries=2) as c:
        report = script.spatialize_timeline(app, c, chosen, log=lambda _: None)
    assert report.ok, (report.error, report.skipped)
    sidecar = json.loads(Path(report.placed[0].path).with_suffix(".json").read_text())
    assert sidecar["analysis"]["hrir"] == "sofa" and sidecar["analysis"]["renderer"] == "dsp"
    assert sidecar["settings"]["settings"]["hrir:sofa"] == {"interp": "nearest", "directions": "coarse"}


def test_diffusion_renderer_with_a_checkpoint_renders(script, dvr, client, clips, tmp_path):
    """Diffusion with a tiny random checkpoint (Fast, Seed 3): checked with the server's hello
    before anything renders, rendered, and the sidecar names the checkpoint."""
    from test_blender import tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    if ckpt is None:
        pytest.skip("torch is not installed")
    app = dvr.make_resolve()
    app.timeline.place(1, app.media_pool.add_media(str(clips["rl"]), fps=25.0, frames=25), offset=0, duration=20)
    chosen = settings(script, tmp_path / "stems")
    chosen.renderer, chosen.checkpoint, chosen.diffusion_steps, chosen.seed = "diffusion", str(ckpt), "fast", 3
    report = script.spatialize_timeline(app, client, chosen, log=lambda _: None)
    assert report.ok, (report.error, report.skipped)
    data, rate = sf.read(report.placed[0].path)
    assert rate == 48000 and data.shape == (round(20 / 24 * 48000), 2) and np.all(np.isfinite(data))
    sidecar = json.loads(Path(report.placed[0].path).with_suffix(".json").read_text())
    assert sidecar["analysis"]["renderer"] == "diffusion"
    assert sidecar["settings"]["settings"]["renderer:diffusion"] == {"checkpoint": str(ckpt), "schedule": "fast",
                                                                    "seed": 3}


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
    assert stem.GetClipProperty()["Frames"] == "24" and stem.GetClipProperty(7) is None
    assert tl.GetItemListInTrack("audio", 0) is None and tl.GetItemListInTrack("audio", 2) is None
    good = {"mediaPoolItem": stem, "startFrame": 0, "endFrame": 24, "mediaType": 2, "trackIndex": 1,
            "recordFrame": START}
    for bad in ({"recordFrame": 0}, {"recordFrame": START - 1}, {"trackIndex": 0}, {"trackIndex": 2},
                {"mediaType": 1}, {"mediaType": 3}, {"endFrame": 25}, {"endFrame": 0}, {"recordFrame": float(START)},
                {"recordframe": START}):
        assert pool.AppendToTimeline([{**good, **bad}]) == [], bad
    assert tl.AddTrack("audio") and pool.AppendToTimeline([{**good, "trackIndex": 2}]) == []  # mono track
    (item,) = pool.AppendToTimeline([good])  # endFrame exclusive: frames 0..23
    assert (item.GetStart(), item.GetEnd(), item.GetDuration()) == (START, START + 24, 24)
    assert item.GetStart(True) == float(START) and item.GetStart("yes") is None and item.GetLeftOffset(False) == 0
    assert pool.AppendToTimeline([{**good, "recordFrame": START + 23}]) == []  # occupied: not overwritten
    # a batch: the overlapping clipInfo is dropped (the earlier item wins), the others are placed
    placed = pool.AppendToTimeline([{**good, "endFrame": 10, "recordFrame": START + 100},
                                    {**good, "endFrame": 10, "recordFrame": START + 105},
                                    {**good, "endFrame": 10, "recordFrame": START + 200}])
    assert [i.GetStart() for i in placed] == [START + 100, START + 200]
    assert [i.GetStart() for i in tl.GetItemListInTrack("audio", 1)] == [START, START + 100, START + 200]


def test_fake_answers_like_resolve(dvr, clips):
    """Documented names answer; a name Resolve does not have answers None (the bridge)."""
    app = dvr.make_resolve(version=(21, 1, 1, 3))
    assert app.GetProduct() is None and app.GetProductName() == "DaVinci Resolve Studio"
    assert app.GetVersion()[:2] == [21, 1] and app.GetVersionString() == "21.1.1.3"
    media = app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=30, start=20)  # a subclip
    clip = app.timeline.place(1, media, offset=0, duration=24, left_offset=3)
    item = dvr.FakeTimelineItem(clip, app.timeline)
    assert item.GetSourceStartFrame() == int(media.GetClipProperty("Start")) + item.GetLeftOffset() == 23
    assert item.GetLinkedItems() == [] and item.GetTrackTypeAndIndex() == ["video", 1]
    assert item.GetSpeed()["Percentage"] == 100.0
    old = dvr.make_resolve(version=(20, 2, 0, 0))
    clip = old.timeline.place(1, old.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50), offset=0, duration=24)
    assert dvr.FakeTimelineItem(clip, old.timeline).GetSpeed() is None  # GetSpeed is 21.1+


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


# ------------------------------------------------------------------ endFrame, subclips, linked audio, retime
def test_stem_covers_every_frame_of_the_clip(script, dvr, tmp_path, monkeypatch):
    """endFrame is exclusive: the placed stem lasts exactly the clip's frames, none short."""
    app = dvr.make_resolve()
    clip = script.Clip("shot", "/abs/shot.mov", 0.0, 1.0, START + 10, 24)
    stem = script.Stem(clip, str(write_stem(tmp_path / "shot_binaural.wav", 1.0)), 1.0)
    report = script.place_stems(app.project, app.timeline, [stem], log=lambda _: None)
    (placed,) = audio_on(app, 2)
    assert (placed.start, placed.end, placed.duration) == (START + 10, START + 34, 24) == (
        report.placed[0].record_frame, clip.record_frame + clip.frames, clip.frames)
    # the inclusive reading the script used before is one frame short against the same Resolve
    monkeypatch.setattr(script, "END_FRAME_EXCLUSIVE", False)
    app = dvr.make_resolve()
    script.place_stems(app.project, app.timeline, [stem], log=lambda _: None)
    assert [c.duration for c in audio_on(app, 2)] == [23]


def test_subclip_source_range_counts_from_the_subclip_start(script, dvr, client, clips, tmp_path):
    app = dvr.make_resolve(fps="25")
    sub = app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=30, start=15, name="lr subclip")
    app.timeline.place(1, sub, offset=0, duration=20, left_offset=5)
    clip = script.clip_from_item(app.timeline.GetCurrentVideoItem(), 25.0)
    assert (clip.start_s, clip.end_s, clip.speed) == (20 / 25, 20 / 25 + 20 / 25, 1.0)
    report = script.spatialize_timeline(app, client, settings(script, tmp_path / "stems"), log=lambda _: None)
    assert report.ok
    spec = {"video": str(clips["lr"]), "output_dir": str(tmp_path), "name": "direct.wav", "start_s": 0.8, "end_s": 1.6}
    ours, _ = sf.read(report.placed[0].path, dtype="int32")
    theirs, _ = sf.read(str(spatialize(job_from_spec(spec)).stem), dtype="int32")
    assert np.array_equal(ours, theirs)
    assert [(c.start, c.duration) for c in audio_on(app, 2)] == [(START, 20)]


def write_recording(path: Path, seconds: float) -> Path:
    """A separate sound recording (a field recorder's WAV): a chirp, so its offset matters."""
    t = np.arange(int(seconds * 48000)) / 48000
    sf.write(str(path), 0.3 * np.sin(2 * np.pi * (200 + 400 * t) * t), 48000, subtype="PCM_24")
    return path


def test_linked_audio_from_another_recording_is_the_sound(script, dvr, client, clips, tmp_path):
    app = dvr.make_resolve(fps="25")
    recording = write_recording(tmp_path / "zoom0001.wav", 4.0)
    video = app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50)
    wav = app.media_pool.add_media(str(recording), fps=25.0, frames=100, video=False, audio_channels=1)
    picture = app.timeline.place(1, video, offset=10, duration=25, left_offset=5)
    own = app.timeline.place_audio(1, video, offset=10, duration=25, left_offset=5)  # the camera's sound
    sound = app.timeline.place_audio(1, wav, offset=40, duration=20, left_offset=30, name="zoom0001")
    app.timeline.tracks["audio"].append(dvr._Track("audio", "mono", "Audio 2"))
    app.timeline.tracks["audio"][0].clips.remove(sound)
    app.timeline.tracks["audio"][1].clips.append(sound)
    sound.start = START  # the recording starts 10 frames before the picture on the timeline
    dvr.link(picture, own, sound)
    item = app.timeline.GetCurrentVideoItem() or app.timeline.GetItemListInTrack("video", 1)[0]
    clip = script.clip_from_item(item, 25.0)
    assert clip.audio == str(recording) and clip.audio_start_s == pytest.approx(30 / 25 + 10 / 25)
    assert clip.spec(tmp_path, "x.wav", {})["audio_start_s"] == pytest.approx(1.6)
    off = script.clip_from_item(item, 25.0, script.Settings(use_linked_audio=False))
    assert off.audio is None and "audio" not in off.spec(tmp_path, "x.wav", {})
    app.timeline.playhead = START + 12
    report = script.spatialize_timeline(app, client, settings(script, tmp_path / "stems"), log=lambda _: None)
    assert report.ok
    direct = spatialize(job_from_spec({"video": str(clips["lr"]), "output_dir": str(tmp_path), "name": "d.wav",
                                       "start_s": 0.2, "end_s": 1.2, "audio": str(recording), "audio_start_s": 1.6}))
    ours, _ = sf.read(report.placed[0].path, dtype="int32")
    theirs, _ = sf.read(str(direct.stem), dtype="int32")
    assert np.array_equal(ours, theirs)


def test_audio_linked_in_the_media_pool(script, dvr, clips, tmp_path):
    """GetAudioMapping's linked audio: used when unambiguous, else the clip's own sound with a note."""
    app = dvr.make_resolve(fps="25")
    recording = str(write_recording(tmp_path / "take1.wav", 3.0))
    synced = app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50, linked_audio=[(recording, 1, 0)])
    app.timeline.place(1, synced, offset=0, duration=25, left_offset=5)
    clip = script.clip_from_item(app.timeline.GetCurrentVideoItem(), 25.0)
    assert (clip.audio, clip.audio_start_s) == (recording, 0.2)
    shifted = app.media_pool.add_media(str(clips["rl"]), fps=25.0, frames=25, linked_audio=[(recording, 1, -100)])
    app.timeline.place(2, shifted, offset=0, duration=20)
    clip = script.clip_from_item(app.timeline.GetCurrentVideoItem(), 25.0)
    assert clip.audio is None and "offset of -100 samples" in clip.notes[0]


@pytest.mark.parametrize("speed, expect", [
    (2.0, (2.0, 10 / 25, 10 / 25 + 2.0 * 20 / 25, None)),
    (0.5, (0.5, 10 / 25, 10 / 25 + 0.5 * 20 / 25, None)),
    (-1.0, (-1.0, 40 / 25 - 20 / 25, 40 / 25, None)),
    (0.0, None),
])
def test_constant_speed_is_sent_as_the_spec_speed(script, dvr, clips, tmp_path, speed, expect):
    app = dvr.make_resolve(fps="25")
    media = app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50)
    first = 39 if speed < 0 else 10  # reversed: the first frame shown is the range's last
    app.timeline.place(1, media, offset=0, duration=20, left_offset=first, speed=speed)
    if speed == 0.0:  # a freeze frame needs a separate recording for its sound (see the end-to-end test)
        with pytest.raises(script.Skip, match="freeze frame plays none of the clip's sound"):
            script.clip_from_item(app.timeline.GetCurrentVideoItem(), 25.0)
        return
    clip = script.clip_from_item(app.timeline.GetCurrentVideoItem(), 25.0)
    assert (clip.speed, clip.start_s, clip.end_s, clip.hold_s) == pytest.approx(expect)
    spec = clip.spec(tmp_path, "x.wav", {})
    assert spec.get("speed", 1.0) == speed and spec.get("end_s") == expect[2] and spec.get("hold_s") == expect[3]
    assert clip.timeline_s == pytest.approx(20 / 25)


def test_speed_that_cannot_be_confirmed_is_refused_by_name(script, dvr, client, clips, tmp_path):
    app = dvr.make_resolve(fps="25")
    media = app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50)
    app.timeline.place(1, media, offset=0, duration=20, left_offset=2, name="ramp", ramp_span=30)
    app.timeline.place(1, media, offset=30, duration=10, left_offset=2, name="steady")
    report = script.spatialize_timeline(app, client, settings(script, tmp_path / "stems", track=1), log=lambda _: None)
    reasons = dict(report.skipped)
    assert "variable speed (a speed ramp?)" in reasons["ramp"] and "50 %" in reasons["ramp"]
    assert [p.clip.name for p in report.placed] == ["steady"]
    old = dvr.make_resolve(fps="25", version=(21, 0, 4, 5))  # no GetSpeed: a retime cannot be confirmed
    media = old.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50)
    old.timeline.place(1, media, offset=0, duration=10, speed=2.0, name="fast")
    with pytest.raises(script.Skip, match="retimed .* Resolve 21.1 or later"):
        script.clip_from_item(old.timeline.GetCurrentVideoItem(), 25.0)
    old.timeline.tracks["video"][0].clips[0].speed = 1.0  # 100 %: confirmed by the source span alone
    assert script.clip_from_item(old.timeline.GetCurrentVideoItem(), 25.0).speed == 1.0


def test_no_source_frames_means_unknown_speed(script, dvr, clips, monkeypatch):
    app = dvr.make_resolve(fps="25", version=(19, 0, 0, 0))
    app.timeline.place(1, app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50), offset=0, duration=10)
    monkeypatch.setattr(dvr.FakeTimelineItem, "GetSourceStartFrame", lambda self: None)  # before 19.0.2
    item = app.timeline.GetCurrentVideoItem()
    with pytest.raises(script.Skip, match="FOLEYSPACE_RESOLVE_ASSUME_NORMAL_SPEED=1"):
        script.clip_from_item(item, 25.0)
    assert script.clip_from_item(item, 25.0, script.Settings(assume_normal_speed=True)).speed == 1.0
    assert script.Settings.from_env({"FOLEYSPACE_RESOLVE_ASSUME_NORMAL_SPEED": "1"}).assume_normal_speed
    with pytest.raises(script.ScriptError, match="must be 1 or 0"):
        script.Settings.from_env({"FOLEYSPACE_RESOLVE_LINKED_AUDIO": "maybe"})


def test_retimed_clips_render_at_their_speed_and_fill_the_clip(script, dvr, client, clips, tmp_path):
    """×2 and a freeze frame end to end: the server renders the source the picture shows, the
    stem lasts the clip's timeline length, and it is placed over every frame of the clip."""
    app = dvr.make_resolve(fps="25")
    media = app.media_pool.add_media(str(clips["lr"]), fps=25.0, frames=50)
    app.timeline.place(1, media, offset=0, duration=20, left_offset=4, speed=2.0, name="fast")
    frozen_clip = app.timeline.place(1, media, offset=30, duration=10, left_offset=12, speed=0.0, name="frozen")
    recording = write_recording(tmp_path / "room.wav", 3.0)
    wav = app.media_pool.add_media(str(recording), fps=25.0, frames=75, video=False, audio_channels=1)
    dvr.link(frozen_clip, app.timeline.place_audio(1, wav, offset=30, duration=10, left_offset=5))
    app.timeline.place(1, media, offset=50, duration=10, left_offset=12, speed=0.0, name="frozen, no sound")
    report = script.spatialize_timeline(app, client, settings(script, tmp_path / "stems", track=1), log=lambda _: None)
    assert report.ok and [name for name, _ in report.skipped] == ["frozen, no sound"], report.skipped
    assert "freeze frame plays none of the clip's sound; link a separate recording" in report.skipped[0][1]
    assert [(c.start, c.duration) for c in audio_on(app, 2)] == [(START, 20), (START + 30, 10)]
    fast, frozen = (sf.read(p.path, dtype="int32")[0] for p in sorted(report.placed, key=lambda p: p.record_frame))
    assert fast.shape[0] == 48000 * 20 // 25 and frozen.shape[0] == 48000 * 10 // 25
    theirs = spatialize(job_from_spec({"video": str(clips["lr"]), "output_dir": str(tmp_path), "name": "d.wav",
                                       "start_s": 4 / 25, "end_s": 4 / 25 + 1.6, "speed": 2.0}))
    assert np.array_equal(fast, sf.read(str(theirs.stem), dtype="int32")[0])
