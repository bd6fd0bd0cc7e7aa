"""What a measured HRIR set covers, and which of the paper's directions it can serve (``hrtf info``).

Angles in degrees, SOFA convention (azimuth positive = left, elevation positive up); distances
in metres. :func:`coverage` is numbers only; :func:`plot_coverage` draws them (matplotlib, Agg).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from foleyspace.coords import to_cartesian
from foleyspace.errors import FoleySpaceError
from foleyspace.hrtf.directions import DirectionSetConfig, coarse_directions, fine_mask, nearest_directions
from foleyspace.hrtf.sofa import SofaData

#: A coarse target whose nearest measured direction is farther than this is flagged (degrees).
MAX_COARSE_ERROR_DEG = 5.0


def _largest_gap_deg(azimuth_deg: np.ndarray) -> float:
    """The widest azimuth span with no measurement, around the circle (360 for one azimuth)."""
    az = np.unique(np.round(np.mod(azimuth_deg, 360.0), 6))
    if len(az) < 2:
        return 360.0
    gaps = np.diff(np.concatenate([az, [az[0] + 360.0]]))
    return float(gaps.max())


def _median_spacing_deg(directions_deg: np.ndarray, block: int = 512) -> float:
    """Median angle from each measured direction to its nearest neighbour (0 for one direction)."""
    if len(directions_deg) < 2:
        return 0.0
    unit = to_cartesian(directions_deg[:, 0], directions_deg[:, 1], np.ones(len(directions_deg)))
    nearest = np.empty(len(unit))
    for start in range(0, len(unit), block):
        cos = unit[start:start + block] @ unit.T
        cos[np.arange(len(cos)), np.arange(start, start + len(cos))] = -2.0  # not itself
        nearest[start:start + block] = cos.max(axis=1)
    return float(np.median(np.degrees(np.arccos(np.clip(nearest, -1.0, 1.0)))))


def coverage(data: SofaData, config: DirectionSetConfig = DirectionSetConfig()) -> dict[str, Any]:
    """The file's facts and its coverage as plain data (JSON-ready): format, rate, taps,
    receivers, radius, direction count and ranges, the fine set's size, and for each of the 15
    coarse targets the nearest measured direction and its angular error (flagged over
    :data:`MAX_COARSE_ERROR_DEG`)."""
    az, el = data.directions_deg[:, 0], data.directions_deg[:, 1]
    fine = fine_mask(az, el, config)
    targets = coarse_directions(config)
    idx, err = nearest_directions(targets, data.directions_deg)
    coarse = [{"target_deg": [float(t[0]), float(t[1])],
               "nearest_deg": [round(float(az[i]), 3), round(float(el[i]), 3)],
               "error_deg": round(float(e), 3), "over_limit": bool(e > MAX_COARSE_ERROR_DEG)}
              for t, i, e in zip(targets, idx, err)]
    return {
        "file": str(data.path),
        "convention": data.convention,
        "title": data.title, "database": data.database, "listener": data.listener,
        "sample_rate_hz": data.sample_rate,
        "taps": data.taps,
        "length_ms": round(1000.0 * data.taps / data.sample_rate, 3),
        "receivers": 2,
        "receiver_positions_m": np.round(data.receivers_m, 4).tolist(),
        "receivers_swapped": data.swapped,
        "radius_m": round(data.radius_m, 4),
        "distance_range_m": [round(float(data.distances_m.min()), 4), round(float(data.distances_m.max()), 4)],
        "directions": data.count,
        "azimuth_range_deg": [round(float(az.min()), 3), round(float(az.max()), 3)],
        "largest_azimuth_gap_deg": round(_largest_gap_deg(az), 3),
        "elevation_range_deg": [round(float(el.min()), 3), round(float(el.max()), 3)],
        "median_spacing_deg": round(_median_spacing_deg(data.directions_deg), 3),
        "fine": {"directions": int(fine.sum()), "azimuth_limit_deg": config.fine_azimuth_deg,
                 "elevation_limit_deg": config.fine_elevation_deg},
        "coarse": coarse,
        "coarse_max_error_deg": round(float(err.max()), 3),
        "coarse_over_limit": int((err > MAX_COARSE_ERROR_DEG).sum()),
        "coarse_limit_deg": MAX_COARSE_ERROR_DEG,
    }


def format_coverage(info: dict[str, Any]) -> str:
    """``hrtf info``'s text: one fact per line, then the coarse table."""
    who = ", ".join(v for v in (info["database"], info["title"], info["listener"]) if v)
    ears = info["receiver_positions_m"]
    fine = info["fine"]
    lines = [
        f"file:         {info['file']}",
        *([f"about:        {who}"] if who else []),
        f"convention:   {info['convention']}",
        f"sample rate:  {info['sample_rate_hz']:g} Hz",
        f"taps:         {info['taps']} ({info['length_ms']:g} ms)",
        f"receivers:    2 (left at y = {ears[0][1]:+.3f} m, right at y = {ears[1][1]:+.3f} m"
        + (", swapped: the file lists the right ear first)" if info["receivers_swapped"] else ")"),
        f"radius:       {info['radius_m']:g} m (distances {info['distance_range_m'][0]:g}-{info['distance_range_m'][1]:g} m)",
        f"directions:   {info['directions']} (median spacing {info['median_spacing_deg']:g}°)",
        f"azimuth:      {info['azimuth_range_deg'][0]:g}° to {info['azimuth_range_deg'][1]:g}° "
        f"(largest gap {info['largest_azimuth_gap_deg']:g}°; positive = left)",
        f"elevation:    {info['elevation_range_deg'][0]:g}° to {info['elevation_range_deg'][1]:g}°",
        f"fine set:     {fine['directions']} directions with |azimuth| <= {fine['azimuth_limit_deg']:g}° "
        f"and |elevation| <= {fine['elevation_limit_deg']:g}°",
        f"coarse set:   15 targets, nearest measured direction (flagged over {info['coarse_limit_deg']:g}°):",
    ]
    for row in info["coarse"]:
        (ta, te), (na, ne) = row["target_deg"], row["nearest_deg"]
        flag = "  <-- far" if row["over_limit"] else ""
        lines.append(f"  az {ta:+5.0f}° el {te:+4.0f}°  ->  az {na:+8.2f}° el {ne:+7.2f}°  error {row['error_deg']:6.2f}°{flag}")
    verdict = ("every coarse target within the limit" if info["coarse_over_limit"] == 0
               else f"{info['coarse_over_limit']} coarse target(s) farther than {info['coarse_limit_deg']:g}°")
    lines.append(f"              {verdict} (largest error {info['coarse_max_error_deg']:g}°)")
    return "\n".join(lines)


