"""Timeline arithmetic of the add-on: pure functions, no ``bpy`` (unit-tested outside Blender).

Conventions (verified on bpy 5.0.1, see ``README.md``):

* Frames are timeline frames; a strip's visible range is ``[left, right)`` (``left`` = left handle
  = ``frame_final_start``, ``right`` = right handle = ``frame_final_end``, exclusive).
* ``content_start`` (``frame_start``) is the timeline frame where the media's first frame would be
  shown; a hold offset (``animation_offset_start``) cuts that many media frames from the front
  of the content, so the media frame shown at timeline frame ``f`` is
  ``f - content_start + hold_offset_start``.
* A movie strip shows one movie frame per timeline frame, so the add-on requires the movie's
  frame rate to equal the scene's (:func:`same_rate`); a sound strip plays in real time at
  the scene rate, plus its ``sound_offset`` in seconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: Highest channel of Blender's sequencer (4.2 – 5.x).
MAX_CHANNEL = 128
#: Relative tolerance when comparing frame rates (29.97 vs 30000/1001 pass, 29.97 vs 30 fail).
RATE_TOLERANCE = 1e-4


class PlacementError(Exception):
    """The strip cannot be spatialized or its stem cannot be placed (one-line message)."""


@dataclass(frozen=True)
class Span:
    """A strip's visible timeline range ``[left, right)`` in frames on ``channel``."""

    channel: int
    left: int
    right: int

    def overlaps(self, left: int, right: int) -> bool:
        """True if ``[left, right)`` shares at least one frame with this span."""
        return self.left < right and left < self.right


def same_rate(a: float, b: float) -> bool:
    """True if two frame rates are equal within :data:`RATE_TOLERANCE` (relative)."""
    return a > 0 and b > 0 and abs(a - b) <= RATE_TOLERANCE * max(a, b)


def media_range_s(left: int, right: int, content_start: float, content_frames: int,
                  hold_offset_start: int, rate: float, offset_s: float = 0.0) -> tuple[float, float]:
    """Source seconds ``(start_s, end_s)`` shown by the visible range ``[left, right)``.

    ``rate`` is media frames per timeline frame times the scene rate, i.e. the movie's frame
    rate for a movie strip (equal to the scene's) and the scene rate for a sound strip;
    ``offset_s`` is a sound strip's ``sound_offset``. Raises :class:`PlacementError` when the
    handles reach past the content (held frames have no source time).
    """
    if rate <= 0:
        raise PlacementError(f"invalid frame rate {rate!r}")
    if right <= left:
        raise PlacementError("the strip's visible range is empty")
    content_end = content_start + content_frames
    if left < content_start - 1e-6 or right > content_end + 1e-6:
        raise PlacementError("the strip's handles reach past its media (held frames); "
                             "trim it to its content first")
    start = (left - content_start + hold_offset_start) / rate + offset_s
    end = (right - content_start + hold_offset_start) / rate + offset_s
    if start < 0:
        raise PlacementError(f"the strip starts {-start:.3f} s before its media")
    return start, end


def free_channel(spans: Iterable[Span], above: int, left: int, right: int,
                 blocked: Iterable[int] = (), max_channel: int = MAX_CHANNEL) -> int:
    """The lowest channel above ``above`` where ``[left, right)`` overlaps no span.

    ``blocked`` channels (locked or muted ones) are skipped. Raises :class:`PlacementError`
    when every channel up to ``max_channel`` is taken.
    """
    taken = {s.channel for s in spans if s.overlaps(left, right)} | set(blocked)
    for channel in range(max(1, above + 1), max_channel + 1):
        if channel not in taken:
            return channel
    raise PlacementError(f"no free channel above {above} for frames {left}–{right}")


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def stem_file_name(strip_name: str, left: int, right: int, exists: Callable[[str], bool]) -> str:
    """A plain, unused ``*.wav`` file name for the stem of a strip's range.

    ``<strip>_<left>-<right>_binaural.wav`` with unsafe characters replaced, and ``_2``, ``_3`` …
    appended while ``exists(name)`` is true (a stem already in use by a strip is never replaced).
    """
    base = _UNSAFE.sub("_", strip_name).strip("._-") or "strip"
    base = f"{base[:80]}_{left}-{right}_binaural"
    name, n = f"{base}.wav", 1
    while exists(name):
        n += 1
        name = f"{base}_{n}.wav"
    return name
