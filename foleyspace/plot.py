"""A picture of a result: azimuth, elevation, distance and left/right level over time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from foleyspace.coords import to_spherical
from foleyspace.stem import atomic_output


def level_difference_db(stereo: np.ndarray, sample_rate: int, window_s: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Left-minus-right RMS level in dB over windows of ``window_s``; returns ``(times_s, dB)``."""
    n = max(1, int(window_s * sample_rate))
    blocks = stereo.shape[1] // n
    if blocks == 0:
        return np.zeros(0), np.zeros(0)
    power = (stereo[:, : blocks * n].reshape(2, blocks, n) ** 2).mean(axis=2) + 1e-12
    return (np.arange(blocks) + 0.5) * n / sample_rate, 10 * np.log10(power[0] / power[1])


def stem_level_difference_db(stem: str | Path, window_s: float = 0.04,
                             block_samples: int = 1 << 19) -> tuple[np.ndarray, np.ndarray]:
    """:func:`level_difference_db` of a written stem WAV, read about ``block_samples`` samples at a
    time (whole windows per block), so a long stem is never held whole; returns ``(times_s, dB)``."""
    import soundfile as sf

    with sf.SoundFile(str(stem)) as fh:
        rate = fh.samplerate
        n = max(1, int(window_s * rate))
        size = max(1, block_samples // n) * n
        parts = [level_difference_db(block.T, rate, window_s)[1]
                 for block in fh.blocks(blocksize=size, dtype="float64", always_2d=True)]
    db = np.concatenate(parts) if parts else np.zeros(0)
    return (np.arange(len(db)) + 0.5) * n / rate, db


def plot_result(target: str | Path, times_s: np.ndarray, xyz: np.ndarray, levels: tuple[np.ndarray, np.ndarray],
                title: str = "", lost_spans: Sequence[tuple[float, float]] = ()) -> Path:
    """Write a PNG with four panels, the spans where the object was lost shaded grey (seconds
    from the range start); ``levels``: ``(times_s, left − right dB)`` (:func:`stem_level_difference_db`).
    The file is written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    az, el, r = to_spherical(xyz).T
    lt, ld = levels
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
    return save_figure(fig, target)


def save_figure(fig, target: str | Path) -> Path:
    """Write a matplotlib figure as PNG atomically (temp file + rename) and close it."""
    import matplotlib.pyplot as plt

    target = Path(target)
    with atomic_output(target) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return target
