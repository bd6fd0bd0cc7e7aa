"""FoleySpace for DaVinci Resolve: binaural stems for timeline clips (Workspace > Scripts).

Run from Resolve's Workspace > Scripts menu (installed into ``Fusion/Scripts/Utility`` by
``foleyspace install resolve``). For the current video item, or for every clip on one video
track, it sends a job to the local FoleySpace server (``foleyspace serve``), waits with a
timeout, imports the stems into the media pool and places each one on a new stereo audio track
at its clip's absolute record frame. Progress and a summary go to Resolve's console
(Workspace > Console); nothing here blocks forever.

Choose what to spatialize with ``FOLEYSPACE_RESOLVE_TRACK`` (unset or ``current``: the item
under the playhead; ``N``: every clip on video track N, counted from 1) or the ``TRACK``
constant below. ``FOLEYSPACE_RESOLVE_OUTPUT`` overrides the stem folder (default
``~/FoleySpace Stems/<project name>``).

Only the standard library and ``foleyspace.client`` (pyzmq + msgpack) are imported, because
Resolve runs its own Python. The core (:func:`spatialize_timeline`) takes a ``resolve`` object
and a client, so tests drive it with a fake of Resolve's scripting API.

Source range: ``GetLeftOffset()`` is taken in source frames at the clip's own frame rate
(``GetClipProperty("FPS")``) and the item's length in timeline frames at the timeline rate,
i.e. the clip plays at its own speed (Resolve's default for mismatched rates; retimed clips are
not supported).
"""

# typing.List/Optional on purpose: this file must run (at least far enough to print how to fix the
# client import) on whichever Python Resolve uses, so no `list[str]` / `X | None` at runtime.
# ruff: noqa: UP006, UP035, UP045
import importlib
import math
import os
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

# ---------------------------------------------------------------- import of the thin client
#: Folders holding ``foleyspace``, ``zmq`` and ``msgpack``; written by ``foleyspace install resolve``.
FOLEYSPACE_PATHS: List[str] = []
#: ``major.minor`` of the Python that wrote FOLEYSPACE_PATHS (its compiled modules need the same).
FOLEYSPACE_PYTHON = ""


def _import_client() -> Tuple[Any, str]:
    """``(foleyspace.client module, "")``, or ``(None, how to fix it)``."""
    try:
        from foleyspace import client as module
        return module, ""
    except ImportError:
        pass
    for path in FOLEYSPACE_PATHS:
        if path not in sys.path:
            sys.path.append(path)
    importlib.invalidate_caches()
    try:
        from foleyspace import client as module
        return module, ""
    except ImportError as exc:
        here = "{}.{}".format(*sys.version_info[:2])
        hint = ""
        if FOLEYSPACE_PYTHON and FOLEYSPACE_PYTHON != here:
            hint = f" (it was installed for Python {FOLEYSPACE_PYTHON}; Resolve runs Python {here})"
        return None, (f"FoleySpace: cannot import the FoleySpace client in Resolve's Python {here}: {exc}{hint}. "
                      "Run `foleyspace install resolve` from the Python environment that has FoleySpace, "
                      "or install foleyspace (with pyzmq and msgpack) into the Python Resolve uses.")


_client, IMPORT_ERROR = _import_client()
if _client is not None:
    Client = _client.Client
    ClientError = _client.ClientError
    ServerUnavailable = _client.ServerUnavailable
else:  # main() prints IMPORT_ERROR; these stand-ins keep the module importable
    Client = None  # type: ignore[assignment,misc]

    class ClientError(Exception):  # type: ignore[no-redef]
        code = "error"

    class ServerUnavailable(ClientError):  # type: ignore[no-redef]
        pass

