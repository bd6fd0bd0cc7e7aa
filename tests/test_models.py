"""The model backends: YOLO-World, Depth Anything V2, the model store, and their offline behaviour.

Real model code runs end to end on random-weight models built from the published configs and
saved in the real formats (tests/random_models.py); nothing touches the network.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from foleyspace.errors import FoleySpaceError
from foleyspace.localize.association import AssociationConfig, bridge, follow_one, iou
from foleyspace.localize.base import BoxTrack, LocalizeRequest
from foleyspace.models import ModelError
from random_models import fill_text_embeddings, make_depth_anything, make_yolo_world

pytest.importorskip("ultralytics")
pytest.importorskip("transformers")

SMALL_REPO = "depth-anything/Depth-Anything-V2-Small-hf"
METRIC_REPO = "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf"


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """A models folder as a user would have it after `foleyspace models fetch all` — with random weights."""
    root = tmp_path_factory.mktemp("models")
    make_yolo_world(root)
    make_depth_anything(root / SMALL_REPO)
    make_depth_anything(root / METRIC_REPO, metric=True)
    from foleyspace.localize.vocabulary import load_vocabulary

    fill_text_embeddings(root, load_vocabulary("coco") + ["dog", "puppy", "engine", "bell"])
    return root


@pytest.fixture(scope="session")
def silent_models_dir(tmp_path_factory) -> Path:
    """YOLO-World whose heads keep ultralytics' initial bias: it detects nothing."""
    root = tmp_path_factory.mktemp("silent-models")
    make_yolo_world(root, head_bias=-10.0)
    fill_text_embeddings(root, ["dog"])
    return root


@pytest.fixture
def use_models(models_dir, monkeypatch) -> Path:
    monkeypatch.setenv("FOLEYSPACE_MODELS", str(models_dir))
    return models_dir


@pytest.fixture(scope="module")
def clip(clip_factory) -> Path:
    return clip_factory(motion="cross_lr", duration_s=2.0, size=(320, 180))


