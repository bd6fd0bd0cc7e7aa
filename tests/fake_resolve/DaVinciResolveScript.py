"""A fake of DaVinci Resolve's scripting module that enforces the documented (and measured) behavior.

It does not record calls for tests to inspect; it keeps a timeline model and answers the way
Resolve does, so a script that gets a rule wrong sees Resolve's failure. Where each rule comes
from (Blackmagic's README, a third-party measurement, or our own assumption) is listed in
host_plugins/resolve/README.md, "What this relies on"; ``tests/fake_resolve/fake_resolve.lua``
is the same model for the Lua twin and must keep the same rules.

* track indices are 1-based: ``GetItemListInTrack(kind, 0)`` or past the count → None, and
  ``AppendToTimeline`` with such a ``trackIndex`` → ``[]``;
* frames are absolute: ``GetStart()``/``GetEnd()`` include the timeline start (default 86400 =
  01:00:00:00 at 24 fps), ``GetEnd()`` is exclusive; a ``recordFrame`` before the timeline
  start is rejected;
* ``AppendToTimeline`` checks every clipInfo: known keys only, integer frames,
  ``0 <= startFrame < endFrame <= Frames`` — **``endFrame`` is exclusive** (the item lasts
  ``endFrame - startFrame`` source frames; measured on Resolve Studio 21.0, see the README),
  source frames are converted to timeline frames by flooring when the rates differ,
  ``mediaType`` 1 or 2 and matching the media (audio-only media cannot go on a video track), a
  stereo clip needs a stereo audio track, ``mediaPoolItem`` must be in this media pool;
* overlapping records are **not overwritten**: a clipInfo whose record range overlaps an item
  already on the track, or an earlier clipInfo of the same call, is dropped (the earlier item
  wins) and the others are still placed; the call returns only the items it placed (``[]`` if
  none);
* ``append_mode = "hollow"`` makes appended items come back with every getter returning None
  while the real item is on the track; ``"phantom"`` returns such an item and places nothing;
* ``ImportMedia`` takes file paths or ``{"FilePath": ...}`` clipInfos and returns items only
  for sound files that exist (``[]`` if none); a WAV takes the timeline's frame rate at import;
* proxies are not stable: each ``GetItemListInTrack`` call returns new objects, so scripts must
  compare frames, not identities;
* like Resolve's bridge, a method name the object does not have answers None when called
  (``GetProduct()`` → None; ``GetSpeed()`` → None before 21.1);
* ``subframe_precision`` getters (``GetStart/GetEnd/GetDuration/GetLeftOffset/GetRightOffset``)
  take one optional bool and return floats when it is True; any other argument → None;
* subclips: a media pool item with clip property ``Start`` > 0 is a subclip; ``GetLeftOffset``
  counts from the subclip start and ``GetSourceStartFrame() == Start + GetLeftOffset()`` (at
  100 % speed);
* retimed items (``speed``): ``GetLeftOffset`` is in the warped domain (source position /
  speed), ``GetSourceStartFrame/EndFrame`` in the true source (reversed: start > end;
  ``GetSourceEndFrame`` exclusive when the clip and timeline rates match, one less when they
  differ); ``GetSpeed()`` (21.1+) returns ``{"Percentage": ...}``; a ramp reports the
  percentage of its first segment while its source span follows the whole ramp;
* linked items: ``GetLinkedItems()`` lists the other items of the same link group; an audio
  item's ``GetLeftOffset`` counts timeline frames;
* ``GetAudioMapping()`` returns the documented JSON string (``linked_audio`` entries with
  path, channels and offset in samples);
* ``squat_added_audio_tracks``: ranges that the next added audio tracks already hold (another
  user or script got there first), to provoke the occupied-spot failure on a new track.

Stricter than Resolve where Resolve's own defaults would hide a script bug: ``mediaType`` and
``trackIndex`` are required, frame numbers must be ``int`` (Resolve documents float/int).

Scenario helpers: :func:`make_resolve` builds an app with one project and timeline and makes
:func:`scriptapp` return it; :meth:`FakeMediaPool.add_media` / :meth:`FakeTimeline.place` /
:meth:`FakeTimeline.place_audio` / :func:`link` build the timeline.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import soundfile as sf

AUDIO_SUBTYPES = ("mono", "stereo", "5.1", "5.1film", "7.1", "7.1film", "adaptive1", "adaptive2")
CLIP_INFO_KEYS = {"mediaPoolItem", "startFrame", "endFrame", "mediaType", "trackIndex", "recordFrame"}
#: True: ``endFrame`` is the first source frame NOT placed (measured on Resolve 21.0, see the README).
END_FRAME_EXCLUSIVE = True
_ids = itertools.count(1)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _precision(args: tuple) -> bool | None:
    """The optional ``subframe_precision`` argument: False/True, or None when malformed."""
    if not args:
        return False
    if len(args) == 1 and isinstance(args[0], bool):
        return args[0]
    return None


class _Bridge:
    """Resolve's scripting bridge answers any method name: a missing one returns None when called."""

    def __getattr__(self, name: str) -> Any:
        if name[:1].isupper():
            return lambda *args, **kwargs: None
        raise AttributeError(name)