# ---------------------------------------------------------------- configuration
#: Video track to process (1-based), or None for the current video item. FOLEYSPACE_RESOLVE_TRACK wins.
TRACK: Optional[int] = None
#: Folder under which each project gets a stem folder. FOLEYSPACE_RESOLVE_OUTPUT (the stem folder itself) wins.
OUTPUT_ROOT = "~/FoleySpace Stems"
#: Longest wait for one job, in seconds (FOLEYSPACE_RESOLVE_JOB_TIMEOUT).
JOB_TIMEOUT_S = 3600.0
#: Seconds per server request attempt and attempts (FOLEYSPACE_RESOLVE_REQUEST_TIMEOUT / _RETRIES).
REQUEST_TIMEOUT_S = 3.0
REQUEST_RETRIES = 3
#: Name given to the audio tracks the script adds.
TRACK_NAME = "FoleySpace"

Log = Callable[[str], None]


class ScriptError(Exception):
    """Stops the whole run; the message is one line for the console."""


class Skip(Exception):
    """Stops one clip; the message is the reason shown in the summary."""


@dataclass
class Settings:
    """What to process and how long to wait.

    Attributes:
        track: video track to process (1-based), or None for the current video item.
        output_dir: stem folder; None means ``OUTPUT_ROOT/<project name>``.
        job_timeout_s: longest wait for one job.
        request_timeout_s, request_retries: per-request wait and attempts of the client.
        options: job ``options`` sent with every job (see docs/protocol.md).
    """

    track: Optional[int] = TRACK
    output_dir: Optional[Path] = None
    job_timeout_s: float = JOB_TIMEOUT_S
    request_timeout_s: float = REQUEST_TIMEOUT_S
    request_retries: int = REQUEST_RETRIES
    options: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Optional[Dict[str, str]] = None) -> "Settings":
        """Settings from the constants above and ``FOLEYSPACE_RESOLVE_*``; ScriptError if malformed."""
        env = dict(os.environ if env is None else env)
        settings = cls()
        track = env.get("FOLEYSPACE_RESOLVE_TRACK", "").strip().lower()
        if track and track != "current":
            if not track.isdigit() or int(track) < 1:
                raise ScriptError(f"FoleySpace: FOLEYSPACE_RESOLVE_TRACK must be 'current' or a video track "
                                  f"number from 1, not {track!r}")
            settings.track = int(track)
        elif track == "current":
            settings.track = None
        if env.get("FOLEYSPACE_RESOLVE_OUTPUT"):
            settings.output_dir = Path(env["FOLEYSPACE_RESOLVE_OUTPUT"]).expanduser()
        for key, attr, kind in (("FOLEYSPACE_RESOLVE_JOB_TIMEOUT", "job_timeout_s", float),
                                ("FOLEYSPACE_RESOLVE_REQUEST_TIMEOUT", "request_timeout_s", float),
                                ("FOLEYSPACE_RESOLVE_REQUEST_RETRIES", "request_retries", int)):
            if env.get(key):
                try:
                    value = kind(env[key])
                except ValueError:
                    value = -1
                if not (value > 0 and math.isfinite(value)):
                    raise ScriptError(f"FoleySpace: {key} must be a positive number, not {env[key]!r}")
                setattr(settings, attr, value)
        return settings


# ---------------------------------------------------------------- records
@dataclass
class Clip:
    """One timeline item to spatialize: its source range and where it sits on the timeline."""

    name: str
    video: str
    start_s: float
    end_s: float
    record_frame: int  # absolute timeline frame of the item's first frame
    frames: int        # item length in timeline frames


@dataclass
class Stem:
    """A rendered stem for a clip."""

    clip: Clip
    path: str
    duration_s: float


@dataclass
class Placed:
    """A stem on the timeline: audio track (1-based), first frame (absolute) and length."""

    clip: Clip
    path: str
    track: int
    record_frame: int
    frames: int
    confirmed_by: str  # "returned item" or "track lookup"


@dataclass
class Report:
    """What a run did. ``ok`` is true when at least one stem was placed."""

    placed: List[Placed] = field(default_factory=list)
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    tracks: List[int] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.placed) and not self.error