def cli(*args: str, models: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "FOLEYSPACE_MODELS": str(models)}
    return subprocess.run([sys.executable, "-m", "foleyspace", "-q", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)


# ------------------------------------------------------------------------- association
def test_follow_one_keeps_one_of_two_objects():
    """Two dogs: the one seen longer and surer is followed; the sound never jumps to the other."""
    frames = list(range(10))
    left = [np.array([[10.0 + i, 50, 20, 20, 0.9]]) for i in frames]
    right = [np.array([[200.0 - i, 50, 20, 20, 0.6]]) for i in frames]
    dets = [np.vstack([a, b]) if i % 2 else np.vstack([b, a]) for i, (a, b) in enumerate(zip(left, right))]
    boxes, scores = follow_one(frames, dets, 10)
    assert np.allclose(boxes[:, 0], [10.0 + i for i in frames]) and np.allclose(scores, 0.9)


def test_follow_one_through_crossing_paths():
    """Two objects cross; constant-velocity prediction keeps the identity (the sure one goes right)."""
    frames = list(range(21))
    a = [np.array([5.0 * i, 40, 20, 20, 0.8]) for i in frames]  # left → right
    b = [np.array([100.0 - 5.0 * i, 40, 20, 20, 0.5]) for i in frames]  # right → left
    boxes, _ = follow_one(frames, [np.vstack([x, y]) for x, y in zip(a, b)], 21)
    assert np.allclose(boxes[:, 0], [5.0 * i for i in frames])


def test_a_missed_frame_is_bridged_and_a_long_gap_is_not():
    frames = [0, 1, 2, 4, 5, 6, 20, 21]  # frame 3 missed, 7–19 gone
    dets = [np.array([[float(f), 0, 10, 10, 0.7]]) for f in frames]
    boxes, scores = follow_one(frames, dets, 22)
    assert np.isnan(boxes[3]).all()
    filled, fscores = bridge(boxes, scores, max_gap=2)
    assert filled[3, 0] == pytest.approx(3.0) and fscores[3] == pytest.approx(0.7)
    assert np.isnan(filled[10]).all()
    assert iou(np.array([0, 0, 10, 10.0]), np.array([5, 0, 10, 10.0])) == pytest.approx(1 / 3)


def test_a_jump_starts_another_track_which_fills_in_only_after_the_first_ends():
    from foleyspace.localize.association import link_tracks

    frames = list(range(6))
    dets = [np.array([[0.0, 0, 10, 10, 0.9]]) for _ in range(4)] + [np.array([[300.0, 0, 10, 10, 0.9]])] * 2
    assert [t.frames for t in link_tracks(frames, dets, AssociationConfig())] == [[0, 1, 2, 3], [4, 5]]
    boxes, _ = follow_one(frames, dets, 6)
    assert np.allclose(boxes[:, 0], [0, 0, 0, 0, 300, 300])
    # with both visible at once, the other one never takes over frames the first holds
    both = [np.array([[0.0, 0, 10, 10, 0.9], [300.0, 0, 10, 10, 0.5]]) for _ in range(6)]
    assert np.allclose(follow_one(frames, both, 6)[0][:, 0], 0)


# ------------------------------------------------------------------- the YOLO-World localizer
def _localizer(**settings):
    from foleyspace.localize.yolo_world import YoloWorldConfig, YoloWorldLocalizer

    return YoloWorldLocalizer(YoloWorldConfig(**settings))


def _frames(n: int, h: int = 90, w: int = 160):
    return (np.full((h, w, 3), i % 255, np.uint8) for i in range(n))


def test_offline_vocabulary_picks_the_best_scoring_label(use_models, tmp_path):
    vocab = tmp_path / "v.txt"
    vocab.write_text("# test vocabulary\ndog\nengine\nbell\n")
    loc = _localizer(vocab=str(vocab))
    calls = []

    def detect(frames, agnostic):  # controlled detector output: engine is surest overall
        calls.append(agnostic)
        return [np.array([[10, 10, 20, 20, 0.4, 0], [50, 10, 20, 20, 0.7, 1], [90, 10, 20, 20, 0.2, 2]])
                for _ in frames]

    loc.detect = detect
    track = loc.localize(_frames(6), LocalizeRequest(6))
    assert track.label == "engine" and calls == [False]
    assert np.allclose(track.boxes[:, 0], 50)
    assert track.details["mode"] == f"vocabulary {vocab}" and track.details["score"] == pytest.approx(0.7)
    assert [r["label"] for r in track.details["runners_up"]] == ["dog", "bell"]


def test_a_label_with_synonyms_is_one_object(use_models):
    loc = _localizer()
    seen = []

    def detect(frames, agnostic):
        seen.append((loc.model.model[-1].nc, agnostic))
        return [np.array([[30, 20, 10, 10, 0.8, 1]]) for _ in frames]

    loc.detect = detect
    track = loc.localize(_frames(3), LocalizeRequest(3, label="dog, puppy"))
    assert seen == [(2, True)] and track.label == "dog, puppy" and track.details["mode"] == "label"
    assert tuple(loc.model.txt_feats.shape) == (1, 2, 512)


def test_detect_every_k_detects_those_frames_and_the_last_and_interpolates(use_models):
    loc = _localizer(detect_every=4, batch=2)
    detected = []

    def detect(frames, agnostic):
        out = []
        for f in frames:
            i = int(f[0, 0, 0])
            detected.append(i)
            out.append(np.array([[10.0 * i, 0, 10, 10, 0.9, 0]]))
        return out

    loc.detect = detect
    track = loc.localize(_frames(11), LocalizeRequest(11, label="dog"))
    assert detected == [0, 4, 8, 10]
    assert np.allclose(track.boxes[:, 0], 10.0 * np.arange(11))  # linear between detections


def test_real_network_detects_on_frames(use_models):
    """The real YOLO-World forward pass and NMS on random weights: boxes inside the frame, in its pixels."""
    loc = _localizer()
    loc._set_classes(["dog", "bell"])
    out = loc.detect([np.random.default_rng(0).integers(0, 255, (180, 320, 3), np.uint8)] * 2, agnostic=False)
    assert len(out) == 2 and out[0].shape[1] == 6 and len(out[0]) > 0
    assert (out[0][:, 0] >= -1).all() and (out[0][:, 0] + out[0][:, 2] <= 321).all()
    assert set(np.unique(out[0][:, 5])) <= {0.0, 1.0}


# ---------------------------------------------------------------------------- depth
def test_inverse_depth_becomes_depth_and_the_sky_stays_finite():
    from foleyspace.depth_anything import inverse_to_depth

    disparity = np.array([[10.0, 5.0], [1.0, 0.0]])
    depth = inverse_to_depth(disparity)
    assert depth[0, 0] < depth[0, 1] < depth[1, 0] < depth[1, 1] < np.inf
    assert depth[0, 0] == pytest.approx(0.1)
    assert np.isnan(inverse_to_depth(np.zeros((4, 4)))).all()


def test_box_median_reads_the_inner_half_of_the_box():
    from foleyspace.depth_anything import box_median

    depth_map = np.full((50, 100), 9.0, np.float32)  # a map at half the frame's resolution
    depth_map[10:30, 20:40] = 2.0  # the object, frame pixels (40..80, 20..60)
    depth_map[10:12, 20:40] = 100.0  # an edge outlier the inner half ignores
    assert box_median(depth_map, np.array([40, 20, 40, 40.0]), (200, 100), 0.5) == pytest.approx(2.0)
    assert box_median(depth_map, np.array([0, 80, 20, 20.0]), (200, 100), 0.5) == pytest.approx(9.0)


def test_depth_every_k_is_interpolated_along_the_boxes(use_models):
    from foleyspace.depth_anything import DepthAnythingEstimator, DepthAnythingSettings

    est = DepthAnythingEstimator(DepthAnythingSettings(every=4, batch=2))
    assert not est.metric
    est.maps = lambda frames: [np.full((9, 16), float(f[0, 0, 0]), np.float32) for f in frames]
    run = est.start(10)
    run.push(0, np.stack([np.full((90, 160, 3), i, np.uint8) for i in range(6)]))
    run.push(6, np.stack([np.full((90, 160, 3), i, np.uint8) for i in range(6, 10)]))
    boxes = np.tile([40.0, 20, 30, 30], (10, 1))
    boxes[7] = np.nan
    depth = run.finish(BoxTrack(boxes, np.ones(10)))
    assert sorted(run.maps) == [0, 4, 8, 9]
    assert np.isnan(depth[7]) and np.allclose(depth[[0, 2, 4, 8, 9]], [0, 2, 4, 8, 9])


def test_metric_depth_is_used_in_metres(use_models):
    from foleyspace.config import TrajectoryConfig
    from foleyspace.depth_anything import DepthAnythingEstimator, DepthAnythingSettings
    from foleyspace.trajectory import source_path

    assert DepthAnythingEstimator(DepthAnythingSettings(model="metric-indoor-small")).metric
    centers = np.tile([160.0, 90.0], (5, 1))
    metres = np.array([0.2, 2.0, 3.0, 4.0, 30.0])
    cfg = TrajectoryConfig()
    path = source_path(centers, metres, np.ones(5), 320, 180, 25.0, cfg, metric=True)
    assert np.allclose(path.d_hat, [cfg.d_near_m, 2.0, 3.0, 4.0, cfg.d_far_m])
    relative = source_path(centers, metres, np.ones(5), 320, 180, 25.0, cfg)
    assert relative.d_hat[1] != pytest.approx(2.0)  # eq. 5 min-max instead


def test_real_depth_network_gives_maps(use_models):
    from foleyspace.depth_anything import DepthAnythingEstimator, DepthAnythingSettings

    est = DepthAnythingEstimator(DepthAnythingSettings(input_size=126, keep_long_side=64))
    maps = est.maps([np.random.default_rng(1).integers(0, 255, (180, 320, 3), np.uint8)] * 3)
    assert len(maps) == 3 and maps[0].dtype == np.float32 and max(maps[0].shape) == 64
    finite = np.isfinite(maps[0])
    assert finite.all() or not finite.any()  # a map, or none at all (a random head may output all zeros)
    assert (maps[0][finite] > 0).all()


# ------------------------------------------------------------------------- the model store
def test_models_dir_and_where_weights_are_found(tmp_path, monkeypatch):
    from foleyspace import models

    monkeypatch.setenv("FOLEYSPACE_MODELS", str(tmp_path / "m"))
    assert models.models_dir() == tmp_path / "m"
    monkeypatch.delenv("FOLEYSPACE_MODELS")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    if sys.platform.startswith("linux"):
        assert models.models_dir() == tmp_path / "data" / "foleyspace" / "models"
    # ultralytics' own weights folder, from its settings file
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ycfg"))
    (tmp_path / "ycfg").mkdir()
    (tmp_path / "ycfg" / "settings.json").write_text(json.dumps({"weights_dir": str(tmp_path / "w")}))
    assert models.find_yolo_weights() is None
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "yolov8s-worldv2.pt").write_bytes(b"x")
    assert models.find_yolo_weights() == tmp_path / "w" / "yolov8s-worldv2.pt"
    # the Hugging Face cache layout
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    snap = tmp_path / "hub" / "models--depth-anything--Depth-Anything-V2-Base-hf" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    assert models.find_hf_model("depth-anything/Depth-Anything-V2-Base-hf") is None  # no weights yet
    (snap / "model.safetensors").write_bytes(b"x")
    assert models.find_hf_model("depth-anything/Depth-Anything-V2-Base-hf") == snap


