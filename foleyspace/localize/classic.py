"""Label-aware detectors that need no download: OpenCV's HOG people detector and Haar face cascades.

``--localizer classic --label person`` (or ``people``, ``pedestrian``, ``man``, ``woman``…) finds
people with the HOG + linear SVM detector OpenCV ships (Dalal & Triggs); ``--label face`` (or
``speaker``, ``head``, ``talking``…) finds faces with its Haar cascades (frontal, then profile),
for dialogue. Detections on every ``detect_every``-th frame are followed as *one* object through
the clip by the association the other detectors use (:mod:`foleyspace.localize.association`),
gaps bridged as ``predicted``; frames without the object are ``lost``. A face track is chosen by
presence and score like the others — when two faces share a shot it follows the one seen longest,
not necessarily the one speaking (no lip reading here). ``auto`` takes this localizer for such
labels only when no model detector can run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from foleyspace.frames import FrameForm
from foleyspace.localize.association import AssociationConfig, bridged_states, follow_one
from foleyspace.localize.base import LOST, BoxTrack, FrameProgress, LocalizeRequest, NotDetected
from foleyspace.localize.vocabulary import split_label

log = logging.getLogger(__name__)

#: Words of a label that ask for each detector.
PEOPLE_WORDS = frozenset({"person", "people", "pedestrian", "pedestrians", "man", "woman", "child", "human",
                          "walker", "runner", "cyclist", "dancer", "player"})
FACE_WORDS = frozenset({"face", "faces", "speaker", "head", "talking", "talking head", "voice", "dialogue",
                        "singer", "narrator"})


def detector_for(label: str | None) -> str | None:
    """``"people"``, ``"face"`` or ``None``: which bundled detector a label asks for (any synonym)."""
    for word in split_label(label or ""):
        word = word.lower()
        if word in FACE_WORDS:
            return "face"
        if word in PEOPLE_WORDS:
            return "people"
    return None


@dataclass(frozen=True)
class ClassicConfig:
    """Settings of the bundled detectors (ours).

    Attributes:
        detect_every: detect on every k-th analysis frame and interpolate between.
        hog_long_side: frames are scaled (up or down) to this long side for HOG (people of ≥ 128 px show).
        face_long_side: ... and for the face cascades.
        hog_stride: HOG window stride, px.
        hog_scale: HOG image pyramid step.
        min_score: detections scoring less (0–1, from the SVM margin or the cascade's level
            weight through a logistic) are dropped.
        association: how detections are linked into one object.
    """

    detect_every: int = 2
    hog_long_side: int = 640
    face_long_side: int = 360
    hog_stride: int = 8
    hog_scale: float = 1.05
    min_score: float = 0.3
    association: AssociationConfig = field(default_factory=AssociationConfig)


def _logistic(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, float)))


class ClassicLocalizer:
    """People (HOG) or faces (Haar) with no model download; satisfies
    :class:`~foleyspace.localize.base.Localizer`. Needs a label naming people or a face."""

    name = "classic"

    def __init__(self, config: ClassicConfig | None = None) -> None:
        import cv2

        self.config = config or ClassicConfig()
        self.frame_form = FrameForm("grey", max(self.config.hog_long_side, self.config.face_long_side))
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.faces = [cv2.CascadeClassifier(cv2.data.haarcascades + name)
                      for name in ("haarcascade_frontalface_default.xml", "haarcascade_profileface.xml")]

    def detect(self, grey: np.ndarray, kind: str) -> np.ndarray:
        """``(n, 5)`` rows ``x, y, w, h, score`` in the pixels of ``grey``."""
        import cv2

        cfg = self.config
        long_side = cfg.hog_long_side if kind == "people" else cfg.face_long_side
        scale = long_side / max(grey.shape)  # small frames are enlarged: the detectors have a least size
        small = grey if scale == 1.0 else cv2.resize(grey, None, fx=scale, fy=scale,
                                                     interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        rows: list[np.ndarray] = []
        if kind == "people":
            boxes, weights = self.hog.detectMultiScale(small, winStride=(cfg.hog_stride, cfg.hog_stride),
                                                       padding=(8, 8), scale=cfg.hog_scale)
            if len(boxes):
                rows.append(np.column_stack([np.asarray(boxes, float), _logistic(2 * np.ravel(weights))]))
        else:
            equalized = cv2.equalizeHist(small)
            min_face = max(16, int(0.06 * min(small.shape)))
            for cascade in self.faces:
                boxes, _, weights = cascade.detectMultiScale3(equalized, scaleFactor=1.1, minNeighbors=4,
                                                             minSize=(min_face, min_face), outputRejectLevels=True)
                if len(boxes):
                    rows.append(np.column_stack([np.asarray(boxes, float), _logistic(np.ravel(weights) / 2)]))
                    break  # profile faces only where no frontal one is seen
        if not rows:
            return np.zeros((0, 5))
        found = np.vstack(rows)
        found[:, :4] /= scale
        return found[found[:, 4] >= cfg.min_score]

    def localize(self, frames: Iterable[np.ndarray], request: LocalizeRequest,
                 progress: FrameProgress | None = None) -> BoxTrack:
        """One box per frame of the labelled person or face.

        Raises:
            NotDetected: the label names neither people nor a face, or none was found.
        """
        kind = detector_for(request.label)
        if kind is None:
            raise NotDetected(f"the classic localizer finds people or faces; the label {request.label!r} names "
                              "neither (try --label person or --label face, or another localizer)")
        k = self.config.detect_every
        at: list[int] = []
        found: list[np.ndarray] = []
        n = 0
        last: tuple[int, np.ndarray] | None = None
        for i, frame in enumerate(frames):
            n = i + 1
            grey = frame if frame.ndim == 2 else frame.mean(axis=2).astype(np.uint8)
            last = (i, grey)
            if i % k == 0:
                at.append(i)
                found.append(self.detect(grey, kind))
            if progress is not None and i % 8 == 0:
                progress(min(i / max(request.n_frames, 1), 0.99))
        if last is not None and last[0] % k:
            at.append(last[0])
            found.append(self.detect(last[1], kind))
        boxes, scores = follow_one(at, found, n, self.config.association)
        boxes, scores, state = bridged_states(boxes, scores, max_gap=max(2 * k, self.config.association.max_missed * k))
        if not (state != LOST).any():
            raise NotDetected(f"no {'face' if kind == 'face' else 'person'} was detected in the range")
        if progress is not None:
            progress(1.0)
        return BoxTrack(boxes, np.clip(scores, 0, 1), request.label or kind,
                        {"detector": "HOG people" if kind == "people" else "Haar faces"}, state)
