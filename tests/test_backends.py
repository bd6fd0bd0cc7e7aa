"""The backend registry, the per-process backend cache, device choice and import weight.

The toy plug-in in ``tests/toy_plugin`` (a module plus a dist-info with an entry point) is the
"one place" a backend is registered; these tests use it from the CLI, a job spec, the server and
render-otio without those modules knowing it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from dataclasses import replace
from importlib.machinery import ModuleSpec
from pathlib import Path

import opentimelineio as otio
import pytest
import soundfile as sf

from conftest import level_difference_db
from foleyspace.backends import Backend, BackendError, Backends, Registry, default_registry
from foleyspace.device import DeviceError, resolve_device
from foleyspace.job import Job, SeedBox
from foleyspace.jobspec import SpecError, job_from_spec
from serverproc import ServerProcess

TOY = Path(__file__).with_name("toy_plugin")
HEAVY = ("cv2", "av", "scipy", "soundfile", "torch", "ultralytics", "transformers", "sofar", "matplotlib")


@pytest.fixture
def toy(monkeypatch, tmp_path):
    """The toy plug-in installed for this process and its children; its build log file."""
    builds = tmp_path / "toy_builds.txt"
    monkeypatch.syspath_prepend(str(TOY))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TOY), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("FOLEYSPACE_TOY_BUILDS", str(builds))
    default_registry.cache_clear()
    yield builds
    default_registry.cache_clear()


def sidecar_of(stem: Path) -> dict:
    return json.loads(stem.with_suffix(".json").read_text())


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "foleyspace", *map(str, args)], capture_output=True, text=True,
                          env=env or os.environ, timeout=120)


# ------------------------------------------------------------------------------ import weight
def test_validating_a_spec_and_the_server_request_path_import_no_heavy_library(tmp_path):
    """``import foleyspace.jobspec`` and a server answering hello/submit load no media, DSP or model library."""
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not read at submit")
    code = f"""
import sys
from pathlib import Path
import foleyspace.jobspec
loaded = [m for m in {HEAVY!r} if m in sys.modules]
assert not loaded, f"import foleyspace.jobspec loaded {{loaded}}"
from foleyspace.server.app import JobServer, ServerConfig
server = JobServer(ServerConfig(bind="tcp://127.0.0.1:0", home=Path({str(tmp_path / 'home')!r}),
                                roots=(Path({str(tmp_path)!r}),)))
try:
    server._op_hello(b"id", {{}})
    server._op_submit(b"id", {{"spec": {{"video": {str(clip)!r}, "output_dir": {str(tmp_path)!r},
                                         "options": {{"scheme": "coarse", "localizer": "motion"}}}}}})
    server._op_list(b"id", {{}})
finally:
    server.close()
loaded = [m for m in {HEAVY!r} if m in sys.modules]
assert not loaded, f"the server's request path loaded {{loaded}}"
print("light")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "light", out.stderr


def test_importtime_of_jobspec_lists_no_heavy_module():
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import foleyspace.jobspec"],
                         capture_output=True, text=True, timeout=60)
    modules = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert "foleyspace" in modules and not modules & set(HEAVY)


# ------------------------------------------------------------------------------ registry rules
def job(settings: dict | None = None, **fields) -> Job:
    """A job on placeholder paths; ``settings`` are per-backend settings (``"kind:name"`` keys)."""
    made = Job(video=Path("/clip.mp4"), output=Path("/stem.wav"), **fields)
    return made if settings is None else replace(made, config=replace(made.config, settings=settings))


def test_auto_choices_follow_the_job():
    registry = default_registry()
    assert registry.choose("localizer", "auto", job()).name == "motion"
    assert registry.choose("localizer", "auto", job(seed_box=SeedBox(1, 2, 30, 40))).name == "seeded"
    assert registry.choose("mono", "auto", job()).name == "clip"
    assert registry.choose("mono", "auto", job(audio=Path("/a.wav"))).name == "file"
    assert registry.choose("hrir", "auto", job()).name == "spherical-head"
    assert registry.choose("hrir", "auto", job(hrtf=Path("/h.sofa"))).name == "sofa"
    assert registry.choose("depth", "auto", job()).name == "box-scale"
    assert registry.choose("renderer", "auto", job()).name == "dsp"


