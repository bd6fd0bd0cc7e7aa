"""The Lua twin of the Resolve script (Resolve Free 21.1+) under LuaJIT, against the Lua fake of
Resolve's API (tests/fake_resolve/fake_resolve.lua), the real ``foleyspace`` command and a real
server.

LuaJIT is Debian's ``luajit`` package (tools/test.sh installs it). Without it these tests skip,
unless FOLEYSPACE_REQUIRE_LUA=1 (set by tools/test.sh), where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_resolve import BAD_RENDER_SETTINGS
from test_server import ServerProcess

from foleyspace.jobspec import job_from_spec
from foleyspace.pipeline import spatialize

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "host_plugins" / "resolve" / "foleyspace_resolve.lua"
FAKE_DIR = Path(__file__).resolve().parent / "fake_resolve"
CLI = Path(sys.executable).with_name("foleyspace")
START = 86400
SMALL = (160, 96)
MARK = "@@RESULT@@"


@pytest.fixture(scope="module")
def luajit() -> str:
    path = shutil.which("luajit")
    if path is None:
        message = "luajit is not installed (Debian: apt-get install luajit)"
        if os.environ.get("FOLEYSPACE_REQUIRE_LUA") == "1":
            pytest.fail(message + "; FOLEYSPACE_REQUIRE_LUA=1")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("resolve_lua_server")
    (base / "home").mkdir()
    srv = ServerProcess(base / "home", tmp_path_factory.getbasetemp(), workers=2).start()
    yield srv
    srv.stop()


@pytest.fixture
def clips(clip_factory) -> dict[str, Path]:
    return {"lr": clip_factory(motion="cross_lr", duration_s=2.0, size=SMALL),
            "rl": clip_factory(motion="cross_rl", duration_s=1.0, size=SMALL)}


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def run_lua(luajit: str, tmp_path: Path, body: str, env: dict[str, str] | None = None) -> dict:
    """Run ``body`` after loading the fake and the script (``fs``, ``fake``, ``out`` in scope);
    returns the table ``out`` the body fills, decoded from JSON."""
    prelude = f"""