# ---------------------------------------------------------------- small helpers
def _call(obj: Any, method: str, *args: Any) -> Any:
    """``obj.method(*args)``, or None if the object or method is missing or the call fails.

    Resolve's proxies can be stale (the item was deleted) or hollow (every getter returns None).
    """
    fn = getattr(obj, method, None) if obj is not None else None
    if fn is None:
        return None
    try:
        return fn(*args)
    except Exception:  # noqa: BLE001 - a Resolve proxy raising is the same as it returning nothing
        return None


def _int(value: Any) -> Optional[int]:
    """An integral frame number from Resolve (int, float or numeric string), else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or abs(number - round(number)) > 1e-6:
        return None
    return int(round(number))


def parse_fps(value: Any) -> Optional[float]:
    """Frames per second from Resolve's text (``"24"``, ``"23.976"``, ``"29.97 DF"``), exact for NTSC."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        return None
    match = re.match(r"\s*(\d+(?:\.\d+)?)", text)
    if not match:
        return None
    fps = float(match.group(1))
    if fps <= 0:
        return None
    ntsc = round(fps * 1.001)
    if abs(fps - round(fps)) > 1e-3 and abs(fps - ntsc / 1.001) < 2e-3:
        return ntsc * 1000 / 1001
    return fps


def _safe_name(text: str, fallback: str = "clip") -> str:
    """A plain file-name part: letters, digits, ``._-`` (no leading dot)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._-")
    return name[:80] or fallback


def _norm(path: str) -> str:
    return os.path.normcase(os.path.abspath(path))


def item_name(item: Any) -> str:
    """A timeline item's name for messages (falls back to its record frame)."""
    name = _call(item, "GetName")
    if isinstance(name, str) and name:
        return name
    start = _int(_call(item, "GetStart"))
    return f"item at frame {start}" if start is not None else "unnamed item"


# ---------------------------------------------------------------- reading the timeline
def current_timeline(resolve: Any) -> Tuple[Any, Any]:
    """``(project, timeline)`` open in Resolve; ScriptError if there is none."""
    manager = _call(resolve, "GetProjectManager")
    project = _call(manager, "GetCurrentProject")
    if project is None:
        raise ScriptError("FoleySpace: no project is open in DaVinci Resolve.")
    timeline = _call(project, "GetCurrentTimeline")
    if timeline is None:
        raise ScriptError("FoleySpace: the project has no current timeline; open one on the Edit page.")
    return project, timeline


def timeline_fps(project: Any, timeline: Any) -> float:
    """The timeline frame rate (timeline setting, else project setting)."""
    fps = parse_fps(_call(timeline, "GetSetting", "timelineFrameRate"))
    fps = fps or parse_fps(_call(project, "GetSetting", "timelineFrameRate"))
    if not fps:
        raise ScriptError("FoleySpace: cannot read the timeline frame rate (timelineFrameRate).")
    return fps


def items_to_process(timeline: Any, track: Optional[int]) -> List[Any]:
    """The current video item, or every item on video track ``track`` (1-based)."""
    if track is None:
        item = _call(timeline, "GetCurrentVideoItem")
        if item is None:
            raise ScriptError("FoleySpace: no video clip under the playhead; move it over a clip "
                              "or set FOLEYSPACE_RESOLVE_TRACK to a video track number.")
        return [item]
    count = _int(_call(timeline, "GetTrackCount", "video")) or 0
    if not 1 <= track <= count:
        raise ScriptError(f"FoleySpace: video track {track} does not exist (the timeline has {count}).")
    items = _call(timeline, "GetItemListInTrack", "video", track)
    if not items:
        raise ScriptError(f"FoleySpace: video track {track} has no clips.")
    return list(items)