def test_explicit_choices_are_checked():
    registry = default_registry()
    with pytest.raises(BackendError, match="localizer .yolo. is unknown; known: auto, seeded, yolo-world, classic, motion"):
        registry.choose("localizer", "yolo", job())
    with pytest.raises(BackendError, match="needs a box"):
        registry.choose("localizer", "seeded", job())
    with pytest.raises(BackendError, match="does not use a box"):
        registry.choose("localizer", "motion", job(seed_box=SeedBox(1, 2, 30, 40)))
    missing = Registry([Backend("depth", "needs-torch", "nowhere:Nothing", "x", requires=("torch_not_here",),
                                extra="models")])
    with pytest.raises(BackendError, match=r"needs torch_not_here \(pip install 'foleyspace\[models\]'\)"):
        missing.choose("depth", "needs-torch", job())
    with pytest.raises(BackendError, match="no depth backend can run this job"):
        missing.choose("depth", "auto", job())
    caps = missing.capabilities()["depth"]
    assert caps == [{"name": "needs-torch", "summary": "x", "available": False,
                     "missing": "needs torch_not_here (pip install 'foleyspace[models]')"}]
    with pytest.raises(ValueError, match="taken"):
        Registry([*default_registry()._backends.values(), Backend("renderer", "dsp", "a:b", "again")])


def test_spec_names_the_backend_field():
    spec = {"video": "/m/clip.mov", "output_dir": "/stems"}
    with pytest.raises(SpecError, match="'localizer': 'nope' is unknown") as exc:
        job_from_spec({**spec, "options": {"localizer": "nope"}})
    assert exc.value.field == "localizer"
    with pytest.raises(SpecError, match="'renderer'"):
        job_from_spec({**spec, "options": {"renderer": 3}})
    with pytest.raises(SpecError, match="needs a box"):
        job_from_spec({**spec, "options": {"localizer": "seeded"}})
    assert job_from_spec({**spec, "options": {"depth": "box-scale"}}).config.depth == "box-scale"


