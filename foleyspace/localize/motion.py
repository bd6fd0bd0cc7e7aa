"""Moving-object localizer with camera-motion compensation (the offline default localizer).

For every analysis frame the localizer finds the region that moves *relative to the camera*:

1. Each frame is turned to grey, downscaled so its long side is :attr:`MotionConfig.long_side`
   pixels ("processing pixels") and lightly blurred.
2. For each consecutive pair the global (camera) motion is estimated as a similarity transform
   (rotation, uniform scale, translation): corners (``cv2.goodFeaturesToTrack``) in the earlier
   frame are followed with pyramidal Lucas–Kanade flow and a transform is fitted with RANSAC
   (``cv2.estimateAffinePartial2D``). With too few tracked corners or inliers the identity is
   used (a static camera, or a textureless view where the pan does not show anyway).
3. The neighbouring frames are warped onto frame ``t`` and differenced. With both neighbours
   available (the default, *centered three-frame differencing*) a pixel moves when it differs from
   **both** frame ``t-k`` and frame ``t+k``: a moving object then shows at its position in frame
   ``t`` only, rather than as the union of two positions. The first and last frames use their
   single neighbour; an untextured object (whose inside does not change) is found by the
   one-sided difference tried after the centered ones. The stride ``k`` is tried from
   :attr:`MotionConfig.strides` in order (1, 2, 4 frames): slow objects, which barely change
   between consecutive frames, show at a longer stride. Frame ``t`` is therefore localized once
   frame ``t + max(strides)`` has arrived; the localizer holds ``2 * max(strides) + 1`` small
   grey frames, never more.
4. The motion mask is thresholded, cleaned with morphology, restricted to the part of the frame
   that both warps cover (less a border strip), and split into blobs; nearby blobs are grouped
   (a walking person is several blobs; a slow object shows as its leading and trailing edges).
5. The sounding object is the strongest blob, with a bonus for blobs near the previous pick
   (temporal consistency). Blobs too large to be an object (a failed compensation, a cut) are
   rejected.

Frame preparation (step 1) is in :mod:`~foleyspace.localize.frame_prep`, camera motion and
compensated differences (2–3) in :mod:`~foleyspace.localize.camera_motion`, blobs (4–5) in
:mod:`~foleyspace.localize.blobs`; this module holds the settings and the per-clip state.

Boxes are returned in the pixels of the frames passed in, ``(x, y, w, h)`` with ``(x, y)`` the
top-left corner, ``u`` right and ``v`` down. A frame without a motion blob has a NaN row and
confidence 0.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np

from foleyspace.errors import InputError
from foleyspace.frames import FrameForm, analysis_size
from foleyspace.localize.association import AssociationConfig, assemble, bridged_states, link_tracks
from foleyspace.localize.base import BoxTrack, FrameProgress, LocalizeRequest
from foleyspace.localize.blobs import Blob, blob_confidence, candidate_blobs, find_blobs, pick_blob
from foleyspace.localize.camera_motion import (
    Affine,
    combine_differences,
    compose_affines,
    estimate_camera_motion,
    invert_affine,
    neighbour_difference,
)
from foleyspace.localize.frame_prep import to_grey

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class MotionConfig:
    """Tunables of :class:`MotionLocalizer`. Sizes in *processing* pixels unless stated.

    Attributes:
        long_side: long side of the processing frames in pixels (frames are never upscaled).
        blur_sigma: Gaussian blur (standard deviation, processing px) applied to each grey frame
            before differencing; suppresses codec noise and warp interpolation error.
        max_corners: most corners used to estimate the camera motion.
        corner_quality: ``qualityLevel`` of ``cv2.goodFeaturesToTrack`` (relative to the best corner).
        corner_min_distance: least distance between corners in processing px.
        min_inliers: least RANSAC inliers for the camera-motion estimate to be used; fewer means
            the identity (no camera motion) is assumed.
        ransac_threshold: RANSAC reprojection threshold in processing px.
        max_shift_frac: a camera translation larger than this fraction of the long side between
            two frames is treated as a failed estimate (the identity is used).
        diff_blur_sigma: Gaussian blur (standard deviation, processing px) of each difference
            image: turns the scattered differences of a textured object into a local change
            energy, so its whole area moves, not only its strongest texture edges.
        diff_threshold: local mean grey-level difference (0–255) above which a pixel moves.
        open_px: size of the morphological opening (removes specks), processing px; 0 disables.
        close_px: size of the morphological closing (fills the object), processing px; 0 disables.
        border_frac: strip along the frame border, as a fraction of the short side, where motion is
            ignored (warps invalidate it, and codecs are noisy there).
        merge_px: blobs whose boxes are at most this many processing px apart count as one
            object ...
        merge_size_frac: ... plus this fraction of the smaller blob's size (see :func:`merge_blobs`).
        max_components: only the largest this many connected components are considered.
        min_area_frac: least blob area (moving pixels) as a fraction of the frame area.
        max_area_frac: a blob whose box covers more than this fraction of the frame is rejected
            (camera compensation failed, a cut, a flash).
        cut_frac: when more than this fraction of the frame moves, the frame is taken as a cut or a
            failed camera-motion estimate: no detection, and the previous pick is forgotten.
        proximity_bonus: a blob at the previous pick's position scores ``1 + proximity_bonus``
            times its strength; the bonus falls off as a Gaussian of the distance.
        proximity_sigma_frac: standard deviation of that Gaussian, as a fraction of the frame
            diagonal.
        memory_frames: the previous pick is remembered for this many frames without a detection.
        full_confidence_area_frac: a blob covering this fraction of the frame (in moving pixels)
            gets the full area term of the confidence.
        three_frame: try centered three-frame differencing (``t-k``, ``t``, ``t+k``) first. It
            misses untextured objects that move less than their size (their inside does not
            change), so one-sided differences with ``t-k`` (box = union of both positions, a lag
            of ``k/2`` frames) are tried after it; ``False`` uses only those.
        strides: frame distances tried for differencing, in order. A longer stride sees slow
            objects (under about a pixel per frame) that a one-frame difference misses.
        stride_confidence: the first stride whose pick reaches this confidence is used; otherwise
            the most confident pick over all strides.
        progress_every: call ``progress`` every this many frames.
        identity: follow one object through the clip (ours): every frame's strongest blobs
            (``candidates``) are linked into tracks over time and the clip's object is the track
            that best explains it (longest and surest), instead of each frame's strongest blob.
        candidates: blobs kept per frame for that.
        bridge_frames: gaps of at most this many frames inside the chosen track are filled by
            interpolation (state ``predicted``); longer ones are ``lost``.
        ambiguous_ratio: when a second track overlapping the chosen one in time scores at least
            this fraction of it, the choice is reported as ambiguous.
        centre_sigma: framing prior of a track's score: σ of a Gaussian of the box centre's
            distance from the frame centre, in frame widths/heights (0 disables); subjects are
            framed near the centre (0.25: the central half of the frame).
    """

    long_side: int = 320
    blur_sigma: float = 1.0
    max_corners: int = 150
    corner_quality: float = 0.01
    corner_min_distance: float = 6.0
    min_inliers: int = 12
    ransac_threshold: float = 1.5
    max_shift_frac: float = 0.25
    diff_blur_sigma: float = 2.0
    diff_threshold: float = 12.0
    open_px: int = 3
    close_px: int = 7
    border_frac: float = 0.03
    merge_px: int = 6
    merge_size_frac: float = 0.6
    max_components: int = 64
    min_area_frac: float = 0.002
    max_area_frac: float = 0.6
    cut_frac: float = 0.4
    proximity_bonus: float = 2.0
    proximity_sigma_frac: float = 0.12
    memory_frames: int = 12
    full_confidence_area_frac: float = 0.02
    three_frame: bool = True
    strides: tuple[int, ...] = (1, 2, 4)
    stride_confidence: float = 0.5
    progress_every: int = 10
    identity: bool = True
    candidates: int = 4
    bridge_frames: int = 3
    ambiguous_ratio: float = 0.8
    centre_sigma: float = 0.25

    def __post_init__(self) -> None:
        if self.long_side < 16:
            raise ValueError("long_side must be at least 16 px")
        if not 0 < self.diff_threshold < 255:
            raise ValueError("diff_threshold must be in (0, 255)")
        if not 0 <= self.min_area_frac < self.max_area_frac <= 1:
            raise ValueError("need 0 <= min_area_frac < max_area_frac <= 1")
        if self.progress_every < 1:
            raise ValueError("progress_every must be >= 1")
        if not self.strides or any(k < 1 for k in self.strides):
            raise ValueError("strides must be positive frame counts")


def track_score(track, frame_size: tuple[int, int], cfg: MotionConfig) -> float:
    """How well a track explains the clip: the sum over its frames of confidence × a framing
    prior (ours): a Gaussian of the box centre's distance from the frame centre, in frame
    widths/heights, σ = :attr:`MotionConfig.centre_sigma` — a subject is framed near the centre,
    scenery passing a window or a car entering at the edge is not."""
    w, h = frame_size
    total = 0.0
    for box, score in zip(track.boxes, track.scores):
        cx, cy = (box[0] + box[2] / 2) / w - 0.5, (box[1] + box[3] / 2) / h - 0.5
        prior = math.exp(-(cx * cx + cy * cy) / (2 * cfg.centre_sigma ** 2)) if cfg.centre_sigma else 1.0
        total += score * prior
    return total


def one_identity(candidates: list[np.ndarray], cfg: MotionConfig, frame_size: tuple[int, int]) -> BoxTrack:
    """The clip's moving object as one identity: per-frame candidate blobs ``(n, 5)`` (``x, y,
    w, h, confidence``) linked into tracks (:mod:`~foleyspace.localize.association`); the track
    with the largest summed confidence — present longest and surest — is followed, other tracks
    fill only frames outside its time span; short gaps are bridged (``predicted``). When a
    second track overlapping it scores nearly as high, ``details["ambiguous"]`` says so."""
    n = len(candidates)
    frames = [i for i in range(n) if len(candidates[i])]
    linked = link_tracks(frames, [candidates[i] for i in frames], AssociationConfig())
    scores = {id(t): track_score(t, frame_size, cfg) for t in linked}
    tracks = sorted(linked, key=lambda t: -scores[id(t)])
    boxes, conf = assemble(tracks, n)
    details: dict[str, object] = {"tracks": len(tracks)}
    if len(tracks) > 1:
        first, rival = tracks[0], next((t for t in tracks[1:] if t.frames[0] <= tracks[0].frames[-1]
                                        and tracks[0].frames[0] <= t.frames[-1]), None)
        if rival is not None and scores[id(rival)] >= cfg.ambiguous_ratio * scores[id(first)]:
            details["ambiguous"] = (f"two moving objects explain the clip almost equally well (scores "
                                    f"{scores[id(first)]:.1f} and {scores[id(rival)]:.1f}); draw a --box or give a --label")
            log.warning("motion localizer: %s", details["ambiguous"])
    filled, filled_conf, state = bridged_states(boxes, conf, cfg.bridge_frames)
    return BoxTrack(filled, filled_conf, "motion", details, state)


@dataclass(frozen=True)
class _Proc:
    """One frame prepared for differencing: blurred grey at processing size, plus its index."""

    index: int
    grey: np.ndarray  # (h, w) uint8, processing size, blurred


class MotionLocalizer:
    """Localizes the main moving object, compensating camera pans (see the module docstring).

    Implements :class:`~foleyspace.localize.base.Localizer`. Holds no state between calls.
    """

    name = "motion"

    def __init__(self, config: MotionConfig | None = None) -> None:
        self.config = config or MotionConfig()
        #: grey straight from the decoder's luma plane, already at the processing size
        self.frame_form = FrameForm("grey", self.config.long_side)

    def localize(
        self,
        frames: Iterable[np.ndarray],
        request: LocalizeRequest,
        progress: FrameProgress | None = None,
    ) -> BoxTrack:
        """One box per frame, in the pixels of the frames given; NaN rows and confidence 0 where nothing moves.

        Args:
            frames: grey ``(H, W)`` or RGB ``(H, W, 3)`` ``uint8`` frames, all the same size, consumed
                once in order.
            request: ``n_frames`` is used for progress only (the output has one row per frame
                actually yielded); the label is recorded, not used.
            progress: called with the fraction done every few frames and with 1.0 at the end;
                whatever it raises propagates.

        Raises:
            InputError: a frame is not grey or RGB ``uint8`` or changes size mid-stream.
        """
        run = _MotionRun(self.config, request.n_frames, progress)
        for frame in frames:
            run.push(frame)
        return run.finish()


class _MotionRun:
    """State of one :meth:`MotionLocalizer.localize` call: a sliding window and the outputs.

    The window holds the last ``2 * max(strides) + 1`` processing frames and the camera motion
    between each consecutive pair; frame ``i`` is localized when frame ``i + max(strides)``
    arrives (or at the end), so that it has neighbours on both sides.
    """

    def __init__(self, cfg: MotionConfig, n_frames: int, progress: FrameProgress | None) -> None:
        self.cfg = cfg
        self.reach = max(cfg.strides)
        self.n_frames = max(int(n_frames), 1)
        self.progress = progress
        self.frame_shape: tuple[int, int] | None = None  # analysis (H, W)
        self.proc_size: tuple[int, int] = (0, 0)  # processing (w, h)
        self.window: deque[_Proc] = deque(maxlen=2 * self.reach + 1)
        self.motions: deque[Affine] = deque(maxlen=2 * self.reach)  # motions[j]: window[j] -> window[j+1]
        self.boxes: list[np.ndarray] = []
        self.confidence: list[float] = []
        self.candidates: list[np.ndarray] = []  # per frame: (n, 5) x, y, w, h, confidence in analysis px
        self.last_center: tuple[float, float] | None = None
        self.last_seen = -(10**9)
        self.count = 0

    def push(self, frame: np.ndarray) -> None:
        """Take the next analysis frame; localize the frame ``max(strides)`` before it."""
        frame = np.asarray(frame)
        if self.frame_shape is None:
            if frame.ndim not in (2, 3):
                raise InputError(f"a frame must be grey (H, W) or RGB (H, W, 3) uint8, got shape {frame.shape}")
            self.frame_shape = frame.shape[:2]
            self.proc_size = analysis_size(frame.shape[1], frame.shape[0], self.cfg.long_side)
            log.debug("motion localizer: analysis %s, processing %s", self.frame_shape, self.proc_size)
        elif frame.shape[:2] != self.frame_shape:
            raise InputError(f"frame {self.count} is {frame.shape[:2]}, earlier frames were {self.frame_shape}")
        grey = to_grey(frame, self.proc_size)
        if self.cfg.blur_sigma > 0:
            grey = cv2.GaussianBlur(grey, (0, 0), self.cfg.blur_sigma)
        if self.window:
            self.motions.append(estimate_camera_motion(self.window[-1].grey, grey, self.cfg))
        self.window.append(_Proc(self.count, grey))
        self.count += 1
        if self.count > self.reach:
            self._emit(self.count - 1 - self.reach)
        if self.progress is not None and self.count % self.cfg.progress_every == 0:
            self.progress(min(self.count / self.n_frames, 1.0))

    def finish(self) -> BoxTrack:
        """Localize the frames still waiting for neighbours and return the track."""
        for index in range(len(self.boxes), self.count):
            self._emit(index)
        if self.count != self.n_frames and self.count:
            log.warning("motion localizer: expected %d frames, got %d", self.n_frames, self.count)
        if self.progress is not None:
            self.progress(1.0)
        boxes = np.array(self.boxes, dtype=float).reshape(-1, 4)
        if not self.cfg.identity:
            return BoxTrack(boxes=boxes, confidence=np.array(self.confidence, dtype=float), label="motion")
        height, width = self.frame_shape or (1, 1)  # no frames: an empty track
        return one_identity(self.candidates, self.cfg, (width, height))

    def _difference(self, pos: int, offset: int, cache: dict[int, np.ndarray | None]) -> np.ndarray | None:
        """Difference of window frame ``pos`` with frame ``pos + offset`` (``None`` if absent)."""
        if offset not in cache:
            other = pos + offset
            if not 0 <= other < len(self.window):
                cache[offset] = None
            else:
                lo, hi = min(pos, other), max(pos, other)
                matrix = compose_affines([self.motions[j] for j in range(lo, hi)])  # window[lo] -> [hi]
                if offset > 0:
                    matrix = invert_affine(matrix)
                cache[offset] = neighbour_difference(self.window[pos].grey, self.window[other].grey, matrix, self.cfg)
        return cache[offset]

    def _detect(
        self, pos: int, stride: int, centered: bool, cache: dict[int, np.ndarray | None]
    ) -> tuple[Blob, float, list[tuple[Blob, float]]] | None:
        """Best blob of window frame ``pos`` differenced ``stride`` frames away, its confidence
        and the frame's candidate blobs with theirs (for one identity), or ``None``.

        ``centered`` differences against both sides where both exist; otherwise against the
        earlier frame (the later one at the start of the clip).
        """
        cur = self.window[pos].grey
        prev = self._difference(pos, -stride, cache)
        nxt = self._difference(pos, stride, cache) if (centered or prev is None) else None
        diffs = [d for d in (prev, nxt) if d is not None]
        if not diffs:
            return None
        strength = combine_differences(diffs, cur.shape)
        moving = float(np.count_nonzero(strength > self.cfg.diff_threshold)) / strength.size
        if moving > self.cfg.cut_frac:
            log.debug("frame %d: %.0f%% of the frame moves; taken as a cut", self.window[pos].index, 100 * moving)
            self.last_center = None
            return None
        blobs = find_blobs(strength, self.cfg)
        blob = pick_blob(blobs, self.last_center, cur.shape, self.cfg)
        if blob is None:
            return None
        candidates = [(b, blob_confidence(b, cur.size, self.cfg)) for b in candidate_blobs(blobs, cur.shape, self.cfg)]
        return blob, blob_confidence(blob, cur.size, self.cfg), candidates

    def _emit(self, index: int) -> None:
        """Localize frame ``index`` (which must be in the window) and append its row."""
        pos = index - self.window[0].index
        if index - self.last_seen > self.cfg.memory_frames:
            self.last_center = None
        attempts = [(k, True) for k in self.cfg.strides] if self.cfg.three_frame else []
        attempts += [(k, False) for k in self.cfg.strides]
        best: tuple[Blob, float, list[tuple[Blob, float]]] | None = None
        cache: dict[int, np.ndarray | None] = {}
        for stride, centered in attempts:
            found = self._detect(pos, stride, centered, cache)
            if found is not None and (best is None or found[1] > best[1]):
                best = found
            if best is not None and best[1] >= self.cfg.stride_confidence:
                break
        candidates = best[2] if best is not None else []
        self.candidates.append(np.array([[*self._to_analysis(b.box), c] for b, c in candidates], float).reshape(-1, 5))
        if best is None:
            self.boxes.append(np.full(4, np.nan))
            self.confidence.append(0.0)
            return
        blob, conf, _ = best
        self.last_center, self.last_seen = blob.center, index
        self.boxes.append(self._to_analysis(blob.box))
        self.confidence.append(conf)

    def _to_analysis(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """Scale a processing-pixel box to the pixels of the frames given."""
        assert self.frame_shape is not None
        sx = self.frame_shape[1] / self.proc_size[0]
        sy = self.frame_shape[0] / self.proc_size[1]
        x, y, w, h = box
        return np.array([x * sx, y * sy, w * sx, h * sy], dtype=float)