def clip_from_item(item: Any, fps: float) -> Clip:
    """The source file, source range and timeline spot of one item; Skip with the reason if unusable."""
    name = item_name(item)
    media = _call(item, "GetMediaPoolItem")
    if media is None:
        raise Skip("no media pool item (a generator, title or compound clip?)")
    video = _call(media, "GetClipProperty", "File Path")
    if not isinstance(video, str) or not video.strip():
        raise Skip("clip has no file path")
    if not os.path.isabs(video):
        raise Skip(f"clip file path is not absolute: {video!r}")
    start = _int(_call(item, "GetStart"))
    end = _int(_call(item, "GetEnd"))
    frames = end - start if start is not None and end is not None else _int(_call(item, "GetDuration"))
    if start is None or frames is None:
        raise Skip("Resolve returned no position for this item")
    if frames <= 0:
        raise Skip(f"item has no length ({frames} frames)")
    left = _int(_call(item, "GetLeftOffset"))
    if left is None or left < 0:
        raise Skip("Resolve returned no source offset (GetLeftOffset) for this item")
    clip_fps = parse_fps(_call(media, "GetClipProperty", "FPS")) or fps
    start_s = left / clip_fps
    return Clip(name=name, video=video, start_s=start_s, end_s=start_s + frames / fps,
                record_frame=start, frames=frames)


# ---------------------------------------------------------------- rendering on the server
def _stem_path(out_dir: Path, clip: Clip, taken: set) -> Path:
    base = f"{_safe_name(Path(clip.video).stem)}_{clip.record_frame}_binaural"
    path, k = out_dir / f"{base}.wav", 1
    while path.exists() or str(path) in taken:
        k += 1
        path = out_dir / f"{base}_{k}.wav"
    taken.add(str(path))
    return path


class _Progress:
    """Prints a job's progress events, at most once per stage and quarter."""

    def __init__(self, log: Log, prefix: str) -> None:
        self.log, self.prefix, self.last = log, prefix, ("", -1)

    def __call__(self, event: Dict[str, Any]) -> None:
        if event.get("event") != "progress":
            return
        stage, fraction = str(event.get("stage", "")), event.get("fraction") or 0.0
        step = int(float(fraction) * 4)
        if (stage, step) != self.last:
            self.last = (stage, step)
            self.log(f"{self.prefix} {stage} {float(fraction) * 100:.0f}%")


def render_stems(client: Any, clips: List[Clip], out_dir: Path, settings: Settings,
                 log: Log) -> Tuple[List[Stem], List[Tuple[str, str]]]:
    """Submit every clip, then wait for each in turn (``Client.run_batch``);
    ``(stems, [(clip name, reason)])``.

    A refused or failed job, a timeout or the server going away costs only that clip; when the
    server stays away, the clips not finished yet are reported without further waiting.
    """
    taken: set = set()
    paths = [_stem_path(out_dir, clip, taken) for clip in clips]
    specs = [{"video": clip.video, "output_dir": str(out_dir), "name": path.name,
              "start_s": clip.start_s, "end_s": clip.end_s,
              "options": {**settings.options, "label": clip.name[:200]}} for clip, path in zip(clips, paths)]
    prefixes = [f"FoleySpace: [{n}/{len(clips)}] {clip.name}:" for n, clip in enumerate(clips, 1)]
    watchers = [_Progress(log, prefix) for prefix in prefixes]
    stems: List[Stem] = []
    skipped: List[Tuple[str, str]] = []

    def settle(i: int, outcome: Dict[str, Any]) -> None:
        clip, path, prefix = clips[i], paths[i], prefixes[i]
        state, job = outcome.get("state"), outcome.get("job")
        error = outcome.get("error") or {}
        code, message = error.get("code", "error"), error.get("message", "")
        if state == "done":
            result = outcome.get("result") or {}
            stem = str(result.get("stem") or path)
            if not os.path.isfile(stem):
                skipped.append((clip.name, f"the server reported {stem} but it is not there"))
                return
            log(f"{prefix} done -> {stem}")
            stems.append(Stem(clip, stem, float(result.get("duration_s") or (clip.end_s - clip.start_s))))
        elif state == "unsent":
            skipped.append((clip.name, f"not sent: {message}"))
        elif state == "refused":
            skipped.append((clip.name, f"the server refused the job ({code}: {message})"))
        elif state == "timeout":
            skipped.append((clip.name, f"no result within {settings.job_timeout_s:g} s (job {job} cancelled)"))
        elif state == "lost" and code == "unavailable":
            skipped.append((clip.name, f"the server went away during the job: {message}"))
        elif state == "lost":
            skipped.append((clip.name, f"server error ({code}: {message})"))
        elif state == "abandoned":
            skipped.append((clip.name, "not finished: the FoleySpace server went away"))
        elif state == "failed":
            skipped.append((clip.name, f"job failed ({code}: {message})"))
        else:
            skipped.append((clip.name, f"job ended as {state}"))

    client.run_batch(specs, timeout=settings.job_timeout_s, on_event=lambda i, event: watchers[i](event),
                     before_wait=lambda i, job: log(f"{prefixes[i]} waiting for job {job}"), on_end=settle)
    return stems, skipped


