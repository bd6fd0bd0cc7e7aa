"""Placing a finished stem on the timeline (``bpy``); :mod:`.placement` has the pure arithmetic."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import bpy

from . import binding, compat
from .placement import PlacementError, Span, free_channel
from .session import one_line
from .source import Source, describe, same_file

if TYPE_CHECKING:
    from .jobs import StripJob

log = logging.getLogger(__name__)

#: Custom properties written on a placed stem strip.
JOB_PROP, SOURCE_PROP = "foleyspace_job", "foleyspace_source"
#: The undo step each placement makes.
UNDO_MESSAGE = "Place FoleySpace stem"


def check_room(scene: Any, source: Source) -> int:
    """The channel a stem for ``source`` would land on now; :class:`PlacementError` when no free
    channel is left above the strip (checked at submit, so no stem is rendered that cannot be placed)."""
    ed = compat.editor(scene)
    span = source.span
    return free_channel((compat.span(s) for s in compat.top_strips(ed)), span.channel, span.left, span.right,
                        compat.blocked_channels(ed))


def place_stem(job: StripJob, stem: str) -> Any:
    """Add the stem as a stereo, unpanned sound strip under the source strip's visible range.

    The source strip is found by its identity (``binding.STRIP_ID_PROP``), in whichever scene
    of the open file holds it. If it still shows the same source range (it may have been moved
    since the job was submitted) the stem follows it; otherwise, or when the strip is gone, it
    goes where the strip was. The stem lands on the lowest free channel above the source strip,
    its handles are set to the range exactly (Blender rounds a sound's length to whole frames),
    its path is stored relative to a saved .blend (``//…``), and the placement is one undo step.
    A job whose stem is already placed (a file reopened before it was saved) is not placed twice.
    """
    scene, current = binding.find_strip(job.strip_id, job.scene)
    if scene is None or compat.editor(scene) is None:
        raise PlacementError(f"scene {job.scene!r} is gone; the stem is at {stem}")
    if not os.path.isfile(stem):
        raise PlacementError(f"the server reported a stem that is not here: {stem}")
    ed = compat.editor(scene)
    strips = compat.top_strips(ed)
    for s in strips:
        if s.get(JOB_PROP) == job.id:
            return s
    span, note = job.source.span, ""
    if current is not None:
        try:
            now = describe(scene, current)
        except PlacementError:
            now = None
        same = now is not None and abs(now.start_s - job.source.start_s) < 1e-6 \
            and abs(now.end_s - job.source.end_s) < 1e-6
        if same:
            span = now.span
        else:
            note = " (the strip changed since it was submitted: placed at its old range)"
    channel = free_channel((compat.span(s) for s in strips), span.channel, span.left, span.right,
                           compat.blocked_channels(ed))
    name = f"{(current.name if current is not None else job.strip)[:48]} binaural"
    try:
        new = strips.new_sound(name, stem, channel, span.left)
    except (RuntimeError, TypeError) as exc:
        raise PlacementError(f"Blender could not add {stem}: {one_line(exc)}") from exc
    if new.sound is not None:
        new.sound.use_mono = False  # a binaural stem is stereo; SoundStrip.pan only acts on mono
        new.sound.filepath = relative_path(stem)
    new.pan = 0.0
    if (compat.left_handle(new), compat.right_handle(new)) != (span.left, span.right):
        compat.set_handles(new, span.left, span.right)
    got = compat.span(new)
    if got != Span(channel, span.left, span.right):
        strips.remove(new)
        raise PlacementError(f"Blender placed the stem at channel {got.channel}, frames {got.left}–{got.right} "
                             f"instead of {channel}, {span.left}–{span.right}")
    new[JOB_PROP], new[SOURCE_PROP] = job.id, job.strip
    if job.mute:
        _mute_original(strips, job, span, new, current)
    if note:
        log.info("FoleySpace: %s%s", job.strip, note)
    push_undo()
    return new


def relative_path(path: str) -> str:
    """``path`` as ``//…`` relative to the saved .blend; unchanged for an unsaved one or another
    drive (Windows)."""
    if not bpy.data.filepath:
        return path
    try:
        return bpy.path.relpath(path)
    except ValueError:
        return path


def push_undo() -> None:
    """Make the placement one undo step (:data:`UNDO_MESSAGE`); skipped where Blender has no undo."""
    try:
        if bpy.ops.ed.undo_push.poll():
            bpy.ops.ed.undo_push(message=UNDO_MESSAGE)
    except RuntimeError as exc:
        log.warning("FoleySpace: no undo step for the placement: %s", exc)


def _mute_original(strips: Any, job: StripJob, span: Span, placed: Any, source: Any | None) -> None:
    """Mute the source's own sound: the sound strip itself, or the movie's sound strips (the same
    file, in sync with the movie: same content start, overlapping the range)."""
    start = compat.content_start(source) if source is not None else job.source.content_start
    for s in strips:
        if s == placed or s.type != "SOUND":
            continue
        if job.source.kind == "sound":
            if source is not None and s == source:
                s.mute = True
        elif (compat.span(s).overlaps(span.left, span.right) and abs(compat.content_start(s) - start) < 0.5
              and same_file(compat.strip_media_path(s), job.source.media)):
            s.mute = True
