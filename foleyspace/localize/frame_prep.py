"""Frame preparation shared by the classical localizers: grey frames at a processing size."""

from __future__ import annotations

import cv2
import numpy as np

from foleyspace.errors import InputError


def to_grey(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Grey ``uint8 (H, W)`` or RGB ``uint8 (H, W, 3)`` → grey ``uint8`` at ``size = (w, h)`` (area interpolation)."""
    if frame.dtype != np.uint8 or not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
        raise InputError(f"a frame must be grey (H, W) or RGB (H, W, 3) uint8, got {frame.dtype} {frame.shape}")
    grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    if (grey.shape[1], grey.shape[0]) != size:
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return grey
