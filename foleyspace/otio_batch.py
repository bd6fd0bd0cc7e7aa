"""Batch rendering of an OpenTimelineIO timeline: a binaural stem for every video clip.

Every clip on a top-level video track whose media reference is a file is spatialized over its
source range (in-process, or through the job server). The output timeline is the input plus,
per video track that got stems, a new audio track holding Gaps and stem clips placed so that
each stem's ``range_in_parent()`` equals its video clip's. Transitions, nested stacks,
generators, missing media and failed jobs are reported and skipped, never fatal. Tool data goes
under ``metadata["foleyspace"]``; everything else (e.g. Resolve's ``Resolve_OTIO`` metadata and
global start time) is kept as read.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import opentimelineio as otio

from foleyspace import __version__
from foleyspace.errors import FoleySpaceError, InputError, OutputError
from foleyspace.stem import atomic_output
from foleyspace.timewarp import SPEED_RANGE

log = logging.getLogger(__name__)

#: ``progress(clip_index, clip_count, clip_name, stage, fraction)``
BatchProgress = Callable[[int, int, str, str, float], None]


@dataclass
class ClipTask:
    """One video clip to spatialize and where its stem goes."""

    track_index: int
    track_name: str
    clip_name: str
    video: Path
    start_s: float
    end_s: float
    range_in_parent: otio.opentime.TimeRange
    spec: dict[str, Any]
    result: dict[str, Any] | None = None
    job: str | None = None
    head_s: float = 0.0  # the stem's extra before the used range (a handle), timeline seconds
    tail_s: float = 0.0  # ... and after it
    speed: float = 1.0  # how the clip plays its media (source seconds per timeline second)


@dataclass
class Skipped:
    """Something on the timeline that got no stem, and why."""

    track: str
    name: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"track": self.track, "name": self.name, "reason": self.reason}


@dataclass
class BatchReport:
    """What a batch run did."""

    rendered: list[ClipTask] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    output: Path | None = None


def media_path(url: str, base: Path) -> Path:
    """A local path from an ``ExternalReference.target_url`` (``file://`` URL or plain path)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(urllib.parse.unquote(parsed.path)))
    if parsed.scheme and len(parsed.scheme) > 1:  # http:, s3:, ... (a Windows drive letter has 1)
        raise ValueError(f"not a local file URL: {url}")
    path = Path(url)
    return path if path.is_absolute() else (base / path)


def file_url(path: Path) -> str:
    """``file://`` URL of an absolute path."""
    return Path(path).resolve().as_uri()


def safe_name(text: str, limit: int = 60) -> str:
    """A file-name-safe version of a clip name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "clip"
    return cleaned[:limit]


def source_range_seconds(clip: otio.schema.Clip) -> tuple[float, float]:
    """The clip's used source range in seconds from the start of its media file.

    ``source_range`` is in the media's time coordinates; the media's ``available_range`` start
    (e.g. a timecode such as 01:00:00:00) is the file's first frame.
    """
    used = clip.trimmed_range()
    ref = clip.media_reference
    available = getattr(ref, "available_range", None)
    origin = available.start_time if available is not None else otio.opentime.RationalTime(0, used.start_time.rate)
    start = (used.start_time - origin).to_seconds()
    return start, start + used.duration.to_seconds()


def collect(timeline: otio.schema.Timeline, base: Path, stems_dir: Path,
            options: dict[str, Any], handles_s: float = 0.0,
            overwrite: bool = False) -> tuple[list[ClipTask], list[Skipped]]:
    """The clips to render and the items skipped, in timeline order.

    ``handles_s``: extra source to render on each side of a clip's used range (clamped to its
    media), so a mixer can slip and cross-fade the stem. Stem names already taken in
    ``stems_dir`` get a version suffix unless ``overwrite``."""
    tasks: list[ClipTask] = []
    skipped: list[Skipped] = []
    for t_index, track in enumerate(timeline.tracks):
        if not isinstance(track, otio.schema.Track):
            skipped.append(Skipped("", track.name, "a nested stack at the top level is not rendered"))
            continue
        if track.kind != otio.schema.TrackKind.Video:
            continue
        track_name = track.name or f"V{t_index + 1}"
        for item in track:
            if isinstance(item, otio.schema.Gap):
                continue
            if isinstance(item, otio.schema.Transition):
                skipped.append(Skipped(track_name, item.name or "transition",
                                       "transition: the stems of its clips are cut, not cross-faded"))
                continue
            if not isinstance(item, otio.schema.Clip):
                skipped.append(Skipped(track_name, item.name or item.schema_name(),
                                       f"{item.schema_name()} (nested) is not rendered"))
                continue
            name = item.name or f"clip {len(tasks) + len(skipped) + 1}"
            ref = item.media_reference
            if isinstance(ref, otio.schema.GeneratorReference):
                skipped.append(Skipped(track_name, name, f"generator ({ref.generator_kind or 'unknown'}) has no media"))
                continue
            if not isinstance(ref, otio.schema.ExternalReference):
                skipped.append(Skipped(track_name, name, f"no media file ({ref.schema_name()})"))
                continue
            try:
                video = media_path(ref.target_url, base)
            except ValueError as exc:
                skipped.append(Skipped(track_name, name, str(exc)))
                continue
            if not video.is_file():
                skipped.append(Skipped(track_name, name, f"media file not found: {video}"))
                continue
            try:
                retimed = track_retime(track)
                if retimed:
                    raise ValueError(f"{retimed}; move the retime onto its clips")
                speed = clip_speed(item)
            except ValueError as exc:
                skipped.append(Skipped(track_name, name, f"{exc}: skipped, so no stem plays against the picture"))
                continue
            if speed == 0:
                skipped.append(Skipped(track_name, name, "a freeze frame: editors play none of a clip's sound under a "
                                                         "held frame, so it needs no stem (the stem track has a gap)"))
                continue
            start_s, used_s = source_range_seconds(item)
            end_s = start_s + abs(speed) * (used_s - start_s)  # the media the retimed picture shows
            before, after = _handles(video, start_s, end_s, handles_s * abs(speed))
            head, tail = (before, after) if speed > 0 else (after, before)  # source → timeline side
            index = len(tasks) + 1
            spec = {"video": str(video.resolve()), "output_dir": str(stems_dir.resolve()),
                    "name": _free_name(stems_dir, f"{index:03d}_{safe_name(name)}", overwrite),
                    "start_s": max(start_s - before, 0.0), "end_s": end_s + after,
                    "options": {**options, "overwrite": overwrite} if overwrite else dict(options)}
            if speed != 1:
                spec["speed"] = speed
            tasks.append(ClipTask(t_index, track_name, name, video, start_s, end_s, item.range_in_parent(), spec,
                                  head_s=round(head / abs(speed), 6), tail_s=round(tail / abs(speed), 6),
                                  speed=speed))
    return tasks, skipped


def _handles(video: Path, start_s: float, end_s: float, handles_s: float) -> tuple[float, float]:
    """Handles before and after a used source range, clamped to the media (whole 1/1000 s; source seconds)."""
    if handles_s <= 0:
        return 0.0, 0.0
    from foleyspace.video import probe

    try:
        duration = probe(video).duration_s
    except FoleySpaceError:
        return 0.0, 0.0  # the job will report the media problem itself
    head = max(0.0, min(handles_s, start_s))
    tail = max(0.0, min(handles_s, duration - end_s))
    return round(head, 3), round(tail, 3)


def _free_name(stems_dir: Path, base: str, overwrite: bool) -> str:
    """``base_binaural.wav``, or with ``_v2``, ``_v3``… when a stem of that name is already there
    (an earlier run's stems stay as they were unless ``overwrite``)."""
    name = f"{base}_binaural.wav"
    version = 1
    while not overwrite and ((stems_dir / name).exists() or (stems_dir / name).with_suffix(".json").exists()):
        version += 1
        name = f"{base}_binaural_v{version}.wav"
    return name


def clip_speed(clip: otio.schema.Clip) -> float:
    """The constant speed a clip's time effects play its media at (source seconds per timeline
    second; 0 for a freeze frame); :class:`ValueError` saying why for anything else.

    OTIO's convention (as its viewer Raven draws it): the clip's ``source_range`` starts where
    the media starts being read and lasts the clip's time on the track; a ``LinearTimeWarp``
    with scalar k then reads ``|k|·duration`` of media from that start — backwards from its far
    end when k < 0 — and a ``FreezeFrame`` holds the first frame.
    """
    speed = 1.0
    for effect in clip.effects:
        if isinstance(effect, otio.schema.LinearTimeWarp):  # FreezeFrame is one with scalar 0
            speed *= float(effect.time_scalar)
        elif isinstance(effect, otio.schema.TimeEffect):
            raise ValueError(f"retimed by a {effect.effect_name or effect.schema_name()} effect, which is not a "
                             "constant speed; render it at a constant speed")
    if speed != 0 and not SPEED_RANGE[0] <= abs(speed) <= SPEED_RANGE[1]:
        raise ValueError(f"retimed to {speed:g}× speed, outside the {SPEED_RANGE[0]:g}–{SPEED_RANGE[1]:g}× handled")
    return speed


def track_retime(track: otio.schema.Track) -> str | None:
    """What retimes a whole track, in words, or ``None`` (track-level time effects are not followed)."""
    for effect in track.effects:
        if isinstance(effect, otio.schema.TimeEffect):
            return f"its track is retimed ({effect.effect_name or effect.schema_name()})"
    return None


def stem_tracks(tasks: list[ClipTask]) -> list[otio.schema.Track]:
    """One audio track per video track with rendered clips: Gaps and stem clips aligned so that
    each stem's ``range_in_parent()`` equals its video clip's."""
    tracks = []
    by_track: dict[int, list[ClipTask]] = {}
    for task in tasks:
        if task.result is not None:
            by_track.setdefault(task.track_index, []).append(task)
    for t_index, items in sorted(by_track.items()):
        audio = otio.schema.Track(name=f"FoleySpace {items[0].track_name}", kind=otio.schema.TrackKind.Audio)
        audio.metadata["foleyspace"] = {"video_track": items[0].track_name, "version": __version__}
        rate = items[0].range_in_parent.duration.rate
        cursor = otio.opentime.RationalTime(0, rate)
        for task in sorted(items, key=lambda k: k.range_in_parent.start_time.to_seconds()):
            placed = task.range_in_parent
            gap = placed.start_time - cursor
            if gap.value > 0:
                audio.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(
                    otio.opentime.RationalTime(0, gap.rate), gap)))
            rate = placed.duration.rate
            zero = otio.opentime.RationalTime(0, rate)
            head = otio.opentime.RationalTime.from_seconds(task.head_s, rate)
            tail = otio.opentime.RationalTime.from_seconds(task.tail_s, rate)
            assert task.result is not None
            stem = otio.schema.Clip(  # the stem file holds the handles; the clip uses the middle
                name=f"{task.clip_name} (binaural)",
                media_reference=otio.schema.ExternalReference(
                    target_url=file_url(Path(task.result["stem"])),
                    available_range=otio.opentime.TimeRange(zero, head + placed.duration + tail)),
                source_range=otio.opentime.TimeRange(head, placed.duration))
            stem.metadata["foleyspace"] = {
                "version": __version__, "source_clip": task.clip_name, "video": str(task.video),
                "source_start_s": task.start_s, "source_end_s": task.end_s, "speed": task.speed,
                "sidecar": task.result.get("sidecar"), "sample_rate": task.result.get("sample_rate"),
                "handles_s": [task.head_s, task.tail_s],
                "job": task.job, "options": task.spec.get("options", {})}
            audio.append(stem)
            cursor = placed.end_time_exclusive()
        tracks.append(audio)
    return tracks


