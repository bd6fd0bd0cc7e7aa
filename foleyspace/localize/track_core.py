"""One direction of the seeded tracker: template tracking from a keyframe with occlusion handling.

A :class:`TrackPass` starts on a keyframe (a box the user drew) and is fed grey frames one at a
time, forward or backward in time; for each it returns a :class:`Step`: the box, its state
(tracked / predicted / lost) and a confidence. Everything is in *processing* pixels; the caller
(:mod:`foleyspace.localize.tracker`) converts.

Per frame (see :class:`~foleyspace.localize.tracker.TrackerConfig` for the numbers):

1. **Search** the working template by normalized cross-correlation (``cv2.matchTemplate``,
   ``TM_CCOEFF_NORMED``) at a few scales in a window around the constant-velocity prediction.
   The window is ``search_margin`` box sizes while tracking and widens by ``lost_margin_growth``
   box sizes per frame while the object is not seen, up to ``max_search_margin``.
2. **Verify** the best match against the *anchors* (the keyframe templates, never updated): the
   anchor score is the best NCC of an anchor resized to the matched box with the patch there.
3. **Decide**. While tracking, the match is taken when its score is at least ``min_score``, it
   did not fall more than ``score_drop`` below the recent mean score (an occluder sliding in
   changes the appearance suddenly; a turning subject changes it slowly), it does not jump more
   than ``max_jump`` box sizes away from the prediction, its anchor score is at least
   ``anchor_min``, and its contrast is like the keyframe patch's (:meth:`TrackPass.verify`: NCC
   ignores gain, so a patch faded into the dark correlates through a caption or noise).
   Otherwise the object is taken as occluded: the template is frozen and the box
   moves on at the recent velocity for up to ``predict_s`` seconds (state ``predicted``, or at
   once ``lost`` when the prediction leaves the frame), then ``lost`` (no box). It is found again
   only by a match scoring ``reacquire_score`` against the template *and* ``reacquire_anchor``
   against an anchor -- no less than its running mean while tracked, which a poor match just
   before a loss does not lower -- so a passing occluder is not taken for it.
4. **Adapt** on confident frames only (score at least ``update_min_score``, near the recent mean
   and anchor-verified): the template moves towards the matched patch by ``update_rate`` and back
   towards the anchor by ``anchor_pull``; the size follows the best scale, smoothed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from foleyspace.localize.base import LOST, PREDICTED, TRACKED

if TYPE_CHECKING:
    from foleyspace.localize.tracker import TrackerConfig

#: ``(x, y, w, h)``: top-left corner and size.
Box = tuple[float, float, float, float]


def crop(grey: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """The patch under ``box`` (processing px) resampled to ``size = (w, h)``, float32."""
    x, y, w, h = box
    center = (x + w / 2.0 - 0.5, y + h / 2.0 - 0.5)
    patch = cv2.getRectSubPix(grey, (max(1, int(round(w))), max(1, int(round(h)))), center)
    if patch.shape[1] != size[0] or patch.shape[0] != size[1]:
        patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
    return patch.astype(np.float32)


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalized cross-correlation of two same-size float32 patches, in [-1, 1] (0 when flat)."""
    r = float(cv2.matchTemplate(a, b, cv2.TM_CCOEFF_NORMED)[0, 0])
    return r if math.isfinite(r) else 0.0


def contrast(patch: np.ndarray) -> float:
    """Robust contrast of a patch: the spread between its 25th and 75th grey-level percentiles.

    Robust to a few saturated pixels (a caption or logo over the object) that would keep the
    standard deviation up while the object itself fades into the dark.
    """
    sample = patch[::2, ::2] if patch.size > 4096 else patch
    lo, hi = np.percentile(sample, (25.0, 75.0))
    return float(hi - lo)


def _subpixel(res: np.ndarray, ix: int, iy: int) -> tuple[float, float]:
    """Parabolic refinement of the correlation peak at ``(ix, iy)``."""

    def offset(a: float, b: float, c: float) -> float:
        denom = a - 2 * b + c
        return 0.0 if denom >= 0 else float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5))

    dx = offset(res[iy, ix - 1], res[iy, ix], res[iy, ix + 1]) if 0 < ix < res.shape[1] - 1 else 0.0
    dy = offset(res[iy - 1, ix], res[iy, ix], res[iy + 1, ix]) if 0 < iy < res.shape[0] - 1 else 0.0
    return ix + dx, iy + dy


