"""The preview: the clip with its binaural stem as the sound and the tracking drawn on the picture.

A preview is an MP4 to check a stem by eye and ear: the clip's range as the timeline plays it
(retimed clips in timeline order), H.264 video at the clip's frame rate and display size (scaled
to a long side of at most :data:`MAX_LONG_SIDE` px), and the stem as its only audio track,
losslessly (FLAC in MP4: the decoded audio equals the stem's samples exactly). On each frame the
tracked box is drawn in the colour of its state (:data:`STATE_COLOURS`), with the state word, the
azimuth, elevation and distance, and a left/right gauge of the azimuth.

Everything it draws comes from the sidecar, so a preview can be made from an existing stem and
sidecar without analysing the clip again (:func:`write_preview`); a job writes one with its
stem when asked (``Job.preview``; :func:`render_preview` into the job's temporary file).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from foleyspace import __version__
from foleyspace.errors import InputError, OutputError

#: The preview's name beside a stem: ``clip_binaural.wav`` → ``clip_binaural.preview.mp4``.
PREVIEW_SUFFIX = ".preview.mp4"
#: Longest side of the preview picture, pixels (smaller clips keep their size).
MAX_LONG_SIDE = 1280
#: Box and text colour of each frame state, RGB.
STATE_COLOURS: dict[str, tuple[int, int, int]] = {
    "tracked": (40, 230, 40),    # green: the localizer saw the object on this frame
    "predicted": (255, 170, 0),  # amber: interpolated or held between detections
    "lost": (255, 40, 40),       # red: the object was not found; the position is a guess
}
#: The MP4 ``comment`` tag that marks a preview as ours (a later run may replace it).
PREVIEW_TAG = f"FoleySpace {__version__} preview"
#: H.264 quality (x264 CRF) and speed of the preview.
CRF, PRESET = "20", "veryfast"
#: Longest piece of the stem read and encoded at once, samples (frames normally take less: 1920
#: at 25 fps and 48 kHz).
AUDIO_PIECE = 1 << 16
#: Reversed clips are decoded in windows of this many frames (then played backwards).
_REVERSE_WINDOW = 32

Progress = Callable[[str, float], None]


def default_preview_path(stem: str | Path) -> Path:
    """The preview beside a stem: ``<stem without .wav>.preview.mp4``."""
    return Path(stem).with_suffix(PREVIEW_SUFFIX)


def check_preview_target(target: str | Path, overwrite: bool = False) -> None:
    """Fail early, in one line, if the preview cannot be written at ``target``: not ``.mp4``, an
    unwritable folder, or an existing file FoleySpace did not write (unless ``overwrite``)."""
    from foleyspace.stem import check_replaceable, check_writable

    target = Path(target)
    if target.suffix.lower() != ".mp4":
        raise OutputError(f"{target}: the preview is an MP4 file; give a name ending in .mp4")
    check_writable(target)
    check_replaceable(target, overwrite)


def is_preview_fd(fd: int) -> bool:
    """Whether the open regular file ``fd`` is a preview FoleySpace wrote (its ``comment`` tag)."""
    import av

    try:
        with os.fdopen(os.dup(fd), "rb") as fh, av.open(fh, "r") as container:
            return str(container.metadata.get("comment", "")).startswith("FoleySpace")
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError):
        return False


# --- inputs -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stem:
    """A stem WAV's format, its samples left on disk: the file, its length in samples (per
    channel), its rate (Hz) and bit depth (16 or 24). :func:`stem_pieces` reads the samples."""

    path: Path
    n_samples: int
    rate: int
    bits: int


def read_stem(path: str | Path) -> Stem:
    """Check that ``path`` is a stereo 16- or 24-bit stem WAV and read its format (no samples)."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as fh:
            subtype, rate, channels, frames = fh.subtype, fh.samplerate, fh.channels, fh.frames
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise InputError(f"{path}: not a readable stem WAV ({exc})") from None
    bits = {"PCM_16": 16, "PCM_24": 24}.get(subtype)
    if bits is None:
        raise InputError(f"{path}: a {subtype} WAV; the preview carries 16- or 24-bit stems")
    if channels != 2:
        raise InputError(f"{path}: has {channels} channel(s); a stem is stereo")
    return Stem(Path(path), int(frames), int(rate), bits)


