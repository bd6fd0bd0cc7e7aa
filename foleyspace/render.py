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

from dataclasses import dataclass
from typing import Protocol

import numpy as np

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
        distance_gain: apply the 1/r gain relative to the HRIR radius (ours).
        min_distance_m: the 1/r gain is clamped at this distance (ours).
        distance_delay: also shift the time of arrival with distance (§IV-A). Off by default
            (ours): cross-fading responses that differ by many samples comb-filters fast motion.
        speed_of_sound: for ``distance_delay``, m/s.
    """

    segment_rate_hz: float | None = None
    distance_gain: bool = True
    min_distance_m: float = 0.25
    distance_delay: bool = False
    speed_of_sound: float = 343.0

    def __post_init__(self) -> None:
        rate = self.segment_rate_hz
        if rate is not None and not 0 < rate <= MAX_SEGMENT_RATE_HZ:  # also false for NaN
            raise ValueError(f"segments per second must be in (0, {MAX_SEGMENT_RATE_HZ:g}]")


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
    """Turns a mono signal and a trajectory into a binaural signal of the same length."""

    name: str

    def render(self, mono: np.ndarray, waypoints: Waypoints, sample_rate: int) -> np.ndarray:
        """``(2, len(mono))`` binaural signal at ``sample_rate`` Hz."""
        ...


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


def delay_hrirs(hrirs: np.ndarray, delays_s: np.ndarray, sample_rate: int) -> np.ndarray:
    """§IV-A — shift each HRIR ``(N, 2, taps)`` later by ``delays_s[i]`` ≥ 0 seconds (fractional,
    by a linear phase), lengthening all to hold the largest shift: the time of arrival at distance."""
    delays = np.asarray(delays_s, float)
    if np.any(delays < 0):
        raise ValueError("delays must be non-negative")
    from scipy.fft import irfft, next_fast_len, rfft

    taps = hrirs.shape[-1] + int(np.ceil(delays.max() * sample_rate)) + 1
    n = next_fast_len(2 * taps)
    spectrum = rfft(hrirs, n=n, axis=-1)
    freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
    spectrum *= np.exp(-2j * np.pi * freqs[None, None, :] * delays[:, None, None])
    return irfft(spectrum, n=n, axis=-1)[..., :taps]


def render_segments(mono: np.ndarray, hrirs: np.ndarray, bounds: np.ndarray, block: int = 256) -> np.ndarray:
    """Eq. 8, batched FFT — render ``mono`` ``(n,)`` with ``hrirs`` ``(N+1, 2, taps)`` given at the
    ``bounds`` ``(N+1,)`` of N segments. Returns ``(2, n)``; filter tails past the end are dropped."""
    from scipy.fft import irfft, next_fast_len, rfft

    mono = np.asarray(mono, float)
    n = len(mono)
    n_seg = len(bounds) - 1
    taps = hrirs.shape[-1]
    lengths = np.diff(bounds)
    lmax = int(lengths.max())
    nfft = next_fast_len(lmax + taps - 1)
    out = np.zeros((2, n + lmax + taps))
    ramp_idx = np.arange(lmax)
    for b0 in range(0, n_seg, block):
        b1 = min(b0 + block, n_seg)
        starts, lens = bounds[b0:b1], lengths[b0:b1]
        idx = starts[:, None] + ramp_idx[None, :]
        valid = ramp_idx[None, :] < lens[:, None]
        seg = np.where(valid, mono[np.minimum(idx, n - 1)], 0.0)
        w = np.where(valid, ramp_idx[None, :] / np.maximum(lens[:, None], 1), 0.0)
        head = rfft(seg * (1.0 - w), n=nfft, axis=-1)
        tail = rfft(seg * w, n=nfft, axis=-1)
        spec = rfft(hrirs[b0 : b1 + 1], n=nfft, axis=-1)
        y = irfft(head[:, None, :] * spec[:-1] + tail[:, None, :] * spec[1:], n=nfft, axis=-1)
        for j, (s, length) in enumerate(zip(starts, lens)):
            m = int(length) + taps - 1
            out[:, s : s + m] += y[j, :, :m]
    return out[:, :n]


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
        """``(len(times_s), 2, taps)`` HRIRs at the trajectory positions at ``times_s``, with distance."""
        cfg = self.config
        az, el, r = to_spherical(waypoints.at(times_s)).T
        hrirs = self.hrir_set.hrirs(az, el)
        if cfg.distance_delay:
            near = np.maximum(r, cfg.min_distance_m)  # delays relative to the nearest point keep sync
            hrirs = delay_hrirs(hrirs, (near - near.min()) / cfg.speed_of_sound, self.hrir_set.sample_rate)
        if cfg.distance_gain:
            hrirs = hrirs * distance_gain(r, self.hrir_set.ref_distance_m, cfg.min_distance_m)[:, None, None]
        return hrirs

    def render(self, mono: np.ndarray, waypoints: Waypoints, sample_rate: int) -> np.ndarray:
        if sample_rate != self.hrir_set.sample_rate:
            raise ValueError(f"HRIR set is at {self.hrir_set.sample_rate} Hz, signal at {sample_rate} Hz")
        bounds = self.bounds(len(mono), sample_rate, waypoints)
        hrirs = self.boundary_hrirs(waypoints, bounds / sample_rate)
        return render_segments(mono, hrirs, bounds)