@pytest.mark.parametrize("name, words", [("yolo-world", "yolov8s-worldv2.pt"),
                                         ("depth-anything-small", "Depth-Anything-V2-Small-hf"),
                                         ("nonsense", "unknown model")])
def test_fetch_offline_says_what_to_place_where(tmp_path, name, words):
    run = cli("models", "fetch", name, models=tmp_path / "empty", timeout=120)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and words in lines[0], run.stderr
    if name != "nonsense":
        assert str(tmp_path / "empty") in lines[0]


def test_models_list(models_dir):
    run = cli("models", "list", "--json", models=models_dir)
    data = json.loads(run.stdout)
    present = {m["name"]: m for m in data["models"]}
    assert present["yolo-world"]["present"] and present["yolo-world"]["size_bytes"] > 1e6
    assert present["depth-anything-small"]["present"] and not present["depth-anything-large"]["present"]
    assert present["text-embeddings"]["present"]


def test_text_embeddings_cache(tmp_path):
    from foleyspace.localize.text_embeddings import TextEmbeddings

    store = TextEmbeddings(tmp_path)
    store.put(["Dog"], np.ones((1, 512)))
    again = TextEmbeddings(tmp_path)
    assert again.cached(["dog", " DOG ", "cat"]) == ["dog", " DOG "]
    assert np.linalg.norm(again.get(["dog"])[0]) == pytest.approx(1.0)
    with pytest.raises(ModelError, match="'cat' is not cached .* CLIP is not installed"):
        again.get(["cat"])
    store.path.write_bytes(b"not an npz")
    with pytest.raises(ModelError, match="unreadable"):
        TextEmbeddings(tmp_path).get(["dog"])


