"""Clips are analysed as a player shows them: the display matrix (phone footage: rotations and
mirrors) and the sample aspect ratio (anamorphic footage), on real encoded clips.

Each clip is made from the pictures a viewer should see (``foleyspace.synth`` draws them, the
object on a known path); the stored frames are those pictures turned back (and squeezed by the
sample aspect ratio) and the container carries the matrix / SAR that undoes it, as a phone or an
anamorphic camera writes them.
"""

from __future__ import annotations

import json
import logging
import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from foleyspace.cli import main
from foleyspace.frames import FrameForm, FrameSource
from foleyspace.synth import encode_audio, SynthSpec, _texture, engine_sound, object_position, render_frame
from foleyspace.video import display_orientation, display_size, iter_frames, probe

FPS = 25
ONE = 1 << 16  # 1.0 in the display matrix's 16.16 fixed point


def display_matrix(rotation: int, mirror: bool) -> list[int]:
    """The container display matrix (as in an MP4 ``tkhd`` box) that shows a stored picture turned
    ``rotation``° clockwise, then mirrored left↔right: a phone held upright writes
    ``display_matrix(90, False)`` = ``[0, 1, 0, -1, 0, 0, 0, 0, 1]`` (ffprobe: "rotation of -90°")."""
    cos, sin = round(math.cos(math.radians(rotation))), round(math.sin(math.radians(rotation)))
    a, b, c, d = cos, sin, -sin, cos  # shown (x', y') = (a·x + c·y, b·x + d·y), y down
    if mirror:
        a, c = -a, -c
    return [a * ONE, b * ONE, 0, c * ONE, d * ONE, 0, 0, 0, 1 << 30]


