"""Depth of the sounding object per frame (eq. 2 input).

Depth here is *relative and depth-like*: larger = farther, arbitrary units; eq. 5 normalises it
over the clip. Models that output inverse depth (Depth Anything V2, DepthMaster) convert before
returning.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.ndimage import median_filter

from foleyspace.localize.base import BoxTrack


class DepthEstimator(Protocol):
    """Relative depth of the boxed object in each frame.

    Attributes:
        name: short description.
        needs_frames: whether :meth:`estimate` reads the frames (the pipeline then decodes again).
    """

    name: str
    needs_frames: bool

    def estimate(self, track: BoxTrack, frames: Iterable[np.ndarray] | None) -> np.ndarray:
        """``(T,)`` relative depth (larger = farther); NaN where the track has no box."""
        ...


@dataclass(frozen=True)
class BoxScaleConfig:
    """Box-scale depth (ours).

    Attributes:
        median_frames: odd window (frames) of the temporal median that steadies noisy box sizes (ours: 25, one second).
    """

    median_frames: int = 25


class BoxScaleDepth:
    """Pinhole-camera depth from apparent size: ``d ∝ 1/√(w·h)`` of the box (larger = farther)."""

    name = "box-scale"
    needs_frames = False

    def __init__(self, config: BoxScaleConfig = BoxScaleConfig()) -> None:
        self.config = config

    def estimate(self, track: BoxTrack, frames: Iterable[np.ndarray] | None = None) -> np.ndarray:
        area = track.boxes[:, 2] * track.boxes[:, 3]
        depth = np.full(len(track), np.nan)
        ok = track.detected & (area > 0)
        depth[ok] = 1.0 / np.sqrt(area[ok])
        if ok.sum() >= 3 and self.config.median_frames > 1:
            depth[ok] = median_filter(depth[ok], size=self.config.median_frames, mode="nearest")
        return depth
