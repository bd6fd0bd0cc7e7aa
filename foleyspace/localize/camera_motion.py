"""Camera motion between two grey frames, and frame differences with the camera motion removed.

Used by the motion localizer (:mod:`foleyspace.localize.motion`): a similarity transform is
fitted to corners followed by optical flow, and a neighbour frame is warped onto the current one
before differencing, so a pan does not look like motion.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from foleyspace.localize.motion import MotionConfig

log = logging.getLogger(__name__)

#: A 2x3 float64 affine matrix mapping points of one frame onto another (OpenCV convention).
Affine = np.ndarray

_IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def estimate_camera_motion(prev: np.ndarray, cur: np.ndarray, cfg: MotionConfig) -> Affine:
    """Similarity transform mapping points of ``prev`` onto ``cur`` (2x3), identity on failure."""
    pts = cv2.goodFeaturesToTrack(
        prev, maxCorners=cfg.max_corners, qualityLevel=cfg.corner_quality, minDistance=cfg.corner_min_distance
    )
    if pts is None or len(pts) < cfg.min_inliers:
        return _IDENTITY.copy()
    nxt, status, _err = cv2.calcOpticalFlowPyrLK(prev, cur, pts, None, winSize=(15, 15), maxLevel=3)
    ok = status.reshape(-1) == 1
    if int(ok.sum()) < cfg.min_inliers:
        return _IDENTITY.copy()
    matrix, inliers = cv2.estimateAffinePartial2D(
        pts[ok], nxt[ok], method=cv2.RANSAC, ransacReprojThreshold=cfg.ransac_threshold
    )
    if matrix is None or inliers is None or int(inliers.sum()) < cfg.min_inliers:
        return _IDENTITY.copy()
    if math.hypot(matrix[0, 2], matrix[1, 2]) > cfg.max_shift_frac * max(prev.shape):
        log.debug("camera shift %.1f px rejected", math.hypot(matrix[0, 2], matrix[1, 2]))
        return _IDENTITY.copy()
    return matrix


def invert_affine(matrix: Affine) -> Affine:
    """Inverse of a 2x3 affine matrix."""
    return cv2.invertAffineTransform(matrix)


def compose_affines(chain: list[Affine]) -> Affine:
    """The 2x3 matrix applying ``chain[0]`` first, then ``chain[1]``, ...; identity when empty."""
    total = np.eye(3)
    for m in chain:
        total = np.vstack([m, [0.0, 0.0, 1.0]]) @ total
    return total[:2].copy()


def warped_difference(src: np.ndarray, dst: np.ndarray, matrix: Affine, border: int) -> np.ndarray:
    """``|dst − warp(src)|`` as float32, with pixels the warp does not cover set to 0.

    ``matrix`` maps ``src`` points onto ``dst``. ``border`` px inside the covered area are also
    cleared (interpolation there mixes in the outside).
    """
    h, w = dst.shape
    warped = cv2.warpAffine(src, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    valid = cv2.warpAffine(np.full_like(src, 255), matrix, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    if border > 0:
        valid = cv2.erode(valid, np.ones((2 * border + 1, 2 * border + 1), np.uint8))
    diff = cv2.absdiff(dst, warped).astype(np.float32)
    diff[valid == 0] = 0.0
    return diff


def _border(shape: tuple[int, ...], cfg: MotionConfig) -> int:
    return max(1, int(round(cfg.border_frac * min(shape))))


def neighbour_difference(cur: np.ndarray, neighbour: np.ndarray, matrix: Affine, cfg: MotionConfig) -> np.ndarray:
    """Blurred ``|cur − warp(neighbour)|`` (float32), 0 outside the warp and in the border strip.

    ``matrix`` maps ``neighbour`` points onto ``cur``.
    """
    border = _border(cur.shape, cfg)
    diff = warped_difference(neighbour, cur, matrix, border)
    if cfg.diff_blur_sigma > 0:
        diff = cv2.GaussianBlur(diff, (0, 0), cfg.diff_blur_sigma)
    diff[:border, :] = 0.0
    diff[-border:, :] = 0.0
    diff[:, :border] = 0.0
    diff[:, -border:] = 0.0
    return diff


def combine_differences(diffs: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Motion strength from one or two neighbour differences: the one, or the smaller of two."""
    if not diffs:
        return np.zeros(shape, np.float32)
    return diffs[0] if len(diffs) == 1 else np.minimum(diffs[0], diffs[1])