def match_in_window(
    grey: np.ndarray, templ: np.ndarray, center: tuple[float, float], margin: float
) -> tuple[float, Box] | None:
    """Best ``TM_CCOEFF_NORMED`` match of ``templ`` near ``center``; ``(score, box)`` or ``None``.

    The window is the template's extent around ``center`` plus ``margin`` px on each side,
    clipped to the frame.
    """
    fh, fw = grey.shape
    th, tw = templ.shape
    if tw > fw or th > fh:
        return None
    x0 = int(np.clip(math.floor(center[0] - tw / 2.0 - margin), 0, fw - tw))
    y0 = int(np.clip(math.floor(center[1] - th / 2.0 - margin), 0, fh - th))
    x1 = int(np.clip(math.ceil(center[0] + tw / 2.0 + margin), x0 + tw, fw))
    y1 = int(np.clip(math.ceil(center[1] + th / 2.0 + margin), y0 + th, fh))
    res = cv2.matchTemplate(grey[y0:y1, x0:x1], templ, cv2.TM_CCOEFF_NORMED)
    res = np.nan_to_num(res, nan=-1.0, posinf=-1.0, neginf=-1.0)
    _, score, _, (ix, iy) = cv2.minMaxLoc(res)
    sx, sy = _subpixel(res, ix, iy)
    return float(score), (x0 + sx, y0 + sy, float(tw), float(th))


def center_of(box: Box) -> tuple[float, float]:
    return box[0] + box[2] / 2.0, box[1] + box[3] / 2.0


def confidence_of(score: float, cfg: TrackerConfig) -> float:
    """Confidence of a tracked frame from its match score: 0 at ``min_score``, 1 at ``sure_score``
    and above, linear between (see the docs of :class:`~foleyspace.localize.tracker.TrackerConfig`)."""
    return float(np.clip((score - cfg.min_score) / max(cfg.sure_score - cfg.min_score, 1e-6), 0.0, 1.0))


@dataclass(frozen=True)
class Step:
    """What a pass says of one frame: ``box`` is ``None`` exactly when ``state`` is ``LOST``.

    ``score`` is the match score behind a tracked frame (0 otherwise) and ``anchor`` its anchor
    score; the caller uses them to weigh two passes that disagree.
    """

    state: int
    box: Box | None
    confidence: float
    anchor: float = 0.0
    score: float = 0.0


