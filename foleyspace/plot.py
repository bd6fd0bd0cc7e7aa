"""A picture of a result: azimuth, elevation, distance and left/right level over time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from foleyspace.coords import to_spherical
from foleyspace.stem import atomic_path


def level_difference_db(stereo: np.ndarray, sample_rate: int, window_s: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Left-minus-right RMS level in dB over windows of ``window_s``; returns ``(times_s, dB)``."""
    n = max(1, int(window_s * sample_rate))
    blocks = stereo.shape[1] // n
    if blocks == 0:
        return np.zeros(0), np.zeros(0)
    power = (stereo[:, : blocks * n].reshape(2, blocks, n) ** 2).mean(axis=2) + 1e-12
    return (np.arange(blocks) + 0.5) * n / sample_rate, 10 * np.log10(power[0] / power[1])


def plot_result(target: str | Path, times_s: np.ndarray, xyz: np.ndarray, stereo: np.ndarray, sample_rate: int,
                title: str = "", lost_spans: Sequence[tuple[float, float]] = ()) -> Path:
    """Write a PNG with four panels, the spans where the object was lost shaded grey (seconds
    from the range start); the file is written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    az, el, r = to_spherical(xyz).T
    lt, ld = level_difference_db(stereo, sample_rate)
    fig, axes = plt.subplots(4, 1, figsize=(8, 8), sharex=True)
    for ax, y, label in zip(axes[:3], (az, el, r), ("azimuth (°, left +)", "elevation (°)", "distance (m)")):
        ax.plot(times_s, y)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[3].plot(lt, ld, color="tab:red")
    axes[3].axhline(0, color="k", lw=0.5)
    axes[3].set_ylabel("L − R level (dB)")
    axes[3].set_xlabel("time from range start (s)")
    axes[3].grid(alpha=0.3)
    for begin, end in lost_spans:
        for ax in axes:
            ax.axvspan(begin, end, color="0.6", alpha=0.35, lw=0)
    if lost_spans:
        axes[0].text(0.99, 0.95, "grey: object lost", transform=axes[0].transAxes, ha="right", va="top", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    target = Path(target)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return target