def test_a_broken_plug_in_is_left_out(monkeypatch, tmp_path, caplog):
    plugin = tmp_path / "broken_plugin"
    (plugin / "foleyspace_broken-0.1.dist-info").mkdir(parents=True)
    (plugin / "foleyspace_broken-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: foleyspace-broken\nVersion: 0.1\n")
    (plugin / "foleyspace_broken-0.1.dist-info" / "entry_points.txt").write_text(
        "[foleyspace.backends]\nbroken = foleyspace_broken:register\n")
    (plugin / "foleyspace_broken.py").write_text("def register(registry):\n    raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(plugin))
    default_registry.cache_clear()
    try:
        assert default_registry().names("localizer") == ["seeded", "yolo-world", "classic", "motion"]
        assert "backend plug-in broken could not register: RuntimeError: boom" in caplog.text
    finally:
        default_registry.cache_clear()


# ------------------------------------------------------------------------------ one place, used everywhere
def test_a_plug_in_backend_works_from_cli_spec_server_and_render_otio(toy, clip_factory, tmp_path, monkeypatch):
    clip = clip_factory(motion="cross_rl", duration_s=2.0, size=(160, 96))  # moves right -> left; the toy ignores it

    # the CLI (a fresh process that finds the plug-in by its entry point)
    listed = json.loads(run_cli("backends", "--json").stdout)
    assert {"name": "toy-left", "summary": "test plug-in: the object sits in the left quarter of the frame",
            "available": True} in listed["localizer"]
    out = tmp_path / "cli.wav"
    done = run_cli("-q", "spatialize", clip, "-o", out, "--localizer", "toy-left", "--label", "engine",
                   "--depth", "toy-device", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    meta = sidecar_of(out)
    assert meta["analysis"]["localizer"] == "toy-left" and meta["analysis"]["label"] == "engine"
    assert meta["backends"]["localizer"] == {"name": "toy-left", "factory": "foleyspace_toy:LeftLocalizer",
                                             "weights": "none (toy)", "version": "0.1"}
    assert meta["backends"]["depth"] == {"name": "toy-device", "factory": "foleyspace_toy:DeviceDepth", "device": "cpu"}
    assert all(f["azimuth_deg"] > 20 for f in meta["frames"])  # the left quarter, every frame
    stereo, _ = sf.read(str(out), always_2d=True)
    assert level_difference_db(stereo.T) > 3.0

    # a job spec, validated and run in this process
    spec = {"video": str(clip), "output_dir": str(tmp_path), "name": "spec.wav", "options": {"localizer": "toy-left"}}
    assert job_from_spec(spec).config.localizer == "toy-left"

    # the server: hello lists it, a job runs with it
    monkeypatch.setenv("FOLEYSPACE_HOME", str(tmp_path / "home"))
    server = ServerProcess(tmp_path / "home", clip.parent.parent, workers=1).start()
    try:
        with server.client(timeout=30) as client:
            names = [b["name"] for b in client.hello()["capabilities"]["backends"]["localizer"]]
            assert names == ["seeded", "yolo-world", "classic", "motion", "toy-left", "toy-stuck"]
            final = client.wait(client.submit({**spec, "name": "server.wav",
                                               "options": {"localizer": "toy-left", "depth": "toy-device"}}),
                                timeout=120)
            assert final["state"] == "done", final
            meta = sidecar_of(Path(final["result"]["stem"]))
            assert meta["analysis"]["localizer"] == "toy-left"
            # the server's --device (auto: no GPU here) reached the worker's factory, resolved
            assert meta["backends"]["depth"]["device"] == "cpu"

        # render-otio, in-process and through the server
        ref = otio.schema.ExternalReference(target_url=clip.resolve().as_uri(), available_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(0, 25), otio.opentime.RationalTime(50, 25)))
        track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
        track.append(otio.schema.Clip(name="c", media_reference=ref, source_range=ref.available_range))
        timeline = otio.schema.Timeline(name="t")
        timeline.tracks.append(track)
        otio.adapters.write_to_file(timeline, str(tmp_path / "t.otio"))
        from foleyspace.cli import main

        for mode in ([], ["--server", server.address]):
            stems = tmp_path / f"stems{len(mode)}"
            code = main(["-q", "render-otio", str(tmp_path / "t.otio"), "-o", str(tmp_path / f"o{len(mode)}.otio"),
                         "--stems", str(stems), "--localizer", "toy-left", *mode])
            assert code == 0
            assert sidecar_of(next(stems.glob("*.wav")))["analysis"]["localizer"] == "toy-left"
    finally:
        server.stop()


def test_a_worker_builds_a_heavy_backend_once_across_jobs(toy, clip_factory, tmp_path, monkeypatch):
    clip = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))
    monkeypatch.setenv("FOLEYSPACE_HOME", str(tmp_path / "home"))
    server = ServerProcess(tmp_path / "home", clip.parent.parent, workers=1).start()
    try:
        with server.client(timeout=30) as client:
            for name in ("a.wav", "b.wav", "c.wav"):
                spec = {"video": str(clip), "output_dir": str(tmp_path), "name": name,
                        "options": {"localizer": "toy-left", "scheme": "coarse" if name == "b.wav" else "fine"}}
                assert client.wait(client.submit(spec), timeout=120)["state"] == "done"
        workers = server.children()
    finally:
        server.stop()
    pids = toy.read_text().split()
    assert len(pids) == 1 and int(pids[0]) in workers  # built once, in the worker, for three jobs

    # the same in one process: a Backends built per run (CLI) or per batch (render-otio)
    toy.write_text("")
    backends = Backends("cpu")
    for scheme in ("fine", "coarse"):
        spec = {"video": str(clip), "output_dir": str(tmp_path), "options": {"localizer": "toy-left", "scheme": scheme}}
        assert backends.for_job(job_from_spec(spec)).localizer is backends.for_job(job_from_spec(spec)).localizer
    assert len(toy.read_text().split()) == 1