# ---------------------------------------------------------------- placing on the timeline
def _add_stereo_track(timeline: Any) -> int:
    """Add a stereo audio track and return its 1-based index; ScriptError if Resolve refuses."""
    if not _call(timeline, "AddTrack", "audio", "stereo"):
        raise ScriptError("FoleySpace: Resolve refused to add a stereo audio track.")
    index = _int(_call(timeline, "GetTrackCount", "audio"))
    if not index:
        raise ScriptError("FoleySpace: Resolve added an audio track but reports no audio tracks.")
    _call(timeline, "SetTrackName", "audio", index, TRACK_NAME)
    return index


def _on_track(timeline: Any, track: int, record_frame: int) -> Optional[Any]:
    """The item on audio track ``track`` that starts at ``record_frame``, if any."""
    for item in _call(timeline, "GetItemListInTrack", "audio", track) or []:
        if _int(_call(item, "GetStart")) == record_frame:
            return item
    return None


def _append(media_pool: Any, timeline: Any, media: Any, track: int, record_frame: int,
            frames: int) -> Tuple[Optional[str], str]:
    """Append one stem; ``(how it was confirmed, "")`` or ``(None, why it failed)``."""
    info = {"mediaPoolItem": media, "startFrame": 0, "endFrame": frames - 1, "mediaType": 2,
            "trackIndex": track, "recordFrame": record_frame}
    result = _call(media_pool, "AppendToTimeline", [info])
    if not result:
        return None, f"Resolve refused to place it on audio track {track} at frame {record_frame}"
    item = result[0] if isinstance(result, (list, tuple)) else None
    start = _int(_call(item, "GetStart"))
    if start is not None:
        if start != record_frame:
            return None, f"Resolve placed it at frame {start} instead of {record_frame}"
        return "returned item", ""
    # a hollow item (every getter None): look for the real one on the track
    found = _on_track(timeline, track, record_frame)
    if found is None:
        return None, f"Resolve returned an empty item and nothing starts at frame {record_frame} on audio track {track}"
    return "track lookup", ""


def _current_is(project: Any, timeline: Any) -> bool:
    """Make ``timeline`` the current one again if the user switched meanwhile (AppendToTimeline uses it)."""
    want = _call(timeline, "GetUniqueId")
    now = _call(_call(project, "GetCurrentTimeline"), "GetUniqueId")
    if want is None or want == now:
        return True
    return bool(_call(project, "SetCurrentTimeline", timeline))


