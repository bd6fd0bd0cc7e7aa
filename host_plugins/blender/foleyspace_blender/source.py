"""Describing a strip: the source range and media a job asks for, and the job spec.

:func:`describe` reads a movie strip, or a sound strip with a chosen video, into a
:class:`Source`; it only reads the strip, so the panel calls it on every redraw.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import bpy

from . import backends, boxes, compat, retime
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
    speed: float = 1.0  # source seconds per timeline second; < 0 reversed; 0 a held frame
    hold_s: float | None = None  # a held frame (speed 0): how long, timeline seconds


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
    if strip.type == "SPEED" and getattr(strip, "input_1", None) is not None and strip.input_1.type == "MOVIE":
        strip = strip.input_1  # the Speed effect's movie: the effect is found again below
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
        w, span = _movie_warp(scene, strip, span, video)
        start, end = w.start_f / rate, w.end_f / rate
        kind, audio, audio_start, media = "movie", None, 0.0, video
        src = Source(kind, video, audio, audio_start, start, end, span, media, compat.content_start(strip),
                     speed=w.speed, hold_s=(span.right - span.left) / fps if w.speed == 0 else None)
        return src
    elif strip.type == "SOUND":
        media = compat.strip_media_path(strip)
        if not media:
            raise PlacementError(f"sound strip {strip.name!r} has no file path")
        if len(getattr(strip, "retiming_keys", ()) or ()) > 2 or _speed_effects(scene, strip):
            raise PlacementError(f"sound strip {strip.name!r} is retimed; FoleySpace spatializes sound strips at "
                                 "normal speed only: reset its retiming or spatialize its movie strip")
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


def _speed_effects(scene: Any, strip: Any) -> list[Any]:
    """Top-level Speed effect strips whose input is ``strip``."""
    return [s for s in compat.top_strips(compat.editor(scene))
            if s.type == "SPEED" and getattr(s, "input_1", None) == strip]


def animated(scene: Any, strip: Any, prop: str) -> bool:
    """True if ``strip.prop`` is animated or driven (an F-curve of the scene's action or a driver)."""
    path = strip.path_from_id(prop)
    anim = getattr(scene, "animation_data", None)
    if anim is None:
        return False
    curves = list(getattr(anim, "drivers", ()) or ())
    action = getattr(anim, "action", None)
    if action is not None:
        try:
            curves += list(action.fcurves)  # 4.x
        except AttributeError:  # 5.0: layered actions
            for layer in getattr(action, "layers", ()):
                for st in getattr(layer, "strips", ()):
                    for bag in getattr(st, "channelbags", ()):
                        curves += list(bag.fcurves)
    return any(c.data_path == path for c in curves)


def _original_frames(video: str) -> int:
    """The movie's own frame count (Blender's movie clip reader), for retiming-key speeds."""
    known = {c.name for c in bpy.data.movieclips}
    clip = bpy.data.movieclips.load(video, check_existing=True)
    try:
        return int(clip.frame_duration)
    finally:
        if clip.name not in known:
            bpy.data.movieclips.remove(clip)


def _movie_warp(scene: Any, strip: Any, span: Span, video: str) -> tuple[retime.Warp, Span]:
    """The source frames a movie strip's picture shows (Speed effect, Reverse Frames, retiming
    keys) and the timeline span it shows them on. Ramps and animated speeds are refused."""
    name = strip.name
    reverse = bool(getattr(strip, "use_reverse_frames", False))
    cs, frames, hold = compat.content_start(strip), compat.content_frames(strip), compat.hold_offset_start(strip)
    keys = list(getattr(strip, "retiming_keys", ()) or ())
    k_own = 1.0
    if keys:
        if len(keys) > 2:
            raise PlacementError(f"strip {name!r} has retiming keys inside it; FoleySpace reads one constant speed "
                                 "over the whole strip only: remove the inner keys, or split the strip")
        # Two keys: one segment over the whole content, so one speed: the movie's own frames over
        # the content's retimed length (RetimingKey.timeline_frame is not used: with several
        # strips in a scene, bpy 5.0.1 reports it against another strip)
        k_own = _original_frames(video) / max(1, frames)
        if abs(k_own - 1.0) < retime.SPEED_TOLERANCE:
            k_own = 1.0
    effects = _speed_effects(scene, strip)
    if not effects:
        return retime.warp(span.left, span.right, cs, frames, hold, reverse, None, k_own, name), span
    if len(effects) > 1:
        raise PlacementError(f"strip {name!r} is the input of {len(effects)} Speed effects; keep one")
    if k_own != 1.0:
        raise PlacementError(f"strip {name!r} has both retiming keys and a Speed effect; keep one of them")
    fx = effects[0]
    shown = compat.span(fx)
    es = compat.content_start(fx)
    mode = fx.speed_control
    prop = {"MULTIPLY": "speed_factor", "FRAME_NUMBER": "speed_frame_number", "LENGTH": "speed_length"}.get(mode)
    if prop and animated(scene, fx, prop):
        raise PlacementError(f"Speed effect {fx.name!r} over strip {name!r} has an animated speed; FoleySpace "
                             "handles one constant speed only")
    if mode == "STRETCH":
        k = (frames - compat.offset_start(strip)) / max(1, shown.right - shown.left)
    elif mode == "MULTIPLY":
        k = float(fx.speed_factor)
    elif mode == "FRAME_NUMBER":
        es, k = es + float(fx.speed_frame_number), 0.0
    elif mode == "LENGTH":
        es, k = es + frames * float(fx.speed_length) / 100.0, 0.0
    else:
        raise PlacementError(f"Speed effect {fx.name!r}: speed control {mode!r} is not understood")
    if k < 0:
        raise PlacementError(f"Speed effect {fx.name!r}: a negative speed factor is not understood")
    if k == 0 and mode == "MULTIPLY":
        es, k = es, 0.0
    return retime.warp(shown.left, shown.right, cs, frames, hold, reverse, es, k, name), shown


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


def setting_file(setting: str) -> Callable[[str], str]:
    """``compat.abspath`` for the panel's file ``setting``; a ``//`` path in an unsaved .blend
    (relative to nothing yet) is a :class:`PlacementError`."""
    def absolute(path: str) -> str:
        full = compat.abspath(path)
        if not os.path.isabs(full):
            raise PlacementError(f"{setting} {path} is relative to the .blend: save the .blend first, or choose "
                                 f"an absolute {setting} file in the FoleySpace panel")
        return full
    return absolute


def job_spec(source: Source, folder: str, name: str, settings: Any,
             box_fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """The server job spec (``docs/protocol.md``) for a described strip; ``box_fields``: the
    strip's box keyframes in range (:func:`.boxes.spec_fields`), with the option ``preview``
    when the panel's Preview is on."""
    options: dict[str, Any] = {"scheme": settings.scheme}
    label = settings.label.strip()
    if label:
        options["label"] = label
    hrtf = backends.hrtf_option(settings.hrtf, setting_file("HRTF"))  # a SET:SUBJECT name is kept as typed
    if hrtf:
        options["hrtf"] = hrtf
    options.update(backends.job_options(settings, setting_file("Checkpoint")))
    if getattr(settings, "preview", False):
        options["preview"] = True
    spec: dict[str, Any] = {"video": source.video, "output_dir": folder, "name": name,
                            "start_s": round(source.start_s, 9), "end_s": round(source.end_s, 9), "options": options}
    if source.audio:
        spec["audio"] = source.audio
        spec["audio_start_s"] = round(source.audio_start_s, 9)
    if source.speed == 0:  # a held frame: start_s is the frame, hold_s how long it shows
        spec.pop("end_s")
        spec["speed"], spec["hold_s"] = 0.0, round(float(source.hold_s or 0.0), 9)
    elif source.speed != 1.0:
        spec["speed"] = round(source.speed, 12)
    spec.update(box_fields or {})
    return spec


# ------------------------------------------------------------------------- box keyframes
def box_strip(strip: Any) -> Any | None:
    """The movie strip whose box keyframes a strip uses: the strip itself for a movie, the
    movie under a Speed effect; None for anything else (sound strips take no boxes)."""
    if strip is None:
        return None
    if strip.type == "SPEED" and getattr(strip, "input_1", None) is not None and strip.input_1.type == "MOVIE":
        return strip.input_1
    return strip if strip.type == "MOVIE" else None


def keyframes_of(strip: Any) -> list[boxes.Keyframe]:
    """The box keyframes stored on ``strip`` (see :func:`box_strip`), by time."""
    movie = box_strip(strip)
    return boxes.parse(movie.get(boxes.BOXES_PROP)) if movie is not None else []


def keyframe_time(scene: Any, strip: Any, frame: int) -> float:
    """Source seconds of the movie frame that ``strip`` shows at timeline ``frame``: the strip's
    offsets and hold, Reverse Frames, a Speed effect or retiming (the arithmetic of
    :func:`describe` and :mod:`.retime`). :class:`PlacementError` outside its visible range."""
    movie = box_strip(strip)
    if movie is None:
        raise PlacementError("box keyframes are for movie strips: select a movie strip")
    src = describe(scene, strip)
    if not src.span.left <= frame < src.span.right:
        raise PlacementError(f"frame {frame} is outside strip {movie.name!r} (frames {src.span.left}–"
                             f"{src.span.right - 1}); move the playhead onto the strip")
    rate = compat.movie_fps(movie)
    w = retime.Warp(src.start_s * rate, src.end_s * rate, src.speed)
    return round(retime.shown_frame(frame, src.span.left, w) / rate, 6)