def test_settings_and_device_key_the_cache():
    from foleyspace.localize.motion import MotionConfig

    backends = Backends("cpu")
    plain, tuned = job(), job({"localizer:motion": MotionConfig(diff_threshold=20.0)})
    a, b = backends.for_job(plain), backends.for_job(tuned)
    assert a.localizer is not b.localizer and b.localizer.config.diff_threshold == 20.0
    assert backends.for_job(tuned).localizer is b.localizer
    assert b.described["localizer"]["settings"]["diff_threshold"] == 20.0


# ------------------------------------------------------------------------------ devices
def test_cuda_on_a_machine_without_it_is_one_line_exit_2(clip_factory, tmp_path):
    clip = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))
    for args in (["spatialize", clip, "-o", tmp_path / "x.wav", "--device", "cuda"],
                 ["serve", "--bind", "tcp://127.0.0.1:0", "--device", "cuda:1"],
                 ["spatialize", clip, "-o", tmp_path / "x.wav", "--device", "tpu"]):
        env = {**os.environ, "FOLEYSPACE_HOME": str(tmp_path / "home")}
        done = run_cli(*args, env=env)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("foleyspace: error: --device"), done.stderr
    assert not (tmp_path / "x.wav").exists()
    assert run_cli("-q", "spatialize", clip, "-o", tmp_path / "x.wav", "--device", "auto").returncode == 0


def fake_torch(cuda_devices: int) -> types.ModuleType:
    """Stands in for PyTorch where it is not installed: the two calls device choice makes
    (``torch.cuda.is_available()``, ``torch.cuda.device_count()``), and no MPS."""
    torch = types.ModuleType("torch")
    torch.__spec__ = ModuleSpec("torch", None)
    torch.cuda = types.SimpleNamespace(is_available=lambda: cuda_devices > 0, device_count=lambda: cuda_devices)
    torch.backends = types.SimpleNamespace(mps=types.SimpleNamespace(is_available=lambda: False))
    return torch


def test_device_resolution(monkeypatch):
    assert resolve_device("cpu") == "cpu"
    monkeypatch.setitem(sys.modules, "torch", fake_torch(0))
    assert resolve_device("auto") == "cpu"
    with pytest.raises(DeviceError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="Metal"):
        resolve_device("mps")
    monkeypatch.setitem(sys.modules, "torch", fake_torch(2))
    assert resolve_device("auto") == "cuda:0" and resolve_device("cuda") == "cuda:0"
    assert resolve_device("cuda:1") == "cuda:1"
    with pytest.raises(DeviceError, match=r"2 CUDA GPU\(s\)"):
        resolve_device("cuda:2")
    with pytest.raises(DeviceError, match="use auto, cpu"):
        resolve_device("gpu")