def place_stems(project: Any, timeline: Any, stems: List[Stem], log: Log) -> Report:
    """Import the stems and put each on a new stereo audio track at its clip's record frame.

    An append that fails (an occupied spot, or an empty item that is not on the track) is
    retried once on another new stereo track.
    """
    report = Report()
    if not stems:
        return report
    media_pool = _call(project, "GetMediaPool")
    if media_pool is None:
        raise ScriptError("FoleySpace: cannot reach the media pool.")
    if not _current_is(project, timeline):
        raise ScriptError("FoleySpace: the timeline changed while the stems were rendered and cannot be "
                          "made current again; the stems are in " + os.path.dirname(stems[0].path))
    imported = _call(media_pool, "ImportMedia", [s.path for s in stems])
    if not isinstance(imported, (list, tuple)) or not imported:
        report.skipped = [(s.clip.name, f"Resolve did not import {s.path}") for s in stems]
        return report
    by_path = {}
    for media in imported:
        path = _call(media, "GetClipProperty", "File Path")
        if isinstance(path, str) and path:
            by_path[_norm(path)] = media
    if not by_path and len(imported) == len(stems):  # hollow media items: trust the order
        by_path = {_norm(s.path): m for s, m in zip(stems, imported)}
    fps = timeline_fps(project, timeline)
    track = _add_stereo_track(timeline)
    report.tracks.append(track)
    for stem in stems:
        clip = stem.clip
        media = by_path.get(_norm(stem.path))
        if media is None:
            report.skipped.append((clip.name, f"Resolve did not import {stem.path}"))
            continue
        frames = min(clip.frames, max(1, int(round(stem.duration_s * fps))))
        available = _int(_call(media, "GetClipProperty", "Frames"))
        if available:
            frames = min(frames, available)
        how, why = _append(media_pool, timeline, media, track, clip.record_frame, frames)
        used = track
        if how is None:
            try:
                used = _add_stereo_track(timeline)
            except ScriptError as exc:
                report.skipped.append((clip.name, f"{why}; {exc}"))
                continue
            report.tracks.append(used)
            log(f"FoleySpace: {clip.name}: {why}; retrying on new audio track {used}")
            how, why = _append(media_pool, timeline, media, used, clip.record_frame, frames)
        if how is None:
            report.skipped.append((clip.name, why))
            continue
        log(f"FoleySpace: placed {os.path.basename(stem.path)} on audio track {used} "
            f"at frame {clip.record_frame} ({frames} frames)")
        report.placed.append(Placed(clip, stem.path, used, clip.record_frame, frames, how))
    return report


# ---------------------------------------------------------------- the whole run
def default_output_dir(project: Any) -> Path:
    """``OUTPUT_ROOT/<project name>``."""
    name = _call(project, "GetName")
    return Path(OUTPUT_ROOT).expanduser() / _safe_name(name if isinstance(name, str) else "", "Untitled Project")


def spatialize_timeline(resolve: Any, client: Any, settings: Settings, log: Log = print) -> Report:
    """Spatialize the current item or a track's clips and place the stems; prints a summary.

    Nothing is added to the timeline when no server answers or no job succeeds.
    """
    report = Report()
    try:
        project, timeline = current_timeline(resolve)
        fps = timeline_fps(project, timeline)
        clips: List[Clip] = []
        for item in items_to_process(timeline, settings.track):
            try:
                clips.append(clip_from_item(item, fps))
            except Skip as why:
                report.skipped.append((item_name(item), str(why)))
        if not clips:
            raise ScriptError("FoleySpace: no clip to spatialize.")
        try:
            client.request("ping")
        except ServerUnavailable as exc:
            raise ScriptError(f"FoleySpace: {exc}") from None
        except ClientError as exc:  # e.g. a token from another FOLEYSPACE_HOME
            raise ScriptError(f"FoleySpace: the server refused the connection ({exc.code}: {exc}); "
                              "is FOLEYSPACE_HOME the one the server uses?") from None
        out_dir = settings.output_dir or default_output_dir(project)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ScriptError(f"FoleySpace: cannot create the stem folder {out_dir}: {exc.strerror}") from None
        log(f"FoleySpace: {len(clips)} clip(s) -> {out_dir}")
        stems, failed = render_stems(client, clips, out_dir, settings, log)
        report.skipped.extend(failed)
        placed = place_stems(project, timeline, stems, log)
        report.placed, report.tracks = placed.placed, placed.tracks
        report.skipped.extend(placed.skipped)
    except ScriptError as exc:
        report.error = str(exc)
        log(report.error)
    _summarize(report, log)
    return report


