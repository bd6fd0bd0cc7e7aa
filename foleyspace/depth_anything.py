"""Depth Anything V2 (transformers): how far the sounding object is (eq. 2).

The relative models output *inverse* depth (disparity, larger = nearer); it is converted to
depth-like values (``1/disparity``, larger = farther) for eq. 5. The metric Indoor/Outdoor
models output metres, used as they are (clamped to the renderer's range; beyond the paper).
The object's depth is the median over the inner half of its box (ours, DESIGN.md §2: one pixel
at the centre is noisy). Depth moves slowly, so a map is computed every ``every``-th frame
(batched) and the samples are interpolated in time; maps are kept small (``keep_long_side``
pixels) so memory stays modest on long clips (256 px float32: 0.15 MB a map, 9 MB a minute).

Weights come from the models folder or the Hugging Face cache (:mod:`foleyspace.models`),
loaded once per process (:class:`~foleyspace.backends.ModelCache`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from foleyspace.frames import FrameForm
from foleyspace.localize.base import BoxTrack
from foleyspace.models import ModelError, depth_anything_repo, find_hf_model, missing_hf_message

log = logging.getLogger(__name__)

#: ImageNet normalization the DINOv2 backbone was trained with.
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
#: The ViT patch size: input sides are multiples of it.
PATCH = 14


@dataclass(frozen=True)
class DepthAnythingSettings:
    """Depth Anything V2 settings.

    Attributes:
        model: ``small`` (default), ``base``, ``large``, ``metric-indoor-small``,
            ``metric-outdoor-small``, ``metric-indoor-large``, ``metric-outdoor-large``, or a hub
            id / local folder.
        input_size: short side of the model input, pixels, a multiple of 14 (the model's own
            518; ours 364 by default, for CPU speed — the box median needs no fine map).
        every: a depth map every this many analysis frames (ours: 10, 0.4 s at 25 fps).
        batch: frames per forward pass.
        inner: the central fraction of the box (per side) whose median is the object's depth (ours: 0.5).
        keep_long_side: maps are stored at this long side (pixels) until the boxes are known.
    """

    model: str = "small"
    input_size: int = 364
    every: int = 10
    batch: int = 4
    inner: float = 0.5
    keep_long_side: int = 256

    def __post_init__(self) -> None:
        if self.input_size < PATCH or self.input_size % PATCH:
            raise ValueError(f"input_size must be a positive multiple of {PATCH}")
        if not (isinstance(self.every, int) and 1 <= self.every <= 250):
            raise ValueError("every must be an integer from 1 to 250")
        if not 0 < self.inner <= 1:
            raise ValueError("inner must be in (0, 1]")


def load_depth_model(folder: Path, device: str) -> Any:
    """The transformers model from a folder (``config.json`` + weights), eval mode on ``device``."""
    try:
        from transformers import AutoModelForDepthEstimation
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        model = AutoModelForDepthEstimation.from_pretrained(str(folder))
    except Exception as exc:  # corrupt or foreign files raise many types
        raise ModelError(f"{folder}: not a readable depth model ({exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); delete it and fetch it again") from None
    return model.eval().to(device)


def model_input(frame: np.ndarray, short_side: int) -> np.ndarray:
    """``(3, h, w)`` float32: ``frame`` (H, W, 3) RGB resized so its short side is about
    ``short_side`` with both sides multiples of 14, scaled to [0, 1] and ImageNet-normalized."""
    import cv2

    h, w = frame.shape[:2]
    scale = short_side / min(h, w)
    nh, nw = (max(PATCH, int(round(s * scale / PATCH)) * PATCH) for s in (h, w))
    img = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
    return ((img - MEAN) / STD).transpose(2, 0, 1)


def inverse_to_depth(disparity: np.ndarray) -> np.ndarray:
    """Relative inverse depth (larger = nearer) → depth-like values (larger = farther):
    ``1/disparity``, with disparities below 1 % of the map's 99th percentile floored there (the
    sky, where a relative model says "infinitely far", stays finite); a map with no positive
    disparity is all NaN (no depth there)."""
    d = np.asarray(disparity, np.float32)
    top = float(np.percentile(d, 99)) if d.size else 0.0
    if not top > 1e-6:  # a map without any positive disparity says nothing about depth
        return np.full(d.shape, np.nan, np.float32)
    return 1.0 / np.maximum(d, top * 0.01)


def box_median(depth_map: np.ndarray, box: np.ndarray, frame_size: tuple[int, int], inner: float) -> float:
    """Median of ``depth_map`` over the central ``inner`` fraction of ``box`` (``x, y, w, h`` in
    pixels of a frame of ``frame_size`` ``(w, h)``); NaN for a box outside the map."""
    mh, mw = depth_map.shape
    sx, sy = mw / frame_size[0], mh / frame_size[1]
    cx, cy = (box[0] + box[2] / 2) * sx, (box[1] + box[3] / 2) * sy
    hw, hh = max(box[2] * sx * inner / 2, 0.5), max(box[3] * sy * inner / 2, 0.5)
    x0, x1 = int(np.clip(np.floor(cx - hw), 0, mw - 1)), int(np.clip(np.ceil(cx + hw), 1, mw))
    y0, y1 = int(np.clip(np.floor(cy - hh), 0, mh - 1)), int(np.clip(np.ceil(cy + hh), 1, mh))
    patch = depth_map[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
    patch = patch.astype(np.float32)
    return float(np.nanmedian(patch)) if patch.size and np.isfinite(patch).any() else float("nan")


class _DepthRun:
    """One clip: maps of every ``every``-th frame, sampled along the boxes at the end."""

    def __init__(self, owner: DepthAnythingEstimator, n_frames: int) -> None:
        self.owner = owner
        self.n_frames = n_frames
        self.maps: dict[int, np.ndarray] = {}
        self.pending: list[tuple[int, np.ndarray]] = []
        self.frame_size: tuple[int, int] | None = None
        self.last: tuple[int, np.ndarray] | None = None

    def push(self, first_index: int, frames: np.ndarray) -> None:
        every = self.owner.config.every
        for j, frame in enumerate(frames):
            index = first_index + j
            self.frame_size = (frame.shape[1], frame.shape[0])
            self.last = (index, frame)
            if index % every == 0:
                self.pending.append((index, frame))
                if len(self.pending) >= self.owner.config.batch:
                    self._run()

    def _run(self) -> None:
        if self.pending:
            for (index, _), depth_map in zip(self.pending, self.owner.maps([f for _, f in self.pending])):
                self.maps[index] = depth_map
            self.pending.clear()

    def finish(self, track: BoxTrack) -> np.ndarray:
        if self.last is not None and self.last[0] not in self.maps and self.last[0] % self.owner.config.every:
            self.pending.append(self.last)  # the last frame too: the end is not extrapolated
        self._run()
        out = np.full(len(track), np.nan)
        if not self.maps or self.frame_size is None:
            return out
        have = np.flatnonzero(track.detected)
        if not len(have):
            return out
        at, values = [], []
        every = self.owner.config.every
        for index in sorted(self.maps):
            near = have[np.argmin(np.abs(have - index))]  # the box nearest in time to the map
            if abs(near - index) <= every:
                v = box_median(self.maps[index], track.boxes[near], self.frame_size, self.owner.config.inner)
                if np.isfinite(v):
                    at.append(index)
                    values.append(v)
        if not at:
            return out
        out[have] = np.interp(have, at, values)  # held before the first and after the last sample
        return out


class DepthAnythingEstimator:
    """Depth Anything V2; satisfies :class:`~foleyspace.depth.DepthEstimator`."""

    name = "depth-anything"

    def __init__(self, config: DepthAnythingSettings | None = None, device: str = "cpu", models: Any = None) -> None:
        self.config = config or DepthAnythingSettings()
        self.device = device
        self.frame_form = FrameForm("rgb")
        repo = depth_anything_repo(self.config.model)
        folder = find_hf_model(repo)
        if folder is None:
            raise ModelError(missing_hf_message(repo))
        key = (f"depth-anything {repo}", str(folder), device)
        self.model = models.get(key, lambda: load_depth_model(folder, device)) if models else load_depth_model(folder, device)
        self.metric = getattr(self.model.config, "depth_estimation_type", "relative") == "metric"

    def maps(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Depth-like maps (larger = farther; metres for a metric model) for RGB frames, float32,
        long side :attr:`DepthAnythingSettings.keep_long_side`."""
        import cv2
        import torch

        x = torch.from_numpy(np.stack([model_input(f, self.config.input_size) for f in frames])).to(self.device)
        with torch.inference_mode():
            predicted = self.model(pixel_values=x).predicted_depth.float().cpu().numpy()
        out = []
        for depth_map in predicted:
            depth_map = depth_map if self.metric else inverse_to_depth(depth_map)
            h, w = depth_map.shape
            scale = min(1.0, self.config.keep_long_side / max(h, w))
            if scale < 1:
                depth_map = cv2.resize(depth_map, (max(1, round(w * scale)), max(1, round(h * scale))),
                                       interpolation=cv2.INTER_AREA)
            out.append(depth_map.astype(np.float32))
        return out

    def start(self, n_frames: int) -> _DepthRun:
        return _DepthRun(self, n_frames)

    def describe(self) -> dict[str, Any]:
        return {"model": depth_anything_repo(self.config.model), "metric": self.metric, "device": self.device}