def test_a_backend_that_takes_a_device_gets_the_resolved_one(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", fake_torch(1))
    module = types.ModuleType("fs_devtoy")
    module.Model = lambda device: types.SimpleNamespace(device=device, name="devtoy")
    monkeypatch.setitem(sys.modules, "fs_devtoy", module)
    registry = Registry([Backend("depth", "devtoy", "fs_devtoy:Model", "x")])
    backends = Backends("auto", registry)
    assert backends.build(registry.get("depth", "devtoy")).device == "cuda:0"
    cpu_only = Backends("cpu", registry)
    assert cpu_only.build(registry.get("depth", "devtoy")).device == "cpu"


def test_a_renderer_follows_its_jobs_hrir_set():
    from foleyspace.hrtf import SphericalHeadConfig

    backends = Backends("cpu")
    plain, big_head = job(), job({"hrir:spherical-head": SphericalHeadConfig(head_radius_m=0.12)})
    a, b = backends.for_job(plain), backends.for_job(big_head)
    assert a.hrir_set is not b.hrir_set and b.hrir_set.config.head_radius_m == 0.12
    assert a.renderer.hrir_set is a.hrir_set and b.renderer.hrir_set is b.hrir_set
    assert backends.for_job(big_head).renderer is b.renderer


def test_a_backend_that_takes_the_job_is_built_per_job(monkeypatch, tmp_path):
    module = types.ModuleType("fs_monotoy")
    module.Source = lambda job: types.SimpleNamespace(name="toy", audio=job.audio)
    monkeypatch.setitem(sys.modules, "fs_monotoy", module)
    registry = Registry([Backend("mono", "toy", "fs_monotoy:Source", "x")])
    backends = Backends("cpu", registry)
    entry = registry.get("mono", "toy")
    assert backends.build(entry, job=job(audio=Path("/a1.wav"))).audio == Path("/a1.wav")
    assert backends.build(entry, job=job(audio=Path("/a2.wav"))).audio == Path("/a2.wav")


def test_every_stage_is_validated_with_the_spec():
    """An HRIR backend that cannot run here is refused at submit, naming the option that asked for it."""
    registry = Registry([b for b in default_registry()._backends.values() if b.kind != "hrir"] + [
        Backend("hrir", "sofa", "foleyspace.hrtf.sofa:SofaHrirSet", "x", requires=("sofar_not_here",), when="hrtf",
                extra="sofa"),
        Backend("hrir", "spherical-head", "foleyspace.hrtf.spherical_head:SphericalHeadHrirSet", "y", when="no_hrtf")])
    spec = {"video": "/m/clip.mov", "output_dir": "/stems", "options": {"hrtf": "/h/ku100.sofa"}}
    with pytest.raises(SpecError, match=r"'hrtf'.*sofa needs sofar_not_here \(pip install 'foleyspace\[sofa\]'\)") as exc:
        job_from_spec(spec, registry)
    assert exc.value.field == "hrtf"
    job_from_spec({**spec, "options": {}}, registry)


def test_renderer_options_belong_to_the_dsp_renderer():
    registry = Registry([*default_registry()._backends.values(),
                         Backend("renderer", "other", "foleyspace.render:DspRenderer", "another renderer")])
    spec = {"video": "/m/clip.mov", "output_dir": "/stems"}
    with pytest.raises(SpecError, match="'distance_delay'.*setting of the dsp renderer"):
        job_from_spec({**spec, "options": {"renderer": "other", "distance_delay": True}}, registry)
    assert job_from_spec({**spec, "options": {"renderer": "other"}}, registry).config.renderer == "other"


# ------------------------------------------------------------------------------ generated sound
def test_audio_generate_without_a_generator_is_one_line(clip_factory, tmp_path):
    clip = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))
    done = run_cli("-q", "spatialize", clip, "-o", tmp_path / "g.wav", "--audio", "generate",
                   "--localizer", "motion", "--depth", "box-scale")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "mmaudio" in lines[0] and "--audio" in lines[0], done.stderr
    assert not (tmp_path / "g.wav").exists()


def test_a_mono_generator_plug_in_makes_the_sound(toy, clip_factory, tmp_path):
    """A ``foleyspace.mono_sources`` entry point: chosen for --audio generate, given the job's label."""
    clip = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96), audio=None)  # no sound of its own
    out = tmp_path / "g.wav"
    done = run_cli("-q", "spatialize", clip, "-o", out, "--audio", "generate", "--label", "bell",
                   "--localizer", "motion", "--depth", "box-scale")
    assert done.returncode == 0, done.stderr
    stereo, rate = sf.read(str(out), always_2d=True)
    import numpy as np

    peak_hz = np.argmax(np.abs(np.fft.rfft(stereo[:, 0]))) * rate / len(stereo)
    assert peak_hz == pytest.approx(400, abs=2)  # 100 Hz per letter of "bell"
    meta = sidecar_of(out)
    assert meta["backends"]["mono"]["name"] == "toy-tone" and meta["source"]["audio"] == "generated"
    spec = job_from_spec({"video": str(clip), "output_dir": str(tmp_path), "audio": "generate"})
    assert spec.generate_audio and spec.audio is None
    from foleyspace.jobspec import spec_from_job

    assert spec_from_job(spec)["audio"] == "generate"