def read_timeline(path: Path) -> otio.schema.Timeline:
    """Read any format an installed OTIO adapter handles; one-line errors."""
    if not path.is_file():
        raise InputError(f"{path}: no such timeline file")
    try:
        result = otio.adapters.read_from_file(str(path))
    except Exception as exc:  # adapters raise many types
        raise InputError(f"{path}: cannot read the timeline ({exc.__class__.__name__}: {exc})") from exc
    if isinstance(result, otio.schema.Timeline):
        return result
    timelines = [t for t in getattr(result, "find_children", lambda **k: [])(descended_from_type=otio.schema.Timeline)]
    if len(timelines) == 1:
        return timelines[0]
    raise InputError(f"{path}: holds {len(timelines)} timelines, expected one")


def timeline_writer(path: Path) -> str:
    """The name of the adapter that writes ``path``'s format; :class:`OutputError` (before any
    work) when none is installed or it cannot write."""
    try:
        adapter = otio.adapters.from_filepath(str(path))
    except Exception as exc:
        raise OutputError(f"{path}: no OTIO adapter writes this kind of file ({exc})") from exc
    if not (adapter.has_feature("write_to_file") or adapter.has_feature("write_to_string")):
        raise OutputError(f"{path}: the {adapter.name} adapter can only read, not write")
    return adapter.name


