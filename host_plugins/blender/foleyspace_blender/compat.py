"""One place for the sequencer API differences between Blender 4.2 LTS and 5.x.

* 4.4 added ``SequenceEditor.strips`` / ``strips_all``; 5.0 removed ``sequences`` /
  ``sequences_all``.
* 5.0 edits the workspace's "sequencer scene" (``context.sequencer_scene``), which may differ
  from ``context.scene``; it is ``None`` without a window (bpy as a module).
* 5.1 renamed the timing properties (old names deprecated until 6.0):
  ``frame_final_start`` → ``left_handle``, ``frame_final_end`` → ``right_handle``,
  ``frame_start`` → ``content_start``, ``frame_duration`` → ``content_duration``.

New names are tried first, so deprecated ones are never touched where the new ones exist.
"""

from __future__ import annotations

from typing import Any

import bpy

from .placement import Span

Strip = Any  # bpy.types.Strip (4.4+) or bpy.types.Sequence (4.2/4.3)


def sequencer_scene(context: Any) -> Any:
    """The scene the sequencer edits: ``context.sequencer_scene`` (5.0+) or ``context.scene``."""
    return getattr(context, "sequencer_scene", None) or context.scene


def editor(scene: Any) -> Any | None:
    """The scene's ``SequenceEditor`` or ``None``."""
    return getattr(scene, "sequence_editor", None)


def top_strips(ed: Any) -> Any:
    """Top-level strips collection (has ``new_sound``): ``strips`` (4.4+) or ``sequences``."""
    return ed.strips if hasattr(ed, "strips") else ed.sequences


def _get(strip: Strip, new: str, old: str) -> Any:
    return getattr(strip, new) if hasattr(strip, new) else getattr(strip, old)


def left_handle(strip: Strip) -> int:
    """First visible timeline frame."""
    return round(_get(strip, "left_handle", "frame_final_start"))


def right_handle(strip: Strip) -> int:
    """Timeline frame after the last visible one."""
    return round(_get(strip, "right_handle", "frame_final_end"))


def content_start(strip: Strip) -> float:
    """Timeline frame where the strip's media would begin (before trims)."""
    return float(_get(strip, "content_start", "frame_start"))


def content_frames(strip: Strip) -> int:
    """Length of the media on the timeline, hold offsets excluded, handles ignored."""
    return int(_get(strip, "content_duration", "frame_duration"))


def hold_offset_start(strip: Strip) -> int:
    """Media frames cut from the front of the content (``animation_offset_start``)."""
    return int(getattr(strip, "animation_offset_start", 0) or 0)


def offset_start(strip: Strip) -> float:
    """Frames trimmed from the left of the content (``frame_offset_start``)."""
    return float(getattr(strip, "frame_offset_start", 0.0) or 0.0)


def set_handles(strip: Strip, left: int, right: int) -> None:
    """Move both handles (right first when growing to the right keeps the strip non-empty)."""
    new = hasattr(strip, "left_handle")
    names = ("left_handle", "right_handle") if new else ("frame_final_start", "frame_final_end")
    if right > left_handle(strip):
        setattr(strip, names[1], right)
        setattr(strip, names[0], left)
    else:
        setattr(strip, names[0], left)
        setattr(strip, names[1], right)


def span(strip: Strip) -> Span:
    return Span(int(strip.channel), left_handle(strip), right_handle(strip))


def scene_fps(scene: Any) -> float:
    """Frames per second of the scene (``fps / fps_base``)."""
    return scene.render.fps / scene.render.fps_base


def movie_fps(strip: Strip) -> float:
    """The movie's own frame rate (``MovieStrip.fps``, else its first element's ``orig_fps``)."""
    fps = float(getattr(strip, "fps", 0.0) or 0.0)
    if fps <= 0 and getattr(strip, "elements", None):
        fps = float(strip.elements[0].orig_fps or 0.0)
    return fps


def blocked_channels(ed: Any) -> set[int]:
    """Channels that are locked or muted (a stem placed there would be unusable or silent)."""
    out: set[int] = set()
    for i, ch in enumerate(getattr(ed, "channels", ()) or ()):
        if getattr(ch, "lock", False) or getattr(ch, "mute", False):
            out.add(i)
    return out


def abspath(path: str) -> str:
    """An absolute, normalized file path (``//`` resolved against the .blend)."""
    import os

    return os.path.normpath(bpy.path.abspath(path)) if path else ""


def strip_media_path(strip: Strip) -> str:
    """The absolute media path of a movie or sound strip (``""`` when it has none)."""
    if strip.type == "SOUND":
        sound = getattr(strip, "sound", None)
        return abspath(sound.filepath) if sound is not None else ""
    return abspath(getattr(strip, "filepath", "") or "")
