"""From per-frame boxes and depths to a 3-D source path around the listener (eq. 1 and 3–7).

Conventions (SOFA, used everywhere): x forward, y left, z up, metres; azimuth counter-clockwise
from +x in degrees (positive = left), elevation positive up. Pixels: ``u`` right, ``v`` down,
origin top-left; the image center is straight ahead, so screen right ⇒ negative azimuth.

All functions are pure; NaN marks "no value" (e.g. no detection) where stated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from foleyspace.config import TrajectoryConfig



def box_centers(boxes: np.ndarray) -> np.ndarray:
    """Eq. 1 — ``p_t = (u_t, v_t)``, the center of each ``(x, y, w, h)`` box; ``(T, 2)`` pixels.

    Rows of NaN (no detection) stay NaN.
    """
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    return np.stack([boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2], axis=1)


def mapping_factor(width: float, x_max: float) -> float:
    """Eq. 3 — ``k = x_max / (W / 2)``: metres per pixel, so the frame edge lies ``x_max`` aside."""
    if width <= 0:
        raise ValueError("frame width must be positive")
    return x_max / (width / 2.0)


def normalize_depth(
    depth: np.ndarray, d_near: float, d_far: float, min_relative_span: float = 0.0
) -> np.ndarray:
    """Eq. 5 (ours) — ``d̂ = d_near + (d_far − d_near)·(d − d_min)/(d_max − d_min)`` in metres.

    Min–max over the finite values of the clip. A clip of constant depth gets ``d_near``; NaN
    inputs stay NaN. ``depth`` is depth-like: larger = farther. (ours) The span ``d_max − d_min``
    is taken as at least ``min_relative_span · |d_max|``, so small jitter in a depth that hardly
    changes is not stretched over the whole d_near…d_far range.
    """
    d = np.asarray(depth, dtype=float)
    out = np.full_like(d, np.nan)
    ok = np.isfinite(d)
    if not ok.any():
        return out
    lo, hi = d[ok].min(), d[ok].max()
    span = max(hi - lo, min_relative_span * abs(hi))
    n = np.zeros_like(d[ok]) if span <= 1e-12 * max(1.0, abs(hi)) else (d[ok] - lo) / span
    out[ok] = d_near + (d_far - d_near) * n
    return out


def listener_coordinates(
    u: np.ndarray, v: np.ndarray, d_hat: np.ndarray, width: float, height: float, k: float
) -> np.ndarray:
    """Eq. 4 — ``x = d̂``, ``y = −k·(u − W/2)``, ``z = k·(H/2 − v)``; returns ``(T, 3)`` metres."""
    u, v, d_hat = (np.asarray(a, dtype=float) for a in (u, v, d_hat))
    return np.stack([d_hat, -k * (u - width / 2.0), k * (height / 2.0 - v)], axis=1)


def step_lengths(s: np.ndarray) -> np.ndarray:
    """Eq. 7 — ``Δ_t = ‖s_t − s_{t−1}‖₂`` for t = 1..T−1; ``(T−1,)``."""
    s = np.asarray(s, dtype=float)
    return np.linalg.norm(np.diff(s, axis=0), axis=1)


def outlier_frames(s: np.ndarray, percentile: float = 95.0) -> np.ndarray:
    """Eq. 7 — frames to drop: every t whose ``Δ_t`` exceeds the clip's ``percentile`` of Δ,
    and its neighbours t−1 and t+1. Returns a ``(T,)`` bool mask (True = outlier)."""
    s = np.asarray(s, dtype=float)
    mask = np.zeros(len(s), dtype=bool)
    if len(s) < 3:
        return mask
    delta = step_lengths(s)
    threshold = np.percentile(delta, percentile)
    jumps = np.nonzero(delta > threshold)[0] + 1  # Δ index i is the step into frame i+1
    for t in jumps:
        mask[max(t - 1, 0) : t + 2] = True
    return mask


def interpolate_gaps(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Linear interpolation over the ``missing`` rows of ``values`` ``(T, D)``, per column.

    Missing rows before the first / after the last valid row hold the nearest valid value. If no
    row is valid the input is returned unchanged.
    """
    values = np.array(values, dtype=float)
    single = values.ndim == 1
    if single:
        values = values[:, None]
    missing = np.asarray(missing, dtype=bool)
    keep = ~missing
    if keep.any() and missing.any():
        t = np.arange(len(values))
        for c in range(values.shape[1]):
            values[missing, c] = np.interp(t[missing], t[keep], values[keep, c])
    return values[:, 0] if single else values


def smooth_trajectory(s: np.ndarray, percentile: float = 95.0) -> np.ndarray:
    """Eq. 7 — drop outlier frames (and neighbours) and linearly interpolate each coordinate."""
    return interpolate_gaps(s, outlier_frames(s, percentile))


