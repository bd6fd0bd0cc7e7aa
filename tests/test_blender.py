"""The Blender extension (``host_plugins/blender``) in real Blender against a real server.

Blender runs as a module (``bpy==5.0.1`` from PyPI) in its own venv: env
``FOLEYSPACE_BLENDER_PYTHON``, else ``.venv-blender/bin/python`` in the repository. Without it
the Blender tests are skipped, unless ``FOLEYSPACE_REQUIRE_BLENDER=1`` (then they fail).
The extension is built with ``build.py`` and installed with Blender's own extension installer
into a scratch ``BLENDER_USER_RESOURCES``; each scenario runs in a fresh Blender process
(``tests/blender/run_case.py``) that drives the add-on's timer functions by hand.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from serverproc import ServerProcess, free_port

from foleyspace.jobspec import job_from_spec
from foleyspace.pipeline import spatialize

REPO = Path(__file__).resolve().parent.parent
PLUGIN = REPO / "host_plugins" / "blender"
BUILD = PLUGIN / "build.py"
CASES = Path(__file__).resolve().parent / "blender"
ADDON = "bl_ext.user_default.foleyspace"
FPS = 25
CLIP = {"duration_s": 4.0, "size": (160, 96), "motion": "cross_lr"}  # 100 frames at 25 fps


def load_placement():
    """``placement.py`` imported by path (it needs no bpy)."""
    spec = importlib.util.spec_from_file_location("fs_placement", PLUGIN / "foleyspace_blender" / "placement.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def load_addon_modules(*names: str) -> list:
    """The add-on's bpy-free modules ``names`` imported by path, in order, as package ``fsb``
    (``fsb.placement`` too, for the modules that import it)."""
    import types

    load_placement()
    pkg_dir = PLUGIN / "foleyspace_blender"
    pkg = types.ModuleType("fsb")
    pkg.__path__ = [str(pkg_dir)]
    sys.modules["fsb"] = pkg
    sys.modules["fsb.placement"] = sys.modules["fs_placement"]
    for name in names:
        spec = importlib.util.spec_from_file_location(f"fsb.{name}", pkg_dir / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return [sys.modules[f"fsb.{name}"] for name in names]


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def blender_python() -> Path:
    path = Path(os.environ.get("FOLEYSPACE_BLENDER_PYTHON") or REPO / ".venv-blender" / "bin" / "python")
    problem = None
    if not path.exists():
        problem = f"no Blender Python at {path} (a venv with bpy==5.0.1, see host_plugins/blender/README.md)"
    else:
        probe = subprocess.run([str(path), "-c", "import bpy; print(bpy.app.version_string)"],
                               capture_output=True, text=True, timeout=120, check=False)
        if probe.returncode != 0:
            problem = f"{path} cannot import bpy: {probe.stderr.strip().splitlines()[-1:]}"
    if problem:
        if os.environ.get("FOLEYSPACE_REQUIRE_BLENDER") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    return path


@pytest.fixture(scope="session")
def client_wheels(tmp_path_factory) -> Path | None:
    """pyzmq/msgpack wheels for linux-x64 and windows-x64 (CPython 3.11) from the package
    registry, or None when it cannot be reached."""
    folder = tmp_path_factory.mktemp("wheels")
    for platform_tags in (("manylinux_2_28_x86_64", "manylinux2014_x86_64"), ("win_amd64",)):
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--only-binary=:all:", "--no-deps", "--implementation", "cp", "--python-version", "3.11",
               "-d", str(folder), "pyzmq==27.3.0", "msgpack==1.2.4"]
        for tag in platform_tags:
            cmd += ["--platform", tag]
        try:
            if subprocess.run(cmd, capture_output=True, timeout=120, check=False).returncode != 0:
                return None
        except subprocess.TimeoutExpired:
            return None
    return folder


def build(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BUILD), *args], capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="session")
def installed(blender_python, client_wheels, tmp_path_factory) -> dict[str, Any]:
    """The built zip installed with Blender's extension installer into a scratch resources folder."""
    out = tmp_path_factory.mktemp("blender-build")
    native = sys.platform == "linux" and platform.machine() in ("x86_64", "AMD64")
    if client_wheels is not None and native:
        args = ["--platform", "linux-x64", "--python", "3.11", "--wheel-dir", str(client_wheels)]
    else:  # no registry: the Blender venv's own pyzmq/msgpack serve
        args = ["--no-wheels"]
    proc = build("-o", str(out), *args)
    assert proc.returncode == 0, proc.stderr
    zip_path = Path(proc.stdout.strip())
    resources = tmp_path_factory.mktemp("blender-resources")
    result = run_blender(blender_python, CASES / "install_zip.py", [str(zip_path)],
                         {"BLENDER_USER_RESOURCES": str(resources)})
    assert result["result"] == ["FINISHED"] and result["modules"] == [ADDON], result
    return {"resources": resources, "zip": zip_path, "wheels": "--no-wheels" not in args, "zmq": result["zmq"]}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Inside pytest's base temp folder, which the test servers take as their root."""
    return tmp_path_factory.mktemp("blender")


@pytest.fixture(scope="module")
def server(workdir, tmp_path_factory):
    (workdir / "home").mkdir()
    srv = ServerProcess(workdir / "home", tmp_path_factory.getbasetemp(), workers=2).start()
    yield srv
    srv.stop()


# ----------------------------------------------------------------------------- helpers
def run_blender(python: Path, script: Path, argv: list[str], env: dict[str, str], timeout: float = 180) -> dict:
    proc = subprocess.run([str(python), str(script), *argv], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env}, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, f"no result (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = json.loads(lines[-1][len("RESULT "):])
    assert "exception" not in result, result["exception"] + "\n" + proc.stderr[-3000:]
    result["_stderr"] = proc.stderr
    return result


def run_case(blender_python: Path, installed: dict, workdir: Path, name: str, home: Path, **fields: Any) -> dict:
    """One scenario of ``tests/blender/run_case.py`` in a fresh Blender process."""
    tmp = workdir / f"tmp-{name}"
    tmp.mkdir(exist_ok=True)
    args = {"case": fields.pop("case_name", name), "addon": ADDON, "project": str(workdir / f"project-{name}"), **fields}
    args_file = workdir / f"{name}.json"
    args_file.write_text(json.dumps(args))
    env = {"BLENDER_USER_RESOURCES": str(installed["resources"]), "FOLEYSPACE_HOME": str(home),
           "TMPDIR": str(tmp)}
    env.pop("FOLEYSPACE_SERVER", None)
    return run_blender(blender_python, CASES / "run_case.py", [str(args_file)], env)


def direct_stem(clip: Path, out: Path, start_s: float, end_s: float) -> np.ndarray:
    """The pipeline run directly (no server, no Blender) over a source range; int32 samples."""
    out.mkdir(parents=True, exist_ok=True)
    result = spatialize(job_from_spec({"video": str(clip), "output_dir": str(out), "name": "direct.wav",
                                       "start_s": start_s, "end_s": end_s}))
    return sf.read(str(result.stem), dtype="int32")[0]


def assert_free_channel(placed: dict, others: dict) -> None:
    for s in others.values():
        if s["channel"] == placed["channel"]:
            assert s["right"] <= placed["left"] or placed["right"] <= s["left"], (placed, s)