# ---------------------------------------------------------------- choosing and refusing
def test_auto_falls_back_with_one_warning_when_weights_are_missing(clip, tmp_path):
    run = cli("spatialize", str(clip), "-o", str(tmp_path / "s.wav"), models=tmp_path / "empty")
    assert run.returncode == 0, run.stderr
    warnings = [line for line in run.stderr.splitlines() if "WARNING" in line and "yolo-world" in line]
    assert len(warnings) == 1 and "foleyspace models fetch yolo-world" in warnings[0], run.stderr
    side = json.loads((tmp_path / "s.json").read_text())
    assert side["analysis"]["localizer"] == "motion" and side["analysis"]["depth"] == "box-scale"


@pytest.mark.parametrize("args, words", [
    (["--localizer", "yolo-world"], "models fetch yolo-world"),
    (["--localizer", "motion", "--depth", "depth-anything", "--depth-model", "large"], "Depth-Anything-V2-Large-hf"),
])
def test_a_named_model_that_is_missing_is_one_line_and_no_stem(clip, tmp_path, args, words):
    run = cli("spatialize", str(clip), "-o", str(tmp_path / "s.wav"), *args, models=tmp_path / "empty")
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1 and words in lines[0], run.stderr
    assert not (tmp_path / "s.wav").exists()


def test_bad_model_inputs_are_one_line_errors(clip, models_dir, silent_models_dir, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "yolov8s-worldv2.pt").write_bytes(b"\x80\x04 not a checkpoint")
    cases = [
        (broken, ["--localizer", "yolo-world", "--label", "dog"], "not a readable YOLO-World checkpoint"),
        (models_dir, ["--localizer", "yolo-world", "--vocab", "klingon"], "unknown vocabulary"),
        (models_dir, ["--localizer", "yolo-world", "--label", "zebra crossing"], "not cached"),
        (silent_models_dir, ["--localizer", "yolo-world", "--label", "dog"], "no 'dog' was detected"),
        (models_dir, ["--localizer", "motion", "--vocab", "coco"], "setting of the yolo-world localizer"),
    ]
    for models, args, words in cases:
        out = tmp_path / "s.wav"
        run = cli("spatialize", str(clip), "-o", str(out), *args, models=models, timeout=120)
        lines = [line for line in run.stderr.strip().splitlines() if ": WARNING: " not in line]  # auto's fallbacks
        assert run.returncode == 2 and len(lines) == 1 and words in lines[0], (args, run.stderr)
        assert "Traceback" not in run.stderr and not out.exists() and not list(tmp_path.glob(".s.wav*"))


