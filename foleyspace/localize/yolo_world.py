"""YOLO-World: the open-vocabulary detector that finds the *named* sounding object (paper §III-A).

With ``--label "dog, puppy"`` the detector looks for those words (synonyms of one object). With
no label, the offline-vocabulary mode of §V-G: every label of a vocabulary (``--vocab``) is
scored over the clip — per label, the mean over the detection frames of its best box score — and
the best label is followed; the sidecar records it, its score and the runners-up. Detections
become one object through the clip by temporal association
(:mod:`foleyspace.localize.association`); with ``detect_every`` k > 1 only every k-th frame is
detected and boxes are interpolated between (the path is smoothed at this scale anyway, eq. 7).

Weights come from the models folder (:mod:`foleyspace.models`) and are loaded once per process
(the :class:`~foleyspace.backends.ModelCache`); label embeddings from the text-embedding cache
(:mod:`foleyspace.localize.text_embeddings`). Boxes are ``(x, y, w, h)`` in the pixels of the
frames given.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from foleyspace.errors import InputError
from foleyspace.frames import FrameForm
from foleyspace.localize.association import AssociationConfig, bridged_states, follow_one
from foleyspace.localize.base import BoxTrack, FrameProgress, LocalizeRequest, NotDetected
from foleyspace.localize.vocabulary import load_vocabulary, split_label
from foleyspace.models import YOLO_WORLD_WEIGHTS, ModelError, find_yolo_weights, missing_yolo_message

log = logging.getLogger(__name__)

#: YOLO strides: the letterboxed input is padded to a multiple of this.
STRIDE = 32


@dataclass(frozen=True)
class YoloWorldConfig:
    """YOLO-World settings.

    Attributes:
        weights: weights file name in the models folder, or a path (default the paper's small v2 model).
        image_size: long side of the detector input, pixels (ultralytics' default 640).
        detect_every: detect every k-th analysis frame, interpolate between (paper: 1; ours: an option for speed).
        vocab: vocabulary scored when no label is given: ``coco``, ``imagenet``, ``vggsound``, ``audioset`` or a file.
        conf_threshold: boxes scoring below this are dropped (ours: 0.05; association prefers sure boxes).
        nms_iou: IoU above which overlapping boxes of one class are suppressed.
        max_detections: most boxes kept per frame.
        batch: frames per forward pass.
        association: how detections are linked into one object.
    """

    weights: str = YOLO_WORLD_WEIGHTS
    image_size: int = 640
    detect_every: int = 1
    vocab: str = "coco"
    conf_threshold: float = 0.05
    nms_iou: float = 0.7
    max_detections: int = 30
    batch: int = 8
    association: AssociationConfig = field(default_factory=AssociationConfig)

    def __post_init__(self) -> None:
        if not (isinstance(self.detect_every, int) and 1 <= self.detect_every <= 250):
            raise ValueError("detect_every must be an integer from 1 to 250")
        if self.image_size < STRIDE or self.image_size % STRIDE:
            raise ValueError(f"image_size must be a positive multiple of {STRIDE}")


def load_world_model(path: Path, device: str) -> Any:
    """The YOLO-World network from an ultralytics checkpoint, in eval mode on ``device``;
    :class:`ModelError` for a file that is not one."""
    os.environ.setdefault("YOLO_VERBOSE", "False")
    os.environ.setdefault("YOLO_OFFLINE", "1")  # a job never downloads
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    try:
        from ultralytics.nn.tasks import load_checkpoint

        model, _ = load_checkpoint(str(path), device=device, fuse=True)  # Conv+BN fused, as ultralytics predicts
    except Exception as exc:  # unpickling errors come in many types
        raise ModelError(f"{path}: not a readable YOLO-World checkpoint ({exc.__class__.__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); delete it and fetch it again") from None
    if not hasattr(model, "txt_feats"):
        raise ModelError(f"{path}: a YOLO checkpoint, but not YOLO-World (it has no text input)")
    return model


def letterbox(frame: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """``frame`` (H, W, 3) scaled so its long side is ``size`` and padded right/bottom to a
    multiple of :data:`STRIDE` with grey 114 (ultralytics' fill); returns the image and the scale."""
    h, w = frame.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if (nh, nw) != (h, w):
        import cv2

        frame = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    ph, pw = -(-nh // STRIDE) * STRIDE, -(-nw // STRIDE) * STRIDE
    out = np.full((ph, pw, 3), 114, np.uint8)
    out[:nh, :nw] = frame
    return out, scale


class YoloWorldLocalizer:
    """Open-vocabulary detection of the named object; satisfies :class:`~foleyspace.localize.base.Localizer`."""

    name = "yolo-world"

    def __init__(self, config: YoloWorldConfig | None = None, device: str = "cpu", models: Any = None) -> None:
        self.config = config or YoloWorldConfig()
        self.device = device
        self.frame_form = FrameForm("rgb", self.config.image_size)
        path = find_yolo_weights(self.config.weights)
        if path is None:
            raise ModelError(missing_yolo_message(self.config.weights))
        key = (f"yolo-world {Path(path).name}", str(path), device)
        self.model = models.get(key, lambda: load_world_model(path, device)) if models else load_world_model(path, device)
        from foleyspace.localize.text_embeddings import TextEmbeddings

        self.embeddings = TextEmbeddings(device=device)

    # ------------------------------------------------------------------ detection
    def _set_classes(self, labels: list[str]) -> None:
        import torch

        feats = torch.from_numpy(self.embeddings.get(labels)).to(self.device)[None]
        self.model.txt_feats = feats
        self.model.model[-1].nc = len(labels)

    def detect(self, frames: list[np.ndarray], agnostic: bool) -> list[np.ndarray]:
        """Boxes per frame: ``(m, 6)`` rows ``x, y, w, h, score, class`` in frame pixels."""
        import torch
        from ultralytics.utils.nms import non_max_suppression

        cfg = self.config
        boxed = [letterbox(f, cfg.image_size) for f in frames]
        shape = (max(b[0].shape[0] for b in boxed), max(b[0].shape[1] for b in boxed), 3)
        batch = np.full((len(boxed), *shape), 114, np.uint8)
        for i, (img, _) in enumerate(boxed):
            batch[i, : img.shape[0], : img.shape[1]] = img
        x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        with torch.inference_mode():
            pred = self.model(x)
        found = non_max_suppression(pred, conf_thres=cfg.conf_threshold, iou_thres=cfg.nms_iou,
                                    agnostic=agnostic, max_det=cfg.max_detections, nc=int(self.model.model[-1].nc))
        out = []
        for dets, (_, scale), frame in zip(found, boxed, frames):
            d = dets.float().cpu().numpy().reshape(-1, 6)
            h, w = frame.shape[:2]  # boxes are clipped to the picture (not the letterbox padding)
            d[:, [0, 2]] = np.clip(d[:, [0, 2]], 0, w * scale)
            d[:, [1, 3]] = np.clip(d[:, [1, 3]], 0, h * scale)
            xywh = np.column_stack([d[:, 0], d[:, 1], d[:, 2] - d[:, 0], d[:, 3] - d[:, 1]]) / scale
            out.append(np.column_stack([xywh, d[:, 4], d[:, 5]]))
        return out

    # ------------------------------------------------------------------ the clip
    def localize(self, frames: Iterable[np.ndarray], request: LocalizeRequest,
                 progress: FrameProgress | None = None) -> BoxTrack:
        """One box per frame of the named (or best vocabulary) object; see the module docstring.

        Raises:
            InputError: the object was never detected, or the vocabulary cannot be read.
            ModelError: a label's text embedding is not cached and CLIP is not available.
        """
        cfg = self.config
        synonyms = split_label(request.label) if request.label else []
        labels = synonyms or load_vocabulary(cfg.vocab)
        self._set_classes(labels)
        k = cfg.detect_every
        detected_at: list[int] = []
        per_frame: list[np.ndarray] = []
        pending: list[tuple[int, np.ndarray]] = []
        n = 0

        def flush() -> None:
            if pending:
                per_frame.extend(self.detect([f for _, f in pending], agnostic=bool(synonyms)))
                detected_at.extend(i for i, _ in pending)
                pending.clear()

        last_frame: np.ndarray | None = None
        for i, frame in enumerate(frames):
            n = i + 1
            last_frame = frame
            if i % k == 0:
                pending.append((i, frame))
                if len(pending) >= cfg.batch:
                    flush()
            if progress is not None and i % 8 == 0:
                progress(min(i / max(request.n_frames, 1), 0.99))
        if n and (n - 1) % k and last_frame is not None:  # the last frame too, so the end is not extrapolated
            pending.append((n - 1, last_frame))
        flush()
        if n == 0:
            raise InputError("the clip has no frames in the range")
        chosen, choice = self._choose(labels, synonyms, per_frame)
        rows = [d[np.isin(d[:, 5], chosen), :5] for d in per_frame]
        boxes, scores = follow_one(detected_at, rows, n, cfg.association)
        boxes, scores, state = bridged_states(boxes, scores, max_gap=max(2 * k, cfg.association.max_missed * k))
        if not np.isfinite(boxes).all(axis=1).any():
            what = request.label or f"object of the {cfg.vocab} vocabulary"
            raise NotDetected(f"no {what!r} was detected in the range (no box scored {cfg.conf_threshold:g} or more); "
                             "name it differently, draw a box with --box, or use --localizer motion")
        if progress is not None:
            progress(1.0)
        return BoxTrack(boxes, np.clip(scores, 0.0, 1.0), choice["label"], details=choice, state=state)

    def _choose(self, labels: list[str], synonyms: list[str],
                per_frame: list[np.ndarray]) -> tuple[list[int], dict[str, Any]]:
        """The class indices followed and what the sidecar says of the choice."""
        frames = max(len(per_frame), 1)
        best = np.zeros(len(labels))
        for d in per_frame:
            for c in np.unique(d[:, 5]).astype(int):
                best[c] += d[d[:, 5] == c, 4].max()
        mean = best / frames  # per label: mean over detection frames of its best score (0 where absent)
        if synonyms:
            return list(range(len(labels))), {"label": ", ".join(synonyms), "mode": "label",
                                              "score": round(float(mean.max()), 4)}
        order = np.argsort(-mean, kind="stable")
        return [int(order[0])], {
            "label": labels[order[0]], "mode": f"vocabulary {self.config.vocab}", "score": round(float(mean[order[0]]), 4),
            "runners_up": [{"label": labels[i], "score": round(float(mean[i]), 4)} for i in order[1:4] if mean[i] > 0]}

    def describe(self) -> dict[str, Any]:
        return {"weights": self.config.weights, "device": self.device}