def coarse_cells(
    u: np.ndarray, v: np.ndarray, width: float, height: float, columns: int = 5, rows: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """§III-E — the grid cell center holding each point: returns ``(u_c, v_c)`` pixels.

    The frame is cut into ``columns × rows`` equal cells (paper: 5 × 3); NaN stays NaN.
    """
    u, v = np.asarray(u, float), np.asarray(v, float)
    cw, ch = width / columns, height / rows
    col = np.clip(np.floor(u / cw), 0, columns - 1)
    row = np.clip(np.floor(v / ch), 0, rows - 1)
    return (col + 0.5) * cw, (row + 0.5) * ch


def quantize_depth(d_hat: np.ndarray, d_near: float, d_far: float, levels: int = 5) -> np.ndarray:
    """§III-E — snap ``d̂`` to ``levels`` equally spaced distances from ``d_near`` to ``d_far``."""
    d_hat = np.asarray(d_hat, float)
    if levels < 2 or d_far <= d_near:
        return np.full_like(d_hat, d_near)
    n = np.clip((d_hat - d_near) / (d_far - d_near), 0.0, 1.0)
    return d_near + (d_far - d_near) * np.round(n * (levels - 1)) / (levels - 1)


def frame_seconds(n_frames: int, fps: float) -> np.ndarray:
    """§III-E — the whole second (0, 1, …) each of ``n_frames`` frames at ``fps`` falls in."""
    return np.floor(np.arange(n_frames) / fps + 1e-9).astype(int)


def per_second_median(values: np.ndarray, fps: float) -> np.ndarray:
    """§III-E (ours: median over each second) — ``(S, D)`` medians of the rows of ``values``
    ``(T, D)`` falling in each whole or partial second; NaN rows are ignored (all-NaN → NaN)."""
    values = np.asarray(values, float)
    single = values.ndim == 1
    if single:
        values = values[:, None]
    second = frame_seconds(len(values), fps)
    n_sec = int(second[-1]) + 1 if len(second) else 0
    out = np.full((n_sec, values.shape[1]), np.nan)
    for s in range(n_sec):
        block = values[second == s]
        ok = np.all(np.isfinite(block), axis=1)
        if ok.any():
            out[s] = np.median(block[ok], axis=0)
    return out[:, 0] if single else out


@dataclass(frozen=True)
class SourcePath:
    """The analyzed path of the source, per analysis frame, plus what the renderer follows.

    Per-frame arrays ``(T,)`` (``xyz`` ``(T, 3)``): ``times_s`` from the range start; ``u, v``
    box center in analysis pixels after gap filling; ``depth`` relative depth (larger = farther);
    ``d_hat`` eq. 5 distance (m); ``xyz`` listener coordinates after smoothing (m);
    ``confidence`` of the localizer; ``detected`` whether the frame had a box.
    ``render_times_s`` / ``render_xyz``: the positions handed to the renderer (per frame for the
    fine scheme, one per second at the cell centers for the coarse scheme).
    """

    times_s: np.ndarray
    u: np.ndarray
    v: np.ndarray
    depth: np.ndarray
    d_hat: np.ndarray
    xyz: np.ndarray
    confidence: np.ndarray
    detected: np.ndarray
    render_times_s: np.ndarray
    render_xyz: np.ndarray


def source_path(
    centers: np.ndarray,
    depth: np.ndarray,
    confidence: np.ndarray,
    width: float,
    height: float,
    fps: float,
    cfg: TrajectoryConfig,
    metric: bool = False,
) -> SourcePath:
    """Eq. 1–7 and §III-E wired together for one clip.

    ``metric``: ``depth`` is a distance in metres (a metric depth model), used as it is within
    ``[d_near, d_far]`` instead of eq. 5's min-max over the clip (beyond the paper).

    Frames without a detection (NaN center) take the linear interpolation of their neighbours,
    held before the first and after the last detection — never the frame center.

    Raises ``ValueError`` when no frame has a detection.
    """
    centers = np.asarray(centers, float).reshape(-1, 2)
    detected = np.all(np.isfinite(centers), axis=1)
    if not detected.any():
        raise ValueError("no frame has a detection")
    times = np.arange(len(centers)) / fps
    uv = interpolate_gaps(centers, ~detected)
    depth = np.asarray(depth, float)
    depth_ok = np.isfinite(depth)
    depth_filled = interpolate_gaps(depth, ~depth_ok) if depth_ok.any() else np.zeros(len(depth))
    if metric:
        d_hat = np.clip(depth_filled, cfg.d_near_m, cfg.d_far_m) if depth_ok.any() else np.full(len(depth), cfg.d_near_m)
    else:
        d_hat = normalize_depth(depth_filled, cfg.d_near_m, cfg.d_far_m, cfg.depth_min_relative_span)
    k = mapping_factor(width, cfg.x_max_m)
    if cfg.scheme == "coarse":
        per_sec = per_second_median(np.column_stack([uv, d_hat]), fps)
        per_sec = interpolate_gaps(per_sec, ~np.all(np.isfinite(per_sec), axis=1))
        uc, vc = coarse_cells(per_sec[:, 0], per_sec[:, 1], width, height, cfg.grid_columns, cfg.grid_rows)
        dq = quantize_depth(per_sec[:, 2], cfg.d_near_m, cfg.d_far_m, cfg.depth_levels)
        render_xyz = listener_coordinates(uc, vc, dq, width, height, k)
        render_times = np.arange(len(render_xyz), dtype=float)
        xyz = render_xyz[frame_seconds(len(times), fps)]
    else:
        xyz = smooth_trajectory(listener_coordinates(uv[:, 0], uv[:, 1], d_hat, width, height, k), cfg.outlier_percentile)
        render_times, render_xyz = times, xyz
    return SourcePath(
        times_s=times,
        u=uv[:, 0],
        v=uv[:, 1],
        depth=depth,
        d_hat=d_hat,
        xyz=xyz,
        confidence=np.asarray(confidence, float),
        detected=detected,
        render_times_s=render_times,
        render_xyz=render_xyz,
    )
