"""Video decoding with PyAV: probe, analysis frames at a fixed rate, and the clip's audio.

Times are seconds from the first frame of the file (the container's start offset is removed).
Frames are RGB ``uint8`` arrays ``(H, W, 3)``, ``u`` right and ``v`` down, *as a player shows
them*: turned and mirrored by the stream's display matrix (phone footage) and stretched by its
sample aspect ratio (anamorphic footage). Every pixel coordinate the package reads or writes
(boxes, ``--box``, the sidecar) is a display pixel.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from foleyspace.errors import InputError
from foleyspace.frames import analysis_size

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInfo:
    """What the analysis needs to know about a video file.

    Attributes:
        path: the file.
        width, height: the picture's size as a player shows it, in display pixels: the coded
            size stretched by the sample aspect ratio, then turned by the display matrix (see
            :func:`display_size`).
        fps: native frame rate in frames per second.
        duration_s: length of the video stream in seconds.
        audio_rate: sample rate of the first audio stream in Hz, or ``None`` without audio.
        audio_channels: channel count of that stream (0 without audio).
        coded_width, coded_height: the stored (decoded) frame size in pixels (0: as displayed).
        rotation: degrees the stored picture is turned clockwise to be shown (0, 90, 180, 270);
            a phone's portrait clip tagged ``rotate=90`` has 90.
        mirror: the picture is mirrored left↔right after the rotation.
        sample_aspect: the sample (pixel) aspect ratio, width : height of one stored pixel.
    """

    path: Path
    width: int
    height: int
    fps: float
    duration_s: float
    audio_rate: int | None
    audio_channels: int
    coded_width: int = 0
    coded_height: int = 0
    rotation: int = 0
    mirror: bool = False
    sample_aspect: Fraction = Fraction(1)

    @property
    def has_audio(self) -> bool:
        return self.audio_rate is not None


def display_orientation(matrix: Sequence[float] | None) -> tuple[int, bool]:
    """``(rotation, mirror)`` of an FFmpeg display matrix (``AV_FRAME_DATA_DISPLAYMATRIX``: 9
    values, row-major, the 2×2 part in 16.16 fixed point; ``None``: none).

    The matrix maps a stored point ``(x, y)`` (x right, y down) to the shown point
    ``(a·x + c·y, b·x + d·y)`` with ``a, b, c, d = m[0], m[1], m[3], m[4]``, as FFmpeg's own
    players apply it (``ffmpeg``/``ffplay`` autorotate). The result says: turn the stored picture
    ``rotation`` degrees clockwise (0, 90, 180 or 270), then mirror it left↔right if ``mirror``.
    A rotation that is not a multiple of 90° is rounded to the nearest one, with a warning.
    """
    if matrix is None:
        return 0, False
    a, b, c, d = (float(matrix[i]) for i in (0, 1, 3, 4))
    if a * d - b * c < 0:  # a mirror: take it out (mirror ∘ M is a pure rotation)
        mirror, a, c = True, -a, -c
    else:
        mirror = False
    if a == 0 and b == 0:
        return 0, False  # degenerate: no transformation we can read
    angle = math.degrees(math.atan2(b, a)) % 360.0  # clockwise on screen (y down)
    rotation = int(round(angle / 90.0)) % 4 * 90
    off = abs((angle - rotation + 180.0) % 360.0 - 180.0)
    if off > 1.0:
        log.warning("the clip's display matrix turns it by %.1f°; it is analysed turned by %d°", angle, rotation)
    return rotation, mirror


def frame_orientation(frame: av.VideoFrame) -> tuple[int, bool]:
    """``(rotation, mirror)`` of a decoded frame's display matrix (side data), see
    :func:`display_orientation`; ``(0, False)`` when it has none."""
    try:
        data = frame.side_data[_DISPLAYMATRIX]
    except (KeyError, IndexError):
        return 0, False
    raw = bytes(data)
    if len(raw) < 36:
        return 0, False
    return display_orientation(np.frombuffer(raw[:36], dtype=np.int32).tolist())


def display_size(width: int, height: int, sample_aspect: Fraction | None, rotation: int) -> tuple[int, int]:
    """The size a player shows a ``width × height`` stored picture at: stretched by the sample
    aspect ratio along the axis it widens — ``SAR > 1`` multiplies the width, ``SAR < 1`` divides
    the height, so no stored pixel is lost (mpv's rule; FFmpeg's ``scale=iw*sar:ih`` gives the
    same for ``SAR > 1``) — rounded to whole pixels, then turned (90° and 270° swap the sides)."""
    w, h = int(width), int(height)
    if sample_aspect is not None and sample_aspect > 0 and sample_aspect != 1:
        if sample_aspect > 1:
            w = max(1, int(round(w * sample_aspect)))
        else:
            h = max(1, int(round(h / sample_aspect)))
    return (h, w) if rotation % 180 == 90 else (w, h)


def to_display(picture: np.ndarray, rotation: int, mirror: bool) -> np.ndarray:
    """A stored picture ``(H, W[, C])`` turned ``rotation`` degrees clockwise, then mirrored
    left↔right if ``mirror``: what a player shows (a new array unless nothing moves).

    OpenCV does the copy (``cv2.rotate``/``cv2.flip``: ~0.07 ms for a 640×360 RGB frame, 20×
    faster than a NumPy transpose copy); it is imported only for a turned clip.
    """
    if rotation == 0 and not mirror:
        return picture
    import cv2

    if rotation:
        picture = cv2.rotate(picture, _CV2_ROTATE[rotation])
    return cv2.flip(picture, 1) if mirror else picture


#: cv2.rotate codes by clockwise rotation (ROTATE_90_CLOCKWISE, ROTATE_180, ROTATE_90_COUNTERCLOCKWISE).
_CV2_ROTATE = {90: 0, 180: 1, 270: 2}


#: The frame side data holding the display matrix (PyAV looks it up by its type's name).
_DISPLAYMATRIX = "DISPLAYMATRIX"

#: Packets probe() reads at most to find the first picture (and its display matrix).
_PROBE_PACKETS = 64
#: Sample aspect ratios outside this range are taken as a broken header (anamorphic lenses squeeze 2×).
_SAR_RANGE = (Fraction(1, 4), Fraction(4))


def _open(path: str | Path) -> av.container.InputContainer:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a video file")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: the file is empty")
    try:
        return av.open(str(p), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{p}: not a readable video file ({exc.__class__.__name__})") from exc


def _stream_start(stream: av.stream.Stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def _first_picture_orientation(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                               ) -> tuple[int, bool]:
    """The display matrix of the stream, read from its first decoded picture (FFmpeg hands the
    container's matrix to every frame; PyAV does not expose the stream's side data). A stream
    whose first packets do not decode is taken as upright: decoding proper reports the error."""
    stream.thread_count = 1  # one picture: starting the decoder's threads would cost more
    try:
        for n, packet in enumerate(container.demux(stream)):
            for frame in packet.decode():
                return frame_orientation(frame)
            if n >= _PROBE_PACKETS:
                break
    except (av.error.FFmpegError, ValueError) as exc:
        log.debug("%s: no picture to read the display matrix from (%s)", container.name, exc)
    return 0, False


def probe(path: str | Path) -> VideoInfo:
    """Read the stream layout of ``path``; raise :class:`InputError` if it has no usable video.

    The width and height are the display size (:func:`display_size`): the first picture is
    decoded to read the display matrix, and the sample aspect ratio is FFmpeg's guess for the
    stream (the container's, else the codec's).
    """
    with _open(path) as container:
        if not container.streams.video:
            raise InputError(f"{path}: has no video stream")
        v = container.streams.video[0]
        fps = float(v.average_rate or v.guessed_rate or 0) or 25.0
        if v.duration is not None and v.time_base is not None:
            duration = float(v.duration * v.time_base)
        elif container.duration is not None:
            duration = container.duration / 1e6
        else:
            duration = (v.frames or 0) / fps
        if duration <= 0 and v.frames:  # no usable duration field: count the frames
            duration = v.frames / fps
        a = container.streams.audio[0] if container.streams.audio else None
        width, height = v.codec_context.width, v.codec_context.height
        if not width or not height:
            raise InputError(f"{path}: the video stream has no frame size")
        if duration <= 0:
            raise InputError(f"{path}: the video has no frames (zero length)")
        sar = v.sample_aspect_ratio
        sar = Fraction(sar) if sar is not None and sar > 0 else Fraction(1)
        if not _SAR_RANGE[0] <= sar <= _SAR_RANGE[1]:
            log.warning("%s: sample aspect ratio %s is implausible; the pixels are taken as square", path, sar)
            sar = Fraction(1)
        audio_rate = int(a.codec_context.sample_rate) if a is not None and a.codec_context.sample_rate else None
        audio_channels = int(a.codec_context.channels) if a is not None else 0
        rotation, mirror = _first_picture_orientation(container, v)
        shown_w, shown_h = display_size(width, height, sar, rotation)
        return VideoInfo(
            path=Path(path),
            width=shown_w,
            height=shown_h,
            fps=fps,
            duration_s=duration,
            audio_rate=audio_rate,
            audio_channels=audio_channels,
            coded_width=int(width),
            coded_height=int(height),
            rotation=rotation,
            mirror=mirror,
            sample_aspect=sar,
        )


_AUDIO_PREROLL_S = 0.5
_TIMECODE = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")


def parse_time(text: str, fps: float) -> float:
    """Parse a range point: seconds (``"12.5"``), frames (``"300f"``) or ``[HH:]MM:SS[.s]``.

    Frames count at the video's native ``fps``. Returns seconds; raises ``ValueError``.
    """
    s = text.strip()
    if s.endswith("f"):
        frames = int(s[:-1])
        if frames < 0:
            raise ValueError(f"negative frame number {text!r}")
        return frames / fps
    m = _TIMECODE.match(s)
    if m:
        h, mnt, sec = m.groups()
        return int(h or 0) * 3600 + int(mnt) * 60 + float(sec)
    value = float(s)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"invalid time {text!r}")
    return value


def resolve_range(info: VideoInfo, start_s: float | None, end_s: float | None) -> tuple[float, float]:
    """Check a requested source range against the clip and return ``(start_s, end_s)``.

    ``None`` means the clip's start or end. An end up to one frame past the clip is clamped
    (container durations are rounded); further is an error, as is an empty range.
    """
    start = 0.0 if start_s is None else float(start_s)
    end = info.duration_s if end_s is None else float(end_s)
    if start < 0:
        raise InputError(f"--in {start:g} s is negative")
    if start >= info.duration_s:
        raise InputError(f"--in {start:.6g} s is past the end of the clip ({info.duration_s:.3f} s)")
    if end > info.duration_s + 1.0 / info.fps:
        raise InputError(f"--out {end:.6g} s is past the end of the clip ({info.duration_s:.3f} s)")
    end = min(end, info.duration_s)
    if end - start <= 0:
        raise InputError(f"the range {start:.3f}–{end:.3f} s is empty")
    return start, end


def frame_count(start_s: float, end_s: float, fps: float) -> int:
    """Number of analysis frames at ``fps`` covering ``[start_s, end_s)`` (frame k at start + k/fps)."""
    return max(1, math.ceil((end_s - start_s) * fps - 1e-9))


def iter_frames(
    path: str | Path,
    start_s: float = 0.0,
    end_s: float | None = None,
    fps: float = 25.0,
    long_side: int | None = 640,
    pixels: str = "rgb",
) -> Iterator[np.ndarray]:
    """Yield frames sampled at ``fps`` over ``[start_s, end_s)``, scaled so the long side is
    ``long_side`` pixels: RGB ``uint8 (H, W, 3)`` or, with ``pixels="grey"``, luma ``(H, W)``.

    See :func:`iter_frame_forms` for the timing rule.
    """
    info = probe(path)
    if end_s is None:
        end_s = info.duration_s
    size = analysis_size(info.width, info.height, long_side)
    for (frame,) in iter_frame_forms(path, start_s, end_s, fps, [(pixels, size)]):
        yield frame


#: FFmpeg pixel format and scaler of each form: grey is the luma plane (full range), scaled by
#: area averaging like ``cv2.INTER_AREA``; RGB keeps FFmpeg's default (bilinear).
_AV_FORMATS = {"rgb": ("rgb24", None), "grey": ("gray", "AREA")}


def iter_frame_forms(
    path: str | Path,
    start_s: float,
    end_s: float,
    fps: float,
    forms: Sequence[tuple[str, tuple[int, int]]],
) -> Iterator[tuple[np.ndarray, ...]]:
    """Decode once; for each analysis frame yield one array per ``(pixels, (w, h))`` of ``forms``.

    Frame k shows the picture on screen at ``start_s + k / fps`` (the latest decoded frame whose
    time is not after it). Each form is made from the decoded picture by FFmpeg's scaler in one
    step (grey straight from the luma plane). Exactly :func:`frame_count` frames are yielded; if
    the stream ends early the last picture is held.

    Sizes are display sizes (``(w, h)`` as shown, see :func:`probe`), and the arrays are the
    pictures as shown: the scaler makes each form at its stored-orientation size — which also
    stretches anamorphic pixels, since the display size includes the sample aspect ratio — and a
    display matrix (read from the first decoded picture) is then applied to that small picture
    (:func:`to_display`), so turning costs one copy of an analysis-size frame and nothing when the
    clip is upright.
    """
    with _open(path) as container:
        if not container.streams.video:
            raise InputError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        t0 = _stream_start(stream)
        total = frame_count(start_s, end_s, fps)
        if start_s > 0:
            container.seek(int((start_s + t0) * 1e6), backward=True, any_frame=False)
        k = 0
        held: av.VideoFrame | None = None
        converted: tuple[np.ndarray, ...] | None = None
        orientation: tuple[int, bool] | None = None

        def emit() -> tuple[np.ndarray, ...]:
            nonlocal converted, orientation
            if converted is None:
                assert held is not None
                if orientation is None:  # the stream's display matrix, on every frame: read it once
                    orientation = frame_orientation(held)
                rotation, mirror = orientation
                if rotation == 0 and not mirror:
                    converted = tuple(held.reformat(width=w, height=h, format=_AV_FORMATS[pixels][0],
                                                    interpolation=_AV_FORMATS[pixels][1]).to_ndarray()
                                      for pixels, (w, h) in forms)
                else:
                    swap = rotation % 180 == 90
                    converted = tuple(to_display(held.reformat(width=h if swap else w, height=w if swap else h,
                                                               format=_AV_FORMATS[pixels][0],
                                                               interpolation=_AV_FORMATS[pixels][1]).to_ndarray(),
                                                 rotation, mirror)
                                      for pixels, (w, h) in forms)
            return converted

        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                t = frame.time - t0
                while k < total and start_s + k / fps < t - 1e-6:
                    if held is None:  # the range starts before the first decodable picture
                        held, converted = frame, None
                    yield emit()
                    k += 1
                if k >= total:
                    return
                held, converted = frame, None
        except av.error.FFmpegError as exc:
            raise InputError(f"{path}: the video cannot be decoded ({exc})") from exc
        if held is None:
            raise InputError(f"{path}: no picture could be decoded in the range")
        while k < total:
            yield emit()
            k += 1


def audio_rate(path: str | Path) -> int:
    """Sample rate (Hz) of the first audio stream; :class:`InputError` without one."""
    with _open(path) as container:
        if not container.streams.audio:
            raise InputError(f"{path}: the clip has no audio track; pass --audio FILE to give a sound")
        return int(container.streams.audio[0].codec_context.sample_rate)


def iter_audio(path: str | Path, start_s: float = 0.0, end_s: float | None = None,
               block_samples: int | None = None) -> Iterator[np.ndarray]:
    """Decode the first audio stream over ``[start_s, end_s)`` as it is read: ``(channels, k)``
    float32 blocks at the stream's own rate (:func:`audio_rate`), ``round((end_s − start_s)·rate)``
    samples in all (zero-padded if the stream is shorter; without ``end_s``, to the container's
    duration). Blocks are as decoded, or of ``block_samples`` when given. Decoding stops once the
    range is in, so memory follows the block, not the range.

    Raises :class:`InputError` when there is no audio stream or nothing decodes.
    """
    from foleyspace.blocks import rechunk

    blocks = _decoded_audio(path, start_s, end_s)
    yield from (blocks if block_samples is None else rechunk(blocks, block_samples))


def _decoded_audio(path: str | Path, start_s: float, end_s: float | None) -> Iterator[np.ndarray]:
    """:func:`iter_audio`'s blocks as the decoder hands them out."""
    with _open(path) as container:
        if not container.streams.audio:
            raise InputError(f"{path}: the clip has no audio track; pass --audio FILE to give a sound")
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate)
        channels = int(stream.codec_context.channels)
        t0 = _stream_start(container.streams.video[0]) if container.streams.video else _stream_start(stream)
        if end_s is None:
            end_s = container.duration / 1e6 if container.duration else float("inf")
        first = int(round(start_s * rate))
        left = None if math.isinf(end_s) else int(round((end_s - start_s) * rate))  # samples still to hand out
        if start_s > _AUDIO_PREROLL_S:  # seek early: AAC decoders need pre-roll to settle
            target = start_s - _AUDIO_PREROLL_S + t0
            container.seek(int(target / stream.time_base), backward=True, any_frame=False, stream=stream)
        resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=rate)
        skip: int | None = None  # samples still to drop before the range starts
        try:
            for frame in container.decode(stream):
                for rf in resampler.resample(frame):
                    data = rf.to_ndarray().reshape(channels, -1)
                    if skip is None:
                        ft = rf.time if rf.time is not None else 0.0
                        skip = first - int(round((ft - t0) * rate))
                        if skip < 0:  # the stream starts after the range does: silence first
                            lead = -skip if left is None else min(-skip, left)
                            yield np.zeros((channels, lead), np.float32)
                            left = None if left is None else left - lead
                            skip = 0
                    drop = min(skip, data.shape[1])
                    data, skip = data[:, drop:], skip - drop
                    if left is not None:
                        data = data[:, :left]
                        left -= data.shape[1]
                    if data.shape[1]:
                        yield np.ascontiguousarray(data, dtype=np.float32)
                if left == 0:
                    return
        except av.error.FFmpegError as exc:
            raise InputError(f"{path}: the audio cannot be decoded ({exc})") from exc
    if skip is None:
        raise InputError(f"{path}: the audio track holds no samples")
    if left:
        yield np.zeros((channels, left), np.float32)


def read_audio(path: str | Path, start_s: float = 0.0, end_s: float | None = None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream over ``[start_s, end_s)`` whole (see :func:`iter_audio`).

    Returns ``(samples, rate)`` with samples ``(channels, n)`` float32 at the stream's own rate,
    ``n = round((end_s - start_s) * rate)`` (zero-padded if the stream is shorter).
    Raises :class:`InputError` when there is no audio stream.
    """
    rate = audio_rate(path)
    blocks = list(iter_audio(path, start_s, end_s))
    return np.ascontiguousarray(np.concatenate(blocks, axis=1), dtype=np.float32), rate