def stored_picture(shown: np.ndarray, rotation: int, mirror: bool, sar: Fraction) -> np.ndarray:
    """What the camera stores for the picture ``shown``: unmirrored, turned back, squeezed by ``sar``."""
    picture = shown[:, ::-1] if mirror else shown
    picture = np.rot90(picture, rotation // 90)  # counter-clockwise: undoes the clockwise turn
    h, w = picture.shape[:2]
    if sar > 1:
        w = int(round(w / sar))
    elif sar < 1:
        h = int(round(h * sar))
    return cv2.resize(np.ascontiguousarray(picture), (w, h), interpolation=cv2.INTER_AREA)


def encode(path: Path, spec: SynthSpec, rotation: int = 0, mirror: bool = False, sar: Fraction = Fraction(1),
           ) -> tuple[Path, list[np.ndarray]]:
    """Encode the clip whose *shown* pictures are ``spec``'s (H.264 + AAC in MP4) with a display
    matrix and a sample aspect ratio; return the file and the shown pictures."""
    w, h = spec.size
    rng = np.random.default_rng(spec.seed)
    background = (_texture(rng, h, w * 4, 8) * 0.6).astype(np.uint8)
    r = max(2, int(spec.radius * h))
    sprite = np.clip(_texture(rng, 2 * r + 1, 2 * r + 1, 3).astype(int) // 2 + 128, 0, 255).astype(np.uint8)
    n = int(round(spec.duration_s * spec.fps))
    shown = [render_frame(spec, i / spec.fps, background, sprite) for i in range(n)]
    stored = [stored_picture(p, rotation, mirror, sar) for p in shown]
    with av.open(str(path), mode="w") as container:
        vstream = container.add_stream("libx264", rate=spec.fps)
        vstream.height, vstream.width = stored[0].shape[:2]
        vstream.pix_fmt = "yuv420p"
        vstream.options = {"preset": "ultrafast", "crf": "12"}
        if sar != 1:
            vstream.codec_context.sample_aspect_ratio = sar
        if rotation or mirror:
            vstream.set_display_matrix(display_matrix(rotation, mirror))
        astream = container.add_stream("aac", rate=48000, layout="stereo")
        for i, picture in enumerate(stored):
            frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, spec.fps)
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        encode_audio(container, astream, np.repeat(engine_sound(spec.duration_s, 48000, spec.seed)[None, :], 2, axis=0), 48000)
    return path, shown


def object_centres(frames: list[np.ndarray]) -> np.ndarray:
    """``(n, 2)`` centre ``(x, y)`` in pixels of the moving object: where a frame differs from the
    clip's median picture (the static background)."""
    stack = np.stack([f.astype(np.int16) for f in frames])
    if stack.ndim == 3:
        stack = stack[..., None]
    diff = np.abs(stack - np.median(stack, axis=0)).sum(axis=-1)
    out = []
    for d in diff:
        ys, xs = np.nonzero(d > 40 * stack.shape[-1])
        out.append((xs.mean() + 0.5, ys.mean() + 0.5))
    return np.array(out)


def true_centres(spec: SynthSpec, n: int, size: tuple[int, int]) -> np.ndarray:
    """The object's shown centre in pixels of a picture of ``size`` at the analysis frames."""
    return np.array([[u * size[0], v * size[1]] for u, v in (object_position(spec, k / FPS) for k in range(n))])


def shown_centres(shown: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """:func:`object_centres` of the pictures as shown, in pixels of a picture of ``size`` (the
    same measure on both sides, so its own bias cancels)."""
    h, w = shown[0].shape[:2]
    return object_centres(shown) * [size[0] / w, size[1] / h]


# (rotation clockwise, mirror, sample aspect ratio, the shown size (w, h))
CASES = {
    "rotate90": (90, False, Fraction(1), (180, 320)),
    "rotate180": (180, False, Fraction(1), (320, 180)),
    "rotate270": (270, False, Fraction(1), (180, 320)),
    "mirror": (0, True, Fraction(1), (320, 180)),
    "rotate90-mirror": (90, True, Fraction(1), (180, 320)),
    "anamorphic-wide": (0, False, Fraction(4, 3), (320, 180)),  # stored 240×180
    "anamorphic-tall": (0, False, Fraction(3, 4), (320, 240)),  # stored 320×180
    "rotate90-anamorphic": (90, False, Fraction(4, 3), (180, 320)),  # stored 240×180
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """``make(case, motion) -> (path, shown pictures, spec)``, each encoded once; the object is
    small enough to stay inside a portrait picture."""
    folder = tmp_path_factory.mktemp("oriented")
    cache: dict[tuple[str, str], tuple[Path, list[np.ndarray], SynthSpec]] = {}

    def make(case: str, motion: str = "cross_lr"):
        if (case, motion) not in cache:
            rotation, mirror, sar, size = CASES[case]
            spec = SynthSpec(duration_s=2.0, fps=FPS, size=size, motion=motion, radius=0.06)
            path, shown = encode(folder / f"{case}-{motion}.mp4", spec, rotation, mirror, sar)
            cache[case, motion] = (path, shown, spec)
        return cache[case, motion]

    return make


@pytest.mark.parametrize("case", list(CASES))
def test_probe_reports_the_shown_size_and_how_it_is_turned(clips, case):
    rotation, mirror, sar, size = CASES[case]
    path, _, _ = clips(case)
    info = probe(path)
    assert (info.width, info.height) == size
    assert (info.rotation, info.mirror, info.sample_aspect) == (rotation, mirror, sar)
    with av.open(str(path)) as container:  # what FFmpeg itself reads: the stored size and the matrix
        stream = container.streams.video[0]
        assert (info.coded_width, info.coded_height) == (stream.codec_context.width, stream.codec_context.height)
        assert stream.sample_aspect_ratio == (sar if sar != 1 else None)
        frame = next(container.decode(stream))
        if not mirror:  # av_display_rotation_get: counter-clockwise degrees
            assert frame.rotation % 360 == -rotation % 360


@pytest.mark.parametrize("case", list(CASES))
def test_frames_come_out_as_shown(clips, case):
    path, shown, spec = clips(case)
    size = CASES[case][3]
    frames = list(iter_frames(path, 0.0, 2.0, FPS, long_side=None))
    assert frames[0].shape == (size[1], size[0], 3)
    # the picture itself: close to what was shown (compression and the SAR squeeze blur it a little)
    err = np.mean([np.abs(f.astype(int) - s.astype(int)).mean() for f, s in zip(frames[::10], shown[::10])])
    assert err < (12 if CASES[case][2] != 1 else 6), err
    assert np.abs(object_centres(frames) - shown_centres(shown, size)).max() < 1.5
    # every form of one pass: grey and RGB at other long sides, the same picture scaled
    source = FrameSource(path, 0.0, 2.0, FPS, size)
    grey_form, rgb_form = FrameForm("grey", 160), FrameForm("rgb", 240)

    class Keep:
        frames: list[np.ndarray] = []

        def push(self, first_index, batch):
            self.frames.extend(batch)

    keep = Keep()
    grey = list(source.frames(grey_form, taps=[(rgb_form, keep)]))
    for form, got in [(grey_form, grey), (rgb_form, keep.frames)]:
        w, h = source.size_of(form)
        assert got[0].shape[:2] == (h, w) and max(w, h) == form.long_side
        assert np.abs(object_centres(got) - shown_centres(shown, (w, h))).max() < 1.5


def test_display_matrices_read_as_players_turn_them(caplog):
    assert display_orientation(None) == (0, False)
    assert display_orientation([ONE, 0, 0, 0, ONE, 0, 0, 0, 1 << 30]) == (0, False)
    assert display_orientation([0, ONE, 0, -ONE, 0, 0, 0, 0, 1 << 30]) == (90, False)  # phone upright: rotate=90
    assert display_orientation([-ONE, 0, 0, 0, -ONE, 0, 0, 0, 1 << 30]) == (180, False)
    assert display_orientation([0, -ONE, 0, ONE, 0, 0, 0, 0, 1 << 30]) == (270, False)
    assert display_orientation([-ONE, 0, 0, 0, ONE, 0, 0, 0, 1 << 30]) == (0, True)  # ffmpeg: hflip
    assert display_orientation([ONE, 0, 0, 0, -ONE, 0, 0, 0, 1 << 30]) == (180, True)  # ffmpeg: vflip
    assert display_orientation([0, ONE, 0, ONE, 0, 0, 0, 0, 1 << 30]) == (90, True)  # ffmpeg: transpose=cclock_flip
    for rotation in (0, 90, 180, 270):
        for mirror in (False, True):
            assert display_orientation(display_matrix(rotation, mirror)) == (rotation, mirror)
    tilt = math.radians(30)  # not a right angle: the nearest one, with a warning
    with caplog.at_level(logging.WARNING, logger="foleyspace.video"):
        assert display_orientation([math.cos(tilt) * ONE, math.sin(tilt) * ONE, 0, -math.sin(tilt) * ONE,
                                    math.cos(tilt) * ONE, 0, 0, 0, 1 << 30]) == (0, False)
    assert "30.0°" in caplog.text


def test_display_size_stretches_the_pixels_then_turns():
    assert display_size(720, 576, Fraction(16, 15), 0) == (768, 576)  # PAL 4:3
    assert display_size(720, 576, Fraction(64, 45), 0) == (1024, 576)  # PAL 16:9
    assert display_size(1440, 1080, Fraction(4, 3), 90) == (1080, 1920)  # HDV, turned
    assert display_size(320, 180, Fraction(3, 4), 0) == (320, 240)  # tall pixels: the height grows
    assert display_size(320, 180, None, 270) == (180, 320)


def spatialize(path: Path, out: Path, *extra: str) -> dict:
    assert main(["spatialize", str(path), "-o", str(out), "-q", *extra]) == 0
    return json.loads(out.with_suffix(".json").read_text())


def test_phone_clip_moving_up_rises_instead_of_panning(clips, tmp_path):
    """Stored sideways (``rotate=90``), the object crosses the stored picture right→left; shown
    upright it rises from the bottom to the top in the middle of the picture."""
    spec = SynthSpec(duration_s=2.0, fps=FPS, size=(320, 180), motion="cross_rl")
    stored, _ = encode(tmp_path / "sideways.mp4", spec)  # the stored pictures, shown as stored
    with av.open(str(stored)) as c:
        pictures = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    phone = tmp_path / "phone.mp4"
    upright = tmp_path / "upright.mp4"
    for target, rotation in [(phone, 90), (upright, 0)]:
        with av.open(str(target), mode="w") as container:  # the same pictures; the phone's turned for display
            vstream = container.add_stream("libx264", rate=FPS)
            shown = pictures if rotation else [np.ascontiguousarray(np.rot90(p, -1)) for p in pictures]
            vstream.height, vstream.width = shown[0].shape[:2]
            vstream.pix_fmt, vstream.options = "yuv420p", {"preset": "ultrafast", "crf": "12"}
            if rotation:
                vstream.set_display_matrix(display_matrix(rotation, False))
            for i, p in enumerate(shown):
                frame = av.VideoFrame.from_ndarray(p, format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, FPS)
                for packet in vstream.encode(frame):
                    container.mux(packet)
            for packet in vstream.encode():
                container.mux(packet)
    meta = spatialize(phone, tmp_path / "phone.wav", "--audio", str(stored))
    rows = [r for r in meta["frames"] if r["box"] is not None]
    assert (meta["source"]["width"], meta["source"]["height"]) == (180, 320)
    az = np.array([r["azimuth_deg"] for r in rows])
    el = np.array([r["elevation_deg"] for r in rows])
    assert np.ptp(az) < 10.0, az  # no left/right sweep
    assert el[-5:].mean() - el[:5].mean() > 20.0, el  # it rises
    # the sidecar's pixels are shown pixels: the centre stays mid-width and climbs the 320 px height
    u = np.array([r["u_px"] for r in rows])
    v = np.array([r["v_px"] for r in rows])
    assert np.all(np.abs(u - 90) < 12), u
    assert v[:3].mean() > 0.75 * 320 and v[-3:].mean() < 0.25 * 320, v
    for r in rows:
        x, y, w, h = r["box"]
        assert -1 <= x and x + w <= 181 and -1 <= y and y + h <= 321
    # the same as the clip stored upright
    ref = spatialize(upright, tmp_path / "upright.wav", "--audio", str(stored))
    ref_rows = {r["t"]: r for r in ref["frames"] if r["box"] is not None}
    common = [r for r in rows if r["t"] in ref_rows]
    assert len(common) > 0.8 * len(rows)
    for key, tol in [("azimuth_deg", 3.0), ("elevation_deg", 3.0), ("u_px", 4.0), ("v_px", 4.0)]:
        assert np.median([abs(r[key] - ref_rows[r["t"]][key]) for r in common]) < tol, key


def test_box_and_sidecar_in_shown_pixels_on_turned_and_anamorphic_clips(clips, tmp_path):
    """``--box`` is drawn on the picture as shown; the tracker follows the object there."""
    for case in ("rotate270", "anamorphic-wide"):
        path, _, spec = clips(case, "bob_right")
        size = CASES[case][3]
        u, v = object_position(spec, 0.0)
        r = spec.radius * size[1]  # a disc as shown (stored, the anamorphic one is an ellipse)
        box = f"{u * size[0] - r:.1f},{v * size[1] - r:.1f},{2 * r:.1f},{2 * r:.1f}"
        meta = spatialize(path, tmp_path / f"{case}.wav", "--box", box)
        assert (meta["source"]["width"], meta["source"]["height"]) == size
        rows = meta["frames"]
        centres = np.array([[row["u_px"], row["v_px"]] for row in rows])
        truth = true_centres(spec, len(rows), size)
        assert np.median(np.abs(centres - truth)) < 4.0, case