class FakeMediaPoolItem(_Bridge):
    """A clip in the media pool. ``fps``/``frames`` are its own; ``path`` "" means no file.

    ``start`` > 0 makes it a subclip of its file starting at that source frame; ``frames`` is
    then the subclip's length. ``linked_audio`` lists ``(path, channels, offset_samples)`` of
    audio files linked to it (what ``GetAudioMapping`` reports).
    """

    def __init__(self, name: str, path: str, fps: float, frames: int, *, video: bool, audio_channels: int,
                 start: int = 0, linked_audio: list[tuple[str, int, int]] | None = None) -> None:
        self.name, self.path, self.fps, self.frames = name, path, fps, frames
        self.video, self.audio_channels, self.start = video, audio_channels, start
        self.linked_audio = list(linked_audio or [])
        self.media_id = f"mpi-{next(_ids)}"

    def GetName(self) -> str:
        return self.name

    def GetMediaId(self) -> str:
        return self.media_id

    def GetUniqueId(self) -> str:
        return self.media_id

    def GetClipProperty(self, key: Any = None) -> Any:
        props = {
            "Clip Name": self.name,
            "File Path": self.path,
            "FPS": f"{self.fps:.3f}" if self.fps != int(self.fps) else str(int(self.fps)),
            "Frames": str(self.frames),
            "Start": str(self.start),
            "End": str(self.start + self.frames - 1),
            "In": "",
            "Out": "",
            "Duration": _timecode(self.frames, self.fps),
            "Type": "Video + Audio" if self.video and self.audio_channels else ("Video" if self.video else "Audio"),
            "Audio Ch": str(self.audio_channels),
        }
        if key is None or key == "":
            return props
        if not isinstance(key, str):
            return None
        return props.get(key, "")

    def GetAudioMapping(self) -> str:
        linked = {str(i): {"channels": ch, "offset": offset, "path": path}
                  for i, (path, ch, offset) in enumerate(self.linked_audio, 1)}
        tracks = {"1": {"channel_idx": list(range(1, self.audio_channels + 1)), "mute": False,
                        "type": "Stereo" if self.audio_channels == 2 else "Mono"}} if self.audio_channels else {}
        return json.dumps({"embedded_audio_channels": self.audio_channels, "linked_audio": linked,
                           "track_mapping": tracks})


def _timecode(frames: int, fps: float) -> str:
    base = max(1, round(fps))
    s, f = divmod(frames, base)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{f:02d}"


@dataclass
class _Clip:
    """What is really on a track (TimelineItem proxies point at these).

    ``source_first``: the first source frame the picture shows, counted from the media pool
    item's start (the subclip start for subclips), in the clip's own frames. ``speed``: 1 plays
    normally, 2 twice as fast, 0 holds a frame, negative plays backwards; ``ramp_span``: the
    source frames a variable-speed ramp covers (None for a constant speed).
    """

    name: str
    start: int          # absolute record frame
    duration: int       # timeline frames
    source_first: int   # clip frames from the media's (subclip's) start
    media: FakeMediaPoolItem | None
    kind: str           # "video" / "audio"
    timeline_fps: float = 24.0
    speed: float = 1.0
    ramp_span: int | None = None
    link: int | None = None
    uid: str = field(default_factory=lambda: f"item-{next(_ids)}")

    @property
    def end(self) -> int:
        return self.start + self.duration

    @property
    def clip_fps(self) -> float:
        return self.media.fps if self.media is not None else self.timeline_fps

    def source_span(self) -> int:
        """Source frames the item covers (signed: negative when reversed)."""
        if self.ramp_span is not None:
            return self.ramp_span
        return int(math.floor(self.duration * self.speed * self.clip_fps / self.timeline_fps + 1e-9))

    def left_offset(self) -> float:
        """``GetLeftOffset``: warped domain for a retimed video item, timeline frames for audio."""
        if self.kind == "audio":
            return self.source_first * self.timeline_fps / self.clip_fps
        if self.speed > 0 and self.ramp_span is None:
            return self.source_first / self.speed
        return float(self.source_first)