def _summarize(report: Report, log: Log) -> None:
    tracks = ", ".join(f"A{t}" for t in report.tracks)
    if report.placed:
        log(f"FoleySpace: placed {len(report.placed)} stem(s) on audio track(s) {tracks}.")
    else:
        log("FoleySpace: nothing was placed on the timeline.")
    if report.skipped:
        log(f"FoleySpace: skipped {len(report.skipped)}:")
        for name, reason in report.skipped:
            log(f"  - {name}: {reason}")


def _resolve_module_dirs() -> List[str]:
    """Where Resolve keeps ``DaVinciResolveScript.py`` on each OS."""
    dirs = []
    if os.environ.get("RESOLVE_SCRIPT_API"):
        dirs.append(os.path.join(os.environ["RESOLVE_SCRIPT_API"], "Modules"))
    if sys.platform == "darwin":
        dirs.append("/Library/Application Support/Blackmagic Design/DaVinci Resolve/Developer/Scripting/Modules")
    elif sys.platform.startswith("win"):
        dirs.append(os.path.join(os.environ.get("PROGRAMDATA", r"C:\ProgramData"), "Blackmagic Design",
                                 "DaVinci Resolve", "Support", "Developer", "Scripting", "Modules"))
    else:
        dirs.append("/opt/resolve/Developer/Scripting/Modules")
    return dirs


def find_resolve(namespace: Dict[str, Any]) -> Any:
    """Resolve's scripting object: the ``resolve`` global Resolve provides, else
    ``bmd``/``DaVinciResolveScript.scriptapp("Resolve")``; None if nothing answers."""
    if namespace.get("resolve") is not None:
        return namespace["resolve"]
    bmd = namespace.get("bmd")
    if bmd is not None and _call(bmd, "scriptapp", "Resolve") is not None:
        return _call(bmd, "scriptapp", "Resolve")
    try:
        import DaVinciResolveScript as dvr  # type: ignore[import-not-found]
    except ImportError:
        for path in _resolve_module_dirs():
            if os.path.isdir(path) and path not in sys.path:
                sys.path.append(path)
        try:
            import DaVinciResolveScript as dvr  # type: ignore[import-not-found]
        except ImportError:
            return None
    return _call(dvr, "scriptapp", "Resolve")


def main(namespace: Optional[Dict[str, Any]] = None, log: Log = print) -> bool:
    """Entry point when Resolve runs the script; True when at least one stem was placed."""
    namespace = globals() if namespace is None else namespace
    if Client is None:
        log(IMPORT_ERROR)
        return False
    resolve = find_resolve(namespace)
    if resolve is None:
        log("FoleySpace: DaVinci Resolve is not reachable: run this from Workspace > Scripts inside Resolve "
            "(Python scripting needs Resolve Studio from 21.1), or enable external scripting.")
        return False
    try:
        settings = Settings.from_env()
    except ScriptError as exc:
        log(str(exc))
        return False
    try:
        client = Client(timeout=settings.request_timeout_s, retries=settings.request_retries)
    except Exception as exc:  # noqa: BLE001 - e.g. a malformed FOLEYSPACE_SERVER address
        log(f"FoleySpace: cannot set up the server connection: {exc}")
        return False
    try:
        return spatialize_timeline(resolve, client, settings, log).ok
    except Exception as exc:  # noqa: BLE001 - a bug: one line, then the traceback for the report
        log(f"FoleySpace: unexpected error: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        return False
    finally:
        client.close()


if __name__ == "__main__":
    _ok = main()
    if not any(name in globals() for name in ("resolve", "bmd", "fusion", "fu", "app")):
        sys.exit(0 if _ok else 1)  # run from a shell: report through the exit status
