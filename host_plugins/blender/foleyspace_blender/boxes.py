"""Box keyframes of a movie strip: boxes the user gives around the sounding object, each at a
time of the movie, that the server's seeded tracker follows (and honours exactly).

A keyframe is stored in the movie's own terms, so it stays on the picture it was given for
when the strip is moved, trimmed or retimed: ``t`` in source seconds of the clip (the time of
the movie frame the strip shows at the timeline frame where it was added, see
:func:`.source.keyframe_time`) and ``box`` ``[x, y, w, h]`` in the movie's display pixels
(the picture as a player shows it: top-left corner, width, height). The list is the strip's
custom property :data:`BOXES_PROP`, a JSON list saved with the .blend.

The job spec gets the keyframes inside the strip's visible source range (docs/protocol.md,
"Job spec"): the first as ``box`` + ``box_time_s``, the others as ``more_boxes``. Pure
functions, no ``bpy`` (unit-tested outside Blender).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from .placement import PlacementError

#: Custom strip property: the strip's box keyframes, a JSON list of ``{"t": s, "box": [x, y, w, h]}``.
BOXES_PROP = "foleyspace_boxes"
#: Most keyframes one job may give (the server's ``MAX_KEYFRAMES``).
MAX_KEYFRAMES = 100
#: Two keyframes closer than this (seconds) are at the same time: the later one replaces the other.
SAME_TIME_S = 1e-4
#: Source-second slack when asking whether a keyframe lies in the visible range.
RANGE_SLACK_S = 1e-6


@dataclass(frozen=True)
class Keyframe:
    """A box around the object at ``t`` seconds of the clip, in display pixels."""

    t: float
    box: tuple[float, float, float, float]

    def text(self) -> str:
        """``"1.240 s: 12, 30, 40 × 24"`` for the panel."""
        x, y, w, h = (f"{v:g}" for v in self.box)
        return f"{self.t:.3f} s: {x}, {y}, {w} × {h}"


def check_box(box: Any) -> tuple[float, float, float, float]:
    """``box`` as four finite numbers with a positive width and height; :class:`PlacementError` otherwise."""
    try:
        x, y, w, h = (float(v) for v in box)
    except (TypeError, ValueError):
        raise PlacementError(f"a box is four numbers X, Y, W, H, not {box!r}") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise PlacementError("a box's X, Y, W and H must be finite numbers")
    if w <= 0 or h <= 0:
        raise PlacementError(f"a box needs a positive width and height (W {w:g}, H {h:g})")
    return x, y, w, h


def parse(raw: Any) -> list[Keyframe]:
    """The keyframes stored in a strip's :data:`BOXES_PROP` (rows not understood are skipped),
    sorted by time."""
    if not raw:
        return []
    try:
        rows = json.loads(str(raw))
    except ValueError:
        return []
    out = []
    for row in rows if isinstance(rows, list) else []:
        try:
            t = float(row["t"])
            if math.isfinite(t) and t >= 0:
                out.append(Keyframe(round(t, 6), check_box(row["box"])))
        except (KeyError, TypeError, ValueError, PlacementError):
            continue
    return sorted(out, key=lambda k: k.t)


def dump(keyframes: list[Keyframe]) -> str:
    """The JSON text stored in :data:`BOXES_PROP`."""
    return json.dumps([{"t": k.t, "box": list(k.box)} for k in sorted(keyframes, key=lambda k: k.t)])


def add(keyframes: list[Keyframe], t: float, box: Any) -> tuple[list[Keyframe], bool]:
    """``keyframes`` with a box at ``t`` (source seconds); one already at that time is replaced.
    Returns ``(new list, replaced)``; :class:`PlacementError` for a bad box or too many keyframes."""
    new = Keyframe(round(float(t), 6), check_box(box))
    kept = [k for k in keyframes if abs(k.t - new.t) >= SAME_TIME_S]
    replaced = len(kept) < len(keyframes)
    if len(kept) >= MAX_KEYFRAMES:
        raise PlacementError(f"a strip holds at most {MAX_KEYFRAMES} box keyframes; remove one first")
    return sorted([*kept, new], key=lambda k: k.t), replaced


def in_range(k: Keyframe, start_s: float, end_s: float | None) -> bool:
    """Whether ``k`` lies in the visible source range ``[start_s, end_s)`` (a held frame,
    ``end_s`` None: exactly at ``start_s``)."""
    if end_s is None or end_s <= start_s:
        return abs(k.t - start_s) < SAME_TIME_S
    return start_s - RANGE_SLACK_S <= k.t < end_s - RANGE_SLACK_S


def spec_fields(keyframes: list[Keyframe], start_s: float, end_s: float | None) -> tuple[dict[str, Any], int]:
    """The job-spec fields (``box``, ``box_time_s``, ``more_boxes``) of the keyframes in the
    visible range, and how many were left out (outside it). No keyframe in range: ``{}``."""
    inside = [k for k in keyframes if in_range(k, start_s, end_s)]
    left_out = len(keyframes) - len(inside)
    if not inside:
        return {}, left_out
    first, *more = inside
    fields: dict[str, Any] = {"box": [float(v) for v in first.box], "box_time_s": first.t}
    if more:
        fields["more_boxes"] = [[*map(float, k.box), k.t] for k in more]
    return fields, left_out
