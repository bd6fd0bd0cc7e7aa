"""User-seeded box tracker: follows a box the user drew on one frame through the whole clip.

The user gives a box ``(x, y, w, h)`` in the pixels of the frames given (the pipeline scales it; ``(x, y)`` the top-left corner, ``u``
right, ``v`` down) on the seed frame. The tracker follows it forward from the seed frame to the
end of the clip and backward from the seed frame to frame 0 with normalized cross-correlation
template matching (``cv2.matchTemplate``, ``TM_CCOEFF_NORMED``):

* each frame is searched in a window around the previous box, at a few scales, so the box can
  grow or shrink with an approaching or receding object;
* the template is the seed patch, slowly blended with confidently matched patches;
* a best score below :attr:`TrackerConfig.min_score` marks the frame lost (NaN row, confidence 0);
  the search stays centered on the last position and its window widens while lost.

Frames are consumed once. Only the frames *before* the seed frame are kept (as grey images at
the processing size) for the backward pass; memory after the seed frame does not grow.
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
from foleyspace.localize.base import BoxTrack, FrameProgress, LocalizeRequest
from foleyspace.localize.frame_prep import to_grey

log = logging.getLogger(__name__)

#: ``(x, y, w, h)``: top-left corner and size.
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class TrackerConfig:
    """Tunables of :class:`SeededTracker`. Sizes in *processing* pixels unless stated.

    Attributes:
        long_side: long side of the processing frames in pixels (never upscaled); raised up to
            the analysis size when the seed box would otherwise be smaller than
            ``min_template_px``.
        min_template_px: least short side of the template in processing px.
        blur_sigma: Gaussian blur (standard deviation, processing px) of each grey frame.
        scales: box scale factors tried on every frame (1.0 keeps the size).
        scale_penalty: score handicap of a scale other than 1.0 (keeps the size from drifting).
        search_margin: the search window extends this many box sizes beyond the previous box on
            each side.
        lost_margin_growth: while lost, the margin grows by this many box sizes per frame ...
        max_search_margin: ... up to this many box sizes.
        min_score: a best match score below this marks the frame lost.
        update_rate: weight of the newly matched patch when the template is updated (0 = never).
        update_min_score: the template is only updated from matches scoring at least this.
        min_seed_px: least width and height of the seed box in frame pixels.
        edge_tolerance_px: a seed box may overshoot the frame by this many frame pixels (it is
            clipped); further is an error.
        progress_every: call ``progress`` every this many frames.
    """

    long_side: int = 320
    min_template_px: int = 12
    blur_sigma: float = 0.8
    scales: tuple[float, ...] = (0.95, 1.0, 1.05)
    scale_penalty: float = 0.01
    search_margin: float = 0.6
    lost_margin_growth: float = 0.2
    max_search_margin: float = 2.5
    min_score: float = 0.45
    update_rate: float = 0.05
    update_min_score: float = 0.7
    min_seed_px: float = 4.0
    edge_tolerance_px: float = 1.0
    progress_every: int = 10

    def __post_init__(self) -> None:
        if self.long_side < 16:
            raise ValueError("long_side must be at least 16 px")
        if not self.scales or any(s <= 0 for s in self.scales):
            raise ValueError("scales must be positive")
        if not 0 <= self.update_rate <= 1:
            raise ValueError("update_rate must be in [0, 1]")
        if not -1 <= self.min_score <= 1:
            raise ValueError("min_score must be in [-1, 1]")
        if self.progress_every < 1:
            raise ValueError("progress_every must be >= 1")


@dataclass
class _State:
    """Tracking state for one direction, in processing pixels."""

    box: Box
    template: np.ndarray  # float32, at the seed size
    margin: float  # search margin in box sizes


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
    x0, y0 = max(x, 0.0), max(y, 0.0)
    x1, y1 = min(x + w, float(width)), min(y + h, float(height))
    return x0, y0, x1 - x0, y1 - y0


def processing_scale(frame_w: int, frame_h: int, seed: Box, cfg: TrackerConfig) -> float:
    """Analysis → processing scale factor (<= 1) for this frame size and seed box."""
    scale = min(1.0, cfg.long_side / max(frame_w, frame_h))
    need = cfg.min_template_px / max(min(seed[2], seed[3]), 1e-9)
    return float(min(1.0, max(scale, need)))


def crop(grey: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """The patch under ``box`` (processing px) resampled to ``size = (w, h)``, float32."""
    x, y, w, h = box
    center = (x + w / 2.0 - 0.5, y + h / 2.0 - 0.5)
    patch = cv2.getRectSubPix(grey, (int(round(w)), int(round(h))), center)
    if patch.shape[1] != size[0] or patch.shape[0] != size[1]:
        patch = cv2.resize(patch, size, interpolation=cv2.INTER_AREA)
    return patch.astype(np.float32)


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
    res = cv2.matchTemplate(grey[y0:y1, x0:x1].astype(np.float32), templ, cv2.TM_CCOEFF_NORMED)
    res = np.nan_to_num(res, nan=-1.0, posinf=-1.0, neginf=-1.0)
    _, score, _, (ix, iy) = cv2.minMaxLoc(res)
    sx, sy = _subpixel(res, ix, iy)
    return float(score), (x0 + sx, y0 + sy, float(tw), float(th))


class SeededTracker:
    """Tracks a user-drawn box forward and backward from its seed frame (see module docstring).

    Implements :class:`~foleyspace.localize.base.Localizer`; the box comes with each request
    (:attr:`~foleyspace.localize.base.LocalizeRequest.seed_box`, in the pixels of the frames given, drawn on
    ``seed_frame``).
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
        """One box per frame in the pixels of the frames given; the seed frame holds the seed box (confidence 1).

        Args:
            frames: grey ``(H, W)`` or RGB ``(H, W, 3)`` ``uint8`` frames, all the same size,
                consumed once in order.
            request: the frame count and the seed (required).
            progress: called with the fraction done every few frames and with 1.0 at the end;
                whatever it raises propagates.

        Raises:
            InputError: no seed box, a box that is not four finite numbers or is smaller than
                :attr:`TrackerConfig.min_seed_px`, a seed frame that is negative or not inside
                the clip, a box not inside the frame, or a malformed frame.
        """
        if request.seed_box is None:
            raise InputError("the seeded tracker needs a box around the object (--box X,Y,W,H[@TIME])")
        seed_box, seed_frame = _validated_seed(request.seed_box, request.seed_frame, self.config)
        if seed_frame >= request.n_frames:
            raise InputError(f"seed frame {seed_frame} is past the end of the clip ({request.n_frames} frames)")
        run = _TrackRun(seed_box, seed_frame, self.config, request.n_frames, progress)
        for frame in frames:
            run.push(frame)
        return run.finish()