def stem_urls(timeline: otio.schema.Timeline) -> set[str]:
    """The media URLs of every clip of ``timeline``."""
    return {clip.media_reference.target_url for clip in timeline.find_clips()
            if isinstance(clip.media_reference, otio.schema.ExternalReference)}


#: Adapters that keep every clip of a timeline as it is (OTIO's own formats): not probed.
NATIVE_ADAPTERS = frozenset({"otio_json", "otioz", "otiod"})


def check_keeps_stems(timeline: otio.schema.Timeline, tasks: list[ClipTask], path: Path,
                      adapter_args: dict[str, Any] | None = None) -> None:
    """Before anything is rendered: write the output timeline as it will be (the stems under the
    names they will get, not yet rendered) with ``path``'s adapter to a scratch file, read it
    back and check every stem survived; :class:`OutputError` naming the adapter and what to do
    if the adapter fails or drops them (an EDL keeps no audio, AAF needs its mob-id option)."""
    import dataclasses
    import tempfile

    adapter = timeline_writer(path)
    if adapter in NATIVE_ADAPTERS or not tasks:
        return
    planned = [dataclasses.replace(t, result={"stem": t.spec["output_dir"] + "/" + t.spec["name"]}) for t in tasks]
    probe = timeline.deepcopy()
    for track in stem_tracks(planned):
        probe.tracks.append(track)
    stems = {file_url(Path(t.result["stem"])) for t in planned}  # type: ignore[index]
    with tempfile.TemporaryDirectory(prefix="foleyspace-probe-") as scratch:
        target = Path(scratch) / f"probe{path.suffix}"
        try:
            otio.adapters.write_to_file(probe, str(target), adapter_name=adapter, **(adapter_args or {}))
            kept = stem_urls(otio.adapters.read_from_file(str(target), adapter_name=adapter))
        except Exception as exc:  # adapters raise many types
            hint = ("; try --adapter-arg use_empty_mob_ids=true" if adapter == "AAF" and "mob" in str(exc).lower()
                    else "")
            raise OutputError(f"{path}: the {adapter} adapter cannot write this timeline with its stems "
                              f"({exc.__class__.__name__}: {exc}){hint}; nothing was rendered") from exc
    lost = stems - kept
    if lost:
        raise OutputError(f"{path}: the {adapter} adapter would drop {len(lost)} of {len(stems)} stem(s) (it keeps "
                          "no audio clips); nothing was rendered — write an .otio, .otioz or FCP .xml file instead")


