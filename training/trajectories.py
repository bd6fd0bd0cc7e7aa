"""Random smooth source trajectories for the training set (paper §IV), pure functions.

* fine scheme — a few random control points (azimuth, elevation, distance) joined by a
  shape-preserving cubic (PCHIP), so the path is smooth and never leaves the span of its control
  points, which are drawn inside azimuth ±90°, elevation ±40° and distance [0.25, 6] m;
* coarse scheme — a random walk on the 15 coarse directions × 5 distances
  (:mod:`foleyspace.hrtf.directions`): each step moves each grid index by −1, 0 or +1.

Angles follow SOFA (azimuth counter-clockwise, positive = left; elevation positive up), degrees;
positions are returned as ``(N, 3)`` metres, x forward, y left, z up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from foleyspace.coords import to_cartesian
from foleyspace.hrtf.directions import DirectionSetConfig


@dataclass(frozen=True)
class TrajectoryRanges:
    """Where a fine-scheme trajectory may go and how fast it may turn (paper §IV; ours where marked).

    Attributes:
        azimuth_deg: |azimuth| ≤ this (paper: 90°, the frontal half).
        elevation_deg: |elevation| ≤ this (paper: 40°).
        min_distance_m, max_distance_m: distance range, metres (paper 0–6 m; ours 0.25 m near
            end: the renderer's near-head clamp).
        control_interval_s: seconds between control points (ours: 2 s; at least two per segment).
    """

    azimuth_deg: float = 90.0
    elevation_deg: float = 40.0
    min_distance_m: float = 0.25
    max_distance_m: float = 6.0
    control_interval_s: float = 2.0

    def __post_init__(self) -> None:
        if not (0 < self.azimuth_deg <= 180 and 0 <= self.elevation_deg <= 90
                and 0 < self.min_distance_m <= self.max_distance_m and self.control_interval_s > 0):
            raise ValueError("trajectory ranges: need 0 < azimuth ≤ 180°, 0 ≤ elevation ≤ 90°, "
                             "0 < min ≤ max distance, a positive control interval")


def control_count(duration_s: float, ranges: TrajectoryRanges) -> int:
    """Control points of a fine trajectory lasting ``duration_s``: one per interval, both ends, at least 2."""
    return max(2, math.ceil(duration_s / ranges.control_interval_s - 1e-9) + 1)


def fine_trajectory(rng: np.random.Generator, times_s: np.ndarray, duration_s: float,
                    ranges: TrajectoryRanges = TrajectoryRanges()) -> np.ndarray:
    """A random smooth path sampled at ``times_s`` ``(N,)`` seconds in ``[0, duration_s]``: ``(N, 3)`` xyz.

    Control points are evenly spaced over the duration with azimuth, elevation and distance
    uniform in their ranges; each coordinate is joined by PCHIP (no overshoot: every sample stays
    within the ranges; its slope is at most 3× the steepest control-to-control slope).
    """
    from scipy.interpolate import PchipInterpolator

    n = control_count(duration_s, ranges)
    knots = np.linspace(0.0, duration_s, n)
    az = rng.uniform(-ranges.azimuth_deg, ranges.azimuth_deg, n)
    el = rng.uniform(-ranges.elevation_deg, ranges.elevation_deg, n)
    r = rng.uniform(ranges.min_distance_m, ranges.max_distance_m, n)
    t = np.asarray(times_s, float)
    path = PchipInterpolator(knots, np.stack([az, el, r], axis=1), axis=0)(t)
    az_t = np.clip(path[:, 0], -ranges.azimuth_deg, ranges.azimuth_deg)
    el_t = np.clip(path[:, 1], -ranges.elevation_deg, ranges.elevation_deg)
    r_t = np.clip(path[:, 2], ranges.min_distance_m, ranges.max_distance_m)
    return to_cartesian(az_t, el_t, r_t)


def coarse_grid(config: DirectionSetConfig = DirectionSetConfig()) -> np.ndarray:
    """The coarse scheme's positions ``(A, E, D, 3)`` (azimuth°, elevation°, distance m) over its
    A azimuths × E elevations × D distances (15 × 5 by default)."""
    az, el, r = np.meshgrid(config.coarse_azimuths_deg, config.coarse_elevations_deg, config.coarse_distances_m,
                            indexing="ij")
    return np.stack([az, el, r], axis=-1)


def coarse_trajectory(rng: np.random.Generator, n_positions: int,
                      config: DirectionSetConfig = DirectionSetConfig()) -> np.ndarray:
    """A random walk of ``n_positions`` on the coarse grid: ``(N, 3)`` xyz.

    It starts at a uniformly drawn grid point; each step moves the azimuth, elevation and distance
    indices by −1, 0 or +1 each (clipped at the grid's edges), so neighbouring positions are
    neighbouring cells.
    """
    grid = coarse_grid(config)
    shape = np.array(grid.shape[:3])
    idx = np.empty((n_positions, 3), np.int64)
    idx[0] = [rng.integers(0, s) for s in shape]
    steps = rng.integers(-1, 2, size=(max(n_positions - 1, 0), 3))
    for i in range(1, n_positions):
        idx[i] = np.clip(idx[i - 1] + steps[i - 1], 0, shape - 1)
    a, e, r = grid[idx[:, 0], idx[:, 1], idx[:, 2]].T
    return to_cartesian(a, e, r)
