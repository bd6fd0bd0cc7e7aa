"""Retimed movie strips: the source range a retimed picture shows and its constant speed.

Pure arithmetic, no ``bpy`` (unit-tested outside Blender). Frames are timeline frames; a
strip's visible range is ``[left, right)``; source frame ``i`` covers ``[i, i + 1)`` frames.

Blender (bpy 5.0.1, ``seq_speed_effect_target_frame_get`` / ``SEQ_give_frame_index``):

* A **Speed effect** strip that starts at timeline frame ``es`` samples its input at timeline
  frame ``g(f) = es + k·(f − es)``: ``k`` is ``speed_factor`` (Multiply), or the input's
  length from its left handle over the effect's length (Stretch); Frame Number and Length
  hold one frame (``k = 0``).
* The input then shows source frame ``g − content_start + hold_offset`` — or, with
  **Reverse Frames**, ``content_end − 1 − g + hold_offset``.
* **Retiming keys** of constant speed ``k`` show source frame ``k·(f − content_start) +
  hold_offset``.

The result is a :class:`Warp`: the source range ``[start_f, end_f)`` in source frames and the
speed (source frames per timeline frame: negative = reversed, 0 = a held frame at ``start_f``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .placement import PlacementError

#: Speeds Blender shows as equal (relative) are one constant speed.
SPEED_TOLERANCE = 1e-6
#: Speeds the server accepts (``foleyspace.timewarp.SPEED_RANGE``), by size; 0 is a held frame.
SPEED_RANGE = (0.01, 100.0)


@dataclass(frozen=True)
class Warp:
    """Source frames ``[start_f, end_f)`` shown by a visible range, and how they play."""

    start_f: float
    end_f: float  # == start_f for a held frame
    speed: float  # source frames per timeline frame; < 0 reversed; 0 held


def warp(left: int, right: int, content_start: float, content_frames: float, hold_offset: int,
         reverse: bool = False, effect_start: float | None = None, k: float = 1.0, name: str = "strip") -> Warp:
    """The source frames the visible range ``[left, right)`` shows.

    ``effect_start``/``k``: a Speed effect (start frame, speed; ``k = 0`` holds the frame at
    ``g = effect_start``), or ``None`` with ``k`` the strip's own constant retiming speed.
    Raises :class:`PlacementError` naming ``name`` when the range reaches past the media.
    """
    if right <= left:
        raise PlacementError(f"{name}: the visible range is empty")
    content_end = content_start + content_frames
    if effect_start is None:  # the strip's own retiming: content frames are source frames / k
        if k <= 0:
            raise PlacementError(f"{name}: retiming speed {k:g} is not understood")
        g0, g1 = float(left), float(right)
        if g0 < content_start - 1e-6 or g1 > content_end + 1e-6:
            raise PlacementError(f"{name}: the handles reach past its media (held frames); trim it to its content")
        a, b = (g0 - content_start) * k, (g1 - content_start) * k
        if reverse:
            total = content_frames * k
            a, b = total - b, total - a
        return _checked(Warp(a + hold_offset, b + hold_offset, -k if reverse else k), name)
    g0 = effect_start + k * (left - effect_start)
    g1 = effect_start + k * (right - effect_start) if k else g0 + 1
    if g0 < content_start - 1e-6 or g1 > content_end + 1e-6:
        raise PlacementError(f"{name}: the Speed effect shows frames past the media (held frames); "
                             "shorten the effect or trim the strip")
    if reverse:
        g0, g1 = content_start + content_end - g1, content_start + content_end - g0
    a, b = g0 - content_start + hold_offset, g1 - content_start + hold_offset
    if k == 0:
        return Warp(a, a, 0.0)
    return _checked(Warp(a, b, -k if reverse else k), name)


def _checked(w: Warp, name: str) -> Warp:
    lo, hi = SPEED_RANGE
    if w.speed and not lo <= abs(w.speed) <= hi:
        raise PlacementError(f"{name}: speed {abs(w.speed) * 100:g} % is outside {lo * 100:g}–{hi * 100:g} %")
    return w


def constant_speed(speeds: list[float], name: str) -> float:
    """The one speed of a list of segment speeds; :class:`PlacementError` naming ``name`` for a ramp."""
    if not speeds:
        return 1.0
    first = speeds[0]
    if any(abs(s - first) > SPEED_TOLERANCE * max(abs(s), abs(first), 1e-12) for s in speeds):
        shown = ", ".join(f"{s * 100:g} %" for s in speeds)
        raise PlacementError(f"strip {name!r} changes speed ({shown}); FoleySpace handles one constant speed only: "
                             "split the strip where the speed changes and spatialize each part")
    return first


def shown_frame(frame: int, left: int, w: Warp) -> float:
    """The source frame the picture shows at timeline ``frame`` of a visible range starting at
    ``left`` that shows ``w`` (Blender's frame index: the retimed position floored; reversed,
    ``end − 1 − k·(frame − left)`` as ``content_end − 1 − g`` reads). Clamped to the range."""
    k = abs(w.speed)
    steps = math.floor(k * (frame - left) + 1e-6)
    if w.speed == 0:
        return w.start_f
    if w.speed > 0:
        shown = math.floor(w.start_f + 1e-6) + steps
    else:
        shown = math.ceil(w.end_f - 1e-6) - 1 - steps
    lo, hi = math.floor(w.start_f + 1e-6), math.ceil(w.end_f - 1e-6) - 1
    return float(min(max(shown, lo), max(lo, hi)))