class _TrackRun:
    """State of one :meth:`SeededTracker.localize` call."""

    def __init__(
        self, seed: Box, seed_frame: int, cfg: TrackerConfig, n_frames: int, progress: FrameProgress | None
    ) -> None:
        self.seed, self.seed_frame, self.cfg = seed, seed_frame, cfg
        self.n_frames = max(int(n_frames), 1)
        self.progress = progress
        self.frame_shape: tuple[int, int] | None = None
        self.scale = 1.0
        self.proc_size = (0, 0)
        self.before: list[np.ndarray] = []  # grey frames before the seed frame
        self.forward: _State | None = None
        self.boxes: list[np.ndarray] = []
        self.confidence: list[float] = []
        self.count = 0
        self.work_done = 0

    # -- stream -------------------------------------------------------------------------------

    def push(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame)
        self._check_frame(frame)
        grey = to_grey(frame, self.proc_size)
        if self.cfg.blur_sigma > 0:
            grey = cv2.GaussianBlur(grey, (0, 0), self.cfg.blur_sigma)
        index = self.count
        self.count += 1
        if index < self.seed_frame:
            self.before.append(grey)
            self.boxes.append(np.full(4, np.nan))
            self.confidence.append(0.0)
        elif index == self.seed_frame:
            self._start(grey)
        else:
            assert self.forward is not None
            self._record(index, self._step(self.forward, grey))
        self._tick()

    def finish(self) -> BoxTrack:
        if self.count <= self.seed_frame:
            raise InputError(f"seed frame {self.seed_frame} is past the end of the clip ({self.count} frames)")
        if self.count != self.n_frames:
            log.warning("seeded tracker: expected %d frames, got %d", self.n_frames, self.count)
        if self.progress is not None:
            self.progress(1.0)
        return BoxTrack(
            boxes=np.array(self.boxes, dtype=float).reshape(-1, 4),
            confidence=np.array(self.confidence, dtype=float),
            label="seeded box",
        )

    # -- steps --------------------------------------------------------------------------------

    def _check_frame(self, frame: np.ndarray) -> None:
        if not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
            raise InputError(f"a frame must be grey (H, W) or RGB (H, W, 3) uint8, got shape {frame.shape}")
        if self.frame_shape is None:
            h, w = frame.shape[:2]
            self.seed = fit_box_to_frame(self.seed, w, h, self.cfg.edge_tolerance_px)
            self.frame_shape = (h, w)
            self.scale = processing_scale(w, h, self.seed, self.cfg)
            self.proc_size = (max(8, int(round(w * self.scale))), max(8, int(round(h * self.scale))))
            log.debug("seeded tracker: analysis %dx%d, processing %s", w, h, self.proc_size)
        elif frame.shape[:2] != self.frame_shape:
            raise InputError(f"frame {self.count} is {frame.shape[:2]}, earlier frames were {self.frame_shape}")

    def _start(self, grey: np.ndarray) -> None:
        """Seed frame: record the seed box, run the backward pass, prepare the forward pass."""
        seed = self._to_proc(self.seed)
        size = (max(4, int(round(seed[2]))), max(4, int(round(seed[3]))))
        template = crop(grey, seed, size)
        if float(template.std()) < 2.0:
            log.warning("seed box has almost no texture; tracking will be unreliable")
        self.boxes.append(np.array(self.seed, dtype=float))
        self.confidence.append(1.0)
        backward = _State(seed, template.copy(), self.cfg.search_margin)
        for index in range(self.seed_frame - 1, -1, -1):
            self._record(index, self._step(backward, self.before[index]))
            self._tick()
        self.before.clear()
        self.forward = _State(seed, template, self.cfg.search_margin)

    def _step(self, state: _State, grey: np.ndarray) -> tuple[float, Box] | None:
        """Track ``state`` into ``grey``; the new box, or ``None`` when lost (state kept)."""
        cfg = self.cfg
        x, y, w, h = state.box
        center = (x + w / 2.0, y + h / 2.0)
        margin = state.margin * max(w, h)
        best: tuple[float, float, Box] | None = None  # (ranking score, raw score, box)
        for s in cfg.scales:
            tw = int(np.clip(round(w * s), 4, grey.shape[1]))
            th = int(np.clip(round(h * s), 4, grey.shape[0]))
            templ = cv2.resize(state.template, (tw, th), interpolation=cv2.INTER_AREA)
            found = match_in_window(grey, templ, center, margin)
            if found is None:
                continue
            score, box = found
            rank = score - (cfg.scale_penalty if s != 1.0 else 0.0)
            if best is None or rank > best[0]:
                best = (rank, score, box)
        if best is None or best[1] < cfg.min_score:
            state.margin = min(cfg.max_search_margin, state.margin + cfg.lost_margin_growth)
            return None
        _, score, box = best
        state.box, state.margin = box, cfg.search_margin
        if cfg.update_rate > 0 and score >= cfg.update_min_score:
            th, tw = state.template.shape
            patch = crop(grey, box, (tw, th))
            state.template = (1 - cfg.update_rate) * state.template + cfg.update_rate * patch
        return score, box

    def _record(self, index: int, result: tuple[float, Box] | None) -> None:
        """Store the result of frame ``index`` (frame pixels)."""
        if result is None:
            row, conf = np.full(4, np.nan), 0.0
        else:
            score, box = result
            row, conf = np.array(self._to_analysis(box), dtype=float), float(np.clip(score, 0.0, 1.0))
        if index < len(self.boxes):
            self.boxes[index], self.confidence[index] = row, conf
        else:
            self.boxes.append(row)
            self.confidence.append(conf)

    def _tick(self) -> None:
        self.work_done += 1
        if self.progress is not None and self.work_done % self.cfg.progress_every == 0:
            total = self.n_frames + self.seed_frame  # every frame once, plus the backward pass
            self.progress(min(self.work_done / total, 1.0))

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