class FakeTimelineItem(_Bridge):
    """A proxy of a clip on the timeline; a hollow proxy answers None to every getter."""

    def __init__(self, clip: _Clip, timeline: FakeTimeline | None = None, hollow: bool = False) -> None:
        self._clip, self._timeline, self._hollow = clip, timeline, hollow

    def _get(self, value: Any) -> Any:
        return None if self._hollow else value

    def _frames(self, value: float, args: tuple) -> Any:
        precise = _precision(args)
        if precise is None or self._hollow:
            return None
        return float(value) if precise else int(math.floor(value + 1e-9))

    def GetName(self) -> str | None:
        return self._get(self._clip.name)

    def GetStart(self, *args: Any) -> Any:
        return self._frames(self._clip.start, args)

    def GetEnd(self, *args: Any) -> Any:
        return self._frames(self._clip.end, args)

    def GetDuration(self, *args: Any) -> Any:
        return self._frames(self._clip.duration, args)

    def GetLeftOffset(self, *args: Any) -> Any:
        return self._frames(self._clip.left_offset(), args)

    def GetRightOffset(self, *args: Any) -> Any:
        media = self._clip.media
        if media is None:
            return None
        return self._frames(media.frames - self._clip.source_first - abs(self._clip.source_span()), args)

    def GetSourceStartFrame(self) -> int | None:
        clip = self._clip
        if clip.media is None or self._hollow:
            return None
        return clip.media.start + clip.source_first  # the first frame shown (the highest when reversed)

    def GetSourceEndFrame(self) -> int | None:
        clip = self._clip
        if clip.media is None or self._hollow:
            return None
        end = clip.media.start + clip.source_first + clip.source_span()
        if clip.speed > 0 and abs(clip.clip_fps - clip.timeline_fps) > 1e-6:
            end -= 1  # measured: inclusive when the clip and timeline rates differ
        return end

    def GetMediaPoolItem(self) -> FakeMediaPoolItem | None:
        return self._get(self._clip.media)

    def GetUniqueId(self) -> str | None:
        return self._get(self._clip.uid)

    def GetType(self) -> str | None:
        return self._get(self._clip.kind)

    def GetTrackTypeAndIndex(self) -> list | None:
        if self._hollow or self._timeline is None:
            return None
        for kind, tracks in self._timeline.tracks.items():
            for i, track in enumerate(tracks, 1):
                if self._clip in track.clips:
                    return [kind, i]
        return None

    def GetLinkedItems(self) -> list | None:
        if self._hollow or self._timeline is None:
            return None
        if self._clip.link is None:
            return []
        return [FakeTimelineItem(c, self._timeline) for t in self._timeline.all_tracks() for c in t.clips
                if c.link == self._clip.link and c is not self._clip]

    def GetSpeed(self) -> dict | None:
        if self._hollow or self._timeline is None or self._timeline.project.version < (21, 1):
            return None  # documented from 21.1 on; the bridge answers None before
        clip = self._clip
        if clip.ramp_span is not None:
            percentage = 50.0  # a ramp: the first segment's speed, not the whole item's
        else:
            percentage = abs(clip.speed) * 100.0
        return {"Percentage": percentage, "PitchCorrection": False, "StretchKeyframesToFit": False,
                "RippleTimeline": False}


@dataclass
class _Track:
    kind: str
    subtype: str
    name: str
    clips: list[_Clip] = field(default_factory=list)

    def free(self, start: int, end: int) -> bool:
        return all(end <= c.start or start >= c.end for c in self.clips)


_links = itertools.count(1)


def link(*clips: _Clip) -> None:
    """Scenario: link timeline clips (as Resolve's Link Clips does)."""
    group = next(_links)
    for clip in clips:
        clip.link = group