# ----------------------------------------------------------------------------- pure parts
def test_placement_arithmetic():
    p = load_placement()
    # content at frame 31, 100 frames; handles at 41..111: source 10..80 frames at 25 fps
    assert p.media_range_s(41, 111, 31.0, 100, 0, 25.0) == pytest.approx((0.4, 3.2))
    # a hold offset cuts media frames from the front of the content
    assert p.media_range_s(41, 111, 31.0, 90, 10, 25.0) == pytest.approx((0.8, 3.6))
    # a sound strip's sound_offset (seconds) adds
    assert p.media_range_s(1, 26, 1.0, 100, 0, 25.0, offset_s=0.5) == pytest.approx((0.5, 1.5))
    with pytest.raises(p.PlacementError, match="past its media"):
        p.media_range_s(41, 141, 31.0, 100, 0, 25.0)  # right handle beyond the content
    with pytest.raises(p.PlacementError, match="past its media"):
        p.media_range_s(20, 60, 31.0, 100, 0, 25.0)
    with pytest.raises(p.PlacementError, match="empty"):
        p.media_range_s(41, 41, 31.0, 100, 0, 25.0)
    assert p.same_rate(30000 / 1001, 29.97) and not p.same_rate(29.97, 30.0) and not p.same_rate(25.0, 50.0)

    spans = [p.Span(3, 46, 146), p.Span(4, 121, 221), p.Span(2, 41, 111)]
    assert p.free_channel(spans, 2, 41, 111) == 4  # 3 overlaps, 4 is free over 41..111
    assert p.free_channel(spans, 2, 41, 111, blocked={4}) == 5
    assert p.free_channel(spans, 2, 150, 160) == 3
    assert p.free_channel([p.Span(3, 111, 130)], 2, 41, 111) == 3  # touching ends do not overlap
    with pytest.raises(p.PlacementError, match="no free channel"):
        p.free_channel([p.Span(c, 0, 10) for c in range(1, 129)], 1, 0, 10)

    taken = {"My_Shot_1-9_binaural.wav", "My_Shot_1-9_binaural_2.wav"}
    assert p.stem_file_name("My Shot", 1, 9, taken.__contains__) == "My_Shot_1-9_binaural_3.wav"
    assert p.stem_file_name("../..", 1, 9, lambda n: False) == "strip_1-9_binaural.wav"


def test_build_zip_has_manifest_client_and_wheels(client_wheels, tmp_path):
    if client_wheels is None:
        pytest.skip("the package registry is unreachable: no wheels to bundle")
    proc = build("-o", str(tmp_path), "--platform", "linux-x64", "--platform", "windows-x64", "--python", "3.11",
                 "--wheel-dir", str(client_wheels))
    assert proc.returncode == 0, proc.stderr
    zip_path = Path(proc.stdout.strip())
    assert zip_path == tmp_path / "foleyspace-blender-0.1.0.zip"
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
        client_src = zf.read("fsclient/client.py").decode()
    assert {"blender_manifest.toml", "__init__.py", "compat.py", "jobs.py", "operators.py", "ui.py", "prefs.py",
            "placement.py", "session.py", "source.py", "server.py", "stems.py",
            "fsclient/__init__.py", "fsclient/client.py", "fsclient/protocol.py",
            "fsclient/home.py", "fsclient/atomic_file.py"} <= names
    assert client_src == (REPO / "foleyspace" / "client.py").read_text()
    assert manifest["id"] == "foleyspace" and manifest["version"] == "0.1.0" and manifest["type"] == "add-on"
    assert manifest["blender_version_min"] == "4.2.0" and manifest["license"] == ["SPDX:GPL-3.0-or-later"]
    assert set(manifest["permissions"]) == {"network", "files"}
    assert manifest["platforms"] == ["linux-x64", "windows-x64"]
    wheels = manifest["wheels"]
    assert all(w.startswith("./wheels/") and w[2:] in names for w in wheels)
    assert {n for n in names if n.startswith("wheels/")} == {w[2:] for w in wheels}
    for package in ("pyzmq-27.3.0-cp311", "msgpack-1.2.4-cp311"):
        for tag in ("manylinux", "win_amd64"):
            assert any(package in w and tag in w for w in wheels), (package, tag, wheels)


def test_build_fails_with_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = build("-o", str(tmp_path / "out"), "--platform", "linux-x64", "--wheel-dir", str(empty))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "no pyzmq==27.3.0 wheel for linux-x64" in proc.stderr
    assert not (tmp_path / "out" / "foleyspace-blender-0.1.0.zip").exists()