package.path = {lua_string(str(FAKE_DIR))} .. "/?.lua;" .. package.path
fake = require("fake_resolve")
FOLEYSPACE_LIBRARY = true
fs = dofile({lua_string(str(SCRIPT))})
out = {{}}
lines = {{}}
function capture(line) lines[#lines + 1] = line print(line) end
fs.log = capture
function try_clip(item, fps, settings)
  local ok, r = pcall(fs.clip_from_item, item, fps, settings or fs.settings(function() return nil end))
  if ok then return r end
  return {{skip = type(r) == "table" and r.skip or tostring(r)}}
end
"""
    epilogue = f'\nout.lines = lines\nprint("{MARK}" .. fake.json_encode(out))\n'
    script = tmp_path / "scenario.lua"
    script.write_text(prelude + body + epilogue, encoding="utf-8")
    run = subprocess.run([luajit, str(script)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **(env or {})}, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    line = next(line for line in run.stdout.splitlines() if line.startswith(MARK))
    return json.loads(line[len(MARK):])


def cli_env(server, tmp_path: Path) -> dict[str, str]:
    return {"FOLEYSPACE_CLI": str(CLI), "FOLEYSPACE_HOME": str(server.home), "FOLEYSPACE_SERVER": server.address,
            "FOLEYSPACE_RESOLVE_OUTPUT": str(tmp_path / "stems"), "FOLEYSPACE_RESOLVE_TRACK": ""}


def direct(spec: dict, tmp_path: Path) -> np.ndarray:
    data, _ = sf.read(str(spatialize(job_from_spec({"output_dir": str(tmp_path), "name": "direct.wav", **spec})).stem),
                      dtype="int32")
    return data


# ------------------------------------------------------------------ clip facts → spec
def test_lua_gathers_the_same_clip_facts(luajit, tmp_path):
    recording = tmp_path / "zoom.wav"
    sf.write(str(recording), np.zeros((48000 * 4, 1)), 48000)
    # one scenario per case keeps the items apart
    cases = {
        "normal": "tl:place{track = 1, media = m, offset = 0, duration = 20, left_offset = 5}",
        "subclip": "tl:place{track = 1, media = sub, offset = 0, duration = 20, left_offset = 5}",
        "double": "tl:place{track = 1, media = m, offset = 0, duration = 10, left_offset = 4, speed = 2}",
        "reverse": "tl:place{track = 1, media = m, offset = 0, duration = 20, left_offset = 39, speed = -1}",
        "freeze": ("local v = tl:place{track = 1, media = m, offset = 0, duration = 20, left_offset = 10, speed = 0}\n"
                   "fake.link(v, tl:place_audio{track = 1, media = wav, offset = 0, duration = 20})"),
        "silent_freeze": "tl:place{track = 1, media = m, offset = 0, duration = 20, left_offset = 10, speed = 0}",
        "ramp": "tl:place{track = 1, media = m, offset = 0, duration = 20, left_offset = 2, ramp_span = 30}",
        "linked": ("local v = tl:place{track = 1, media = m, offset = 10, duration = 25, left_offset = 5}\n"
                   "local a = tl:place_audio{track = 1, media = wav, offset = 0, duration = 60, left_offset = 30}\n"
                   "fake.link(v, a)"),
    }
    body = ""
    for name, scenario in cases.items():
        body += f"""
do
  local app = fake.make_resolve{{fps = "25"}}
  local pool, tl = app.media_pool, app.timeline
  local m = pool:add_media{{path = "/media/a.mp4", fps = 25, frames = 50}}
  local sub = pool:add_media{{path = "/media/a.mp4", fps = 25, frames = 30, start = 15, name = "sub"}}
  local wav = pool:add_media{{path = {lua_string(str(recording))}, fps = 25, frames = 100, video = false, audio_channels = 1}}
  {scenario}
  local item = tl:GetItemListInTrack("video", 1)[1]
  out.{name} = try_clip(item, 25)
  if not out.{name}.skip then out.{name}.args = fs.submit_args(out.{name}, "/stems/x.wav") end
end
"""
    body += """
do  -- before 21.1 a retime cannot be confirmed
  local app = fake.make_resolve{fps = "25", version = {21, 0, 4, 5}}
  local m = app.media_pool:add_media{path = "/media/a.mp4", fps = 25, frames = 50}
  app.timeline:place{track = 1, media = m, offset = 0, duration = 10, speed = 2}
  out.old = try_clip(app.timeline:GetCurrentVideoItem(), 25)
end
"""
    out = run_lua(luajit, tmp_path, body)
    assert (out["normal"]["start_s"], out["normal"]["end_s"], out["normal"]["speed"]) == (0.2, 1.0, 1)
    assert out["normal"]["args"] == ["submit", "/media/a.mp4", "-o", "/stems/x.wav", "--in", "0.2", "--label", "a.mp4",
                                     "--out", "1", "--wait", "-q"]
    assert (out["subclip"]["start_s"], out["subclip"]["end_s"]) == pytest.approx((0.8, 1.6))
    assert (out["double"]["speed"], out["double"]["start_s"], out["double"]["end_s"]) == pytest.approx((2, 0.16, 0.96))
    assert "--speed=2" in out["double"]["args"]
    assert (out["reverse"]["speed"], out["reverse"]["start_s"], out["reverse"]["end_s"]) == pytest.approx((-1, 0.8, 1.6))
    assert "--speed=-1" in out["reverse"]["args"]
    assert out["freeze"]["hold_s"] == pytest.approx(0.8) and "end_s" not in out["freeze"]
    assert out["freeze"]["args"][-9:-4] == ["--speed=0", "--hold", "0.8", "--audio", str(recording)]
    assert "freeze frame plays none of the clip's sound" in out["silent_freeze"]["skip"]
    assert "variable speed (a speed ramp?)" in out["ramp"]["skip"]
    assert "Resolve 21.1 or later" in out["old"]["skip"]
    assert out["linked"]["audio"] == str(recording) and out["linked"]["audio_start_s"] == pytest.approx(30 / 25 + 10 / 25)
    assert out["linked"]["args"][-6:-2] == ["--audio", str(recording), "--audio-start", "1.6"]


def test_lua_model_settings_become_the_cli_flags(luajit, tmp_path):
    """FOLEYSPACE_RESOLVE_LOCALIZER/_DEPTH/_LABEL/_VOCAB/_DETECT_EVERY/_DEPTH_MODEL (or the constants
    at the top of the script) become `foleyspace submit`'s --localizer, --depth, --label, --vocab,
    --detect-every and --depth-model; defaults are left out."""
    envs = {
        "default": {},
        "yolo": {"FOLEYSPACE_RESOLVE_LOCALIZER": "yolo-world", "FOLEYSPACE_RESOLVE_DEPTH": " box-scale ",
                 "FOLEYSPACE_RESOLVE_VOCAB": "imagenet", "FOLEYSPACE_RESOLVE_DETECT_EVERY": "5",
                 "FOLEYSPACE_RESOLVE_LABEL": ""},
        "dash": {"FOLEYSPACE_RESOLVE_LABEL": "-", "FOLEYSPACE_RESOLVE_VOCAB": "/lists/birds.txt"},
        "labelled": {"FOLEYSPACE_RESOLVE_LABEL": " dog, puppy ", "FOLEYSPACE_RESOLVE_VOCAB": "audioset",
                     "FOLEYSPACE_RESOLVE_DEPTH": "depth-anything",
                     "FOLEYSPACE_RESOLVE_DEPTH_MODEL": "metric-outdoor-small"},
        "preview": {"FOLEYSPACE_RESOLVE_PREVIEW": " 1 "},
        "preview_off": {"FOLEYSPACE_RESOLVE_PREVIEW": "0"},
    }
    body = "local env\nlocal function getenv(k) return env[k] end\n"
    for name, env in envs.items():
        table = ", ".join(f"[ {lua_string(k)} ] = {lua_string(v)}" for k, v in env.items())
        body += f"""
env = {{{table}}}
do
  local s = fs.settings(getenv)
  out.{name} = fs.submit_args({{name = "a.mp4", video = "/media/a.mp4", start_s = 0.2, end_s = 1, speed = 1}}, "/s.wav", s)
end
"""
    body += """
fs.LOCALIZER, fs.DEPTH, fs.LABEL, fs.DETECT_EVERY = "motion", "box-scale", "car", nil  -- the constants
env = {}
out.constants = fs.submit_args({name = "a.mp4", video = "/media/a.mp4", start_s = 0.2, end_s = 1, speed = 1},
                               "/s.wav", fs.settings(getenv))
fs.PREVIEW = true  -- the constant, and the environment's 0 over it
out.preview_constant = fs.submit_args({name = "a.mp4", video = "/media/a.mp4", start_s = 0.2, end_s = 1, speed = 1},
                                      "/s.wav", fs.settings(getenv))
out.preview_no_settings = fs.submit_args({name = "a.mp4", video = "/media/a.mp4", start_s = 0.2, end_s = 1, speed = 1},
                                         "/s.wav")
env = {["FOLEYSPACE_RESOLVE_PREVIEW"] = "0"}
out.preview_env_off = fs.submit_args({name = "a.mp4", video = "/media/a.mp4", start_s = 0.2, end_s = 1, speed = 1},
                                     "/s.wav", fs.settings(getenv))
env = {["FOLEYSPACE_RESOLVE_PREVIEW"] = "maybe"}
local ok, err = pcall(fs.settings, getenv)
out.preview_bad = err.script
fs.PREVIEW = false
"""
    out = run_lua(luajit, tmp_path, body)
    head, tail = ["submit", "/media/a.mp4", "-o", "/s.wav", "--in", "0.2"], ["--wait", "-q"]
    assert out["default"] == [*head, "--label", "a.mp4", "--out", "1", *tail]
    assert out["yolo"] == [*head, "--out", "1", "--localizer", "yolo-world", "--depth", "box-scale", "--vocab",
                           "imagenet", "--detect-every", "5", *tail]  # no label: the vocabulary is scored
    assert out["dash"] == [*head, "--out", "1", "--vocab", "/lists/birds.txt", *tail]
    assert out["labelled"] == [*head, "--label", "dog, puppy", "--out", "1", "--depth", "depth-anything",
                               "--depth-model", "metric-outdoor-small", *tail]  # a label: no vocabulary
    # FOLEYSPACE_RESOLVE_PREVIEW=1 (or PREVIEW = true): `foleyspace submit --preview` (beside the stem)
    assert out["preview"] == [*head, "--label", "a.mp4", "--out", "1", "--preview", *tail]
    assert out["preview_off"] == out["default"]
    assert "--preview" not in out["preview_env_off"]
    assert out["preview_constant"][-3:] == ["--preview", *tail] and out["preview_no_settings"][-3:] == ["--preview", *tail]
    assert out["preview_bad"] == "FoleySpace: FOLEYSPACE_RESOLVE_PREVIEW must be 1 or 0, not 'maybe'"
    assert out["constants"] == [*head, "--label", "car", "--out", "1", "--localizer", "motion", "--depth",
                                "box-scale", *tail]


def test_lua_hrtf_and_renderer_settings_become_the_cli_flags(luajit, tmp_path):
    """FOLEYSPACE_RESOLVE_HRTF/_HRTF_INTERP/_HRTF_DIRECTIONS/_RENDERER/_CHECKPOINT/_DIFFUSION_STEPS/_SEED
    (or the constants) become `foleyspace submit`'s --hrtf, --hrtf-interp, --hrtf-directions,
    --renderer, --checkpoint, --diffusion-steps and --seed (flags the CLI has); defaults are left
    out; the choices and set names are the core's; the same settings as the Python script's."""
    from foleyspace.cli import build_parser
    from foleyspace.hrtf.catalog import CATALOG, is_name

    sofa, ckpt = tmp_path / "head.sofa", tmp_path / "tiny.pt"
    sofa.write_bytes(b"x")
    ckpt.write_bytes(b"x")
    envs = {
        "all": {"FOLEYSPACE_RESOLVE_LABEL": "-", "FOLEYSPACE_RESOLVE_HRTF": f" {sofa} ",
                "FOLEYSPACE_RESOLVE_HRTF_INTERP": "nearest", "FOLEYSPACE_RESOLVE_HRTF_DIRECTIONS": "fine",
                "FOLEYSPACE_RESOLVE_RENDERER": "diffusion", "FOLEYSPACE_RESOLVE_CHECKPOINT": str(ckpt),
                "FOLEYSPACE_RESOLVE_DIFFUSION_STEPS": "fast", "FOLEYSPACE_RESOLVE_SEED": "9223372036854775807"},
        "named": {"FOLEYSPACE_RESOLVE_LABEL": "-", "FOLEYSPACE_RESOLVE_HRTF": "hutubs:96",
                  "FOLEYSPACE_RESOLVE_HRTF_INTERP": "aligned", "FOLEYSPACE_RESOLVE_CHECKPOINT": str(ckpt),
                  "FOLEYSPACE_RESOLVE_DIFFUSION_STEPS": "standard", "FOLEYSPACE_RESOLVE_SEED": "007"},
        "defaults": {"FOLEYSPACE_RESOLVE_LABEL": "-", "FOLEYSPACE_RESOLVE_HRTF_INTERP": "aligned",
                     "FOLEYSPACE_RESOLVE_HRTF_DIRECTIONS": "all", "FOLEYSPACE_RESOLVE_RENDERER": "auto",
                     "FOLEYSPACE_RESOLVE_DIFFUSION_STEPS": "standard", "FOLEYSPACE_RESOLVE_SEED": "0"},
        "dsp": {"FOLEYSPACE_RESOLVE_LABEL": "-", "FOLEYSPACE_RESOLVE_RENDERER": "dsp"},
    }
    body = "local env\nlocal function getenv(k) return env[k] end\n"
    for name, env in envs.items():
        table = ", ".join(f"[ {lua_string(k)} ] = {lua_string(v)}" for k, v in env.items())
        body += f"""
env = {{{table}}}
out.{name} = fs.submit_args({{name = "a.mp4", video = "/media/a.mp4", start_s = 0.2, end_s = 1, speed = 1}}, "/s.wav",
                            fs.settings(getenv))
"""
    body += f"""
fs.HRTF, fs.HRTF_INTERP, fs.LABEL = {lua_string(str(sofa))}, "linear", ""  -- the constants
env = {{}}
out.constants = fs.submit_args({{name = "a.mp4", video = "/media/a.mp4", start_s = 0.2, end_s = 1, speed = 1}},
                               "/s.wav", fs.settings(getenv))
out.no_settings = fs.submit_args({{name = "a.mp4", video = "/media/a.mp4", start_s = 0.2, end_s = 1, speed = 1}}, "/s.wav")
out.sets = fs.HRTF_SETS
out.choices = {{fs.HRTF_INTERPS, fs.HRTF_DIRECTION_SETS, fs.DIFFUSION_SCHEDULES, fs.RENDERERS}}
out.names = {{}}
for i, text in ipairs({{"hutubs:96", "SADIE:H3", "hutubs:", "/h/a.sofa", "C:\\\\h.sofa", "sadie:a/b", "x:1"}}) do
  out.names[i] = fs.is_hrtf_name(text)
end
"""
    out = run_lua(luajit, tmp_path, body)
    head, tail = ["submit", "/media/a.mp4", "-o", "/s.wav", "--in", "0.2", "--out", "1"], ["--wait", "-q"]
    assert out["all"] == [*head, "--hrtf", str(sofa), "--hrtf-interp", "nearest", "--hrtf-directions", "fine",
                          "--renderer", "diffusion", "--checkpoint", str(ckpt), "--diffusion-steps", "fast",
                          "--seed", "9223372036854775807", *tail]
    # renderer auto with a checkpoint: the CLI picks diffusion; aligned and standard are the defaults
    assert out["named"] == [*head, "--hrtf", "hutubs:96", "--checkpoint", str(ckpt), "--seed", "7", *tail]
    assert out["defaults"] == [*head, *tail] and out["dsp"] == [*head, "--renderer", "dsp", *tail]
    assert out["constants"] == [*head, "--hrtf", str(sofa), "--hrtf-interp", "linear", *tail]
    assert out["no_settings"] == out["constants"]
    parsed = build_parser().parse_args(out["all"][:-2])  # the CLI knows every flag and value
    assert (parsed.hrtf_interp, parsed.hrtf_directions, parsed.renderer, parsed.diffusion_steps, parsed.seed) == (
        "nearest", "fine", "diffusion", "fast", 9223372036854775807)
    from foleyspace.diffusion.config import SCHEDULES
    from foleyspace.hrtf.directions import DIRECTION_SETS
    from foleyspace.hrtf.interpolate import METHODS

    assert out["sets"] == list(CATALOG)
    assert out["choices"] == [list(METHODS), list(DIRECTION_SETS), list(SCHEDULES), ["auto", "dsp", "diffusion"]]
    assert out["names"] == [is_name(t) for t in ("hutubs:96", "SADIE:H3", "hutubs:", "/h/a.sofa", "C:\\h.sofa",
                                                 "sadie:a/b", "x:1")]


@pytest.mark.parametrize("env, message", [(e, "FoleySpace: " + m) for e, m in BAD_RENDER_SETTINGS])
def test_lua_bad_hrtf_or_renderer_setting_is_one_line_before_anything_renders(luajit, server, clips, tmp_path, env,
                                                                              message):
    test_lua_bad_model_setting_is_one_line_before_anything_renders(luajit, server, clips, tmp_path, env, message)


@pytest.mark.parametrize("env, message", [
    ({"FOLEYSPACE_RESOLVE_LOCALIZER": "yolo"},
     "FoleySpace: FOLEYSPACE_RESOLVE_LOCALIZER must be one of auto, yolo-world, motion, classic, not 'yolo'"),
    ({"FOLEYSPACE_RESOLVE_LOCALIZER": "classic", "FOLEYSPACE_RESOLVE_LABEL": "dog"},
     "FoleySpace: FOLEYSPACE_RESOLVE_LOCALIZER=classic finds people or faces, but FOLEYSPACE_RESOLVE_LABEL 'dog' names "
     "neither; set FOLEYSPACE_RESOLVE_LABEL=person|face"),
    ({"FOLEYSPACE_RESOLVE_LOCALIZER": "classic", "FOLEYSPACE_RESOLVE_LABEL": "face", "FOLEYSPACE_RESOLVE_VOCAB": "coco"},
     "FOLEYSPACE_RESOLVE_VOCAB is a setting of the yolo-world localizer, but FOLEYSPACE_RESOLVE_LOCALIZER is classic"),
    ({"FOLEYSPACE_RESOLVE_DEPTH": "box"}, "FOLEYSPACE_RESOLVE_DEPTH must be one of auto, depth-anything, box-scale"),
    ({"FOLEYSPACE_RESOLVE_VOCAB": "birds.txt"}, "FOLEYSPACE_RESOLVE_VOCAB must be one of coco, imagenet"),
    ({"FOLEYSPACE_RESOLVE_DETECT_EVERY": "0"}, "FOLEYSPACE_RESOLVE_DETECT_EVERY must be a whole number"),
    ({"FOLEYSPACE_RESOLVE_DETECT_EVERY": "x"}, "FOLEYSPACE_RESOLVE_DETECT_EVERY must be a whole number"),
    ({"FOLEYSPACE_RESOLVE_LOCALIZER": "motion", "FOLEYSPACE_RESOLVE_DETECT_EVERY": "3"},
     "FOLEYSPACE_RESOLVE_DETECT_EVERY is a setting of the yolo-world localizer"),
    ({"FOLEYSPACE_RESOLVE_DEPTH": "box-scale", "FOLEYSPACE_RESOLVE_DEPTH_MODEL": "/models/da"},
     "FOLEYSPACE_RESOLVE_DEPTH_MODEL is a setting of the depth-anything depth"),
])
def test_lua_bad_model_setting_is_one_line_before_anything_renders(luajit, server, clips, tmp_path, env, message):
    body = f"""
local app = fake.make_resolve{{fps = "25"}}
local m = app.media_pool:add_media{{path = {lua_string(str(clips["rl"]))}, fps = 25, frames = 25}}
app.timeline:place{{track = 1, media = m, offset = 0, duration = 20}}
out.ok = fs.main(app)
out.audio = fake.audio_state(app)
"""
    out = run_lua(luajit, tmp_path, body, {**cli_env(server, tmp_path), **env})
    assert out["ok"] is False and len(out["lines"]) == 1 and message in out["lines"][0], out["lines"]
    assert len(out["audio"]) == 1 and not (tmp_path / "stems").exists()


def test_lua_classic_localizer(luajit, tmp_path):
    """Classic: `--localizer classic` with a label naming people or a face; the word lists are the
    core's (a copy); labels are read as the core reads them; a label naming neither is refused."""
    from foleyspace.localize import classic

    labels = ["person", "Face", "dog, talking head", " Woman", "dog", "", "dog, puppy", "faceless", "speaker a"]
    body = f"""
out.people, out.faces = fs.PEOPLE_WORDS, fs.FACE_WORDS
out.names = {{}}
for i, label in ipairs({{{", ".join(lua_string(x) for x in labels)}}}) do
  out.names[i] = fs.names_people_or_face(label)
end
local env = {{FOLEYSPACE_RESOLVE_LOCALIZER = "classic", FOLEYSPACE_RESOLVE_LABEL = "face"}}
out.args = fs.submit_args({{name = "a.mp4", video = "/media/a.mp4", start_s = 0.2, end_s = 1, speed = 1}}, "/s.wav",
                          fs.settings(function(k) return env[k] end))
local ok, err = pcall(fs.check_labels, {{localizer = "classic"}}, {{"A001.mov", "face", "dog", "A001.mov", "b", "c"}})
out.refused = err.script
out.fine = pcall(fs.check_labels, {{localizer = "classic"}}, {{"speaker", "the runner, man"}})
"""
    out = run_lua(luajit, tmp_path, body)
    assert (set(out["people"]), set(out["faces"])) == (classic.PEOPLE_WORDS, classic.FACE_WORDS)
    assert len(out["people"]) == len(classic.PEOPLE_WORDS) and len(out["faces"]) == len(classic.FACE_WORDS)
    assert out["names"] == [classic.detector_for(label) is not None for label in labels]
    assert out["args"] == ["submit", "/media/a.mp4", "-o", "/s.wav", "--in", "0.2", "--label", "face", "--out", "1",
                           "--localizer", "classic", "--wait", "-q"]
    assert out["refused"] == (
        "FoleySpace: FOLEYSPACE_RESOLVE_LOCALIZER=classic finds people or faces, but the label (each clip's name by "
        "default) 'A001.mov', 'dog', 'b' and 1 more names neither; set FOLEYSPACE_RESOLVE_LABEL=person|face")
    assert out["fine"] is True


def test_lua_classic_with_a_clip_name_naming_neither_stops_before_anything_renders(luajit, server, clips, tmp_path):
    body = f"""
local app = fake.make_resolve{{fps = "25"}}
local m = app.media_pool:add_media{{path = {lua_string(str(clips["rl"]))}, fps = 25, frames = 25}}
app.timeline:place{{track = 1, media = m, offset = 0, duration = 20, name = "dog barking"}}
out.ok = fs.main(app)
out.audio = fake.audio_state(app)
"""
    out = run_lua(luajit, tmp_path, body, {**cli_env(server, tmp_path), "FOLEYSPACE_RESOLVE_LOCALIZER": "classic"})
    assert out["ok"] is False and out["lines"][0] == (
        "FoleySpace: FOLEYSPACE_RESOLVE_LOCALIZER=classic finds people or faces, but the label (each clip's name by "
        "default) 'dog barking' names neither; set FOLEYSPACE_RESOLVE_LABEL=person|face"), out["lines"]
    assert not any("rendering" in line for line in out["lines"])
    assert len(out["audio"]) == 1 and not (tmp_path / "stems").exists()


def test_lua_fake_enforces_the_same_rules(luajit, tmp_path):
    stem = tmp_path / "s.wav"
    sf.write(str(stem), np.zeros((48000, 2)), 48000, subtype="PCM_24")
    body = f"""
local app = fake.make_resolve{{}}
local pool, tl = app.media_pool, app.timeline
local s = pool:ImportMedia({{{{FilePath = {lua_string(str(stem))}}}}})[1]
out.frames = s:GetClipProperty("Frames")
local good = {{mediaPoolItem = s, startFrame = 0, endFrame = 24, mediaType = 2, trackIndex = 1, recordFrame = {START}}}
local function with(k, v) local t = {{}} for a, b in pairs(good) do t[a] = b end t[k] = v return t end
out.bad = {{#pool:AppendToTimeline({{with("endFrame", 25)}}), #pool:AppendToTimeline({{with("recordFrame", 0)}}),
           #pool:AppendToTimeline({{with("trackIndex", 0)}}), #pool:AppendToTimeline({{with("mediaType", 1)}}),
           #pool:AppendToTimeline({{with("recordFrame", {START} + 0.5)}})}}
local item = pool:AppendToTimeline({{good}})[1]
out.placed = {{item:GetStart(), item:GetEnd(), item:GetDuration(), item:GetStart(true), item:GetStart("x")}}
out.occupied = #pool:AppendToTimeline({{with("recordFrame", {START} + 23)}})
local batch = pool:AppendToTimeline({{with("recordFrame", {START} + 100), with("recordFrame", {START} + 110),
                                     with("recordFrame", {START} + 200)}})
out.batch = {{batch[1]:GetStart(), batch[2]:GetStart(), #batch}}
out.product = {{app:GetProduct() == nil, app:GetProductName(), app:GetVersionString()}}
"""
    out = run_lua(luajit, tmp_path, body)
    assert out["frames"] == "24" and out["bad"] == [0, 0, 0, 0, 0]
    assert out["placed"] == [START, START + 24, 24, START]  # the malformed precision argument: nil
    assert out["occupied"] == 0 and out["batch"] == [START + 100, START + 200, 2]
    assert out["product"] == [True, "DaVinci Resolve Studio", "21.1.1.3"]


# ------------------------------------------------------------------ whole runs: real CLI, real server
def scenario_run(clip_setup: str) -> str:
    return f"""
local app = fake.make_resolve{{fps = "25"}}
local pool, tl = app.media_pool, app.timeline
{clip_setup}
fs.FOLEYSPACE_CLI = "unused"  -- FOLEYSPACE_CLI from the environment wins
local report = fs.spatialize_timeline(app, fs.settings())
out.placed, out.skipped, out.error = report.placed, report.skipped, report.error
out.audio = fake.audio_state(app)
"""


def test_lua_run_renders_through_the_cli_and_places_every_frame(luajit, server, clips, tmp_path):
    body = scenario_run(f"""
local m = pool:add_media{{path = {lua_string(str(clips["lr"]))}, fps = 25, frames = 50}}
tl:place{{track = 1, media = m, offset = 30, duration = 20, left_offset = 5}}
tl.playhead = {START} + 35
""")
    out = run_lua(luajit, tmp_path, body, cli_env(server, tmp_path))
    assert out.get("error") is None and not out["skipped"], out["lines"]
    (placed,) = out["placed"]
    assert (placed["track"], placed["record_frame"], placed["frames"]) == (2, START + 30, 20)
    track = out["audio"][1]
    assert (track["name"], track["subtype"]) == ("FoleySpace", "stereo")
    assert [(c["start"], c["duration"]) for c in track["clips"]] == [(START + 30, 20)]  # endFrame exclusive: all 20
    ours, rate = sf.read(placed["path"], dtype="int32")
    assert rate == 48000 and np.array_equal(ours, direct({"video": str(clips["lr"]), "start_s": 0.2, "end_s": 1.0},
                                                         tmp_path))


def test_lua_run_uses_the_linked_recording(luajit, server, clips, tmp_path):
    recording = tmp_path / "zoom0001.wav"
    t = np.arange(48000 * 4) / 48000
    sf.write(str(recording), 0.3 * np.sin(2 * np.pi * (200 + 400 * t) * t), 48000, subtype="PCM_24")
    body = scenario_run(f"""
local m = pool:add_media{{path = {lua_string(str(clips["lr"]))}, fps = 25, frames = 50}}
local wav = pool:add_media{{path = {lua_string(str(recording))}, fps = 25, frames = 100, video = false, audio_channels = 1}}
local v = tl:place{{track = 1, media = m, offset = 10, duration = 25, left_offset = 5}}
local a = tl:place_audio{{track = 1, media = wav, offset = 0, duration = 60, left_offset = 30}}
fake.link(v, a)
tl.playhead = {START} + 12
""")
    out = run_lua(luajit, tmp_path, body, cli_env(server, tmp_path))
    assert out.get("error") is None and len(out["placed"]) == 1, out["lines"]
    assert any("sound from the linked audio zoom0001.wav from 1.600 s" in line for line in out["lines"])
    ours, _ = sf.read(out["placed"][0]["path"], dtype="int32")
    assert np.array_equal(ours, direct({"video": str(clips["lr"]), "start_s": 0.2, "end_s": 1.2,
                                        "audio": str(recording), "audio_start_s": 1.6}, tmp_path))


def test_lua_run_renders_a_constant_retime_and_refuses_a_ramp(luajit, server, clips, tmp_path):
    helptext = subprocess.run([str(CLI), "submit", "--help"], capture_output=True, text=True, check=False).stdout
    if "--speed" not in helptext:
        pytest.skip("this foleyspace command has no --speed yet")
    body = scenario_run(f"""
local m = pool:add_media{{path = {lua_string(str(clips["lr"]))}, fps = 25, frames = 50}}
tl:place{{track = 1, media = m, offset = 0, duration = 10, left_offset = 4, speed = 2, name = "fast"}}
tl:place{{track = 1, media = m, offset = 20, duration = 10, left_offset = 2, ramp_span = 30, name = "ramp"}}
""")
    env = {**cli_env(server, tmp_path), "FOLEYSPACE_RESOLVE_TRACK": "1"}
    out = run_lua(luajit, tmp_path, body, env)
    assert [p["name"] for p in out["placed"]] == ["fast"], out["lines"]
    assert [(c["start"], c["duration"]) for c in out["audio"][1]["clips"]] == [(START, 10)]
    (name, reason), = out["skipped"]
    assert name == "ramp" and "variable speed" in reason
    assert sf.info(out["placed"][0]["path"]).frames == 48000 * 10 // 25


def test_lua_model_the_server_lacks_stops_the_run(luajit, server, clips, tmp_path):
    """The test server has no model weights (tests/conftest.py): the first clip's submit is
    refused, so the run stops with the server's word on how to get them; nothing is placed."""
    body = scenario_run(f"""
local m = pool:add_media{{path = {lua_string(str(clips["rl"]))}, fps = 25, frames = 25}}
tl:place{{track = 1, media = m, offset = 0, duration = 10, name = "one"}}
tl:place{{track = 1, media = m, offset = 10, duration = 10, name = "two"}}
""")
    with server.client() as c:
        before = len(c.request("list", limit=1000)["jobs"])
    env = {**cli_env(server, tmp_path), "FOLEYSPACE_RESOLVE_TRACK": "1", "FOLEYSPACE_RESOLVE_LOCALIZER": "yolo-world"}
    out = run_lua(luajit, tmp_path, body, env)
    assert out["placed"] == [] and len(out["audio"]) == 1, out["lines"]
    error = out["error"]
    assert error.startswith("FoleySpace: FOLEYSPACE_RESOLVE_LOCALIZER=yolo-world is not available on the FoleySpace "
                            "server: YOLO-World weights") and "\n" not in error
    assert "`foleyspace models fetch yolo-world`" in error and error.endswith("; or set FOLEYSPACE_RESOLVE_LOCALIZER "
                                                                             "to auto")
    assert not any("[2/2]" in line for line in out["lines"])  # stopped at the first clip
    with server.client() as c:
        assert len(c.request("list", limit=1000)["jobs"]) == before


def test_lua_run_with_named_backends_and_label(luajit, server, clips, tmp_path):
    body = scenario_run(f"""
local m = pool:add_media{{path = {lua_string(str(clips["rl"]))}, fps = 25, frames = 25}}
tl:place{{track = 1, media = m, offset = 0, duration = 20}}
""")
    env = {**cli_env(server, tmp_path), "FOLEYSPACE_RESOLVE_LOCALIZER": "motion", "FOLEYSPACE_RESOLVE_DEPTH": "box-scale",
           "FOLEYSPACE_RESOLVE_LABEL": "dog, puppy"}
    out = run_lua(luajit, tmp_path, body, env)
    assert out.get("error") is None and len(out["placed"]) == 1, out["lines"]
    sidecar = json.loads(Path(out["placed"][0]["path"]).with_suffix(".json").read_text())
    analysis = sidecar["analysis"]
    assert (analysis["localizer"], analysis["depth"], analysis["requested_label"]) == ("motion", "box-scale",
                                                                                      "dog, puppy")


def test_lua_run_with_a_measured_hrtf_and_the_diffusion_renderer(luajit, server, clips, tmp_path, ku100_sofa):
    """The KU100 SOFA file with Nearest and a tiny random diffusion checkpoint (Fast, Seed 3),
    through the real CLI and server: the sidecar says what ran."""
    import shutil

    from test_blender import tiny_checkpoint

    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    if ckpt is None:
        pytest.skip("torch is not installed")
    sofa = shutil.copy(ku100_sofa, tmp_path / "ku100.sofa")  # inside the server's root
    body = scenario_run(f"""
local m = pool:add_media{{path = {lua_string(str(clips["rl"]))}, fps = 25, frames = 25}}
tl:place{{track = 1, media = m, offset = 0, duration = 20}}
""")
    env = {**cli_env(server, tmp_path), "FOLEYSPACE_RESOLVE_HRTF": str(sofa), "FOLEYSPACE_RESOLVE_HRTF_INTERP": "nearest",
           "FOLEYSPACE_RESOLVE_RENDERER": "diffusion", "FOLEYSPACE_RESOLVE_CHECKPOINT": str(ckpt),
           "FOLEYSPACE_RESOLVE_DIFFUSION_STEPS": "fast", "FOLEYSPACE_RESOLVE_SEED": "3"}
    out = run_lua(luajit, tmp_path, body, env)
    assert out.get("error") is None and len(out["placed"]) == 1, out["lines"]
    sidecar = json.loads(Path(out["placed"][0]["path"]).with_suffix(".json").read_text())
    assert sidecar["analysis"]["renderer"] == "diffusion" and sidecar["analysis"]["hrir"] == "sofa"
    assert sidecar["source"]["video"] == str(clips["rl"])
    assert sidecar["settings"]["settings"]["renderer:diffusion"] == {"checkpoint": str(ckpt), "schedule": "fast",
                                                                    "seed": 3}
    assert sidecar["settings"]["settings"]["hrir:sofa"] == {"interp": "nearest", "directions": "all"}


def test_lua_run_with_preview_writes_and_reports_it(luajit, server, clips, tmp_path):
    body = scenario_run(f"""
local m = pool:add_media{{path = {lua_string(str(clips["lr"]))}, fps = 25, frames = 50}}
tl:place{{track = 1, media = m, offset = 0, duration = 20}}
""")
    out = run_lua(luajit, tmp_path, body, {**cli_env(server, tmp_path), "FOLEYSPACE_RESOLVE_PREVIEW": "1"})
    assert out.get("error") is None and len(out["placed"]) == 1, out["lines"]
    placed = out["placed"][0]
    preview = Path(placed["path"]).with_suffix(".preview.mp4")
    assert placed["preview"] == str(preview) and preview.is_file()
    assert any(line.endswith(f"preview -> {preview}") for line in out["lines"]), out["lines"]
    assert any(line.endswith(f"Preview: {preview}") for line in out["lines"]), out["lines"]
    assert sum(len(t["clips"]) for t in out["audio"]) == 1  # the stem only: the preview is reported, not placed


def test_lua_run_without_the_command_says_how_to_fix_it(luajit, server, clips, tmp_path):
    body = scenario_run(f"""
local m = pool:add_media{{path = {lua_string(str(clips["rl"]))}, fps = 25, frames = 25}}
tl:place{{track = 1, media = m, offset = 0, duration = 20}}
""")
    env = {**cli_env(server, tmp_path), "FOLEYSPACE_CLI": str(tmp_path / "no-such-foleyspace")}
    out = run_lua(luajit, tmp_path, body, env)
    assert out["placed"] == [] and "set FOLEYSPACE_CLI" in out["skipped"][0][1]
    assert len(out["audio"]) == 1  # no track added


def test_install_puts_the_lua_twin_beside_the_python_script_with_this_command(luajit, tmp_path):
    from foleyspace.install import LUA_INSTALLED_NAME, install_resolve

    target = install_resolve(dest=tmp_path / "Utility")
    lua = target.with_name(LUA_INSTALLED_NAME)
    text = lua.read_text(encoding="utf-8")
    cli = Path(sys.executable).parent / "foleyspace"
    assert f'M.FOLEYSPACE_CLI = "{cli}"' in text and cli.is_file()
    assert not list(lua.parent.glob(".*.tmp"))
    # the installed file runs: outside Resolve it says so in one line
    run = subprocess.run([luajit, str(lua)], capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0 and "DaVinci Resolve is not reachable" in run.stdout, run.stdout + run.stderr
    assert "Traceback" not in run.stderr and "stack traceback" not in run.stderr
