"""The localizer protocol and its per-frame output (eq. 1 input).

Pixel convention: ``u`` to the right, ``v`` down, origin at the top-left corner of the analysis
frame; a box is ``(x, y, w, h)`` with ``(x, y)`` its top-left corner, in analysis pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from foleyspace.errors import InputError
from foleyspace.frames import FrameForm

#: ``progress(fraction)`` with fraction in [0, 1]; may raise to cancel.
FrameProgress = Callable[[float], None]


class NotDetected(InputError):
    """The localizer found nothing it was asked for in the range (a label never detected); when
    the localizer was chosen by ``auto`` the pipeline falls back to the next one."""


#: Per-frame states of a :class:`BoxTrack`: the object was seen (``tracked``), its box is an
#: estimate between or after sightings (``predicted``: interpolated or held), or it is not known
#: where it is (``lost``: no box).
TRACKED, PREDICTED, LOST = 0, 1, 2
STATE_NAMES = ("tracked", "predicted", "lost")


@dataclass(frozen=True)
class BoxTrack:
    """Per-frame boxes of the sounding object.

    Attributes:
        boxes: ``(T, 4)`` float array of ``(x, y, w, h)`` in analysis pixels; a row of NaN where
            there is no detection in that frame.
        confidence: ``(T,)`` float array in [0, 1]; 0 where there is no detection.
        label: what was localized (e.g. ``"motion"``, ``"seeded box"``, a class name).
        details: what the localizer says of its choice, for the sidecar (e.g. the vocabulary
            label's score and the runners-up).
        state: ``(T,)`` int8 codes :data:`TRACKED`, :data:`PREDICTED`, :data:`LOST`; ``None``
            means tracked where there is a box and lost elsewhere. A lost frame has no box.
    """

    boxes: np.ndarray
    confidence: np.ndarray
    label: str = ""
    details: dict[str, Any] = field(default_factory=dict, compare=False)
    state: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=float).reshape(-1, 4)
        conf = np.asarray(self.confidence, dtype=float).reshape(-1)
        if len(conf) != len(boxes):
            raise ValueError("boxes and confidence must have the same length")
        has_box = np.all(np.isfinite(boxes), axis=1)
        if self.state is None:
            state = np.where(has_box, TRACKED, LOST).astype(np.int8)
        else:
            state = np.asarray(self.state, dtype=np.int8).reshape(-1)
            if len(state) != len(boxes) or not np.isin(state, (TRACKED, PREDICTED, LOST)).all():
                raise ValueError("state must hold one of TRACKED, PREDICTED, LOST per frame")
            if np.any(has_box != (state != LOST)):
                raise ValueError("a frame has a box exactly when it is not lost")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "confidence", conf)
        object.__setattr__(self, "state", state)

    def scaled(self, sx: float, sy: float) -> BoxTrack:
        """The same track with boxes scaled by ``sx`` horizontally and ``sy`` vertically (another frame size)."""
        return BoxTrack(self.boxes * np.array([sx, sy, sx, sy]), self.confidence, self.label, self.details, self.state)

    def state_names(self) -> list[str]:
        """The state of each frame in words."""
        return [STATE_NAMES[int(c)] for c in self.state]  # type: ignore[union-attr]

    def lost_spans(self, fps: float, start_s: float = 0.0) -> list[tuple[float, float]]:
        """Runs of lost frames as ``(start, end)`` seconds (``start_s`` + frame / fps)."""
        lost = np.asarray(self.state) == LOST
        spans, begin = [], None
        for i, flag in enumerate([*lost, False]):
            if flag and begin is None:
                begin = i
            elif not flag and begin is not None:
                spans.append((start_s + begin / fps, start_s + i / fps))
                begin = None
        return spans

    @property
    def detected(self) -> np.ndarray:
        """``(T,)`` bool: True where the frame has a box."""
        return np.all(np.isfinite(self.boxes), axis=1)

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass(frozen=True)
class LocalizeRequest:
    """What one clip asks of a localizer.

    Attributes:
        n_frames: how many frames the iterable yields (for progress; the output has one row per
            frame actually yielded).
        fps: analysis frame rate, frames per second.
        label: text naming the sounding object (``None``: not given); label-aware backends
            detect it, the others record it.
        seed_box: a user-drawn box ``(x, y, w, h)`` in the localizer's frame pixels, or ``None``.
        seed_frame: the analysis frame ``seed_box`` was drawn on (0-based).
        keyframes: every user-drawn box as ``((x, y, w, h), frame)``, in frame order, the seed
            among them (``()`` without a box); a tracker honours each exactly.
    """

    n_frames: int
    fps: float = 25.0
    label: str | None = None
    seed_box: tuple[float, float, float, float] | None = None
    seed_frame: int = 0
    keyframes: tuple[tuple[tuple[float, float, float, float], int], ...] = ()


class Localizer(Protocol):
    """Finds the sounding object in each analysis frame.

    Attributes:
        name: registry name.
        frame_form: the frames it wants (:class:`~foleyspace.frames.FrameForm`).
    """

    name: str
    frame_form: FrameForm

    def localize(
        self,
        frames: Iterable[np.ndarray],
        request: LocalizeRequest,
        progress: FrameProgress | None = None,
    ) -> BoxTrack:
        """Return one box (or NaN row) per frame, in the pixels of the frames it was given (its
        :attr:`frame_form`; the pipeline scales them to analysis pixels).

        Args:
            frames: arrays in :attr:`frame_form` at the analysis rate, consumed once, in order.
            request: the clip's frame count, label and seed.
            progress: called with the fraction done; it may raise :class:`~foleyspace.errors.Cancelled`.
        """
        ...