class FakeTimeline(_Bridge):
    """A timeline at ``fps`` (text, as Resolve's setting) starting at absolute frame ``start_frame``."""

    def __init__(self, project: FakeProject, name: str, fps: str, start_frame: int,
                 video_tracks: int, audio_tracks: int) -> None:
        self.project, self.name, self.fps, self.start_frame = project, name, fps, start_frame
        self.uid = f"timeline-{next(_ids)}"
        self.tracks: dict[str, list[_Track]] = {
            "video": [_Track("video", "", f"Video {i + 1}") for i in range(video_tracks)],
            "audio": [_Track("audio", "stereo", f"Audio {i + 1}") for i in range(audio_tracks)],
            "subtitle": [],
        }
        self.playhead = start_frame
        self.append_mode = "normal"  # "normal" | "hollow" | "phantom"
        self.squat_added_audio_tracks: list[tuple[int, int]] = []

    @property
    def rate(self) -> float:
        value = float(self.fps.split()[0])
        ntsc = round(value * 1.001)
        return ntsc * 1000 / 1001 if abs(value - round(value)) > 1e-3 else value

    def all_tracks(self) -> list[_Track]:
        return [t for tracks in self.tracks.values() for t in tracks]

    # -------------------------------------------------------- scenario building
    def place(self, track: int, media: FakeMediaPoolItem | None, offset: int, duration: int,
              left_offset: int = 0, name: str | None = None, speed: float = 1.0,
              ramp_span: int | None = None) -> _Clip:
        """Put a clip on video track ``track`` (1-based) ``offset`` frames after the timeline start.

        ``left_offset``: the first source frame shown, in clip frames from the media's start.
        """
        return self._put("video", track, media, offset, duration, left_offset, name, speed, ramp_span)

    def place_audio(self, track: int, media: FakeMediaPoolItem, offset: int, duration: int,
                    left_offset: int = 0, name: str | None = None, speed: float = 1.0) -> _Clip:
        """Put a clip on audio track ``track``; ``left_offset`` in the clip's own frames."""
        return self._put("audio", track, media, offset, duration, left_offset, name, speed, None)

    def _put(self, kind: str, track: int, media: FakeMediaPoolItem | None, offset: int, duration: int,
             source_first: int, name: str | None, speed: float, ramp_span: int | None) -> _Clip:
        target = self.tracks[kind][track - 1]
        clip = _Clip(name or (media.name if media else "Title"), self.start_frame + offset, duration,
                     source_first, media, kind, timeline_fps=self.rate, speed=speed, ramp_span=ramp_span)
        assert target.free(clip.start, clip.end), "scenario clips must not overlap"
        target.clips.append(clip)
        target.clips.sort(key=lambda c: c.start)
        return clip

    def audio_clips(self, track: int) -> list[_Clip]:
        """What is really on audio track ``track`` (1-based), for assertions."""
        return list(self.tracks["audio"][track - 1].clips)

    # -------------------------------------------------------- Resolve API
    def GetName(self) -> str:
        return self.name

    def GetUniqueId(self) -> str:
        return self.uid

    def GetSettings(self) -> dict | None:
        if self.project.version < (21, 1):
            return None
        return {"timelineFrameRate": float(self.fps.split()[0]), "useCustomSettings": "0"}

    def GetSetting(self, key: str = "") -> Any:
        settings = {"timelineFrameRate": self.fps}
        return settings if not key else settings.get(key, "")

    def GetStartFrame(self) -> int:
        return self.start_frame

    def GetEndFrame(self) -> int:
        ends = [c.end for t in self.all_tracks() for c in t.clips]
        return max(ends, default=self.start_frame)

    def GetTrackCount(self, kind: str) -> int:
        return len(self.tracks.get(kind, []))

    def GetTrackName(self, kind: str, index: int) -> str | None:
        track = self._track(kind, index)
        return None if track is None else track.name

    def SetTrackName(self, kind: str, index: int, name: str) -> bool:
        track = self._track(kind, index)
        if track is None or not isinstance(name, str):
            return False
        track.name = name
        return True

    def _track(self, kind: Any, index: Any) -> _Track | None:
        tracks = self.tracks.get(kind) if isinstance(kind, str) else None
        if tracks is None or not _is_int(index) or not 1 <= index <= len(tracks):
            return None
        return tracks[index - 1]

    def GetItemListInTrack(self, kind: str, index: int) -> list[FakeTimelineItem] | None:
        track = self._track(kind, index)
        if track is None:
            return None
        return [FakeTimelineItem(c, self) for c in track.clips]  # fresh proxies every call

    def GetCurrentVideoItem(self) -> FakeTimelineItem | None:
        for track in reversed(self.tracks["video"]):  # the topmost track wins
            for clip in track.clips:
                if clip.start <= self.playhead < clip.end:
                    return FakeTimelineItem(clip, self)
        return None

    def AddTrack(self, kind: str, subtype: str | None = None) -> bool:
        if kind not in ("video", "audio", "subtitle"):
            return False
        if kind == "audio":
            subtype = subtype or "mono"
            if subtype not in AUDIO_SUBTYPES:
                return False
        elif subtype is not None:
            return False
        tracks = self.tracks[kind]
        track = _Track(kind, subtype or "", f"{kind.title()} {len(tracks) + 1}")
        tracks.append(track)
        if kind == "audio" and self.squat_added_audio_tracks:
            start, end = self.squat_added_audio_tracks.pop(0)
            track.clips.append(_Clip("squatter", start, end - start, 0, None, "audio", timeline_fps=self.rate))
        return True


