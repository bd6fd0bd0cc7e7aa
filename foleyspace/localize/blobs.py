"""Moving regions ("blobs") of a motion-strength map: find, merge, score and pick one.

Boxes are ``(x, y, w, h)`` in processing pixels, ``(x, y)`` the top-left corner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from foleyspace.localize.motion import MotionConfig


@dataclass(frozen=True)
class Blob:
    """One candidate moving region in processing pixels.

    Attributes:
        box: ``(x, y, w, h)`` bounding box of its moving pixels.
        area: number of moving pixels.
        mean_diff: mean motion strength over those pixels (grey levels).
    """

    box: tuple[int, int, int, int]
    area: int
    mean_diff: float

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2.0, y + h / 2.0


def _kernel(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def find_blobs(strength: np.ndarray, cfg: MotionConfig) -> list[Blob]:
    """Threshold, clean and group the motion map into blobs (processing pixels)."""
    mask = (strength > cfg.diff_threshold).astype(np.uint8)
    if cfg.open_px > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _kernel(cfg.open_px))
    if cfg.close_px > 1:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _kernel(cfg.close_px))
    if not mask.any():
        return []
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    sums = np.bincount(labels.ravel(), weights=strength.ravel(), minlength=n)
    parts = [
        Blob(box=tuple(int(v) for v in stats[i, :4]), area=int(stats[i, 4]), mean_diff=float(sums[i] / stats[i, 4]))
        for i in range(1, n)
    ]
    parts = sorted(parts, key=lambda b: b.area, reverse=True)[: cfg.max_components]
    min_area = cfg.min_area_frac * mask.size
    return [b for b in merge_blobs(parts, cfg) if b.area >= min_area]


def _gap(a: Blob, b: Blob) -> tuple[int, int]:
    """Horizontal and vertical gap between two boxes (0 where they overlap on that axis)."""
    ax, ay, aw, ah = a.box
    bx, by, bw, bh = b.box
    return max(0, max(ax, bx) - min(ax + aw, bx + bw)), max(0, max(ay, by) - min(ay + ah, by + bh))


def _union(a: Blob, b: Blob) -> Blob:
    ax, ay, aw, ah = a.box
    bx, by, bw, bh = b.box
    x0, y0 = min(ax, bx), min(ay, by)
    x1, y1 = max(ax + aw, bx + bw), max(ay + ah, by + bh)
    area = a.area + b.area
    mean_diff = (a.area * a.mean_diff + b.area * b.mean_diff) / area
    return Blob(box=(x0, y0, x1 - x0, y1 - y0), area=area, mean_diff=mean_diff)


def merge_blobs(blobs: list[Blob], cfg: MotionConfig) -> list[Blob]:
    """Group blobs that belong to one object, until no two are close.

    Two blobs are close when their boxes are at most ``merge_px + merge_size_frac * s`` apart on
    both axes, ``s`` being the larger box side of the smaller blob. This joins the parts of one
    object (limbs; the leading and trailing edges of a slow or untextured object) while keeping
    distant objects apart.
    """
    blobs = list(blobs)
    merged = True
    while merged and len(blobs) > 1:
        merged = False
        for i in range(len(blobs)):
            for j in range(i + 1, len(blobs)):
                a, b = blobs[i], blobs[j]
                size = max(a.box[2], a.box[3]) if a.area < b.area else max(b.box[2], b.box[3])
                tol = cfg.merge_px + cfg.merge_size_frac * size
                gx, gy = _gap(a, b)
                if gx <= tol and gy <= tol:
                    blobs[i] = _union(a, b)
                    del blobs[j]
                    merged = True
                    break
            if merged:
                break
    return blobs


def blob_strength(blob: Blob) -> float:
    """Raw strength used to rank blobs: moving pixels times mean difference."""
    return blob.area * blob.mean_diff


def blob_confidence(blob: Blob, frame_area: int, cfg: MotionConfig) -> float:
    """Confidence in [0, 1]: geometric mean of a contrast term and an area term.

    The contrast term rises from 0 at the threshold to 1 at twice the threshold; the area term
    from 0 to 1 at :attr:`MotionConfig.full_confidence_area_frac` of the frame.
    """
    contrast = np.clip((blob.mean_diff - cfg.diff_threshold) / cfg.diff_threshold, 0.0, 1.0)
    area = np.clip(blob.area / (cfg.full_confidence_area_frac * frame_area), 0.0, 1.0)
    return float(math.sqrt(contrast * area))


def pick_blob(
    blobs: list[Blob],
    last_center: tuple[float, float] | None,
    frame_shape: tuple[int, int],
    cfg: MotionConfig,
) -> Blob | None:
    """The sounding object among ``blobs``: strongest, with a bonus near ``last_center``."""
    h, w = frame_shape
    ok = [b for b in blobs if b.box[2] * b.box[3] <= cfg.max_area_frac * w * h]
    if not ok:
        return None
    sigma = cfg.proximity_sigma_frac * math.hypot(w, h)

    def score(b: Blob) -> float:
        if last_center is None:
            return blob_strength(b)
        cx, cy = b.center
        d2 = (cx - last_center[0]) ** 2 + (cy - last_center[1]) ** 2
        return blob_strength(b) * (1.0 + cfg.proximity_bonus * math.exp(-d2 / (2 * sigma * sigma)))

    return max(ok, key=score)


def candidate_blobs(blobs: list[Blob], frame_shape: tuple[int, int], cfg: MotionConfig) -> list[Blob]:
    """The strongest :attr:`MotionConfig.candidates` blobs small enough to be an object."""
    h, w = frame_shape
    ok = [b for b in blobs if b.box[2] * b.box[3] <= cfg.max_area_frac * w * h]
    return sorted(ok, key=blob_strength, reverse=True)[: cfg.candidates]