def stem_pieces(stem: Stem, ends: Iterable[int]) -> Generator[np.ndarray, None, None]:
    """The stem's samples exactly (integers, no float round trip) in consecutive pieces, each up
    to the next of the ascending sample indices ``ends`` (clipped to the stem; an end at or
    before the previous one gives an empty piece): ``(k, 2)`` interleaved, int32 for a 24-bit
    stem (left-justified: ``s << 8``, as FLAC's encoder takes it), int16 for a 16-bit one.
    The file stays open while the generator runs; memory holds one piece."""
    import soundfile as sf

    dtype = "int32" if stem.bits == 24 else "int16"
    done = 0
    with sf.SoundFile(str(stem.path)) as fh:
        for end in ends:
            want = max(0, min(int(end), stem.n_samples) - done)
            piece = fh.read(want, dtype=dtype, always_2d=True)
            if len(piece) != want:
                raise OSError(f"{stem.path}: the stem ended after {done + len(piece)} of {stem.n_samples} samples")
            done += want
            yield piece


def read_sidecar(stem: str | Path, sidecar: str | Path | None = None) -> dict[str, Any]:
    """The sidecar of ``stem`` (default: ``<stem>.json`` beside it), checked to be one."""
    from foleyspace.stem import SIDECAR_FORMAT

    path = Path(sidecar) if sidecar is not None else Path(stem).with_suffix(".json")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no sidecar beside the stem; the preview draws the trajectory the sidecar "
                         "holds — run spatialize (without --no-sidecar) first") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: the sidecar cannot be read ({exc})") from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if not isinstance(data, dict) or not str(data.get("format", "")).startswith(SIDECAR_FORMAT.split("/")[0] + "/"):
        raise InputError(f"{path}: not a FoleySpace sidecar")
    try:
        frames, source, analysis = data["frames"], data["source"], data["analysis"]
        float(source["start_s"]), float(source["end_s"]), float(source["fps"]), float(analysis["fps"])
        int(source["width"]), int(source["height"]), int(data["stem"]["samples"]), int(data["stem"]["sample_rate"])
        if not isinstance(frames, list) or not frames:
            raise TypeError
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path}: the sidecar lacks the trajectory (frames, source, analysis)") from None
    return data


def check_match(stem: Stem, sidecar: dict[str, Any], stem_path: str | Path, sidecar_path: str | Path) -> None:
    """Refuse a sidecar that was not written with this stem (another length or rate)."""
    want = sidecar["stem"]
    if int(want["samples"]) != stem.n_samples or int(want["sample_rate"]) != stem.rate:
        raise InputError(f"{sidecar_path} does not match {stem_path}: the sidecar describes a stem of "
                         f"{int(want['samples'])} samples at {int(want['sample_rate'])} Hz, the stem has "
                         f"{stem.n_samples} at {stem.rate} Hz; spatialize again to write both")


def check_video(video: str | Path, sidecar: dict[str, Any]) -> None:
    """Refuse a clip that is not the one the sidecar was made from (another size, or too short)."""
    from foleyspace.video import probe

    info = probe(video)
    src = sidecar["source"]
    size = (int(src["width"]), int(src["height"]))
    if (info.width, info.height) not in (size, size[::-1]):
        raise InputError(f"{video}: is {info.width}x{info.height}, but the stem was made from a "
                         f"{size[0]}x{size[1]} clip ({src.get('video')}); give that clip")
    last = max(float(src["end_s"]), float(src.get("analysed_end_s", 0.0)))
    if last > info.duration_s + 2.0 / max(info.fps, 1.0):
        raise InputError(f"{video}: lasts {info.duration_s:.3f} s, but the stem covers up to {last:.3f} s of "
                         f"its clip ({src.get('video')}); give that clip")


# --- the timeline -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Timeline:
    """How the preview plays the source: ``n_frames`` frames at ``fps``; frame k shows source
    second ``source_times[k]`` (clip seconds)."""

    fps: float
    n_frames: int
    source_times: np.ndarray
    speed: float


def timeline(sidecar: dict[str, Any], samples: int, rate: int) -> Timeline:
    """The preview's frames: the clip's own frame rate over the stem's (timeline) duration."""
    from foleyspace.timewarp import TimeWarp
    from foleyspace.video import frame_count

    src, tl = sidecar["source"], sidecar.get("timeline") or {}
    speed = float(tl.get("speed", 1.0) if tl.get("speed") is not None else 1.0)
    hold = tl.get("hold_s")
    try:
        warp = TimeWarp(speed, float(hold) if speed == 0 and hold is not None else None)
    except ValueError as exc:
        raise InputError(f"the sidecar's timeline cannot be played: {exc}") from None
    fps = float(src["fps"]) if float(src["fps"]) > 0 else 25.0
    duration = samples / rate
    n = frame_count(0.0, duration, fps)
    times = warp.source_time(np.arange(n) / fps, float(src["start_s"]), float(src["end_s"]))
    return Timeline(fps, n, np.asarray(times, float), speed)


