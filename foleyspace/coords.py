"""Coordinate conversions (SOFA convention).

x forward, y left, z up, metres; azimuth in degrees counter-clockwise from +x (positive = left),
elevation in degrees (positive = up), distance in metres.
"""

from __future__ import annotations

import numpy as np


def to_spherical(xyz: np.ndarray) -> np.ndarray:
    """Cartesian ``(T, 3)`` (x fwd, y left, z up) → ``(T, 3)`` of azimuth°, elevation°, distance m."""
    xyz = np.asarray(xyz, dtype=float).reshape(-1, 3)
    x, y, z = xyz.T
    r = np.linalg.norm(xyz, axis=1)
    az = np.degrees(np.arctan2(y, x))
    el = np.degrees(np.arctan2(z, np.hypot(x, y)))
    return np.stack([az, el, r], axis=1)


def to_cartesian(az_deg: np.ndarray, el_deg: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Azimuth°, elevation°, distance m → ``(T, 3)`` cartesian (x fwd, y left, z up)."""
    az, el = np.radians(np.asarray(az_deg, float)), np.radians(np.asarray(el_deg, float))
    r = np.asarray(r, float)
    return np.stack([r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az), r * np.sin(el)], axis=-1)
