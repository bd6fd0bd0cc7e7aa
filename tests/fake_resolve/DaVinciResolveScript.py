"""A fake of DaVinci Resolve's scripting module that enforces the documented behavior.

It does not record calls for tests to inspect; it keeps a timeline model and answers the way
Resolve does (DESIGN.md §5), so a script that gets a rule wrong sees Resolve's failure:

* track indices are 1-based: ``GetItemListInTrack(kind, 0)`` or past the count → None, and
  ``AppendToTimeline`` with such a ``trackIndex`` → ``[]``;
* frames are absolute: ``GetStart()``/``GetEnd()`` include the timeline start (default 86400 =
  01:00:00:00 at 24 fps), ``GetEnd()`` is exclusive; a ``recordFrame`` before the timeline
  start is rejected (``[]``);
* placing onto an occupied spot of the target track fails (``[]``);
* ``AppendToTimeline`` checks every clipInfo: known keys only, integer frames,
  ``0 <= startFrame <= endFrame < Frames`` (``endFrame`` inclusive), ``mediaType`` 1 or 2 and
  matching the media (audio-only media cannot go on a video track), a stereo clip needs a
  stereo audio track, ``mediaPoolItem`` must be in this media pool;
* ``append_mode = "hollow"`` makes appended items come back with every getter returning None
  while the real item is on the track; ``"phantom"`` returns such an item and places nothing;
* ``ImportMedia`` returns items only for files that exist (``[]`` if none);
* proxies are not stable: each ``GetItemListInTrack`` call returns new objects, so scripts must
  compare frames, not identities;
* ``squat_added_audio_tracks``: ranges that the next added audio tracks already hold (another
  user or script got there first), to provoke the occupied-spot failure on a new track.

Stricter than Resolve where Resolve's own defaults would hide a script bug: ``mediaType`` and
``trackIndex`` are required, frame numbers must be ``int``.

Scenario helpers: :func:`make_resolve` builds an app with one project and timeline and makes
:func:`scriptapp` return it; :meth:`FakeMediaPool.add_media` / :meth:`FakeTimeline.place` build
the timeline.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from typing import Any

import soundfile as sf

AUDIO_SUBTYPES = ("mono", "stereo", "5.1", "5.1film", "7.1", "7.1film", "adaptive1", "adaptive2")
CLIP_INFO_KEYS = {"mediaPoolItem", "startFrame", "endFrame", "mediaType", "trackIndex", "recordFrame"}
_ids = itertools.count(1)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class FakeMediaPoolItem:
    """A clip in the media pool. ``fps``/``frames`` are its own; ``path`` "" means no file."""

    def __init__(self, name: str, path: str, fps: float, frames: int, *, video: bool, audio_channels: int) -> None:
        self.name, self.path, self.fps, self.frames = name, path, fps, frames
        self.video, self.audio_channels = video, audio_channels
        self.media_id = f"mpi-{next(_ids)}"

    def GetName(self) -> str:
        return self.name

    def GetMediaId(self) -> str:
        return self.media_id

    def GetClipProperty(self, key: str | None = None) -> Any:
        props = {
            "Clip Name": self.name,
            "File Path": self.path,
            "FPS": f"{self.fps:.3f}",
            "Frames": str(self.frames),
            "Duration": _timecode(self.frames, self.fps),
            "Type": "Video + Audio" if self.video and self.audio_channels else ("Video" if self.video else "Audio"),
            "Audio Ch": str(self.audio_channels),
        }
        if key is None:
            return props
        return props.get(key, "")


def _timecode(frames: int, fps: float) -> str:
    base = max(1, round(fps))
    s, f = divmod(frames, base)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{f:02d}"


@dataclass
class _Clip:
    """What is really on a track (TimelineItem proxies point at these)."""

    name: str
    start: int          # absolute record frame
    duration: int       # timeline frames
    left_offset: int    # source frames
    media: FakeMediaPoolItem | None
    kind: str           # "video" / "audio"
    uid: str = field(default_factory=lambda: f"item-{next(_ids)}")

    @property
    def end(self) -> int:
        return self.start + self.duration


class FakeTimelineItem:
    """A proxy of a clip on the timeline; a hollow proxy answers None to every getter."""

    def __init__(self, clip: _Clip, hollow: bool = False) -> None:
        self._clip, self._hollow = clip, hollow

    def _get(self, value: Any) -> Any:
        return None if self._hollow else value

    def GetName(self) -> str | None:
        return self._get(self._clip.name)

    def GetStart(self) -> int | None:
        return self._get(self._clip.start)

    def GetEnd(self) -> int | None:
        return self._get(self._clip.end)

    def GetDuration(self) -> int | None:
        return self._get(self._clip.duration)

    def GetLeftOffset(self) -> int | None:
        return self._get(self._clip.left_offset)

    def GetRightOffset(self) -> int | None:
        media = self._clip.media
        return self._get(None if media is None else media.frames - self._clip.left_offset - self._clip.duration)

    def GetMediaPoolItem(self) -> FakeMediaPoolItem | None:
        return self._get(self._clip.media)

    def GetUniqueId(self) -> str | None:
        return self._get(self._clip.uid)


@dataclass
class _Track:
    kind: str
    subtype: str
    name: str
    clips: list[_Clip] = field(default_factory=list)

    def free(self, start: int, end: int) -> bool:
        return all(end <= c.start or start >= c.end for c in self.clips)


class FakeTimeline:
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

    # -------------------------------------------------------- scenario building
    def place(self, track: int, media: FakeMediaPoolItem | None, offset: int, duration: int,
              left_offset: int = 0, name: str | None = None) -> _Clip:
        """Put a clip on video track ``track`` (1-based) ``offset`` frames after the timeline start."""
        target = self.tracks["video"][track - 1]
        clip = _Clip(name or (media.name if media else "Title"), self.start_frame + offset, duration,
                     left_offset, media, "video")
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

    def GetSetting(self, key: str = "") -> Any:
        settings = {"timelineFrameRate": self.fps}
        return settings if not key else settings.get(key, "")

    def GetStartFrame(self) -> int:
        return self.start_frame

    def GetEndFrame(self) -> int:
        ends = [c.end for tracks in self.tracks.values() for t in tracks for c in t.clips]
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
        return [FakeTimelineItem(c) for c in track.clips]  # fresh proxies every call

    def GetCurrentVideoItem(self) -> FakeTimelineItem | None:
        for track in reversed(self.tracks["video"]):  # the topmost track wins
            for clip in track.clips:
                if clip.start <= self.playhead < clip.end:
                    return FakeTimelineItem(clip)
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
            track.clips.append(_Clip("squatter", start, end - start, 0, None, "audio"))
        return True


class FakeMediaPool:
    """The media pool; ``AppendToTimeline`` places onto the project's current timeline."""

    def __init__(self, project: FakeProject) -> None:
        self.project = project
        self.items: list[FakeMediaPoolItem] = []

    def add_media(self, path: str, fps: float, frames: int, *, video: bool = True,
                  audio_channels: int = 2, name: str | None = None) -> FakeMediaPoolItem:
        """Scenario: a clip already in the pool (``path`` "" for media without a file)."""
        item = FakeMediaPoolItem(name or os.path.basename(path) or "Synthetic", path, fps, frames,
                                 video=video, audio_channels=audio_channels)
        self.items.append(item)
        return item

    def ImportMedia(self, paths: Any) -> list[FakeMediaPoolItem]:
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list):
            return []
        fps = float(self.project.timeline.fps.split()[0])
        added = []
        for path in paths:
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
            placed = self._check(timeline, info, planned)
            if placed is None:
                return []
            planned.append(placed)
        if timeline.append_mode == "phantom":
            return [FakeTimelineItem(clip, hollow=True) for _, clip in planned]
        for track, clip in planned:
            track.clips.append(clip)
            track.clips.sort(key=lambda c: c.start)
        return [FakeTimelineItem(clip, hollow=timeline.append_mode == "hollow") for _, clip in planned]

    def _check(self, timeline: FakeTimeline, info: Any,
               planned: list[tuple[_Track, _Clip]]) -> tuple[_Track, _Clip] | None:
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
        first, last = info.get("startFrame", 0), info.get("endFrame", media.frames - 1)
        record = info.get("recordFrame", timeline.GetEndFrame())
        if not all(_is_int(v) for v in (first, last, record, index)):
            return None
        if not 0 <= first <= last < media.frames or record < timeline.start_frame:
            return None
        track = timeline._track(kind, index)
        if track is None:
            return None
        if kind == "audio" and media.audio_channels == 2 and track.subtype != "stereo":
            return None
        clip = _Clip(media.name, record, last - first + 1, first, media, kind)
        if not track.free(clip.start, clip.end):
            return None
        if any(t is track and not (clip.end <= c.start or clip.start >= c.end) for t, c in planned):
            return None
        return track, clip