# ------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("scheme", ["fine", "coarse"])
def test_cli_end_to_end_with_both_models(clip, models_dir, tmp_path, scheme):
    out = tmp_path / "s.wav"
    run = cli("spatialize", str(clip), "-o", str(out), "--scheme", scheme, "--detect-every", "5",
              "--localizer", "yolo-world", "--depth", "depth-anything", models=models_dir)
    assert run.returncode == 0, run.stderr
    data, rate = sf.read(out, always_2d=True)
    assert rate == 48000 and data.shape == (2 * 48000, 2) and np.isfinite(data).all() and np.abs(data).max() > 0
    side = json.loads(out.with_suffix(".json").read_text())
    analysis = side["analysis"]
    assert analysis["localizer"] == "yolo-world" and analysis["depth"] == "depth-anything"
    choice = analysis["label_choice"]
    assert choice["mode"] == "vocabulary coco" and choice["label"] in open(
        Path(__file__).parents[1] / "foleyspace" / "vocab" / "coco.txt").read()
    assert side["backends"]["depth"]["model"] == SMALL_REPO and side["backends"]["depth"]["metric"] is False
    assert all(np.isfinite(r["azimuth_deg"]) for r in side["frames"])


def test_server_keeps_models_loaded_between_jobs(clip, models_dir, tmp_path, monkeypatch):
    from serverproc import ServerProcess

    import shutil

    monkeypatch.setenv("FOLEYSPACE_MODELS", str(models_dir))
    video = Path(shutil.copy(clip, tmp_path / "clip.mp4"))
    server = ServerProcess(tmp_path / "home", tmp_path, workers=1).start()
    try:
        client = server.client()
        assert client.hello()["models_loaded"] == [{"worker": 0, "models": []}]
        spec = {"video": str(video), "output_dir": str(tmp_path), "options": {
            "localizer": "yolo-world", "depth": "depth-anything", "label": "dog", "detect_every": 5}}
        for name in ("a.wav", "b.wav"):
            final = client.wait(client.submit({**spec, "name": name}), timeout=240)
            assert final["state"] == "done", final
        loaded = client.hello()["models_loaded"][0]["models"]
        assert len(loaded) == 2 and any("yolo-world" in m for m in loaded) and any(SMALL_REPO in m for m in loaded)
        capabilities = {b["name"]: b for b in client.hello()["capabilities"]["backends"]["localizer"]}
        assert capabilities["yolo-world"]["available"]
        client.close()
    finally:
        server.stop()


def test_a_vocabulary_file_outside_the_servers_roots_is_refused(clip, models_dir, tmp_path, tmp_path_factory,
                                                                monkeypatch):
    from serverproc import ServerProcess

    outside = tmp_path_factory.mktemp("elsewhere") / "labels.txt"
    outside.write_text("dog\n")
    monkeypatch.setenv("FOLEYSPACE_MODELS", str(models_dir))
    import shutil

    work = tmp_path / "work"
    work.mkdir()
    video = Path(shutil.copy(clip, work / "clip.mp4"))
    server = ServerProcess(tmp_path / "home", work, workers=1).start()
    try:
        client = server.client()
        job = client.submit({"video": str(video), "output_dir": str(work), "options": {
            "localizer": "yolo-world", "vocab": str(outside)}})
        final = client.wait(job, timeout=120)
        assert final["state"] == "failed" and "model or vocabulary file" in final["error"]["message"], final
        client.close()
    finally:
        server.stop()


def test_auto_falls_back_when_the_label_is_never_detected(clip, silent_models_dir, tmp_path):
    out = tmp_path / "s.wav"
    run = cli("spatialize", str(clip), "-o", str(out), "--label", "dog", models=silent_models_dir)
    assert run.returncode == 0, run.stderr
    warned = [line for line in run.stderr.splitlines() if "no 'dog' was detected" in line]
    assert len(warned) == 1 and "using the motion localizer instead" in warned[0], run.stderr
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["analysis"]["localizer"] == "motion" and side["analysis"]["requested_label"] == "dog"


def test_depth_every_is_a_job_option(clip, models_dir, tmp_path):
    """--depth-every K reaches Depth Anything: the sidecar records it, and a bad value is one line."""
    out = tmp_path / "s.wav"
    run = cli("spatialize", str(clip), "-o", str(out), "--localizer", "motion", "--depth", "depth-anything",
              "--depth-every", "5", models=models_dir)
    assert run.returncode == 0, run.stderr
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["backends"]["depth"]["settings"]["every"] == 5
    run = cli("spatialize", str(clip), "-o", str(out), "--depth", "box-scale", "--depth-every", "5", models=models_dir)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and "--depth-every is a setting of the depth-anything depth" in lines[-1], run.stderr
    run = cli("spatialize", str(clip), "-o", str(out), "--depth-every", "0", models=models_dir)
    assert run.returncode == 2 and "--depth-every must be an integer from 1 to 250" in run.stderr.strip().splitlines()[-1]