class TrackPass:
    """Tracks one keyframe's box through frames fed one at a time (one direction; see module docs).

    Args:
        grey: the keyframe's grey frame (processing size, float32).
        box: the keyframe's box (processing px).
        anchors: further anchor templates (other keyframes' patches, any size); the keyframe's own
            patch is always the first anchor.
        cfg: the tracker's configuration.
        fps: frames per second (turns ``predict_s`` into frames).
    """

    def __init__(self, grey: np.ndarray, box: Box, anchors: list[np.ndarray], cfg: TrackerConfig, fps: float) -> None:
        self.cfg = cfg
        self.size = (max(4, int(round(box[2]))), max(4, int(round(box[3]))))
        self.template = crop(grey, box, self.size)
        self.anchors = [self.template.copy()] + [
            a if a.shape == self.template.shape[:2] else cv2.resize(a, self.size, interpolation=cv2.INTER_AREA)
            for a in anchors
        ]
        self.base_size = (float(box[2]), float(box[3]))
        self.box: Box = box  # last tracked box
        self.velocity = (0.0, 0.0)  # px per frame, in the pass's direction of time
        self.mean_score = 1.0  # recent mean match score while tracked
        self.anchor_ref = 1.0  # recent mean anchor score while tracked (restarts on a new look)
        self.anchor_level = 1.0  # the same, never restarted: what a re-found object must match
        self.ref_contrast = contrast(self.template)  # the keyframe patch's contrast
        self.candidate: tuple[float, float] | None = None  # centre of a re-acquisition on probation
        self.unseen = 0  # frames since the object was last tracked
        self.max_predict = max(0, int(round(cfg.predict_s * fps)))
        self.frame_size = (grey.shape[1], grey.shape[0])

    def anchor_score(self, grey: np.ndarray, box: Box) -> float:
        """Best NCC of an anchor with the patch under ``box``."""
        return self.verify(grey, box)[0]

    def verify(self, grey: np.ndarray, box: Box) -> tuple[float, bool]:
        """The anchor score of the patch under ``box``, and whether NCC can be believed there: the
        patch is not flat (standard deviation at least ``flat_std`` grey levels) and its contrast
        (:func:`contrast`) is within ``min_contrast`` .. ``max_contrast`` times the keyframe
        patch's (NCC ignores gain: an object faded into the dark still correlates through whatever
        keeps its shape -- a caption over it, noise -- and a much busier patch is something else).
        The lower bound applies only where the keyframe patch's contrast is at least
        ``min_contrast_px`` grey levels."""
        cfg = self.cfg
        patch = crop(grey, box, self.size)
        anchor = max(ncc(patch, a) for a in self.anchors)
        c, ref = contrast(patch), self.ref_contrast
        # a keyframe patch without a real spread (a small object on a flat ground: a quarter of
        # the box or less) says nothing about fading: only the upper bound applies then
        faded = ref >= cfg.min_contrast_px and c < cfg.min_contrast * ref
        busier = c > cfg.max_contrast * max(ref, cfg.min_contrast_px)
        return anchor, float(patch.std()) >= cfg.flat_std and not faded and not busier

    def _search(self, grey: np.ndarray, center: tuple[float, float], margin: float) -> tuple[float, Box] | None:
        cfg = self.cfg
        w, h = self.box[2], self.box[3]
        best: tuple[float, float, Box] | None = None  # (ranking score, raw score, box)
        for s in cfg.scales:
            tw = int(np.clip(round(w * s), 4, grey.shape[1]))
            th = int(np.clip(round(h * s), 4, grey.shape[0]))
            templ = self.template if (tw, th) == self.size else cv2.resize(self.template, (tw, th), interpolation=cv2.INTER_AREA)
            found = match_in_window(grey, templ, center, margin)
            if found is None:
                continue
            score, box = found
            rank = score - (cfg.scale_penalty if s != 1.0 else 0.0)
            if best is None or rank > best[0]:
                best = (rank, score, box)
        return None if best is None else (best[1], best[2])

    def step(self, grey: np.ndarray) -> Step:
        cfg = self.cfg
        w, h = self.box[2], self.box[3]
        size = max(w, h)
        cx, cy = center_of(self.box)
        k = self.unseen + 1  # frames since the last tracked one, this one included
        vx, vy = self.velocity
        if self.unseen <= self.max_predict:
            pred = (cx + vx * k, cy + vy * k)
        else:  # lost: search around where the prediction left off, drifting no further
            pred = (cx + vx * (self.max_predict + 1), cy + vy * (self.max_predict + 1))
        fw, fh = self.frame_size
        search_center = (float(np.clip(pred[0], 0, fw)), float(np.clip(pred[1], 0, fh)))
        margin_boxes = min(cfg.max_search_margin, cfg.search_margin + cfg.lost_margin_growth * self.unseen)
        margin = margin_boxes * size + (math.hypot(vx, vy) if self.unseen == 0 else 0.0)
        found = self._search(grey, search_center, margin)
        if found is None:
            return self._miss(pred)
        score, box = found
        bc = center_of(box)
        jump = math.hypot((bc[0] - pred[0]) / w, (bc[1] - pred[1]) / h)  # in box sizes, per axis
        if self.unseen <= self.max_predict and jump <= cfg.max_jump and score >= cfg.min_score:
            # near where it should be: the object, unless its look changed suddenly (an occluder
            # sliding in) -- a drop is trusted only once it persists for a second frame
            anchor, lit = self.verify(grey, box)
            floor = max(cfg.anchor_min, self.anchor_ref - cfg.anchor_drop)
            if self.unseen == 0:
                ok = score >= self.mean_score - cfg.score_drop and anchor >= floor
            else:  # the look changed a frame ago and still holds: a new look if it is still like a keyframe
                ok = anchor >= cfg.reacquire_anchor
            if ok and lit:
                self.candidate = None
                return self._accept(grey, score, box, anchor)
        elif self.unseen > 0 and score >= cfg.reacquire_score:
            # found again elsewhere: it must look like a keyframe as much as it did while tracked,
            # and be found at the same place on two frames in a row
            anchor, lit = self.verify(grey, box)
            if lit and anchor >= max(cfg.reacquire_anchor, self.anchor_level - cfg.reacquire_slack):
                previous, self.candidate = self.candidate, bc
                if previous is not None and math.hypot(bc[0] - previous[0], bc[1] - previous[1]) <= cfg.confirm_dist * size:
                    self.candidate = None
                    return self._accept(grey, score, box, anchor)
                return self._miss(pred)
        self.candidate = None
        return self._miss(pred)

    def _accept(self, grey: np.ndarray, score: float, box: Box, anchor: float) -> Step:
        cfg = self.cfg
        old_c, k = center_of(self.box), self.unseen + 1
        new_c = center_of(box)
        # size: smoothed towards the matched scale, kept within bounds of the keyframe's size
        bw, bh = self.base_size
        ratio = float(np.clip(box[2] / bw, cfg.min_scale_ratio, cfg.max_scale_ratio))
        cur = self.box[2] / bw
        ratio = cur + cfg.scale_smoothing * (ratio - cur)
        w, h = bw * ratio, bh * ratio
        box = (new_c[0] - w / 2.0, new_c[1] - h / 2.0, w, h)
        v_now = ((new_c[0] - old_c[0]) / k, (new_c[1] - old_c[1]) / k)
        a = cfg.velocity_smoothing
        if self.unseen > self.max_predict:  # found again after being lost: no velocity to trust
            self.velocity = (0.0, 0.0)
        else:
            self.velocity = (a * v_now[0] + (1 - a) * self.velocity[0], a * v_now[1] + (1 - a) * self.velocity[1])
        if self.unseen == 0:
            self.mean_score += cfg.score_smoothing * (score - self.mean_score)
            self.anchor_ref += cfg.score_smoothing * (anchor - self.anchor_ref)
        else:  # found again (or a new look): the recent means restart from this match
            self.mean_score, self.anchor_ref = score, anchor
        # ... but not the level a re-found object must match: one poor match then a loss must not
        # lower the bar for whatever the widening search finds later
        self.anchor_level += cfg.score_smoothing * (anchor - self.anchor_level)
        if (cfg.update_rate > 0 and self.unseen == 0 and score >= cfg.update_min_score
                and score >= self.mean_score - cfg.score_drop / 2):
            patch = crop(grey, box, self.size)
            r, p = cfg.update_rate, cfg.anchor_pull
            self.template = (1 - r - p) * self.template + r * patch + p * self.anchors[0]
        self.box, self.unseen = box, 0
        return Step(TRACKED, box, confidence_of(score, cfg), anchor, score)

    def _miss(self, pred: tuple[float, float]) -> Step:
        self.unseen += 1
        fw, fh = self.frame_size
        w, h = self.box[2], self.box[3]
        inside = 0 <= pred[0] < fw and 0 <= pred[1] < fh
        if self.unseen <= self.max_predict and inside:
            box = (pred[0] - w / 2.0, pred[1] - h / 2.0, w, h)
            x = float(np.clip(box[0], 0, max(fw - w, 0)))
            y = float(np.clip(box[1], 0, max(fh - h, 0)))
            conf = self.cfg.predicted_confidence * (1.0 - (self.unseen - 1) / (self.max_predict + 1))
            return Step(PREDICTED, (x, y, min(w, fw), min(h, fh)), conf)
        if self.unseen <= self.max_predict:  # left the frame: no sense predicting
            self.unseen = self.max_predict + 1
            self.box = (pred[0] - w / 2.0, pred[1] - h / 2.0, w, h)
            self.velocity = (0.0, 0.0)
        return Step(LOST, None, 0.0)