class FakeMediaPool(_Bridge):
    """The media pool; ``AppendToTimeline`` places onto the project's current timeline."""

    def __init__(self, project: FakeProject) -> None:
        self.project = project
        self.items: list[FakeMediaPoolItem] = []

    def add_media(self, path: str, fps: float, frames: int, *, video: bool = True,
                  audio_channels: int = 2, name: str | None = None, start: int = 0,
                  linked_audio: list[tuple[str, int, int]] | None = None) -> FakeMediaPoolItem:
        """Scenario: a clip already in the pool (``path`` "" for media without a file;
        ``start`` > 0 for a subclip starting at that frame of the file)."""
        item = FakeMediaPoolItem(name or os.path.basename(path) or "Synthetic", path, fps, frames,
                                 video=video, audio_channels=audio_channels, start=start, linked_audio=linked_audio)
        self.items.append(item)
        return item

    def ImportMedia(self, paths: Any) -> list[FakeMediaPoolItem]:
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list):
            return []
        fps = self.project.timeline.rate  # a WAV takes the project's rate at import (measured)
        added = []
        for entry in paths:
            path = entry.get("FilePath") if isinstance(entry, dict) else entry
            if not isinstance(path, str) or not os.path.isfile(path):
                continue
            try:
                info = sf.info(path)
            except RuntimeError:
                continue  # not audio: this fake only imports sound files
            frames = int(round(info.frames / info.samplerate * fps))
            item = FakeMediaPoolItem(os.path.basename(path), os.path.abspath(path), fps, frames,
                                     video=False, audio_channels=info.channels)
            self.items.append(item)
            added.append(item)
        return added

    def AppendToTimeline(self, clip_infos: Any) -> list[FakeTimelineItem]:
        timeline = self.project.timeline
        if not isinstance(clip_infos, list) or not clip_infos:
            return []
        planned: list[tuple[_Track, _Clip]] = []
        for info in clip_infos:
            placed = self._check(timeline, info)
            if placed is None:
                return []  # a malformed clipInfo fails the call
            track, clip = placed
            if not track.free(clip.start, clip.end) or any(
                    t is track and not (clip.end <= c.start or clip.start >= c.end) for t, c in planned):
                continue  # overlapping record: dropped, the earlier item wins (measured)
            planned.append(placed)
        if timeline.append_mode == "phantom":
            return [FakeTimelineItem(clip, timeline, hollow=True) for _, clip in planned]
        for track, clip in planned:
            track.clips.append(clip)
            track.clips.sort(key=lambda c: c.start)
        return [FakeTimelineItem(clip, timeline, hollow=timeline.append_mode == "hollow") for _, clip in planned]

    def _check(self, timeline: FakeTimeline, info: Any) -> tuple[_Track, _Clip] | None:
        """The track and clip a clipInfo would make, or None where Resolve fails."""
        if not isinstance(info, dict) or set(info) - CLIP_INFO_KEYS:
            return None
        media = info.get("mediaPoolItem")
        if not isinstance(media, FakeMediaPoolItem) or media not in self.items:
            return None
        media_type, index = info.get("mediaType"), info.get("trackIndex")
        if media_type not in (1, 2) or isinstance(media_type, bool):
            return None
        kind = "video" if media_type == 1 else "audio"
        if (kind == "video" and not media.video) or (kind == "audio" and not media.audio_channels):
            return None
        default_end = media.frames if END_FRAME_EXCLUSIVE else media.frames - 1
        first, last = info.get("startFrame", 0), info.get("endFrame", default_end)
        record = info.get("recordFrame", timeline.GetEndFrame())
        if not all(_is_int(v) for v in (first, last, record, index)):
            return None
        source = last - first if END_FRAME_EXCLUSIVE else last - first + 1
        if first < 0 or source < 1 or first + source > media.frames or record < timeline.start_frame:
            return None
        track = timeline._track(kind, index)
        if track is None:
            return None
        if kind == "audio" and media.audio_channels == 2 and track.subtype != "stereo":
            return None
        duration = int(math.floor(source * timeline.rate / media.fps + 1e-9))  # source → timeline frames
        if duration < 1:
            return None
        clip = _Clip(media.name, record, duration, first, media, kind, timeline_fps=timeline.rate)
        return track, clip


