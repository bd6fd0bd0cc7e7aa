"""Synthetic test clips made in code: a textured object moving over a textured background.

Used by ``foleyspace demo`` and by the tests, so that both exercise real encoding and decoding.
Object paths are given in normalized frame coordinates: ``u`` in [0, 1] left→right, ``v`` in
[0, 1] top→bottom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np



@dataclass(frozen=True)
class SynthSpec:
    """What to draw and play.

    Attributes:
        duration_s: clip length in seconds.
        fps: frame rate of the encoded video.
        size: ``(width, height)`` in pixels.
        motion: ``"cross_lr"``, ``"cross_rl"``, ``"bob_right"``, ``"bob_left"``, ``"bob_center"``,
            ``"stop"`` (left to the middle in the first half, then still), ``"out_in"`` (right,
            out of the frame past the right edge, and back: ``u = 0.4 + 0.9 sin(pi t / duration)``).
        radius: object radius as a fraction of the frame height.
        pan_px_per_s: horizontal camera pan speed of the background in pixels per second.
        audio: ``"engine"`` (harmonic buzz with noise), ``"chirp"`` (a sine sweeping linearly
            over :data:`CHIRP_HZ` across the clip, so a sample's pitch tells which source second
            it came from), or ``None`` for a clip without audio.
        audio_rate: audio sample rate in Hz.
        audio_channels: number of audio channels (the same signal in each).
        seed: seed of the textures and noise.
        occluder: ``None``, or ``"bar"``: an opaque textured vertical bar, ``occluder_width`` of
            the frame width and full height, crossing right to left in front of the object
            (its centre from ``u = 0.9`` at 0 s to ``0.1`` at the end; see :func:`occluder_span`).
        occluder_width: the bar's width as a fraction of the frame width.
    """

    duration_s: float = 4.0
    fps: int = 25
    size: tuple[int, int] = (320, 180)
    motion: str = "cross_lr"
    radius: float = 0.12
    pan_px_per_s: float = 0.0
    audio: str | None = "engine"
    audio_rate: int = 48000
    audio_channels: int = 2
    seed: int = 0
    occluder: str | None = None
    occluder_width: float = 0.3


def occluder_span(spec: SynthSpec, t: float) -> tuple[float, float] | None:
    """Normalized ``(u_left, u_right)`` of the occluder bar at time ``t`` (``None`` without one)."""
    if spec.occluder is None:
        return None
    if spec.occluder != "bar":
        raise ValueError(f"unknown occluder {spec.occluder!r}")
    s = min(max(t / spec.duration_s, 0.0), 1.0)
    c = 0.9 - 0.8 * s
    return c - spec.occluder_width / 2, c + spec.occluder_width / 2


def object_position(spec: SynthSpec, t: float) -> tuple[float, float]:
    """Normalized ``(u, v)`` of the object center at time ``t`` seconds."""
    s = min(max(t / spec.duration_s, 0.0), 1.0)
    bob = 0.5 + 0.12 * math.sin(2 * math.pi * 1.0 * t)
    side = 0.08 * math.sin(2 * math.pi * 0.5 * t)
    if spec.motion == "cross_lr":
        return 0.1 + 0.8 * s, 0.5
    if spec.motion == "cross_rl":
        return 0.9 - 0.8 * s, 0.5
    if spec.motion == "bob_right":
        return 0.85 + 0.3 * side, bob
    if spec.motion == "bob_left":
        return 0.15 + 0.3 * side, bob
    if spec.motion == "bob_center":
        return 0.5, bob
    if spec.motion == "stop":
        return 0.15 + 0.35 * min(2 * s, 1.0), 0.5
    if spec.motion == "out_in":
        return 0.4 + 0.9 * math.sin(math.pi * s), 0.5
    raise ValueError(f"unknown motion {spec.motion!r}")


def _texture(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Blocky random RGB texture, ``(h, w, 3)`` uint8."""
    small = rng.integers(0, 256, size=(h // cell + 2, w // cell + 2, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, cell, axis=0), cell, axis=1)[:h, :w]


def render_frame(spec: SynthSpec, t: float, background: np.ndarray, sprite: np.ndarray) -> np.ndarray:
    """One RGB frame at time ``t``: the panned background with the object pasted on it."""
    w, h = spec.size
    shift = int(round(spec.pan_px_per_s * t))
    cols = (np.arange(w) + shift) % background.shape[1]
    frame = background[:h, cols].copy()
    u, v = object_position(spec, t)
    r = sprite.shape[0] // 2
    cx, cy = int(round(u * w)), int(round(v * h))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    inside = xx**2 + yy**2 <= r * r
    ys, xs = yy[inside] + cy, xx[inside] + cx
    ok = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    frame[ys[ok], xs[ok]] = sprite[(yy[inside] + r)[ok], (xx[inside] + r)[ok]]
    span = occluder_span(spec, t)
    if span is not None:
        x0, x1 = (int(round(min(max(a, 0.0), 1.0) * w)) for a in span)
        if x1 > x0:  # a texture of its own, fixed to the bar
            rng = np.random.default_rng(spec.seed + 1000)
            bar = _texture(rng, h, int(round(spec.occluder_width * w)) + 1, 6)
            left = int(round(span[0] * w))
            frame[:, x0:x1] = bar[:, x0 - left : x1 - left]
    return frame


#: Start and end frequency of the ``"chirp"`` audio, Hz.
CHIRP_HZ = (200.0, 4200.0)


def chirp_sound(duration_s: float, sample_rate: int) -> np.ndarray:
    """A sine whose frequency rises linearly from ``CHIRP_HZ[0]`` at 0 s to ``CHIRP_HZ[1]`` at
    ``duration_s`` (see :func:`chirp_time`); mono float32, amplitude 0.5."""
    f0, f1 = CHIRP_HZ
    t = np.arange(int(round(duration_s * sample_rate))) / sample_rate
    return (0.5 * np.sin(2 * np.pi * (f0 * t + 0.5 * (f1 - f0) / duration_s * t**2))).astype(np.float32)


def chirp_time(frequency_hz: np.ndarray, duration_s: float) -> np.ndarray:
    """The clip second at which :func:`chirp_sound` has ``frequency_hz`` (the inverse of its sweep)."""
    f0, f1 = CHIRP_HZ
    return (np.asarray(frequency_hz, float) - f0) * duration_s / (f1 - f0)


def engine_sound(duration_s: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """A bright engine-like buzz: 110 Hz with harmonics to ~9 kHz (amplitude 1/√k) plus as much
    broadband noise, so that level and time cues both carry; mono float32 in [-0.5, 0.5]."""
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    rng = np.random.default_rng(seed)
    buzz = sum(np.sin(2 * np.pi * 110 * k * t + k) / np.sqrt(k) for k in range(1, 80))
    buzz /= np.std(buzz)
    x = buzz + rng.standard_normal(n)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def make_clip(path: str | Path, spec: SynthSpec = SynthSpec()) -> Path:
    """Encode the clip described by ``spec`` to ``path`` (H.264 + AAC in MP4) and return it."""
    path = Path(path)
    w, h = spec.size
    rng = np.random.default_rng(spec.seed)
    background = (_texture(rng, h, w * 4, 8) * 0.6).astype(np.uint8)
    r = max(2, int(spec.radius * h))
    sprite = np.clip(_texture(rng, 2 * r + 1, 2 * r + 1, 3).astype(int) // 2 + 128, 0, 255).astype(np.uint8)
    n_frames = int(round(spec.duration_s * spec.fps))
    with av.open(str(path), mode="w") as container:
        vstream = container.add_stream("libx264", rate=spec.fps)
        vstream.width, vstream.height, vstream.pix_fmt = w, h, "yuv420p"
        vstream.options = {"preset": "ultrafast", "crf": "18"}
        astream = None
        if spec.audio is not None:
            layout = "mono" if spec.audio_channels == 1 else "stereo"
            astream = container.add_stream("aac", rate=spec.audio_rate, layout=layout)
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(render_frame(spec, i / spec.fps, background, sprite), format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, spec.fps)
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            mono = (chirp_sound(spec.duration_s, spec.audio_rate) if spec.audio == "chirp"
                    else engine_sound(spec.duration_s, spec.audio_rate, spec.seed))
            encode_audio(container, astream, np.repeat(mono[None, :], spec.audio_channels, axis=0), spec.audio_rate)
    return path


def encode_audio(container, stream, pcm: np.ndarray, rate: int, block: int = 1024) -> None:
    """Encode ``pcm`` ``(channels, n)`` float samples at ``rate`` Hz into the audio ``stream``
    of ``container`` (blocks of ``block`` samples), flushing the encoder at the end."""
    for start in range(0, pcm.shape[1], block):
        chunk = np.ascontiguousarray(pcm[:, start : start + block], dtype=np.float32)
        aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=stream.layout.name)
        aframe.sample_rate, aframe.pts, aframe.time_base = rate, start, Fraction(1, rate)
        for packet in stream.encode(aframe):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