def _frame_rate(fps: float) -> Fraction:
    """The frame rate as a fraction (29.97 → 30000/1001)."""
    for den in (1, 1001):
        num = round(fps * den)
        if num > 0 and abs(num / den - fps) < 1e-4 * fps:
            return Fraction(num, den)
    return Fraction(fps).limit_denominator(10000)


def _frames(video: str | Path, tl: Timeline, size: tuple[int, int],
            check: Callable[[], None] | None) -> Generator[np.ndarray, None, None]:
    """The pictures of the timeline's frames, in timeline order, RGB at ``size``; decoded with the
    pipeline's :class:`~foleyspace.frames.FrameSource` (so in the same orientation as analysed)."""
    from foleyspace.frames import FrameSource

    def decode(first_s: float, count: int, step_s: float) -> Iterator[np.ndarray]:
        # frames at first_s + j*step_s, j < count: FrameSource yields ceil((end - start)*fps) of them
        rate = 1.0 / step_s
        source = FrameSource(video, first_s, first_s + (count - 0.5) * step_s, rate, size, check=check)
        return source.frames()

    times, n = tl.source_times, tl.n_frames
    if tl.speed == 0:  # a freeze frame: one picture, held
        picture = next(iter(decode(float(times[0]), 1, 1.0 / tl.fps)))
        for _ in range(n):
            yield picture
        return
    step = abs(tl.speed) / tl.fps
    if tl.speed > 0:
        yield from decode(float(times[0]), n, step)
        return
    for k0 in range(0, n, _REVERSE_WINDOW):  # backwards: decode a window forwards, play it reversed
        k1 = min(n, k0 + _REVERSE_WINDOW) - 1
        window = list(decode(max(0.0, float(times[k1])), k1 - k0 + 1, step))
        yield from reversed(window)


# --- drawing ------------------------------------------------------------------------------------

def _row_index(sidecar: dict[str, Any], source_s: float) -> int:
    """The sidecar row on screen at clip second ``source_s`` (the latest analysis frame not after it)."""
    src = sidecar["source"]
    first = float(src.get("analysed_start_s", src["start_s"]))
    k = math.floor((source_s - first) * float(sidecar["analysis"]["fps"]) + 1e-6)
    return min(max(k, 0), len(sidecar["frames"]) - 1)