class FakeProject(_Bridge):
    def __init__(self, name: str, fps: str, start_frame: int, video_tracks: int, audio_tracks: int,
                 version: tuple[int, int] = (21, 1)) -> None:
        self.name, self.version = name, version
        self.media_pool = FakeMediaPool(self)
        self.timeline = FakeTimeline(self, "Timeline 1", fps, start_frame, video_tracks, audio_tracks)
        self.timelines = [self.timeline]

    def GetName(self) -> str:
        return self.name

    def GetMediaPool(self) -> FakeMediaPool:
        return self.media_pool

    def GetCurrentTimeline(self) -> FakeTimeline | None:
        return self.timeline

    def SetCurrentTimeline(self, timeline: Any) -> bool:
        if timeline not in self.timelines:
            return False
        self.timeline = timeline
        return True

    def GetSetting(self, key: str = "") -> Any:
        return self.timeline.GetSetting(key) if key == "timelineFrameRate" else ""


class FakeProjectManager(_Bridge):
    def __init__(self, project: FakeProject | None) -> None:
        self.project = project

    def GetCurrentProject(self) -> FakeProject | None:
        return self.project


class FakeResolve(_Bridge):
    """``scriptapp("Resolve")``: one open project with one timeline.

    Resolve has no ``GetProduct``: like any unknown name it answers None through the bridge.
    """

    def __init__(self, project: FakeProject | None, version: tuple[int, int, int, int] = (21, 1, 1, 3),
                 studio: bool = True) -> None:
        self.manager = FakeProjectManager(project)
        self.version, self.studio = version, studio

    def GetProjectManager(self) -> FakeProjectManager:
        return self.manager

    def GetProductName(self) -> str:
        return "DaVinci Resolve Studio" if self.studio else "DaVinci Resolve"

    def GetVersion(self) -> list:
        return [*self.version, ""]

    def GetVersionString(self) -> str:
        return ".".join(str(v) for v in self.version)

    def IsStudio(self) -> bool | None:
        return self.studio if self.version[:2] >= (21, 1) else None

    @property
    def project(self) -> FakeProject:
        assert self.manager.project is not None
        return self.manager.project

    @property
    def timeline(self) -> FakeTimeline:
        return self.project.timeline

    @property
    def media_pool(self) -> FakeMediaPool:
        return self.project.media_pool


_app: FakeResolve | None = None


def make_resolve(project: str = "Demo Project", fps: str = "24", start_frame: int = 86400,
                 video_tracks: int = 2, audio_tracks: int = 1,
                 version: tuple[int, int, int, int] = (21, 1, 1, 3), studio: bool = True) -> FakeResolve:
    """Scenario: a running Resolve with one project and an empty timeline; ``scriptapp`` returns it."""
    global _app
    if not (_is_int(start_frame) and start_frame >= 0 and math.isfinite(float(fps.split()[0]))):
        raise ValueError("bad scenario timeline")
    _app = FakeResolve(FakeProject(project, fps, start_frame, video_tracks, audio_tracks, version[:2]),
                       version, studio)
    return _app


def close_resolve() -> None:
    """Scenario: Resolve is not running (``scriptapp`` returns None)."""
    global _app
    _app = None


def scriptapp(name: str) -> FakeResolve | None:
    """Resolve's entry point: the running app, or None."""
    return _app if name == "Resolve" else None