def test_blender_validates_and_installs_the_zip(blender_python, installed):
    """Blender's own validator accepts the zip; its installer put the add-on and its wheels in place."""
    code = "import bpy; print('SCRIPTS', bpy.utils.system_resource('SCRIPTS'))"
    scripts = subprocess.run([str(blender_python), "-c", code], capture_output=True, text=True,
                             check=True).stdout.split("SCRIPTS ")[-1].strip()
    validator = Path(scripts) / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    proc = subprocess.run([str(blender_python), str(validator), "validate", str(installed["zip"])],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0 and "Success" in proc.stdout, proc.stdout + proc.stderr
    ext = installed["resources"] / "extensions" / "user_default" / "foleyspace"
    assert (ext / "blender_manifest.toml").is_file() and (ext / "fsclient" / "client.py").is_file()
    if installed["wheels"]:  # Blender unpacked the bundled wheels into its extensions site-packages
        site = installed["resources"] / "extensions" / ".local" / "lib" / "python3.11" / "site-packages"
        assert (site / "zmq" / "__init__.py").is_file() and (site / "msgpack" / "__init__.py").is_file()


# ----------------------------------------------------------------------------- in Blender
def test_trimmed_moved_movie_gets_matching_stem(blender_python, installed, server, workdir, clip_factory):
    clip = clip_factory(**CLIP)
    trim_left, trim_right, content_start = 10, 20, 31
    r = run_case(blender_python, installed, workdir, "trimmed_movie", server.home, server=server.address,
                 clip=str(clip), trim=[trim_left, trim_right], content_start=content_start, mute=True)
    assert r["submit_error"] is None and r["timer_registered"], r
    assert not r["timed_out"] and r["pending"] == 0 and not r["message_is_error"], r["message"]
    movie = r["movie"]
    left, right = content_start + trim_left, content_start + 100 - trim_right
    assert (movie["left"], movie["right"], r["movie_fps"], r["scene_fps"]) == (left, right, FPS, FPS)
    start_s, end_s = trim_left / FPS, (100 - trim_right) / FPS
    assert r["spec_range"] == pytest.approx([start_s, end_s], abs=1e-9)

    assert len(r["added"]) == 1
    stem = r["added"][0]
    assert stem["type"] == "SOUND" and (stem["left"], stem["right"]) == (left, right)
    assert stem["channel"] == 4  # 3 is taken over the range, 4 only after it
    assert_free_channel(stem, r["others"])
    assert stem["pan"] == 0.0 and not stem["use_mono"] and stem["sound_channels"] == "STEREO"
    assert stem["job"] == r["job"] and stem["source"] == "shot"
    project = Path(workdir / "project-trimmed_movie")
    assert Path(stem["filepath"]).parent == project / "foleyspace_stems"  # "//foleyspace_stems" by default
    # muting: the movie's own (synced) sound only
    others = r["others"]
    assert others["shot_audio"]["mute"] and not others["blocker"]["mute"] and not others["later"]["mute"]

    expected = direct_stem(clip, workdir / "direct-movie", start_s, end_s)
    got = sf.read(stem["filepath"], dtype="int32")[0]
    assert got.shape == expected.shape == (round((end_s - start_s) * 48000), 2)
    assert np.array_equal(got, expected)
    sidecar = json.loads(Path(stem["filepath"]).with_suffix(".json").read_text())
    assert sidecar["source"]["start_s"] == pytest.approx(start_s) and sidecar["source"]["end_s"] == pytest.approx(end_s)

    # what Blender plays: silence, then exactly the stem from the movie's first visible frame, then silence
    mix = sf.read(r["mixdown"], dtype="float64")[0]
    pad = r["mixdown_pad"] * 48000 // FPS
    n = len(expected)
    assert np.abs(mix[:pad]).max() == 0.0 and np.abs(mix[pad + n: 2 * pad + n]).max() == 0.0
    assert np.abs(mix[pad: pad + n] - expected / 2**31).max() < 1e-6
    assert np.abs(mix[pad: pad + n, 0] - mix[pad: pad + n, 1]).max() > 0.1  # binaural, not panned to mono


def test_stem_handles_match_the_range_exactly(blender_python, installed, workdir, clip_factory):
    """Blender rounds a sound's length to whole frames; the placed strip is trimmed or extended
    to the movie's range, lands on the next free unlocked channel, and follows a moved strip."""
    clip = clip_factory(**CLIP)
    short, long = workdir / "short.wav", workdir / "long.wav"
    sf.write(short, np.zeros((int(69.4 * 1920), 2)), 48000, subtype="PCM_24")
    sf.write(long, np.zeros((int(70.6 * 1920), 2)), 48000, subtype="PCM_24")
    r = run_case(blender_python, installed, workdir, "placement", workdir / "nohome", clip=str(clip),
                 short_wav=str(short), long_wav=str(long))
    assert r["source"] == pytest.approx([0.4, 3.2, 11, 81])
    for key, channel in (("short", 3), ("long", 5)):  # channel 4 is locked
        assert (r[key]["left"], r[key]["right"], r[key]["channel"]) == (11, 81, channel), (key, r[key])
    assert (r["moved"]["left"], r["moved"]["right"], r["moved"]["channel"]) == (111, 181, 3)
    assert (r["retrimmed"]["left"], r["retrimmed"]["right"]) == (11, 81)  # the old range
    assert r["retrimmed"]["channel"] == 6
    # Blender's own lengths were off by a frame; the handles were moved to the range
    assert (r["short"]["content_frames"], r["long"]["content_frames"]) == (69, 71)


def test_sound_strip_with_chosen_video(blender_python, installed, server, workdir, clip_factory):
    clip = clip_factory(**CLIP)
    wav = workdir / "music.wav"
    sf.write(wav, 0.1 * np.random.default_rng(3).standard_normal((48000 * 4, 2)), 48000)
    r = run_case(blender_python, installed, workdir, "sound_with_video", server.home, server=server.address,
                 clip=str(clip), wav=str(wav), trim=[8, 12])
    assert r["poll_without_video"] is False and r["poll_with_video"] is True and r["choose_error"] is None
    assert r["video_prop"] == "//" + os.path.relpath(clip, workdir / "project-sound_with_video")
    assert r["submit_error"] is None and not r["timed_out"] and not r["message_is_error"], r["message"]
    sound = r["sound"]
    assert (sound["left"], sound["right"]) == (9, 89)
    assert r["spec_range"] == pytest.approx([8 / FPS, 88 / FPS], abs=1e-9)
    (stem,) = r["added"]
    assert (stem["left"], stem["right"], stem["channel"]) == (9, 89, 3)
    assert not r["sound_after"]["mute"]  # mute option off
    expected = direct_stem(clip, workdir / "direct-sound", 8 / FPS, 88 / FPS)
    assert np.array_equal(sf.read(stem["filepath"], dtype="int32")[0], expected)
    # a sound from another file, trimmed 10 frames on the left, plays from that point
    sep = r["separate"]
    assert sep["submit_error"] is None and not sep["message_is_error"], sep["message"]
    (placed,) = sep["added"]
    assert (placed["left"], placed["right"]) == (sep["other"]["left"], sep["other"]["right"])
    start, end = sep["spec_range"]
    assert start == pytest.approx(10 / FPS, abs=1e-9)
    out = workdir / "direct-separate"
    out.mkdir()
    direct = spatialize(job_from_spec({"video": str(clip), "output_dir": str(out), "name": "d.wav", "audio": str(wav),
                                       "audio_start_s": start, "start_s": start, "end_s": end}))
    assert np.array_equal(sf.read(placed["filepath"], dtype="int32")[0],
                          sf.read(str(direct.stem), dtype="int32")[0])


def test_no_server_reports_and_adds_nothing(blender_python, installed, workdir, clip_factory):
    clip = clip_factory(**CLIP)
    address = f"tcp://127.0.0.1:{free_port()}"
    r = run_case(blender_python, installed, workdir, "no_server", workdir / "nohome", server=address, clip=str(clip))
    assert "no FoleySpace server answers at " + address in r["submit_error"]
    assert "\n" not in r["submit_error"] and r["submit_s"] < 3.0  # short timeouts: the UI barely waits
    assert f"no server at {address}" in r["check_error"] and r["check_s"] < 1.5
    assert r["added"] == 0 and r["pending"] == 0 and not r["timer_registered"]
    assert r["server_text"] == f"no server at {address}"


def test_server_side_failure_is_reported(blender_python, installed, server, workdir, clip_factory):
    silent = clip_factory(duration_s=2.0, size=(160, 96), motion="cross_lr", audio=None)
    r = run_case(blender_python, installed, workdir, "job_fails", server.home, server=server.address, clip=str(silent))
    assert r["submit_error"] is None and not r["timed_out"]
    assert r["message_is_error"] and "failed the job" in r["message"], r["message"]
    # in Blender's terms: what the add-on offers instead of the command line's "--audio FILE"
    assert "this movie strip has no sound" in r["message"] and "Choose Video" in r["message"], r["message"]
    assert "--" not in r["message"]
    assert r["added"] == 0 and r["pending"] == 0


def test_strips_that_cannot_be_spatialized(blender_python, installed, workdir, clip_factory):
    clip = clip_factory(**CLIP)
    r = run_case(blender_python, installed, workdir, "bad_strips", workdir / "nohome",
                 server=f"tcp://127.0.0.1:{free_port()}", clip=str(clip))
    assert "has no file path" in r["no_path"]
    assert "the video file is missing" in r["missing_file"]
    assert "25 fps but the scene at 50 fps" in r["fps_mismatch"]
    assert "handles reach past its media" in r["held_frames"]
    assert "no free channel above 128" in r["no_channel"]  # refused at submit: nothing rendered
    assert r["poll_color"] is False and r["poll_none"] is False
    assert r["strips"] == 2 and r["pending"] == 0
    # the sidebar panel (drawn into a recording layout) and the context-menu entry
    ok = r["panel_ok"]
    assert "label:Source 0.00–4.00 s, frames 1–101" in ok and "label:nopath (movie)" in ok
    assert {"operator:foleyspace.check_server", "operator:foleyspace.start_server", "prop:label", "prop:scheme",
            "prop:hrtf", "prop:mute_original"} <= set(ok)
    assert ok.count("operator:foleyspace.spatialize_strip") == 2  # panel button and context menu
    assert any("has no file path" in line for line in r["panel_no_path"])
    assert any("is a color strip" in line for line in r["panel_color"])
    for key in ("no_path", "missing_file", "fps_mismatch", "held_frames", "no_channel"):
        assert "Traceback" not in r[key] and "\n" not in r[key].strip()


def test_start_server_action(blender_python, installed, workdir, clip_factory, tmp_path_factory):
    clip = clip_factory(**CLIP)
    home = workdir / "home-started"
    command = shlex.join([sys.executable, "-m", "foleyspace", "serve", "--workers", "1",
                          "--root", str(tmp_path_factory.getbasetemp())])
    r = run_case(blender_python, installed, workdir, "start_server", home, server=f"tcp://127.0.0.1:{free_port()}",
                 clip=str(clip), command=command)
    assert "cannot run '/nonexistent/foleyspace-server'" in r["bad_command_error"]
    assert r["start_error"] is None and r["wait_registered"] and not r["wait_timed_out"]
    assert r["server_ok"] is True and r["server_text"].startswith("FoleySpace 0.1.0 at tcp://127.0.0.1:")
    assert "a server already answers" in r["second_start_error"]
    # an unsaved .blend: "//foleyspace_stems" has no anchor, so the add-on asks to save first
    assert "Save the .blend first" in r["unsaved_error"] and r["unsaved_pending"] == 0
    assert r["submit_error"] is None and not r["timed_out"] and not r["message_is_error"], r["message"]
    (stem,) = r["added"]
    assert Path(stem["filepath"]).parent == workdir / "project-start_server" / "foleyspace_stems"
    assert (stem["left"], stem["right"], stem["channel"]) == (1, 101, 2)
    assert r["server_exit"] == 0


def test_server_dying_mid_job_gives_the_job_up(blender_python, installed, workdir, clip_factory, tmp_path_factory):
    clip = clip_factory(**CLIP)
    (workdir / "home-dies").mkdir()
    srv = ServerProcess(workdir / "home-dies", tmp_path_factory.getbasetemp(), workers=1).start()
    try:
        r = run_case(blender_python, installed, workdir, "server_dies", srv.home, server=srv.address,
                     clip=str(clip), server_pid=srv.proc.pid)
    finally:
        srv.stop()
    assert r["submit_error"] is None and not r["timed_out"], r
    assert r["message_is_error"] and "the FoleySpace server stopped answering" in r["message"], r["message"]
    assert r["pending"] == 0 and r["added"] == 0


def test_cancel_all(blender_python, installed, server, workdir, clip_factory):
    clip = clip_factory(**CLIP)
    r = run_case(blender_python, installed, workdir, "cancel", server.home, server=server.address, clip=str(clip))
    assert r["submit_errors"] == [None, None, None] and r["submitted"] == 3 and r["cancel_error"] is None
    assert r["pending"] == 0
    placed = [m for m in r["messages"] if "stem placed" in m]
    cancelled = [m for m in r["messages"] if m.endswith("cancelled")]
    assert cancelled, r["messages"]  # with two workers the third job is still queued
    assert len(placed) + len(cancelled) == 3 and r["added"] == len(placed)


# ----------------------------------------------------------------------------- files, restarts, stalls
def test_stem_goes_only_to_the_file_it_was_submitted_from(blender_python, installed, server, workdir, clip_factory):
    clip = clip_factory(**CLIP)
    r = run_case(blender_python, installed, workdir, "two_files", server.home, server=server.address, clip=str(clip))
    assert r["submit_error"] is None and r["server_state"] == "done", r
    assert r["strip_id"] and len(r["strip_id"]) == 32  # the identity stored on the strip at submit
    # b.blend: the same scene and strip names, but not the strip the job was submitted from
    assert r["b_file"].endswith("b.blend") and r["b_scene"] == "Scene" and "shot" in r["b_strips"]
    assert r["b_followed"] == 0 and r["b_stems"] == [] and r["b_strips"] == ["shot"] and r["b_shot_id"] is None
    # back in a.blend: the parked job is followed again and its stem placed there
    assert r["a_followed"] == 1 and not r["timed_out"] and r["pending"] == 0 and not r["message_is_error"], r
    (stem,) = r["a_stems"]
    assert stem["job"] == r["job"] and (stem["left"], stem["right"], stem["channel"]) == (1, 101, 3)


def test_pending_job_survives_a_restart(blender_python, installed, server, workdir, clip_factory):
    clip = clip_factory(**CLIP)
    first = run_case(blender_python, installed, workdir, "restart", server.home, server=server.address,
                     clip=str(clip), phase="submit")
    assert first["submit_error"] is None and len(first["jobs"]) == 1, first
    (job,) = first["jobs"]
    stored = json.loads(first["store"])  # the pending job is stored in the saved .blend
    assert [s["id"] for s in stored] == [job] and stored[0]["strip"] == "renamed later"
    with server.client() as c:  # it ends while no Blender runs
        assert c.wait(job, timeout=90)["state"] == "done"
    second = run_case(blender_python, installed, workdir, "restart", server.home, server=server.address,
                      clip=str(clip), phase="reopen")
    assert second["followed"] == 1 and second["timer_registered"], second
    assert not second["timed_out"] and second["pending"] == 0 and not second["message_is_error"], second["message"]
    assert "shot 2" in second["message"] and "stem placed" in second["message"]  # the renamed strip
    (stem,) = second["stems"]
    assert stem["job"] == job and (stem["left"], stem["right"]) == (1, 101) and stem["channel"] == 3
    assert second["store"] is None  # nothing pending any more


@pytest.mark.parametrize("mode", ["dead", "hung"])
def test_timer_never_waits_for_a_stalled_server(mode, blender_python, installed, workdir, clip_factory,
                                                 tmp_path_factory):
    """Eight jobs in flight; the server is killed (dead) or SIGSTOPped (hung). Every tick of the
    job timer is timed with time.perf_counter around the timer function."""
    clip = clip_factory(duration_s=8.0, size=(160, 96), motion="cross_lr")
    home = workdir / f"home-{mode}"
    home.mkdir()
    srv = ServerProcess(home, tmp_path_factory.getbasetemp(), workers=1).start()
    try:
        r = run_case(blender_python, installed, workdir, f"stalled_{mode}", srv.home, server=srv.address,
                     clip=str(clip), server_pid=srv.proc.pid, mode=mode, case_name="stalled_server")
    finally:
        if srv.proc.poll() is None:
            srv.proc.send_signal(signal.SIGCONT)
        srv.stop()
    print(f"{mode} server: {r['ticks']} ticks, longest {r['max_tick_s'] * 1000:.2f} ms, "
          f"mean {r['mean_tick_s'] * 1000:.3f} ms")
    assert r["submit_errors"] == [None] * 8 and r["in_flight"] == 8, r
    assert r["ticks"] > 50 and r["max_tick_s"] <= 0.020, r
    assert r["pending"] == 0 and r["added"] == 0, r
    if mode == "dead":
        assert r["message_is_error"] and "the FoleySpace server stopped answering" in r["message"], r["message"]
    else:
        assert r["cancel_error"] is None and r["cancel_s"] <= 0.020, r
        assert "cancelled here; the server did not answer" in r["message"], r["message"]


def test_stem_path_is_relative_and_placement_is_one_undo_step(blender_python, installed, server, workdir,
                                                               clip_factory):
    clip = clip_factory(**CLIP)
    moved = workdir / "elsewhere" / "project"
    moved.parent.mkdir()
    r = run_case(blender_python, installed, workdir, "relative_and_undo", server.home, server=server.address,
                 clip=str(clip), moved=str(moved))
    assert r["submit_error"] is None and not r["timed_out"] and not r["message_is_error"], r["message"]
    assert r["raw_filepath"] == ["//foleyspace_stems/shot_21-121_binaural.wav"]
    # undo removes the placed stem (and nothing else); redo brings it back
    assert r["undo_poll"] and r["after_undo"] == ["shot"], r
    assert r["after_redo"] == ["shot", "shot binaural"]
    assert not (workdir / "project-relative_and_undo").exists()
    (stem,) = r["moved_stems"]
    assert stem["raw"] == "//foleyspace_stems/shot_21-121_binaural.wav" and stem["exists"]
    assert Path(stem["filepath"]) == moved / "foleyspace_stems" / "shot_21-121_binaural.wav"
    # Blender plays the stem from the moved folder
    expected = sf.read(stem["filepath"], dtype="float64")[0]
    mix = sf.read(r["mixdown"], dtype="float64")[0]
    pad = r["mixdown_pad"] * 48000 // FPS
    assert np.abs(mix[pad: pad + len(expected)] - expected).max() < 1e-6 and np.abs(expected).max() > 0.01


def test_retimed_strips(blender_python, installed, server, workdir, clip_factory):
    """Speed effects (Multiply, Stretch, Frame Number), Reverse Frames and retiming keys are sent
    as the source range the picture shows plus a constant speed; ramps are refused by name."""
    clip = clip_factory(**CLIP)  # 100 frames at 25 fps
    r = run_case(blender_python, installed, workdir, "retimed", server.home, server=server.address, clip=str(clip))
    specs, errors = r["specs"], r["errors"]
    # Multiply ×2 over frames 1..51: the picture shows source frames 0..100 twice as fast
    assert specs["mult2"] == {"start_s": 0.0, "end_s": 4.0, "speed": 2.0, "hold_s": None, "span": [2, 1, 51]}
    assert specs["mult2_effect_active"] == specs["mult2"]  # the effect strip itself selected
    assert specs["stretch"] == {"start_s": 0.0, "end_s": 4.0, "speed": 2.0, "hold_s": None, "span": [5, 201, 251]}
    assert specs["half"] == {"start_s": 0.0, "end_s": 2.0, "speed": 0.5, "hold_s": None, "span": [8, 401, 501]}
    assert specs["freeze"] == {"start_s": 1.2, "end_s": None, "speed": 0.0, "hold_s": 1.6, "span": [11, 601, 641]}
    # Reverse Frames, trimmed to 1011..1081 (content 1001..1101): source frames 20..90 backwards
    assert specs["reversed"] == {"start_s": 0.8, "end_s": 3.6, "speed": -1.0, "hold_s": None,
                                 "span": [16, 1011, 1081]}
    assert r["keys2_frames"] == [1, 51]
    assert specs["keys2"] == {"start_s": 0.0, "end_s": 4.0, "speed": 2.0, "hold_s": None, "span": [19, 1, 51]}
    assert "fx ramp" in errors["ramp"] and "animated speed" in errors["ramp"] and "'ramp'" in errors["ramp"]
    assert "'keys3'" in errors["keys3"] and "retiming keys inside it" in errors["keys3"]
    assert set(errors) == {"ramp", "keys3"}

    out = workdir / "direct-retimed"
    out.mkdir()
    for name, extra, left, right in (("mult2", {"speed": 2.0}, 1, 51),
                                     ("reversed", {"start_s": 0.8, "end_s": 3.6, "speed": -1.0}, 1011, 1081)):
        done = r[name]
        assert done["submit_error"] is None and not done["timed_out"] and not done["message_is_error"], done
        (stem,) = done["added"]
        assert (stem["left"], stem["right"]) == (left, right)
        spec = {"video": str(clip), "output_dir": str(out), "name": f"{name}.wav", "start_s": 0.0, "end_s": 4.0,
                **extra}
        direct = sf.read(str(spatialize(job_from_spec(spec)).stem), dtype="int32")[0]
        got = sf.read(stem["filepath"], dtype="int32")[0]
        assert got.shape == direct.shape == ((right - left) * 1920, 2) and np.array_equal(got, direct), name


def outside_backticks(text: str) -> str:
    """``text`` without its backtick-quoted commands (`foleyspace models fetch ...` may stay)."""
    return "".join(text.split("`")[::2])


def panel_text(drawn: list[str]) -> str:
    """The panel's label lines joined (long notes are wrapped over several labels)."""
    return " ".join(line.split(":", 1)[1] for line in drawn if line.startswith("label:"))


def test_model_settings_reach_the_spec_and_a_missing_model_is_refused(blender_python, installed, server, workdir,
                                                                      clip_factory):
    """Localizer, Depth, Vocabulary, Detect Every, Depth Model: the job options each sends (the
    protocol's names, defaults left out); YOLO-World chosen on a server without its weights
    (tests/conftest.py points FOLEYSPACE_MODELS at an empty folder) is refused at submit in
    the panel's terms, and nothing is rendered or placed."""
    clip = clip_factory(**CLIP)
    with server.client() as c:
        jobs_before = {j["job"] for j in c.request("list", limit=1000)["jobs"]}
    r = run_case(blender_python, installed, workdir, "models", server.home, server=server.address, clip=str(clip))
    assert r["defaults"] == {"localizer": "auto", "depth": "auto", "vocab": "coco", "detect_every": 1,
                             "depth_model": "small", "label": ""}
    assert r["enum_items"] == {"localizer": ["auto", "yolo-world", "motion", "classic"],
                               "depth": ["auto", "depth-anything", "box-scale"],
                               "vocab": ["coco", "imagenet", "vggsound", "audioset"],
                               "depth_model": ["small", "base", "large", "metric-indoor-small", "metric-outdoor-small",
                                               "metric-indoor-large", "metric-outdoor-large"]}
    assert "bad_enum" in r  # not a name the protocol knows
    assert "comma" in r["label_tooltip"] and "YOLO-World" in r["label_tooltip"]
    opts = r["options"]
    assert opts["default"] == {"scheme": "fine"}  # defaults are not sent
    assert opts["yolo"] == {"scheme": "fine", "localizer": "yolo-world", "depth": "box-scale", "vocab": "imagenet",
                            "detect_every": 5}  # no depth model for Box Scale
    # a label names the object (synonyms as typed): no vocabulary is scored
    assert opts["yolo_label"] == {"scheme": "fine", "label": "dog, puppy", "localizer": "yolo-world"}
    assert opts["motion"] == {"scheme": "fine", "localizer": "motion"}  # YOLO-World settings would be refused
    assert opts["auto_models"] == {"scheme": "fine", "vocab": "vggsound", "detect_every": 3,
                                   "depth_model": "metric-outdoor-small"}
    assert opts["depth_anything"] == {"scheme": "fine", "depth": "depth-anything", "depth_model": "metric-indoor-large"}
    # Classic: the label as typed, no YOLO-World settings (the server would refuse them)
    assert opts["classic_person"] == {"scheme": "fine", "label": "Person, walker", "localizer": "classic"}

    # the panel: nothing said before a check; after it, Auto says what it uses instead
    assert {"prop:localizer", "prop:depth", "prop:vocab", "prop:detect_every", "prop:depth_model"} <= set(
        r["panel_unchecked"])
    assert not any("not available" in line or "Auto uses" in line for line in r["panel_unchecked"])
    assert r["check_error"] is None
    assert r["capabilities"]["localizer"] == {"seeded": True, "yolo-world": False, "motion": True, "classic": True}
    assert r["capabilities"]["depth"] == {"depth-anything": False, "box-scale": True}
    auto = panel_text(r["panel_auto"])
    assert "Localizer Auto uses Motion: YOLO-World is not available on the server" in auto
    assert "Depth Auto uses Box Scale: Depth Anything is not available on the server" in auto
    yolo = panel_text(r["panel_yolo"])
    assert "YOLO-World (Localizer) is not available on the FoleySpace server" in yolo
    assert "foleyspace models fetch yolo-world" in yolo

    # the submit: refused before the job is sent, one line, the panel's terms
    refused = r["refused"]
    message = refused["submit_error"]
    assert message and "\n" not in message.strip(), refused
    assert "YOLO-World (Localizer) is not available on the FoleySpace server" in message
    assert "choose another Localizer, or Auto, in the FoleySpace panel" in message
    assert "`foleyspace models fetch yolo-world`" in message and "yolov8s-worldv2.pt" in message
    assert "--" not in outside_backticks(message) and "'localizer'" not in message
    assert refused["message_is_error"] and refused["message"] == message.removeprefix("Error: ")
    assert refused["added"] == 0 and refused["pending"] == 0 and not refused["timer_registered"]
    # the server's bad_request, reworded the same way
    server_refused = r["server_refused"]
    text = server_refused["submit_error"]
    assert "the server refused the job: YOLO-World (Localizer) is not available on the FoleySpace server" in text
    assert "`foleyspace models fetch yolo-world`" in text and "--" not in outside_backticks(text)
    assert server_refused["added"] == 0 and server_refused["pending"] == 0
    assert "Depth Anything (Depth) is not available" in r["depth_refused"]
    assert "`foleyspace models fetch depth-anything-small`" in r["depth_refused"]
    classic = r["classic_refused"]
    assert classic["submit_error"] == ("Error: Localizer Classic finds people or faces: set Label to person or face "
                                       "in the FoleySpace panel"), classic
    assert classic["added"] == 0 and classic["pending"] == 0 and not classic["timer_registered"]
    assert "Localizer Classic finds people or faces" in panel_text(r["classic_panel"])
    with server.client() as c:
        jobs_after = c.request("list", limit=1000)["jobs"]
    new_jobs = [j for j in jobs_after if j["job"] not in jobs_before]
    assert len(new_jobs) == 1  # only the Motion job below: nothing was rendered for the refused ones

    # Motion + Box Scale: accepted, rendered and placed; the sidecar says what ran
    rendered = r["rendered"]
    assert rendered["submit_error"] is None and not rendered["timed_out"] and not rendered["message_is_error"], rendered
    (stem,) = rendered["added"]
    sidecar = json.loads(Path(stem["filepath"]).with_suffix(".json").read_text())
    assert sidecar["analysis"]["localizer"] == "motion" and sidecar["analysis"]["depth"] == "box-scale"


def test_messages_and_retime_arithmetic():
    """Pure parts: server messages reworded without CLI flags; retime arithmetic."""
    m, rt = load_addon_modules("messages", "retime")
    assert "--" not in m.for_blender("/x/a.mp4: the clip has no audio track; pass --audio FILE to give a sound")
    assert m.for_blender("/x: the seeded tracker needs a box (--box X,Y,W,H[@TIME])") == "/x: the seeded tracker needs a box"
    assert "past the end of its movie" in m.for_blender("--out 9 s is past the end of the clip (4.000 s)")
    # model backends: flags become the panel's settings; the server's `foleyspace models fetch` hint stays
    assert m.for_blender("no 'dog' was detected in the range (no box scored 0.05 or more); name it differently, "
                         "draw a box with --box, or use --localizer motion") == (
        "no 'dog' was detected in the range (no box scored 0.05 or more); name it differently, "
        "add a box keyframe in the FoleySpace panel, or set Localizer to Motion in the FoleySpace panel")
    # box advice names the panel's Add Box Keyframe; a refused box field names the strip's box keyframes
    assert m.for_blender("x.mp4: the object is lost on 60% of the frames (1.0-2.0 s); draw a box there, "
                         "e.g. --box X,Y,W,H@1.50") == (
        "x.mp4: the object is lost on 60% of the frames (1.0-2.0 s); add a box keyframe there in the FoleySpace panel")
    assert m.for_blender("two tracks are equally plausible (3.0 and 2.9); draw a --box or give a --label") == (
        "two tracks are equally plausible (3.0 and 2.9); add a box keyframe or set a Label in the FoleySpace panel")
    assert m.for_blender("job spec: 'localizer': 'motion' does not use a box; leave out --box or choose the seeded "
                         "localizer").endswith("remove the strip's box keyframes or set Localizer to Auto in the "
                                               "FoleySpace panel")
    assert m.for_blender("job spec: 'more_boxes': two keyframes at the same time") == (
        "the strip's box keyframes: two keyframes at the same time")
    assert m.for_blender("use --label TEXT, --vocab NAME or --depth box-scale") == (
        "use the Label setting in the FoleySpace panel, the Vocabulary setting in the FoleySpace panel or "
        "set Depth to Box Scale in the FoleySpace panel")
    assert m.for_blender("pass --depth-model DIR") == "use the Depth Model setting in the FoleySpace panel"
    missing = ("YOLO-World weights yolov8s-worldv2.pt were not found in /m (or ultralytics' weights folder); get "
               "them with `foleyspace models fetch yolo-world` when online, or place the file from https://x/y.pt "
               "in that folder")
    assert m.for_blender(f"job spec: 'localizer': 'yolo-world': {missing}") == (
        "YOLO-World (Localizer) is not available on the FoleySpace server (choose another Localizer, or Auto, "
        f"in the FoleySpace panel): {missing}")
    assert "bogus (Localizer): the FoleySpace server does not offer it" in m.for_blender(
        "job spec: 'localizer': 'bogus' is unknown; known: auto, seeded, yolo-world, motion")
    assert m.for_blender("job spec: 'detect_every': must be an integer from 1 to 250 (frames)") == (
        "the Detect Every setting must be an integer from 1 to 250 (frames)")
    assert m.for_blender("see `foleyspace models fetch x --models-dir D` or --depth-model DIR") == (
        "see `foleyspace models fetch x --models-dir D` or the Depth Model setting in the FoleySpace panel")
    classic = "Localizer Classic finds people or faces: set Label to person or face in the FoleySpace panel"
    assert m.for_blender("job spec: 'localizer': 'classic' needs a label naming people or a face (--label person, "
                         "--label face)") == classic
    assert m.for_blender("the classic localizer finds people or faces; the label 'dog' names neither (try --label "
                         "person or --label face, or another localizer)") == classic
    # reversed, with a hold offset of 5 frames: content frames 10..80 of 90 shown backwards
    w = rt.warp(11, 81, 1.0, 90, 5, reverse=True)
    assert (w.start_f, w.end_f, w.speed) == (15.0, 85.0, -1.0)
    with pytest.raises(rt.PlacementError, match="past the media"):
        rt.warp(1, 101, 1.0, 100, 0, effect_start=1.0, k=2.0, name="s")
    with pytest.raises(rt.PlacementError, match="one constant speed"):
        rt.constant_speed([1.0, 2.0], "s")


def load_backends():
    """``backends.py`` (and the ``messages.py`` it imports) by path, as package ``fsb``."""
    return load_addon_modules("messages", "backends")[1]


def test_classic_localizer_choice_and_label_check():
    """Classic (people / faces): offered, sends "classic", and refused in the panel's terms when
    the Label names neither people nor a face; the add-on's word lists are the core's."""
    from types import SimpleNamespace

    from foleyspace.localize import classic

    b = load_backends()
    assert (b.PEOPLE_WORDS, b.FACE_WORDS) == (classic.PEOPLE_WORDS, classic.FACE_WORDS)
    assert ("classic", "Classic (people / faces)") == b.LOCALIZERS[-1][:2]
    assert b.choice_name("localizer", "classic") == "Classic (people / faces)"
    for label in ("person", "Face", "dog, talking head", " woman ", "speaker"):
        settings = SimpleNamespace(localizer="classic", label=label)
        assert b.classic_refusal(settings) is None
        assert (b.names_people_or_face(label), classic.detector_for(label) is not None) == (True, True)
        assert b.job_options(settings) == {"localizer": "classic"}
    for label in ("", "dog", "dog, puppy", "faceless"):
        assert classic.detector_for(label) is None and not b.names_people_or_face(label)
        assert b.classic_refusal(SimpleNamespace(localizer="classic", label=label)) == (
            "Localizer Classic finds people or faces: set Label to person or face in the FoleySpace panel")
        assert b.classic_refusal(SimpleNamespace(localizer="motion", label=label)) is None
    notes = b.panel_notes(SimpleNamespace(localizer="classic", label="dog", depth="auto"), {})
    assert notes == [("Localizer Classic finds people or faces: set Label to person or face in the FoleySpace "
                      "panel", True)]
    # YOLO-World settings are not sent with Classic (the server refuses them)
    assert b.job_options(SimpleNamespace(localizer="classic", label="face", vocab="imagenet", detect_every=3,
                                         depth="auto", depth_model="small")) == {"localizer": "classic"}


def test_box_keyframes_from_the_sidebar_and_a_preview(blender_python, installed, server, workdir, clip_factory):
    """Add Box Keyframe on a trimmed, moved strip stores the box at the source time of the movie
    frame shown; the keyframes survive save/reopen, go to the spec as box/box_time_s/more_boxes
    (those in the visible range), the seeded tracker honours them (the sidecar's boxes at those
    times are the keyframes), and Preview writes <stem>.preview.mp4, named in the message."""
    import av

    clip = clip_factory(**CLIP)  # 160x96, the object crosses left to right at mid-height
    # content at 31, trimmed 10 frames left and 20 right: frames 41..111 show source frames 10..80
    first, second = [30.0, 36.0, 24.0, 24.0], [81.0, 36.0, 24.0, 24.0]  # around the object at 0.8 s and 2.4 s
    r = run_case(blender_python, installed, workdir, "box_keyframes", server.home, server=server.address,
                 clip=str(clip), trim=[10, 20], content_start=31, keys=[[51, first], [91, second]],
                 extra_frame=71, extra_time=1.6, outside_frame=105)
    assert (r["movie"]["left"], r["movie"]["right"]) == (41, 111)
    assert r["poll_remove_empty"] is False
    assert r["add"] == [None, None] and r["add_replace"][0] is None and r["add_replace"][2] is None
    assert "box keyframe at 0.800 s replaced (2 in all)" in r["add_replace"][1]
    assert r["add_extra"] is None and r["count_with_extra"] == 3 and r["remove_extra"] is None
    assert "frame 116 is outside strip 'shot' (frames 41–110)" in r["errors"]["off_strip"]
    assert r["add_outside"] is None
    stored = json.loads(r["stored"])
    assert stored == [{"t": 0.8, "box": first}, {"t": 2.4, "box": second}, {"t": 2.96, "box": [0.0, 0.0, 16.0, 16.0]}]
    panel = panel_text(r["panel"])
    assert "Box Keyframes (3)" in panel and "0.800 s: 30, 36, 24 × 24" in panel and "2.400 s: 81, 36, 24 × 24" in panel
    assert "2.960 s: 0, 0, 16 × 16  (outside the strip: not sent)" in panel
    assert {"prop:box_x", "prop:box_y", "prop:box_w", "prop:box_h", "prop:preview",
            "operator:foleyspace.add_box_keyframe"} <= set(r["panel"])
    # saved and reopened: still on the strip
    assert r["reloaded"] == [[0.8, first], [2.4, second], [2.96, [0.0, 0.0, 16.0, 16.0]]]
    assert r["source"] == pytest.approx([0.4, 2.96])
    # Motion with boxes: refused before anything is sent, in the panel's terms
    assert "has box keyframes" in r["motion_refused"] and "set Localizer to Auto" in r["motion_refused"]
    assert "--" not in r["motion_refused"] and r["motion_specs"] == 0  # refused before a spec was made
    assert "The seeded tracker follows the boxes: set Localizer to Auto" in panel_text(r["motion_panel"])

    rendered = r["rendered"]
    assert rendered["submit_error"] is None and not rendered["timed_out"], rendered
    assert not rendered["message_is_error"], rendered["message"]
    spec = r["spec"]
    assert spec["start_s"] == pytest.approx(0.4) and spec["end_s"] == pytest.approx(2.96)
    assert spec["box"] == first and spec["box_time_s"] == pytest.approx(0.8)
    assert spec["more_boxes"] == [[*second, pytest.approx(2.4)]]
    assert spec["options"]["preview"] is True and "localizer" not in spec["options"]  # Auto: the seeded tracker
    (stem,) = r["added"]
    preview = Path(stem["filepath"]).with_suffix(".preview.mp4")
    assert preview.is_file() and f"Preview: {preview}" in rendered["message"], rendered["message"]
    assert stem["preview_prop"] == "//foleyspace_stems/" + preview.name
    assert f"label:Preview: {preview.name}" in r["stem_panel"]
    with av.open(str(preview)) as container:
        assert container.streams.video and container.streams.audio
    sidecar = json.loads(Path(stem["filepath"]).with_suffix(".json").read_text())
    assert sidecar["analysis"]["localizer"] == "seeded"
    for t, box in ((0.8, first), (2.4, second)):
        row = min(sidecar["frames"], key=lambda f: abs(f["t"] - (t - 0.4)))
        assert abs(row["t"] - (t - 0.4)) < 0.02, row
        assert row["box"] is not None and np.abs(np.subtract(row["box"], box)).max() <= 1.0, (t, row["box"], box)

    # source times of the picture shown: Reverse Frames (source frames 20..90 backwards), Speed × 2
    times = r["times"]
    assert times["rev"] == pytest.approx([89 / FPS, 88 / FPS, 20 / FPS])
    assert times["fast"] == pytest.approx([0.0, 20 / FPS, 98 / FPS]) and times["fast_effect"] == pytest.approx(0.8)


def test_box_keyframe_parts():
    """Pure parts: the keyframe list (replace at the same time, bad boxes) and the spec fields
    of the keyframes in a visible range; the source frame a retimed range shows."""
    rt, b = load_addon_modules("retime", "boxes")
    keys, replaced = b.add([], 2.0, (1, 2, 3, 4))
    keys, _ = b.add(keys, 0.5, (5, 6, 7, 8))
    keys, replaced = b.add(keys, 2.0, (9, 9, 9, 9))
    assert replaced and [k.t for k in keys] == [0.5, 2.0] and keys[1].box == (9.0, 9.0, 9.0, 9.0)
    assert b.parse(b.dump(keys)) == keys and b.parse("not json") == [] and b.parse('[{"t": 1}]') == []
    with pytest.raises(b.PlacementError, match="positive width"):
        b.add(keys, 1.0, (0, 0, -1, 5))
    with pytest.raises(b.PlacementError, match="four numbers"):
        b.add(keys, 1.0, (0, 0, 5))
    fields, left_out = b.spec_fields(keys, 0.0, 4.0)
    assert fields == {"box": [5.0, 6.0, 7.0, 8.0], "box_time_s": 0.5, "more_boxes": [[9.0, 9.0, 9.0, 9.0, 2.0]]}
    assert left_out == 0
    assert b.spec_fields(keys, 1.0, 2.0) == ({}, 2)  # the range end is exclusive
    assert b.spec_fields(keys, 0.5, None) == ({"box": [5.0, 6.0, 7.0, 8.0], "box_time_s": 0.5}, 1)  # a held frame
    assert rt.shown_frame(15, 10, rt.Warp(20.0, 90.0, 1.0)) == 25.0
    assert rt.shown_frame(10, 10, rt.Warp(20.0, 90.0, -1.0)) == 89.0
    assert rt.shown_frame(13, 10, rt.Warp(0.0, 100.0, 2.0)) == 6.0
    assert rt.shown_frame(13, 10, rt.Warp(0.0, 10.0, 0.5)) == 1.0
    assert rt.shown_frame(99, 10, rt.Warp(30.0, 30.0, 0.0)) == 30.0


def test_renderer_and_hrtf_settings_options_and_refusals():
    """Renderer, Checkpoint, Diffusion Steps, Seed, HRTF Interpolation, HRTF Directions: the
    choices are the core's, the job options each sends (defaults and settings of a backend not
    chosen left out; files made absolute, a fetched set's name kept), and what the core would
    refuse is refused in the panel's terms, as the core's own refusal is reworded."""
    from types import SimpleNamespace

    from foleyspace.diffusion.config import SCHEDULES
    from foleyspace.hrtf.catalog import CATALOG, is_name
    from foleyspace.hrtf.directions import DIRECTION_SETS
    from foleyspace.hrtf.interpolate import METHODS

    m, b = load_addon_modules("messages", "backends")
    assert [i[0] for i in b.HRTF_INTERPS] == list(METHODS) and [i[0] for i in b.HRTF_DIRECTIONS] == list(DIRECTION_SETS)
    assert [i[0] for i in b.DIFFUSION_STEPS] == list(SCHEDULES) and b.HRTF_SETS == tuple(CATALOG)
    assert [i[:2] for i in b.DIFFUSION_STEPS] == [("standard", "Standard (50)"), ("fast", "Fast (6)")]
    assert [i[0] for i in b.RENDERERS] == ["auto", "dsp", "diffusion"]
    for text in ("hutubs:96", "sadie:H3", "HUTUBS:pp96", "hutubs:", "/x/h.sofa", "C:\\h.sofa", "sadie:a/b", "x:1",
                 "h.sofa"):
        assert b.is_hrtf_name(text) == is_name(text), text

    def opts(**values):
        return b.job_options(SimpleNamespace(**{"label": "", "hrtf": "", **values}), abspath=lambda p: "/abs/" + p)

    assert opts() == {} and opts(renderer="auto", checkpoint="c.pt", diffusion_schedule="fast", seed=4) == {}
    assert opts(renderer="dsp", checkpoint="c.pt", seed=3) == {"renderer": "dsp"}  # not the diffusion's settings
    assert opts(renderer="diffusion", checkpoint="//c.pt") == {"renderer": "diffusion", "checkpoint": "/abs///c.pt"}
    assert opts(renderer="diffusion", checkpoint=" c.pt ", diffusion_schedule="fast", seed=7) == {
        "renderer": "diffusion", "checkpoint": "/abs/c.pt", "diffusion_schedule": "fast", "seed": 7}
    assert opts(hrtf_interp="nearest", hrtf_directions="coarse") == {}  # no HRTF: not sent (refused below)
    assert opts(hrtf="h.sofa", hrtf_interp="aligned", hrtf_directions="all") == {}
    assert opts(hrtf="h.sofa", hrtf_interp="nearest", hrtf_directions="fine") == {"hrtf_interp": "nearest",
                                                                                   "hrtf_directions": "fine"}
    assert b.hrtf_option(" hutubs:96 ", lambda p: "/abs/" + p) == "hutubs:96"
    assert b.hrtf_option("//h.sofa", lambda p: "/abs/" + p) == "/abs///h.sofa" and b.hrtf_option("  ") == ""

    diffusion = "Renderer Diffusion needs a Checkpoint: choose a trained checkpoint file in the FoleySpace panel"
    assert b.refusal(SimpleNamespace(renderer="diffusion", checkpoint=" ", label="")) == diffusion
    assert b.refusal(SimpleNamespace(renderer="diffusion", checkpoint="/c.pt", label="")) is None
    assert b.refusal(SimpleNamespace(renderer="dsp", checkpoint="", label="")) is None
    nearest = ("HRTF Interpolation Nearest applies to a measured HRTF: set HRTF in the FoleySpace panel (a SOFA file "
               "or a fetched set such as hutubs:96), or set HRTF Interpolation back to Aligned")
    assert b.refusal(SimpleNamespace(hrtf="", hrtf_interp="nearest", label="")) == nearest
    assert b.refusal(SimpleNamespace(hrtf="", hrtf_directions="coarse", label="")).startswith(
        "HRTF Directions Coarse applies to a measured HRTF")
    assert b.refusal(SimpleNamespace(hrtf="sadie:H3", hrtf_interp="nearest", label="")) is None
    assert b.panel_notes(SimpleNamespace(renderer="diffusion", checkpoint="", label=""), {}) == [(diffusion, True)]
    # a renderer the server lacks, from its hello
    caps = {"renderer": {"dsp": {"available": True}, "diffusion": {"available": False, "missing": "needs torch"}}}
    assert b.unavailable({"renderer": "diffusion"}, caps) == (
        "Diffusion (Renderer) is not available on the FoleySpace server (choose another Renderer, or Auto, in the "
        "FoleySpace panel): needs torch")
    # the core's own refusals, reworded the same way (no CLI flag, no field name)
    assert m.for_blender("job spec: 'renderer': 'diffusion' needs a trained checkpoint (--checkpoint CKPT)") == diffusion
    assert m.for_blender("job spec: 'seed': is a setting of the diffusion renderer: give its checkpoint too "
                         "(--checkpoint, option checkpoint)") == (
        "Diffusion Steps and Seed are settings of Renderer Diffusion: set Renderer to Diffusion and choose its "
        "Checkpoint in the FoleySpace panel")
    assert m.for_blender("job spec: 'hrtf_interp': applies to measured HRIRs (--hrtf, option hrtf), not to the "
                         "spherical-head set").startswith("HRTF Interpolation and HRTF Directions apply to a measured "
                                                          "HRTF: set HRTF in the FoleySpace panel")
    assert m.for_blender("job spec: 'hrtf': hutubs:96 is not fetched yet (no /h/pp96.sofa); run `foleyspace hrtf "
                         "fetch hutubs --subject 96`") == ("the HRTF setting: hutubs:96 is not fetched yet (no "
                                                           "/h/pp96.sofa); run `foleyspace hrtf fetch hutubs --subject 96`")
    assert m.for_blender("try --hrtf SOFA|SET:SUBJECT or --renderer dsp") == (
        "try the HRTF setting in the FoleySpace panel or set Renderer to DSP in the FoleySpace panel")


def tiny_checkpoint(path: Path) -> Path | None:
    """A tiny random diffusion checkpoint (as tests/test_diffusion.py makes one), or None without torch."""
    try:
        import torch

        from foleyspace.diffusion.checkpoint import Checkpoint, save
        from foleyspace.diffusion.config import named_config
        from foleyspace.diffusion.model import BinauralDiffWave
    except ImportError:
        return None
    torch.manual_seed(0)
    config = named_config("tiny")
    model = BinauralDiffWave(config)
    torch.nn.init.normal_(model.output_projection.weight, std=0.05)  # its noise estimate is not 0
    path.parent.mkdir(parents=True, exist_ok=True)
    return save(path, Checkpoint(config, model.state_dict(), step=1))


def test_renderer_and_hrtf_settings_reach_the_spec_and_render(blender_python, installed, server, workdir, clip_factory,
                                                              ku100_sofa):
    """The panel's Renderer, Checkpoint, Diffusion Steps, Seed, HRTF Interpolation and HRTF
    Directions in real Blender: the options each sends (defaults not sent, ``//`` files made
    absolute beside the .blend, ``hutubs:96`` kept), each shown where it applies, the core's
    refusals refused at submit in the panel's terms (nothing sent), and two real jobs: the KU100
    SOFA file with Nearest, and Diffusion with a tiny random checkpoint (Fast, Seed 3)."""
    import shutil

    clip = clip_factory(**CLIP)
    project = workdir / "project-renderer_hrtf"
    (project / "heads").mkdir(parents=True, exist_ok=True)
    sofa = Path(shutil.copy(ku100_sofa, project / "heads" / "ku100.sofa"))  # inside the server's root
    ckpt = tiny_checkpoint(project / "tiny.pt")
    with server.client() as c:
        jobs_before = {j["job"] for j in c.request("list", limit=1000)["jobs"]}
    r = run_case(blender_python, installed, workdir, "renderer_hrtf", server.home, server=server.address,
                 clip=str(clip), hrtf="//heads/ku100.sofa", checkpoint="//tiny.pt" if ckpt else "")
    assert r["defaults"] == {"renderer": "auto", "checkpoint": "", "diffusion_schedule": "standard", "seed": 0,
                             "hrtf_interp": "aligned", "hrtf_directions": "all", "hrtf": ""}
    assert r["enum_items"] == {"renderer": ["auto", "dsp", "diffusion"], "diffusion_schedule": ["standard", "fast"],
                               "hrtf_interp": ["nearest", "linear", "aligned"],
                               "hrtf_directions": ["all", "fine", "coarse"]}
    assert r["names"] == {"renderer": "Renderer", "checkpoint": "Checkpoint", "diffusion_schedule": "Diffusion Steps",
                          "seed": "Seed", "hrtf_interp": "HRTF Interpolation", "hrtf_directions": "HRTF Directions",
                          "hrtf": "HRTF"}
    assert "bad_enum" in r
    assert r["unsaved"] == ("refused: Checkpoint //tiny.pt is relative to the .blend: save the .blend first, or "
                            "choose an absolute Checkpoint file in the FoleySpace panel")
    opts, panel = r["options"], r["panel"]
    assert opts["default"] == opts["no_hrtf_defaults"] == {"scheme": "fine"}  # defaults are not sent
    assert opts["hrtf_file"] == {"scheme": "fine", "hrtf": str(sofa), "hrtf_interp": "nearest", "hrtf_directions": "fine"}
    assert opts["hrtf_name"] == {"scheme": "fine", "hrtf": "hutubs:96", "hrtf_interp": "linear"}
    assert opts["dsp"] == {"scheme": "fine", "renderer": "dsp"}  # the diffusion's settings are not sent with DSP
    assert opts["diffusion"] == {"scheme": "fine", "renderer": "diffusion", "checkpoint": str(project / "tiny.pt")}
    assert opts["diffusion_fast"] == {"scheme": "fine", "renderer": "diffusion", "checkpoint": str(project / "tiny.pt"),
                                      "diffusion_schedule": "fast", "seed": 3}
    for spec_options in opts.values():  # the core takes every one of them (the hutubs name needs a fetch)
        if spec_options.get("hrtf") != "hutubs:96":
            job_from_spec({"video": str(clip), "output_dir": str(workdir), "options": spec_options})
    hrtf_props, diffusion_props = {"prop:hrtf_interp", "prop:hrtf_directions"}, {
        "prop:checkpoint", "prop:diffusion_schedule", "prop:seed"}
    assert "prop:renderer" in panel["default"] and "prop:hrtf" in panel["default"]
    assert not (hrtf_props | diffusion_props) & set(panel["default"] + panel["dsp"])
    assert hrtf_props <= set(panel["hrtf_file"]) and hrtf_props <= set(panel["hrtf_name"])
    assert diffusion_props <= set(panel["diffusion"])

    # refused before anything is sent, one line in the panel's terms, also noted in the panel
    diffusion, interp = r["refused_diffusion"], r["refused_interp"]
    assert diffusion["submit_error"] == ("Error: Renderer Diffusion needs a Checkpoint: choose a trained checkpoint "
                                         "file in the FoleySpace panel"), diffusion
    assert interp["submit_error"] == (
        "Error: HRTF Interpolation Nearest applies to a measured HRTF: set HRTF in the FoleySpace panel (a SOFA file "
        "or a fetched set such as hutubs:96), or set HRTF Interpolation back to Aligned"), interp
    for refusal in (diffusion, interp):
        assert refusal["added"] == 0 and refusal["pending"] == 0 and not refusal["timer_registered"]
        assert refusal["message_is_error"] and "--" not in refusal["submit_error"]
        assert refusal["submit_error"].removeprefix("Error: ") in panel_text(refusal["panel"])
    assert "prop:hrtf_interp" in interp["panel"]  # shown, to put it back, though no HRTF is set

    # real jobs: the sidecar says what ran
    hrtf_job = r["rendered_hrtf"]
    assert hrtf_job["submit_error"] is None and not hrtf_job["timed_out"] and not hrtf_job["message_is_error"], hrtf_job
    (stem,) = hrtf_job["added"]
    sidecar = json.loads(Path(stem["filepath"]).with_suffix(".json").read_text())
    assert sidecar["analysis"]["hrir"] == "sofa" and sidecar["analysis"]["renderer"] == "dsp"
    assert sidecar["settings"]["settings"]["hrir:sofa"]["interp"] == "nearest"
    expected_jobs = 1
    if ckpt is not None:
        diffusion_job = r["rendered_diffusion"]
        assert diffusion_job["submit_error"] is None and not diffusion_job["timed_out"], diffusion_job
        assert not diffusion_job["message_is_error"], diffusion_job
        (stem,) = diffusion_job["added"]
        data, rate = sf.read(stem["filepath"])
        assert rate == 48000 and data.shape == (4 * 48000, 2) and np.all(np.isfinite(data))
        sidecar = json.loads(Path(stem["filepath"]).with_suffix(".json").read_text())
        assert sidecar["analysis"]["renderer"] == "diffusion"
        assert sidecar["settings"]["settings"]["renderer:diffusion"] == {
            "checkpoint": str(project / "tiny.pt"), "schedule": "fast", "seed": 3}
        expected_jobs += 1
    with server.client() as c:
        new_jobs = [j for j in c.request("list", limit=1000)["jobs"] if j["job"] not in jobs_before]
    assert len(new_jobs) == expected_jobs  # nothing was sent for the refused ones
