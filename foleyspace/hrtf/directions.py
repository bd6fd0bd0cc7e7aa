"""The paper's direction sets (§IV): which measured HRIR directions the renderer and the
training-set builder may use.

* ``fine`` — every measured direction with azimuth in [−90°, +90°] and elevation in [−40°, +40°]
  (the frontal half, where a picture can place a source; paper §IV: azimuth 90°–270° in its
  clockwise-from-behind convention, which is this span in SOFA's);
* ``coarse`` — 15 fixed directions, 5 azimuths × 3 elevations, each served by the measured
  direction nearest to it, with 5 fixed distances (the paper lost its values in print; ours:
  azimuths 0°, ±30°, ±60° and elevations 0°, ±30°, spread evenly over the fine span, and the
  coarse scheme's five depth levels 1, 2.25, 3.5, 4.75, 6 m);
* ``all`` — every direction in the file.

Angles follow SOFA (azimuth counter-clockwise from straight ahead, positive = left; elevation
positive up), in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from foleyspace.coords import to_cartesian

#: The names ``--hrtf-directions`` accepts.
DIRECTION_SETS = ("all", "fine", "coarse")


@dataclass(frozen=True)
class DirectionSetConfig:
    """The paper's direction sets (angles in degrees, distances in metres).

    Attributes:
        fine_azimuth_deg: the fine set keeps |azimuth| ≤ this (paper: 90°).
        fine_elevation_deg: ... and |elevation| ≤ this (paper: 40°).
        coarse_azimuths_deg: the coarse set's 5 azimuths (ours).
        coarse_elevations_deg: its 3 elevations (ours).
        coarse_distances_m: its 5 distances (ours: the coarse scheme's depth levels over 1–6 m).
    """

    fine_azimuth_deg: float = 90.0
    fine_elevation_deg: float = 40.0
    coarse_azimuths_deg: tuple[float, ...] = (-60.0, -30.0, 0.0, 30.0, 60.0)
    coarse_elevations_deg: tuple[float, ...] = (-30.0, 0.0, 30.0)
    coarse_distances_m: tuple[float, ...] = (1.0, 2.25, 3.5, 4.75, 6.0)


def wrap_azimuth(azimuth_deg: np.ndarray) -> np.ndarray:
    """Azimuths folded into (−180°, 180°]."""
    az = np.mod(np.asarray(azimuth_deg, float) + 180.0, 360.0) - 180.0
    return np.where(az == -180.0, 180.0, az)


def fine_mask(azimuth_deg: np.ndarray, elevation_deg: np.ndarray,
              config: DirectionSetConfig = DirectionSetConfig()) -> np.ndarray:
    """Which directions belong to the fine set (boolean array; a 1e-6° tolerance at the limits)."""
    az = np.abs(wrap_azimuth(azimuth_deg))
    el = np.abs(np.asarray(elevation_deg, float))
    return (az <= config.fine_azimuth_deg + 1e-6) & (el <= config.fine_elevation_deg + 1e-6)


def coarse_directions(config: DirectionSetConfig = DirectionSetConfig()) -> np.ndarray:
    """The coarse set's 15 target directions ``(15, 2)`` (azimuth, elevation), elevation-major."""
    return np.array([(az, el) for el in config.coarse_elevations_deg for az in config.coarse_azimuths_deg], float)


def nearest_directions(targets_deg: np.ndarray, measured_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each target ``(n, 2)`` direction the index of the nearest measured ``(m, 2)`` direction
    (great-circle) and the angle between them in degrees."""
    t = to_cartesian(targets_deg[:, 0], targets_deg[:, 1], np.ones(len(targets_deg)))
    m = to_cartesian(measured_deg[:, 0], measured_deg[:, 1], np.ones(len(measured_deg)))
    cos = t @ m.T
    idx = np.argmax(cos, axis=1)
    return idx, np.degrees(np.arccos(np.clip(cos[np.arange(len(idx)), idx], -1.0, 1.0)))


def select(name: str, measured_deg: np.ndarray, config: DirectionSetConfig = DirectionSetConfig()) -> np.ndarray:
    """Indices of the measured directions ``(m, 2)`` that set ``name`` keeps (sorted, unique).

    Raises:
        ValueError: an unknown set name.
    """
    if name == "all":
        return np.arange(len(measured_deg))
    if name == "fine":
        return np.flatnonzero(fine_mask(measured_deg[:, 0], measured_deg[:, 1], config))
    if name == "coarse":
        return np.unique(nearest_directions(coarse_directions(config), measured_deg)[0])
    raise ValueError(f"unknown direction set {name!r}; known: {', '.join(DIRECTION_SETS)}")