def plot_coverage(data: SofaData, target: str | Path, config: DirectionSetConfig = DirectionSetConfig()) -> Path:
    """A PNG of the measurement sphere (azimuth × elevation; left on the left): every measured
    direction, the fine region, the 15 coarse targets and the measured directions serving them.
    Written atomically.

    Raises:
        FoleySpaceError: matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        raise FoleySpaceError("--plot needs matplotlib (pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from foleyspace.plot import save_figure

    az, el = data.directions_deg[:, 0], data.directions_deg[:, 1]
    fine = fine_mask(az, el, config)
    targets = coarse_directions(config)
    idx, err = nearest_directions(targets, data.directions_deg)
    fig, ax = plt.subplots(figsize=(8, 4.4))
    ax.scatter(az[~fine], el[~fine], s=4, color="0.6", label="measured")
    ax.scatter(az[fine], el[fine], s=4, color="tab:blue", label=f"fine set ({int(fine.sum())})")
    fa, fe = config.fine_azimuth_deg, config.fine_elevation_deg
    ax.add_patch(Rectangle((-fa, -fe), 2 * fa, 2 * fe, fill=False, ec="tab:blue", lw=1, ls="--"))
    far = err > MAX_COARSE_ERROR_DEG
    for (ta, te), i, bad in zip(targets, idx, far):
        ax.plot([ta, az[i]], [te, el[i]], color="tab:red" if bad else "tab:green", lw=1)
    ax.scatter(az[idx], el[idx], s=28, facecolors="none", edgecolors="tab:green", label="serves a coarse target")
    ax.scatter(targets[:, 0], targets[:, 1], marker="x", s=36, color=np.where(far, "tab:red", "k"),
               label=f"coarse targets ({int(far.sum())} over {MAX_COARSE_ERROR_DEG:g}°)")
    ax.set_xlim(182, -182)  # positive azimuth = left, drawn on the left
    ax.set_ylim(-92, 92)
    ax.set_xticks(np.arange(-180, 181, 45))
    ax.set_yticks(np.arange(-90, 91, 30))
    ax.set_xlabel("azimuth (°, positive = left)")
    ax.set_ylabel("elevation (°)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7, framealpha=0.9)
    ax.set_title(f"{data.path.name}: {data.count} directions, {data.sample_rate:g} Hz, {data.taps} taps, "
                 f"{data.radius_m:g} m", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, target)