def write_timeline(timeline: otio.schema.Timeline, path: Path, adapter_args: dict[str, Any] | None = None,
                   stems: set[str] = frozenset()) -> None:
    """Write atomically with the adapter the file name asks for (``adapter_args`` go to it), then
    read the file back and check that every URL of ``stems`` survived; a format that drops them
    (an adapter without audio tracks) is an :class:`OutputError` and nothing is written."""
    adapter = timeline_writer(path)
    with atomic_output(path) as tmp:
        try:
            otio.adapters.write_to_file(timeline, str(tmp), adapter_name=adapter, **(adapter_args or {}))
        except Exception as exc:
            raise OutputError(f"{path}: cannot write the timeline ({exc.__class__.__name__}: {exc})") from exc
        if not stems:
            return
        try:
            kept = stem_urls(otio.adapters.read_from_file(str(tmp), adapter_name=adapter))
        except Exception as exc:
            raise OutputError(f"{path}: the {adapter} file cannot be read back to check the stems "
                              f"({exc.__class__.__name__}: {exc})") from exc
        lost = stems - kept
        if lost:
            raise OutputError(f"{path}: the {adapter} adapter dropped {len(lost)} of {len(stems)} stem(s) "
                              "(it keeps no audio clips); nothing was written — write an .otio file instead")


def render_in_process(tasks: list[ClipTask], skipped: list[Skipped], progress: BatchProgress | None,
                      device: str = "auto") -> None:
    """Run each task's spec through the pipeline here, one after another, with one backend set
    for the whole batch (models load once)."""
    from foleyspace.backends import Backends
    from foleyspace.jobspec import job_from_spec
    from foleyspace.pipeline import spatialize

    backends = Backends(device)
    backends.check_device()
    for i, task in enumerate(tasks, 1):
        def on_progress(stage: str, fraction: float, i: int = i, task: ClipTask = task) -> None:
            if progress is not None:
                progress(i, len(tasks), task.clip_name, stage, fraction)

        try:
            result = spatialize(job_from_spec(task.spec), backends, on_progress)
        except FoleySpaceError as exc:
            if exc.code == "cancelled":
                raise
            skipped.append(Skipped(task.track_name, task.clip_name, str(exc)))
            continue
        task.result = {"stem": str(result.stem), "sidecar": str(result.sidecar) if result.sidecar else None,
                       "sample_rate": result.sample_rate}


