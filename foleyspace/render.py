"""Binaural rendering of a mono signal along a trajectory with an HRIR set (eq. 8, §IV-A).

Eq. 8: the mono signal is cut into N equal segments; segment i is rendered with the HRIR of
position i and of position i+1 and the two are cross-faded with a weight w rising linearly
0→1 across the segment, ``ŷ_i = (1 − w)·y_i + w·y_{i+1}``. Here the weights are applied to the
input (``((1−w)·x_i) ⊛ h_i + (w·x_i) ⊛ h_{i+1}``), which equals the paper's output cross-fade
inside the segment and lets each filter's tail ring out into the next segment by overlap-add,
so nothing is cut at segment edges. Positions are therefore needed at the N+1 segment
boundaries.

Signals are ``(channels, samples)`` float arrays; channel 0 is the left ear.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from foleyspace.blocks import BLOCK_SAMPLES
from foleyspace.config import MAX_SEGMENT_RATE_HZ
from foleyspace.coords import to_spherical
from foleyspace.hrtf.base import HrirSet

# scipy.fft is imported where it is used: validating a job spec imports this module for
# DspRendererConfig and must stay light.


@dataclass(frozen=True)
class DspRendererConfig:
    """Settings of the HRTF DSP renderer.

    Attributes:
        segment_rate_hz: eq. 8 N as segments per second, equal segments; ``None`` (default) = a
            segment starts at each trajectory position: per analysis frame for the fine scheme
            (25 fps: N = 200 per 8 s, as the paper) and per second for the coarse scheme (N = 8
            per 8 s), so boundaries sit exactly on the positions.
        distance_gain: apply the 1/r gain relative to the HRIR set's measured radius (ours).
        min_distance_m: near-head clamp of the distance, metres: the 1/r gain and the arrival
            delay treat nearer sources as this near (ours: 0.25 m).
        distance_delay: also shift the time of arrival with distance (§IV-A): each boundary HRIR
            is delayed by ``(r − min_distance_m)/c``, r clamped to [min_distance_m,
            max_distance_m]. Off by default for stems (ours): the picture's own sound already
            arrived late by the real distance, editors sync sound to picture, and cross-fading
            responses that differ by many samples comb-filters fast depth changes. The paper uses
            it to build training data (§IV-A), where it is on.
        max_distance_m: far clamp of the arrival delay, metres (ours: 6 m, the paper's range).
            Every HRIR is lengthened by the largest delay this allows, ``(max − min)/c``, so the
            tap count does not depend on the positions asked for.
        speed_of_sound: for ``distance_delay``, m/s.
    """

    segment_rate_hz: float | None = None
    distance_gain: bool = True
    min_distance_m: float = 0.25
    distance_delay: bool = False
    max_distance_m: float = 6.0
    speed_of_sound: float = 343.0

    def __post_init__(self) -> None:
        rate = self.segment_rate_hz
        if rate is not None and not 0 < rate <= MAX_SEGMENT_RATE_HZ:  # also false for NaN
            raise ValueError(f"segments per second must be in (0, {MAX_SEGMENT_RATE_HZ:g}]")
        if not 0 < self.min_distance_m <= self.max_distance_m < float("inf"):
            raise ValueError("need 0 < min_distance_m <= max_distance_m (metres)")
        if not self.speed_of_sound > 0:
            raise ValueError("speed_of_sound must be positive (m/s)")

    def arrival_delay_s(self, distance_m: np.ndarray) -> np.ndarray:
        """§IV-A — time of arrival relative to a source at ``min_distance_m``: ``(r − r_min)/c``
        seconds, r clamped to [``min_distance_m``, ``max_distance_m``]."""
        r = np.clip(np.asarray(distance_m, float), self.min_distance_m, self.max_distance_m)
        return (r - self.min_distance_m) / self.speed_of_sound

    @property
    def max_delay_s(self) -> float:
        """The largest arrival delay, seconds (0 without ``distance_delay``)."""
        return (self.max_distance_m - self.min_distance_m) / self.speed_of_sound if self.distance_delay else 0.0


@dataclass(frozen=True)
class Waypoints:
    """What a renderer follows: the source at ``xyz[i]`` (metres, x forward, y left, z up) at
    ``times_s[i]`` seconds from the range start, linearly interpolated in between."""

    times_s: np.ndarray
    xyz: np.ndarray

    def at(self, times_s: np.ndarray) -> np.ndarray:
        """Positions ``(len(times_s), 3)`` by linear interpolation, held beyond the ends."""
        t = np.asarray(self.times_s, float)
        return np.stack([np.interp(times_s, t, self.xyz[:, c]) for c in range(3)], axis=1)


class Renderer(Protocol):
    """Turns a mono signal and a trajectory into a binaural signal of the same length.

    A renderer that can follow a long clip in bounded memory also has ``render_blocks`` (see
    :class:`StreamingRenderer`); the pipeline calls :func:`render_blocks`, which renders one without
    it (e.g. a plug-in renderer that needs the whole signal) in one piece; the DSP and diffusion
    renderers both stream.
    """

    name: str

    def render(self, mono: np.ndarray, waypoints: Waypoints, sample_rate: int) -> np.ndarray:
        """``(2, len(mono))`` binaural signal at ``sample_rate`` Hz."""
        ...


class StreamingRenderer(Renderer, Protocol):
    """A :class:`Renderer` that renders a mono signal arriving in blocks, keeping only a block's
    worth of state (e.g. the overlap-add tail); the blocks it yields equal ``render`` of the whole."""

    def render_blocks(self, blocks: Iterable[np.ndarray], n_samples: int, waypoints: Waypoints,
                      sample_rate: int, block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
        """``(2, k)`` blocks at ``sample_rate`` Hz, ``n_samples`` in all, from mono ``blocks``
        (1-D, ``n_samples`` in all); about ``block_samples`` samples are rendered at a time."""
        ...


def render_blocks(renderer: Renderer, blocks: Iterable[np.ndarray], n_samples: int, waypoints: Waypoints,
                  sample_rate: int, block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """``renderer``'s binaural blocks for mono ``blocks`` (``n_samples`` in all): streamed where it
    has ``render_blocks``; otherwise the mono signal is collected and rendered in one piece (memory
    then grows with the clip) and handed out in blocks of ``block_samples``."""
    stream = getattr(renderer, "render_blocks", None)
    if stream is not None:
        return stream(blocks, n_samples, waypoints, sample_rate, block_samples)
    from foleyspace.blocks import collect

    stereo = renderer.render(collect(blocks), waypoints, sample_rate)
    return (stereo[:, i : i + block_samples] for i in range(0, stereo.shape[1], block_samples))


def segment_bounds(n_samples: int, n_segments: int) -> np.ndarray:
    """Eq. 8 — the N+1 sample indices cutting ``n_samples`` into N (near-)equal segments."""
    n_segments = max(1, min(int(n_segments), max(1, n_samples)))
    return np.round(np.linspace(0, n_samples, n_segments + 1)).astype(np.int64)


def crossfade_weight(length: int) -> np.ndarray:
    """Eq. 8 — the weight ``w`` rising linearly from 0 across a segment of ``length`` samples."""
    return np.arange(length, dtype=float) / max(length, 1)


def distance_gain(distance_m: np.ndarray, ref_distance_m: float, min_distance_m: float = 0.25) -> np.ndarray:
    """§IV-A (ours) — inverse-distance gain ``ref / r`` relative to the HRIR radius; r ≥ ``min_distance_m``."""
    return ref_distance_m / np.maximum(np.asarray(distance_m, float), min_distance_m)


def delay_hrirs(hrirs: np.ndarray, delays_s: np.ndarray, sample_rate: int,
                max_delay_s: float | None = None) -> np.ndarray:
    """§IV-A — shift each HRIR ``(N, 2, taps)`` later by ``delays_s[i]`` ≥ 0 seconds (fractional,
    by a linear phase), lengthening all to hold ``max_delay_s`` (default: the largest of
    ``delays_s``; give the config's bound so the length does not depend on the batch)."""
    delays = np.asarray(delays_s, float)
    longest = float(delays.max(initial=0.0)) if max_delay_s is None else float(max_delay_s)
    if np.any(delays < 0) or np.any(delays > longest + 1e-12):
        raise ValueError("delays must be in [0, max_delay_s]")
    from scipy.fft import irfft, next_fast_len, rfft

    taps = hrirs.shape[-1] + int(np.ceil(longest * sample_rate)) + 1
    n = next_fast_len(2 * taps)
    spectrum = rfft(hrirs, n=n, axis=-1)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spectrum *= np.exp(-2j * np.pi * freqs[None, None, :] * delays[:, None, None])
    return irfft(spectrum, n=n, axis=-1)[..., :taps]


#: Longest piece of one segment rendered with one FFT, samples (≈ 5.5 s at 48 kHz). A longer
#: segment (a slow segment rate, a long freeze frame) is rendered in pieces of this length, each
#: with its share of the eq. 8 ramp, so the FFT size stays bounded; shorter ones are one piece.
MAX_PIECE_SAMPLES = 1 << 18


@dataclass(frozen=True)
class SegmentPieces:
    """Eq. 8 segments cut into pieces of at most :data:`MAX_PIECE_SAMPLES`; each field ``(P,)``.

    Attributes:
        segment: the segment each piece belongs to (it fades from HRIR ``segment`` to ``segment + 1``).
        start: the piece's first sample.
        length: its samples.
        offset: samples from its segment's start to its own (0 for a whole segment).
        segment_length: its segment's samples (the eq. 8 ramp spans the whole segment).
    """

    segment: np.ndarray
    start: np.ndarray
    length: np.ndarray
    offset: np.ndarray
    segment_length: np.ndarray


def segment_pieces(bounds: np.ndarray, max_piece: int = MAX_PIECE_SAMPLES) -> SegmentPieces:
    """The segments between ``bounds`` (N+1 sample indices) cut into pieces of ≤ ``max_piece`` samples."""
    bounds = np.asarray(bounds, np.int64)
    lengths = np.diff(bounds)
    counts = np.maximum(1, -(-lengths // max_piece))
    segment = np.repeat(np.arange(len(lengths)), counts)
    offset = (np.arange(len(segment)) - np.repeat(np.cumsum(counts) - counts, counts)) * max_piece
    length = np.minimum(lengths[segment] - offset, max_piece)
    return SegmentPieces(segment, bounds[segment] + offset, length, offset, lengths[segment])


def piece_batches(pieces: SegmentPieces, block_samples: int) -> list[tuple[int, int]]:
    """Consecutive runs ``[p0, p1)`` of pieces rendered together: as many as fit in
    ``block_samples`` samples, at least one."""
    batches = []
    p0, n = 0, len(pieces.length)
    while p0 < n:
        ends = np.cumsum(pieces.length[p0:]) <= block_samples
        p1 = p0 + max(1, int(np.count_nonzero(ends)))
        batches.append((p0, p1))
        p0 = p1
    return batches


def _render_batch(mono: np.ndarray, base: int, pieces: SegmentPieces, p0: int, p1: int, hrirs: np.ndarray,
                  nfft: int) -> np.ndarray:
    """Eq. 8 for pieces ``[p0, p1)``: ``(P, 2, nfft)`` responses, each from its piece's start.

    ``mono`` holds the signal from sample ``base``; ``hrirs`` the HRIRs at the boundaries from
    segment ``pieces.segment[p0]`` through ``pieces.segment[p1 - 1] + 1``."""
    from scipy.fft import irfft, rfft

    starts, lens = pieces.start[p0:p1] - base, pieces.length[p0:p1]
    ramp = np.arange(int(lens.max()))
    idx = starts[:, None] + ramp[None, :]
    valid = ramp[None, :] < lens[:, None]
    seg = np.where(valid, mono[np.minimum(idx, len(mono) - 1)], 0.0)
    position = pieces.offset[p0:p1, None] + ramp[None, :]
    w = np.where(valid, position / np.maximum(pieces.segment_length[p0:p1, None], 1), 0.0)
    head = rfft(seg * (1.0 - w), n=nfft, axis=-1)
    tail = rfft(seg * w, n=nfft, axis=-1)
    spec = rfft(hrirs, n=nfft, axis=-1)
    k = pieces.segment[p0:p1] - pieces.segment[p0]
    return irfft(head[:, None, :] * spec[k] + tail[:, None, :] * spec[k + 1], n=nfft, axis=-1)


class _MonoBuffer:
    """The mono samples of a stream from ``start`` on, pulled from its blocks as needed."""

    def __init__(self, blocks: Iterable[np.ndarray], n_samples: int) -> None:
        self._blocks = iter(blocks)
        self._n = n_samples
        self.start = 0
        self.data = np.zeros(0)

    def upto(self, end: int) -> np.ndarray:
        """The samples ``[start, end)``, reading blocks until they are in."""
        parts = [self.data]
        held = len(self.data)
        while self.start + held < end:
            block = next(self._blocks, None)
            if block is None:
                raise ValueError(f"the mono signal ended after {self.start + held} samples; {self._n} were expected")
            block = np.asarray(block, float)
            parts.append(block)
            held += len(block)
        if len(parts) > 1:
            self.data = np.concatenate(parts)
        return self.data[: end - self.start]

    def drop_before(self, index: int) -> None:
        self.data = self.data[index - self.start:]
        self.start = index


def render_segment_blocks(blocks: Iterable[np.ndarray], bounds: np.ndarray,
                          hrirs_at: Callable[[np.ndarray], np.ndarray], block_samples: int = BLOCK_SAMPLES,
                          max_piece: int = MAX_PIECE_SAMPLES) -> Iterator[np.ndarray]:
    """Eq. 8, batched FFT, streamed — render a mono signal arriving as ``blocks`` (1-D, ``bounds[-1]``
    samples in all) along N segments cut at ``bounds`` ``(N+1,)``; ``hrirs_at(i)`` gives the
    ``(len(i), 2, taps)`` HRIRs at boundaries ``i`` (a fixed ``taps``).

    Pieces of about ``block_samples`` samples are rendered per batch; each batch's responses are
    overlap-added into a running output whose finished part (before the next piece's start) is
    yielded as ``(2, k)`` blocks and whose filter tail carries into the next batch. The FFT size
    is fixed per render (longest piece + taps − 1), so the output does not depend on
    ``block_samples``. Filter tails past the end are dropped.
    """
    from scipy.fft import next_fast_len

    bounds = np.asarray(bounds, np.int64)
    n = int(bounds[-1])
    pieces = segment_pieces(bounds, max_piece)
    mono = _MonoBuffer(blocks, n)
    out = np.zeros((2, 0))
    out_start = 0  # sample index of out[:, 0]
    nfft = None
    for p0, p1 in piece_batches(pieces, block_samples):
        end = int(pieces.start[p1 - 1] + pieces.length[p1 - 1])
        signal = mono.upto(end)
        hrirs = hrirs_at(np.arange(pieces.segment[p0], pieces.segment[p1 - 1] + 2))
        taps = hrirs.shape[-1]
        if nfft is None:
            nfft = next_fast_len(int(pieces.length.max()) + taps - 1)
        y = _render_batch(signal, mono.start, pieces, p0, p1, hrirs, nfft)
        reach = end + taps - 1 - out_start
        if out.shape[1] < reach:
            out = np.concatenate([out, np.zeros((2, reach - out.shape[1]))], axis=1)
        for j in range(p1 - p0):
            s, m = int(pieces.start[p0 + j]) - out_start, int(pieces.length[p0 + j]) + taps - 1
            out[:, s : s + m] += y[j, :, :m]
        del y
        done = min(end, n) - out_start  # no later piece starts before `end`
        yield out[:, :done]
        out, out_start = out[:, done:], out_start + done
        mono.drop_before(end)


def render_segments(mono: np.ndarray, hrirs: np.ndarray, bounds: np.ndarray, block: int = BLOCK_SAMPLES) -> np.ndarray:
    """Eq. 8, batched FFT — render ``mono`` ``(n,)`` with ``hrirs`` ``(N+1, 2, taps)`` given at the
    ``bounds`` ``(N+1,)`` of N segments, about ``block`` samples per batch. Returns ``(2, n)``;
    filter tails past the end are dropped."""
    mono = np.asarray(mono, float)
    return _collect_stereo(render_segment_blocks([mono], bounds, lambda i: hrirs[i], block))


def _collect_stereo(blocks: Iterable[np.ndarray]) -> np.ndarray:
    """``(2, n)`` from ``(2, k)`` blocks (``(2, 0)`` for none)."""
    parts = list(blocks)
    return np.concatenate(parts, axis=1) if parts else np.zeros((2, 0))


def render_segments_naive(mono: np.ndarray, hrirs: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Eq. 8, reference implementation: four ``scipy.signal.fftconvolve`` calls per segment.

    The baseline of ``benchmarks/`` and the oracle for :func:`render_segments` in the tests.
    """
    from scipy.signal import fftconvolve

    mono = np.asarray(mono, float)
    n = len(mono)
    taps = hrirs.shape[-1]
    out = np.zeros((2, n + taps))
    for i in range(len(bounds) - 1):
        s, e = int(bounds[i]), int(bounds[i + 1])
        seg = mono[s:e]
        w = crossfade_weight(e - s)
        for ear in range(2):
            y = fftconvolve(seg * (1 - w), hrirs[i, ear]) + fftconvolve(seg * w, hrirs[i + 1, ear])
            out[ear, s : s + len(y)] += y
    return out[:, :n]


class DspRenderer:
    """HRTF convolution renderer (eq. 8 with §IV-A distance); satisfies :class:`Renderer`."""

    name = "dsp"

    def __init__(self, hrir_set: HrirSet, config: DspRendererConfig = DspRendererConfig()) -> None:
        self.hrir_set = hrir_set
        self.config = config

    def segment_count(self, n_samples: int, sample_rate: int, waypoints: Waypoints) -> int:
        """N of eq. 8 for a signal of ``n_samples``."""
        return len(self.bounds(n_samples, sample_rate, waypoints)) - 1

    def bounds(self, n_samples: int, sample_rate: int, waypoints: Waypoints) -> np.ndarray:
        """Eq. 8 segment boundaries (samples). With a segment rate: N equal segments. Without:
        a segment starts at each trajectory time (the last one runs to the end), so every
        boundary falls exactly on a trajectory position — per analysis frame for the fine
        scheme, on whole seconds (cell centers) for the coarse one."""
        if self.config.segment_rate_hz:
            return segment_bounds(n_samples, max(1, int(round(n_samples / sample_rate * self.config.segment_rate_hz))))
        starts = np.round(np.asarray(waypoints.times_s, float) * sample_rate).astype(np.int64)
        starts = np.unique(np.clip(starts, 0, max(n_samples - 1, 0)))
        return np.append(starts if len(starts) and starts[0] == 0 else np.insert(starts, 0, 0), n_samples)

    def boundary_hrirs(self, waypoints: Waypoints, times_s: np.ndarray) -> np.ndarray:
        """``(len(times_s), 2, taps)`` HRIRs at the trajectory positions at ``times_s``, with
        distance (§IV-A). Each row depends only on its own time and ``taps`` only on the HRIR set
        and the config, so HRIRs asked for in blocks equal those of one call, sample for sample."""
        cfg = self.config
        az, el, r = to_spherical(waypoints.at(times_s)).T
        hrirs = self.hrir_set.hrirs(az, el)
        if cfg.distance_delay:
            hrirs = delay_hrirs(hrirs, cfg.arrival_delay_s(r), self.hrir_set.sample_rate, cfg.max_delay_s)
        if cfg.distance_gain:
            hrirs = hrirs * distance_gain(r, self.hrir_set.ref_distance_m, cfg.min_distance_m)[:, None, None]
        return hrirs

    def render(self, mono: np.ndarray, waypoints: Waypoints, sample_rate: int) -> np.ndarray:
        """``(2, len(mono))``: :meth:`render_blocks` of the whole signal, collected."""
        mono = np.asarray(mono, float)
        return _collect_stereo(self.render_blocks([mono], len(mono), waypoints, sample_rate))

    def render_blocks(self, blocks: Iterable[np.ndarray], n_samples: int, waypoints: Waypoints,
                      sample_rate: int, block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
        """Eq. 8 over mono ``blocks`` (``n_samples`` in all), in ``(2, k)`` blocks: the HRIRs of each
        batch of segments are made when it is rendered (:func:`render_segment_blocks`)."""
        if sample_rate != self.hrir_set.sample_rate:
            raise ValueError(f"HRIR set is at {self.hrir_set.sample_rate} Hz, signal at {sample_rate} Hz")
        bounds = self.bounds(n_samples, sample_rate, waypoints)
        return render_segment_blocks(blocks, bounds, lambda i: self.boundary_hrirs(waypoints, bounds[i] / sample_rate),
                                     block_samples)
