"""Depth of the sounding object per frame (eq. 2 input).

Depth here is *relative and depth-like*: larger = farther, arbitrary units; eq. 5 normalizes it
over the clip. Models that output inverse depth (Depth Anything V2, DepthMaster) convert before
returning.

A depth backend sees the clip in the same decoding pass as the localizer: the pipeline calls
:meth:`DepthEstimator.start`, pushes batches of frames in the backend's
:attr:`~DepthEstimator.frame_form` to the returned run (none when the form is ``None``), and
asks :meth:`DepthRun.finish` for the depth along the localizer's boxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from foleyspace.localize.base import BoxTrack
from foleyspace.frames import FrameForm


class DepthRun(Protocol):
    """One clip's depth pass."""

    def push(self, first_index: int, frames: np.ndarray) -> None:
        """Frames ``first_index …`` of the clip, a batch ``(n, H, W[, 3])`` in the backend's form."""
        ...

    def finish(self, track: BoxTrack) -> np.ndarray:
        """``(T,)`` relative depth (larger = farther) along ``track``; NaN where it has no box.

        The boxes are in the pixels of the frames pushed (the backend's ``frame_form``), or in
        analysis pixels for a backend that reads no frames.
        """
        ...


class DepthEstimator(Protocol):
    """Relative depth of the boxed object in each frame.

    Attributes:
        name: registry name.
        frame_form: the frames the backend needs, or ``None`` when it reads only the boxes.
        metric: the depth is a distance in metres (used as it is) rather than relative (eq. 5);
            a backend without the attribute is relative.
    """

    name: str
    frame_form: FrameForm | None
    metric: bool

    def start(self, n_frames: int) -> DepthRun:
        """Begin a clip of ``n_frames`` analysis frames."""
        ...


@dataclass(frozen=True)
class BoxScaleConfig:
    """Box-scale depth (ours).

    Attributes:
        median_frames: odd window (frames) of the temporal median that steadies noisy box sizes (ours: 25, one second).
    """

    median_frames: int = 25

    def __post_init__(self) -> None:
        if self.median_frames < 1 or self.median_frames % 2 == 0:
            raise ValueError("median_frames must be a positive odd number")


def running_median(values: np.ndarray, size: int) -> np.ndarray:
    """Centered running median over ``size`` samples, edges extended by their nearest value
    (``scipy.ndimage.median_filter(mode="nearest")``, exactly: a median picks a sample)."""
    values = np.asarray(values, float)
    if size <= 1 or len(values) == 0:
        return values.copy()
    before = size // 2
    padded = np.pad(values, (before, size - 1 - before), mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, size), axis=1)


def box_scale_depth(track: BoxTrack, median_frames: int) -> np.ndarray:
    """Pinhole-camera depth from apparent size: ``d ∝ 1/√(w·h)`` of each box (larger = farther),
    steadied by a running median over the frames that have a box; NaN elsewhere."""
    area = track.boxes[:, 2] * track.boxes[:, 3]
    depth = np.full(len(track), np.nan)
    ok = track.detected & (area > 0)
    depth[ok] = 1.0 / np.sqrt(area[ok])
    if ok.sum() >= 3 and median_frames > 1:
        depth[ok] = running_median(depth[ok], median_frames)
    return depth


class _BoxScaleRun:
    def __init__(self, config: BoxScaleConfig) -> None:
        self.config = config

    def push(self, first_index: int, frames: np.ndarray) -> None:  # reads no pixels
        pass

    def finish(self, track: BoxTrack) -> np.ndarray:
        return box_scale_depth(track, self.config.median_frames)


class BoxScaleDepth:
    """Depth from the box size (the offline default); satisfies :class:`DepthEstimator`."""

    name = "box-scale"
    frame_form = None
    metric = False

    def __init__(self, config: BoxScaleConfig | None = None) -> None:
        self.config = config or BoxScaleConfig()

    def start(self, n_frames: int) -> DepthRun:
        return _BoxScaleRun(self.config)