#: Client error codes that are about the server, not a clip: the batch stops.
FATAL_CODES = ("unavailable", "unauthorized", "version")


def render_on_server(tasks: list[ClipTask], skipped: list[Skipped], address: str | None,
                     progress: BatchProgress | None, timeout_s: float = 3600.0) -> None:
    """Submit every task to the server at once, then collect the results as they finish.

    A clip the server refuses, fails or does not finish within ``timeout_s`` (cancelled) is
    skipped; a server that cannot be reached or goes away stops the batch at once.
    """
    from foleyspace.client import Client, ClientError

    def on_event(index: int, event: dict[str, Any]) -> None:
        if progress is not None and event.get("event") == "progress":
            progress(index + 1, len(tasks), tasks[index].clip_name, event["stage"], event["fraction"])

    def on_end(index: int, outcome: dict[str, Any]) -> None:
        task, state = tasks[index], outcome["state"]
        task.job = outcome.get("job")
        error = outcome.get("error") or {"code": state, "message": state}
        if state == "done":
            task.result = outcome["result"]
        elif state in ("lost", "abandoned") or error["code"] in FATAL_CODES:
            raise FoleySpaceError(error["message"])  # not about this clip: stop the batch
        elif state in ("refused", "unsent", "timeout"):
            skipped.append(Skipped(task.track_name, task.clip_name, f"{error['code']}: {error['message']}"))
        else:
            skipped.append(Skipped(task.track_name, task.clip_name, f"job {state}: {error['message']}"))

    try:
        with Client(address) as client:
            client.run_batch([t.spec for t in tasks], timeout=timeout_s, on_event=on_event, on_end=on_end)
    except ClientError as exc:
        raise FoleySpaceError(str(exc)) from exc


def render_otio(source: Path, output: Path, stems_dir: Path | None = None, server: str | None = None,
                use_server: bool = False, options: dict[str, Any] | None = None,
                progress: BatchProgress | None = None, device: str = "auto",
                adapter_args: dict[str, Any] | None = None, handles_s: float = 0.0,
                overwrite: bool = False) -> BatchReport:
    """Spatialize every video clip of ``source`` and write ``output`` with the stem tracks.

    ``use_server`` (or a ``server`` address) sends the jobs to the job server; otherwise they
    run in this process, on ``device`` for model backends. Raises :class:`FoleySpaceError` when the timeline cannot be read or
    written, or when no clip could be rendered (``output`` is then not written).
    """
    from foleyspace.stem import check_writable

    source, output = Path(source), Path(output)
    check_writable(output)
    timeline_writer(output)  # a format nothing can write fails now, not after the rendering
    timeline = read_timeline(source)
    stems_dir = Path(stems_dir) if stems_dir else output.parent / f"{output.stem}_stems"
    try:
        stems_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{stems_dir}: cannot create the stems folder ({exc.strerror})") from exc
    if not (0 <= handles_s <= 600):  # also refuses NaN
        raise InputError(f"--handles {handles_s!r}: must be 0 to 600 seconds")
    tasks, skipped = collect(timeline, source.parent.resolve(), stems_dir, options or {}, handles_s, overwrite)
    report = BatchReport(skipped=skipped)
    if not tasks:
        raise InputError(f"{source}: no video clip with a media file to spatialize"
                         + (": " + "; ".join(f"{s.name}: {s.reason}" for s in skipped[:3]) if skipped else ""))
    check_keeps_stems(timeline, tasks, output, adapter_args)
    before = len(skipped)
    if use_server or server:
        render_on_server(tasks, skipped, server, progress)
    else:
        render_in_process(tasks, skipped, progress, device)
    report.rendered = [t for t in tasks if t.result is not None]
    if not report.rendered:
        failures = skipped[before:] or skipped
        raise FoleySpaceError(f"{source}: no clip could be spatialized: "
                              + "; ".join(f"{s.name}: {s.reason}" for s in failures[:3]))
    out = timeline.deepcopy()
    for track in stem_tracks(tasks):
        out.tracks.append(track)
    out.metadata["foleyspace"] = {"version": __version__, "source": str(source.resolve()),
                                  "stems_dir": str(stems_dir.resolve()), "rendered": len(report.rendered),
                                  "skipped": [s.as_dict() for s in skipped]}
    write_timeline(out, output, adapter_args,
                   stems={file_url(Path(t.result["stem"])) for t in report.rendered if t.result})
    report.output = output
    return report