def _num(row: dict[str, Any], key: str) -> float | None:
    value = row.get(key)
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def draw_overlay(frame: np.ndarray, row: dict[str, Any], scale: tuple[float, float], t_s: float) -> np.ndarray:
    """Draw one sidecar row on an RGB frame (in place; returned): the box in its state's colour,
    the centre, the state word, azimuth/elevation/distance and a left/right azimuth gauge.
    ``scale`` maps sidecar (source) pixels to the frame's; ``t_s`` is the timeline second."""
    import cv2

    h, w = frame.shape[:2]
    state = str(row.get("state") or "lost")
    colour = STATE_COLOURS.get(state, STATE_COLOURS["lost"])
    long_side = max(w, h)
    thick = max(3, int(round(long_side / 320)))
    font, fscale = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, long_side / 1280 * 0.8)
    ftk = max(1, int(round(fscale * 1.6)))
    sx, sy = scale
    box = row.get("box")
    if isinstance(box, list) and len(box) == 4 and all(isinstance(b, (int, float)) for b in box):
        x0, y0 = int(round(box[0] * sx)), int(round(box[1] * sy))
        x1, y1 = int(round((box[0] + box[2]) * sx)), int(round((box[1] + box[3]) * sy))
        cv2.rectangle(frame, (x0, y0), (x1, y1), colour, thick, cv2.LINE_8)
        (tw, th), base = cv2.getTextSize(state, font, fscale, ftk)
        ty = y0 - thick - 2 if y0 - thick - th - 2 > 0 else min(h - 2, y1 + thick + th + 2)
        cv2.putText(frame, state, (max(0, x0), ty), font, fscale, colour, ftk, cv2.LINE_AA)
    u, v = _num(row, "u_px"), _num(row, "v_px")
    if u is not None and v is not None:
        c = (int(round(u * sx)), int(round(v * sy)))
        arm = max(4, thick * 2)
        cv2.line(frame, (c[0] - arm, c[1]), (c[0] + arm, c[1]), colour, max(1, thick // 2), cv2.LINE_AA)
        cv2.line(frame, (c[0], c[1] - arm), (c[0], c[1] + arm), colour, max(1, thick // 2), cv2.LINE_AA)
    az, el, dist = _num(row, "azimuth_deg"), _num(row, "elevation_deg"), _num(row, "distance_m")
    text = (f"{state}  az {az:+.1f}  el {el:+.1f}" if az is not None and el is not None else state) + \
           (f"  {dist:.1f} m" if dist is not None else "") + f"  t {t_s:.2f} s"
    (tw, th), base = cv2.getTextSize(text, font, fscale, ftk)
    if tw > w - 8:  # a narrow (portrait) picture: the line shrinks to fit
        fscale *= (w - 8) / tw
        ftk = max(1, int(round(fscale * 1.6)))
        (tw, th), base = cv2.getTextSize(text, font, fscale, ftk)
    pad = max(3, th // 3)
    panel = frame[0:th + base + 2 * pad, 0:min(w, tw + 2 * pad)]
    panel[:] = (panel.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken under the text
    cv2.putText(frame, text, (pad, pad + th), font, fscale, colour, ftk, cv2.LINE_AA)
    if az is not None:  # the gauge: left ear at the left end (azimuth +90), right ear at the right
        gy, half, cx = h - max(8, h // 24), w * 0.3, w / 2
        cv2.line(frame, (int(cx - half), gy), (int(cx + half), gy), (230, 230, 230), 1, cv2.LINE_AA)
        for tick in (-half, 0.0, half):
            cv2.line(frame, (int(cx + tick), gy - thick), (int(cx + tick), gy + thick), (230, 230, 230), 1)
        gx = int(round(cx - max(-90.0, min(90.0, az)) / 90.0 * half))
        cv2.circle(frame, (gx, gy), max(3, thick + 1), colour, -1, cv2.LINE_AA)
    return frame


# --- writing ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PreviewInfo:
    """What a preview holds: its frames, frame rate, picture size and audio samples."""

    n_frames: int
    fps: float
    size: tuple[int, int]
    samples: int
    sample_rate: int


def preview_size(width: int, height: int, long_side: int = MAX_LONG_SIDE) -> tuple[int, int]:
    """The preview picture size: the clip's, scaled to ``long_side`` at most, both even (H.264)."""
    from foleyspace.frames import analysis_size

    w, h = analysis_size(width, height, long_side)
    return max(2, w - w % 2), max(2, h - h % 2)


def _audio_ends(tl: Timeline, stem: Stem) -> Iterator[int]:
    """Where the audio pieces end, in stem samples: at the end of each timeline frame (frame k
    ends at ``(k + 1)/fps`` s), then every :data:`AUDIO_PIECE` samples to the stem's end (a
    picture stream that stops early still leaves the sound in bounded pieces)."""
    for k in range(tl.n_frames):
        yield int(round((k + 1) / tl.fps * stem.rate))
    last = min(int(round(tl.n_frames / tl.fps * stem.rate)), stem.n_samples)
    yield from range(last + AUDIO_PIECE, stem.n_samples, AUDIO_PIECE)
    yield stem.n_samples


def render_preview(target: str | Path, stem: Stem, sidecar: dict[str, Any], video: str | Path,
                   progress: Progress | None = None, long_side: int = MAX_LONG_SIDE) -> PreviewInfo:
    """Encode the preview of ``stem`` (described by ``sidecar``) from ``video`` into ``target``
    (an MP4, written in place: callers give a temporary file, see :func:`write_preview`).

    ``progress("preview", fraction)`` is called per frame; it may raise to cancel.
    """
    import av

    src = sidecar["source"]
    tl = timeline(sidecar, stem.n_samples, stem.rate)
    size = preview_size(int(src["width"]), int(src["height"]), long_side)
    scale = (size[0] / float(src["width"]), size[1] / float(src["height"]))
    rows = sidecar["frames"]
    audio_format = "s32" if stem.bits == 24 else "s16"
    rate = _frame_rate(tl.fps)
    try:
        container = av.open(str(target), "w", format="mp4")
    except (av.error.FFmpegError, OSError) as exc:
        raise OSError(f"the preview cannot be created ({exc})") from exc
    pictures: Generator[np.ndarray, None, None] | None = None  # closed at the end: its decoding thread stops
    pieces: Generator[np.ndarray, None, None] | None = None    # closed at the end: the stem's file closes
    try:
        container.metadata["comment"] = PREVIEW_TAG
        vstream = container.add_stream("libx264", rate=rate)
        vstream.width, vstream.height, vstream.pix_fmt = size[0], size[1], "yuv420p"
        vstream.options = {"crf": CRF, "preset": PRESET}
        astream = container.add_stream("flac", rate=stem.rate, layout="stereo")
        astream.format = audio_format
        astream.codec_context.options = {"bits_per_raw_sample": str(stem.bits)}
        pieces = stem_pieces(stem, _audio_ends(tl, stem))
        sent = 0

        def send_audio(piece: np.ndarray) -> None:
            """Encode the stem's next samples (``(k, 2)`` interleaved) and mux their packets."""
            nonlocal sent
            if not len(piece):
                return
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(piece).reshape(1, -1), format=audio_format,
                                               layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = stem.rate, sent, Fraction(1, stem.rate)
            for packet in astream.encode(frame):
                container.mux(packet)
            sent += len(piece)

        pictures = _frames(video, tl, size, None)
        for k, picture in enumerate(pictures):
            if k >= tl.n_frames:
                break
            picture = picture if picture.flags.writeable else picture.copy()
            draw_overlay(picture, rows[_row_index(sidecar, float(tl.source_times[k]))], scale, k / tl.fps)
            vframe = av.VideoFrame.from_ndarray(picture, format="rgb24")
            vframe.pts, vframe.time_base = k, 1 / rate
            for packet in vstream.encode(vframe):
                container.mux(packet)
            send_audio(next(pieces))  # the sound up to the end of this frame: interleaved by time
            if progress is not None:  # may raise to cancel
                progress("preview", (k + 1) / tl.n_frames)
        for piece in pieces:  # what the frames did not reach (the last frame's rounding, at most)
            send_audio(piece)
        for stream in (vstream, astream):
            for packet in stream.encode():
                container.mux(packet)
        container.close()
    except av.error.FFmpegError as exc:
        raise OSError(f"the preview cannot be encoded ({exc})") from exc
    finally:
        for generator in (pictures, pieces):
            if generator is not None:
                generator.close()
        try:
            container.close()
        except Exception:  # noqa: BLE001 - closing after a failure: the first error is the one to report
            pass
    return PreviewInfo(tl.n_frames, tl.fps, size, stem.n_samples, stem.rate)


def write_preview(output: str | Path, stem_path: str | Path, sidecar_path: str | Path | None = None,
                  video: str | Path | None = None, progress: Progress | None = None,
                  overwrite: bool = False) -> PreviewInfo:
    """The preview of an existing stem and its sidecar, without analysing anything: written to a
    temporary file and renamed to ``output`` (an existing file FoleySpace did not write is refused
    unless ``overwrite``). ``video``: the clip (default: the one the sidecar names)."""
    from foleyspace.stem import atomic_outputs

    output, stem_path = Path(output), Path(stem_path)
    sidecar_file = Path(sidecar_path) if sidecar_path is not None else stem_path.with_suffix(".json")
    if not stem_path.is_file():
        raise InputError(f"{stem_path}: no such stem")
    if output.resolve() in (stem_path.resolve(), sidecar_file.resolve()) or (
            video is not None and output.resolve() == Path(video).resolve()):
        raise OutputError(f"{output}: is one of the inputs; give the preview another name")
    check_preview_target(output, overwrite)
    sidecar = read_sidecar(stem_path, sidecar_file)
    stem = read_stem(stem_path)
    check_match(stem, sidecar, stem_path, sidecar_file)
    clip = Path(video) if video is not None else Path(str(sidecar["source"].get("video") or ""))
    if not str(clip) or not clip.is_file():
        raise InputError(f"{clip}: the clip the sidecar names is not there; give it (foleyspace preview "
                         "STEM --video CLIP)")
    check_video(clip, sidecar)
    try:
        with atomic_outputs(output, overwrite=overwrite) as (tmp,):
            info = render_preview(tmp, stem, sidecar, clip, progress)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"{output}: cannot write ({exc})") from exc
    return info


def describe(info: PreviewInfo) -> str:
    """One line for ``wrote …``: frames, size and the audio."""
    return (f"{info.n_frames} frames at {info.fps:.3g} fps, {info.size[0]}x{info.size[1]}, "
            f"the stem as FLAC ({info.samples} samples at {info.sample_rate} Hz)")