class FakeProject:
    def __init__(self, name: str, fps: str, start_frame: int, video_tracks: int, audio_tracks: int) -> None:
        self.name = name
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


class FakeProjectManager:
    def __init__(self, project: FakeProject | None) -> None:
        self.project = project

    def GetCurrentProject(self) -> FakeProject | None:
        return self.project


class FakeResolve:
    """``scriptapp("Resolve")``: one open project with one timeline."""

    def __init__(self, project: FakeProject | None) -> None:
        self.manager = FakeProjectManager(project)

    def GetProjectManager(self) -> FakeProjectManager:
        return self.manager

    def GetProduct(self) -> str:
        return "DaVinci Resolve Studio"

    def GetVersionString(self) -> str:
        return "20.2.0.0"

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
                 video_tracks: int = 2, audio_tracks: int = 1) -> FakeResolve:
    """Scenario: a running Resolve with one project and an empty timeline; ``scriptapp`` returns it."""
    global _app
    if not (_is_int(start_frame) and start_frame >= 0 and math.isfinite(float(fps.split()[0]))):
        raise ValueError("bad scenario timeline")
    _app = FakeResolve(FakeProject(project, fps, start_frame, video_tracks, audio_tracks))
    return _app


def close_resolve() -> None:
    """Scenario: Resolve is not running (``scriptapp`` returns None)."""
    global _app
    _app = None


def scriptapp(name: str) -> FakeResolve | None:
    """Resolve's entry point: the running app, or None."""
    return _app if name == "Resolve" else None
