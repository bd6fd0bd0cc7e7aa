"""One object through the clip: temporal association of per-frame detections (numpy only, no model).

A detector gives, per frame, boxes with scores; two dogs give two boxes a frame. Following "the
dog" means following *one* of them, so the sound does not jump. Detections are linked into
tracks frame by frame (tracking by detection): each live track predicts its box by constant
velocity, and each detection joins the track it fits best — cost ``1 − IoU`` plus the centre
distance in box sizes, minus a small score bonus — if the fit is good enough, else starts a new
track; a track with no detection for ``max_missed`` detection frames ends. The sounding object
is the track with the largest summed score (present longest and surest); where it is absent,
the best other track that does not overlap it in time fills in (the object left and another
of its kind is what remains). Boxes are ``(x, y, w, h)`` in pixels, as in :class:`BoxTrack`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from foleyspace.localize.base import LOST, PREDICTED, TRACKED


@dataclass(frozen=True)
class AssociationConfig:
    """Tracking-by-detection settings (all ours).

    Attributes:
        max_cost: largest cost at which a detection joins a track (IoU 0.3 at equal centres ≈ 0.7).
        distance_weight: cost per box size of centre distance from the track's prediction.
        score_weight: cost bonus per unit of detection score (prefers the sure box among close ones).
        max_missed: detection frames a track may miss before it ends (bridges a missed frame).
        min_track_frames: shorter tracks are dropped unless nothing else exists.
    """

    max_cost: float = 1.2
    distance_weight: float = 1.0
    score_weight: float = 0.2
    max_missed: int = 3
    min_track_frames: int = 2


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class _Track:
    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    missed: int = 0

    def predict(self, frame: int) -> np.ndarray:
        """The box expected at ``frame`` (constant velocity from the last two detections)."""
        last = self.boxes[-1]
        if len(self.boxes) < 2 or frame == self.frames[-1]:
            return last
        step = (self.boxes[-1] - self.boxes[-2]) / max(self.frames[-1] - self.frames[-2], 1)
        return last + step * (frame - self.frames[-1])

    def cost(self, frame: int, box: np.ndarray, score: float, cfg: AssociationConfig) -> float:
        guess = self.predict(frame)
        size = max(np.sqrt(max(guess[2] * guess[3], 1e-9)), 1e-9)
        dist = np.hypot(*(box[:2] + box[2:] / 2 - guess[:2] - guess[2:] / 2)) / size
        return (1.0 - iou(guess, box)) + cfg.distance_weight * dist - cfg.score_weight * score

    @property
    def total(self) -> float:
        return float(sum(self.scores))


def link_tracks(frames: list[int], detections: list[np.ndarray], cfg: AssociationConfig) -> list[_Track]:
    """Link detections ``(n_i, 5)`` rows ``x, y, w, h, score`` of the given frames into tracks."""
    live: list[_Track] = []
    done: list[_Track] = []
    for frame, dets in zip(frames, detections):
        dets = np.asarray(dets, float).reshape(-1, 5)
        pairs = sorted((t.cost(frame, d[:4], d[4], cfg), ti, di)
                       for ti, t in enumerate(live) for di, d in enumerate(dets))
        used_t: set[int] = set()
        used_d: set[int] = set()
        for cost, ti, di in pairs:  # greedy: cheapest pairs first (few boxes a frame)
            if cost > cfg.max_cost or ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            track = live[ti]
            track.frames.append(frame)
            track.boxes.append(dets[di, :4])
            track.scores.append(float(dets[di, 4]))
            track.missed = 0
        for ti, track in enumerate(live):
            if ti not in used_t:
                track.missed += 1
        for di in range(len(dets)):
            if di not in used_d:
                live.append(_Track([frame], [dets[di, :4]], [float(dets[di, 4])]))
        done += [t for t in live if t.missed > cfg.max_missed]
        live = [t for t in live if t.missed <= cfg.max_missed]
    return done + live


def follow_one(frames: list[int], detections: list[np.ndarray], n_frames: int,
               cfg: AssociationConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The sounding object's box and score at each of ``n_frames`` frames (NaN / 0 where it has
    none), from detections ``(n_i, 5)`` (``x, y, w, h, score``) at ``frames``.

    The strongest track is taken whole; other tracks fill only the frames before its first or
    after its last detection, strongest first, never overlapping what is already chosen.
    """
    cfg = cfg or AssociationConfig()
    tracks = link_tracks(frames, detections, cfg)
    long_enough = [t for t in tracks if len(t.frames) >= cfg.min_track_frames] or tracks
    return assemble(sorted(long_enough, key=lambda t: -t.total), n_frames)


def assemble(tracks: list[_Track], n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``(n_frames, 4)`` and scores from ``tracks`` in order of preference: the first is
    taken whole, each next one only if its time span overlaps none already taken."""
    boxes = np.full((n_frames, 4), np.nan)
    scores = np.zeros(n_frames)
    taken: list[tuple[int, int]] = []
    for track in tracks:
        span = (track.frames[0], track.frames[-1])
        if any(span[0] <= b and a <= span[1] for a, b in taken):
            continue
        taken.append(span)
        for f, box, score in zip(track.frames, track.boxes, track.scores):
            if 0 <= f < n_frames:
                boxes[f], scores[f] = box, score
    return boxes, scores


def bridge(boxes: np.ndarray, scores: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Fill runs of at most ``max_gap`` box-less frames *between* two boxes by linear
    interpolation (detections every k-th frame, a missed frame); the filled frames get the
    smaller neighbouring score. Longer gaps and the ends stay empty."""
    boxes, scores = boxes.copy(), scores.copy()
    have = np.flatnonzero(np.all(np.isfinite(boxes), axis=1))
    for a, b in zip(have[:-1], have[1:]):
        if 1 < b - a <= max_gap + 1:
            w = (np.arange(a + 1, b) - a) / (b - a)
            boxes[a + 1:b] = boxes[a] + w[:, None] * (boxes[b] - boxes[a])
            scores[a + 1:b] = min(scores[a], scores[b])
    return boxes, scores


def bridged_states(boxes: np.ndarray, scores: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`bridge` plus each frame's state: ``TRACKED`` where a box was seen, ``PREDICTED``
    where the bridge filled one in, ``LOST`` elsewhere."""
    state = np.where(np.all(np.isfinite(boxes), axis=1), TRACKED, LOST).astype(np.int8)
    boxes, scores = bridge(boxes, scores, max_gap)
    state[(state == LOST) & np.all(np.isfinite(boxes), axis=1)] = PREDICTED
    return boxes, scores, state
