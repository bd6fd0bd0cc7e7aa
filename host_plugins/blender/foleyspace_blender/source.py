"""Describing a strip: the source range and media a job asks for, and the job spec.

:func:`describe` reads a movie strip, or a sound strip with a chosen video, into a
:class:`Source`; it only reads the strip, so the panel calls it on every redraw.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import bpy

from . import compat
from .placement import PlacementError, Span, media_range_s, same_rate

#: Custom strip property holding the video chosen for a sound strip.
VIDEO_PROP = "foleyspace_video"


@dataclass(frozen=True)
class Source:
    """What a strip asks the server for, and where its stem goes on the timeline."""

    kind: str  # "movie" | "sound"
    video: str
    audio: str | None  # a separate sound file, or None for the video's own audio
    audio_start_s: float  # where in ``audio`` the visible range starts (0 without a separate file)
    start_s: float
    end_s: float
    span: Span
    media: str  # the strip's own file (movie or sound), for muting its sound
    content_start: float  # timeline frame of the media's start, to find sound strips in sync


def describe(scene: Any, strip: Any) -> Source:
    """The source range and media of a movie strip, or of a sound strip with a chosen video.

    Raises :class:`PlacementError` (one line) for anything that cannot be spatialized.
    """
    ed = compat.editor(scene)
    if ed is None or strip is None:
        raise PlacementError("no active strip")
    if compat.top_strips(ed).get(strip.name) is None:
        raise PlacementError(f"strip {strip.name!r} is inside a meta strip; spatialize it at the top level")
    span = compat.span(strip)
    fps = compat.scene_fps(scene)
    if strip.type == "MOVIE":
        video = compat.strip_media_path(strip)
        if not video:
            raise PlacementError(f"movie strip {strip.name!r} has no file path")
        if not os.path.isfile(video):
            raise PlacementError(f"the video file is missing: {video}")
        rate = compat.movie_fps(strip)
        if not same_rate(rate, fps):
            raise PlacementError(f"movie {os.path.basename(video)} runs at {rate:g} fps but the scene at {fps:g} fps; "
                                 "set the scene frame rate to the movie's")
        start, end = media_range_s(span.left, span.right, compat.content_start(strip), compat.content_frames(strip),
                                   compat.hold_offset_start(strip), rate)
        kind, audio, audio_start, media = "movie", None, 0.0, video
    elif strip.type == "SOUND":
        media = compat.strip_media_path(strip)
        if not media:
            raise PlacementError(f"sound strip {strip.name!r} has no file path")
        video = compat.abspath(str(strip.get(VIDEO_PROP, "") or ""))
        if not video:
            raise PlacementError(f"sound strip {strip.name!r} has no video; choose one in the FoleySpace panel")
        start, end = media_range_s(span.left, span.right, compat.content_start(strip), compat.content_frames(strip),
                                   compat.hold_offset_start(strip), fps, float(getattr(strip, "sound_offset", 0.0)))
        audio = None if same_file(media, video) else media
        audio_start = start if audio is not None else 0.0  # the sound file shares the video's timeline
        kind = "sound"
    else:
        raise PlacementError(f"strip {strip.name!r} is a {strip.type.lower()} strip; choose a movie or sound strip")
    for path, what in ((video, "video"), (audio, "sound")):
        if path and not os.path.isfile(path):
            raise PlacementError(f"the {what} file is missing: {path}")
    return Source(kind, video, audio, audio_start, start, end, span, media, compat.content_start(strip))


def same_file(a: str, b: str) -> bool:
    """True if two paths name the same file (compared as normalized paths when one is missing)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def output_folder(setting: str) -> str:
    """The stem folder: ``setting`` made absolute (``//`` = next to the .blend), created.

    With an unsaved .blend a ``//`` folder has no anchor: :class:`PlacementError` asks to save
    first (stems in a temp folder would be lost when it is cleaned).
    """
    setting = setting.strip() or "//foleyspace_stems"
    if setting.startswith("//") and not bpy.data.filepath:
        raise PlacementError(f"Save the .blend first: stems are kept beside it (in {setting}); "
                             "or set an absolute Output folder in the FoleySpace preferences")
    path = bpy.path.abspath(setting)
    path = os.path.abspath(os.path.expanduser(path))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise PlacementError(f"cannot create the output folder {path}: {exc.strerror or exc}") from exc
    return path


def job_spec(source: Source, folder: str, name: str, settings: Any) -> dict[str, Any]:
    """The server job spec (``docs/protocol.md``) for a described strip."""
    options: dict[str, Any] = {"scheme": settings.scheme}
    label = settings.label.strip()
    if label:
        options["label"] = label
    hrtf = compat.abspath(settings.hrtf.strip())
    if hrtf:
        options["hrtf"] = hrtf
    spec: dict[str, Any] = {"video": source.video, "output_dir": folder, "name": name,
                            "start_s": round(source.start_s, 9), "end_s": round(source.end_s, 9), "options": options}
    if source.audio:
        spec["audio"] = source.audio
        spec["audio_start_s"] = round(source.audio_start_s, 9)
    return spec
