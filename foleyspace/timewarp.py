"""Constant-speed time warps: how the timeline plays a source range (numpy and the standard library only).

An editor may play a clip faster (×2), slower (×0.5), backwards (×−1) or hold one frame (a
freeze frame, ×0). The picture then shows source second ``s(t)`` at timeline second ``t``
(``t`` from the start of the clip on the timeline):

* ``speed > 0``: ``s(t) = start + speed·t``
* ``speed < 0``: ``s(t) = end + speed·t`` (the range played from its end back to its start)
* ``speed = 0``: ``s(t) = start`` for ``hold_s`` timeline seconds

and the clip lasts ``(end − start)/|speed|`` timeline seconds (``hold_s`` when held). The stem
follows the same mapping: its path is the analyzed path at ``s(t)`` and the clip's own sound is
played varispeed (resampled, pitch following speed, as editors play a retimed clip by default),
so it lasts exactly as long as the clip does on the timeline. Variable ramps are not described
here: front ends refuse them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Fastest and slowest speeds accepted (|speed|, source seconds per timeline second).
SPEED_RANGE = (0.01, 100.0)
#: Longest freeze frame accepted, timeline seconds (a day).
MAX_HOLD_S = 86400.0


@dataclass(frozen=True)
class TimeWarp:
    """How the timeline plays the job's source range.

    Attributes:
        speed: source seconds per timeline second; 1 plays normally, 2 twice as fast, 0.5 at
            half speed, −1 backwards, 0 holds the frame at the range start (a freeze frame).
        hold_s: how long a freeze frame lasts on the timeline, seconds (``speed == 0`` only).
    """

    speed: float = 1.0
    hold_s: float | None = None

    def __post_init__(self) -> None:
        lo, hi = SPEED_RANGE
        if not math.isfinite(self.speed):
            raise ValueError("speed must be a finite number")
        if self.speed == 0:
            if self.hold_s is None or not (0 < self.hold_s <= MAX_HOLD_S):
                raise ValueError(f"a freeze frame (speed 0) needs hold_s, from 0 to {MAX_HOLD_S:g} s")
        else:
            if not lo <= abs(self.speed) <= hi:
                raise ValueError(f"speed must be 0 (a freeze frame) or from {lo:g} to {hi:g} in size")
            if self.hold_s is not None:
                raise ValueError("hold_s is for freeze frames (speed 0) only")

    @property
    def is_identity(self) -> bool:
        return self.speed == 1.0

    @property
    def is_freeze(self) -> bool:
        return self.speed == 0

    def describe(self) -> str:
        """In words, e.g. ``"2× speed"``, ``"reversed"``, ``"frozen for 3 s"``."""
        if self.is_freeze:
            return f"a freeze frame held {self.hold_s:g} s"
        if self.speed == -1:
            return "reversed"
        return f"{self.speed:g}× speed"

    def timeline_duration(self, start_s: float, end_s: float) -> float:
        """Seconds the source range ``[start_s, end_s]`` lasts on the timeline."""
        if self.is_freeze:
            return float(self.hold_s)  # type: ignore[arg-type]
        return (end_s - start_s) / abs(self.speed)

    def source_time(self, t: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
        """Source seconds shown at timeline seconds ``t`` (from the clip's start on the timeline)."""
        t = np.asarray(t, float)
        if self.is_freeze:
            return np.full_like(t, start_s)
        return (start_s if self.speed > 0 else end_s) + self.speed * t

    def timeline_time(self, s: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
        """Timeline seconds at which source seconds ``s`` are shown (the inverse of
        :meth:`source_time`; not defined for a freeze frame)."""
        if self.is_freeze:
            raise ValueError("a freeze frame shows one source time for its whole length")
        s = np.asarray(s, float)
        return (s - (start_s if self.speed > 0 else end_s)) / self.speed

    def varispeed_rate(self, sample_rate: int) -> int:
        """The rate (Hz) to read the source sound at so that, played at ``sample_rate``, it runs
        at this speed: ``sample_rate/|speed|`` rounded (relative error ≤ 0.5/rate, e.g. 10 µs per
        second at 48 kHz)."""
        if self.is_freeze:
            raise ValueError("a freeze frame plays none of the source's sound")
        return max(1, int(round(sample_rate / abs(self.speed))))

    def analysis_range(self, start_s: float, end_s: float, clip_s: float, context_s: float) -> tuple[float, float]:
        """The source range to analyse: the range itself, or for a freeze frame the held frame
        with ``context_s`` seconds either side (the localizers need motion to see the object)."""
        if not self.is_freeze:
            return start_s, end_s
        return max(0.0, start_s - context_s), min(clip_s, start_s + context_s)


def warp_path(warp: TimeWarp, times_s: np.ndarray, xyz: np.ndarray, start_s: float, end_s: float,
              span_start_s: float, hold_at_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Move a path analysed in source time to timeline time.

    Args:
        times_s: ``(N,)`` path times, seconds from ``span_start_s`` (the analysed range's start).
        xyz: ``(N, 3)`` positions at those times.
        start_s, end_s: the job's source range, clip seconds.
    Returns ``(times, xyz)`` ascending in timeline seconds from the clip's start on the timeline;
    a freeze frame gives the position at ``start_s`` (interpolated) held for its whole length.
    """
    times_s = np.asarray(times_s, float)
    xyz = np.asarray(xyz, float)
    clip_times = span_start_s + times_s
    if warp.is_freeze:
        held = np.array([np.interp(start_s, clip_times, xyz[:, k]) for k in range(3)])
        return np.array([0.0, float(warp.hold_s)]), np.stack([held, held])  # type: ignore[arg-type]
    t = warp.timeline_time(clip_times, start_s, end_s)
    order = np.argsort(t, kind="stable")
    return t[order], xyz[order]
