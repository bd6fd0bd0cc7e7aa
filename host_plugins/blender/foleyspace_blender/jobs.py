"""Jobs of this Blender session: describe a strip, submit, poll from a timer, place the stem.

Nothing here blocks the UI for long: requests use short Lazy-Pirate timeouts, and the job's
events are collected by :func:`poll_jobs`, a plain function registered with
``bpy.app.timers`` (tests call it directly: bpy as a module has no event loop). Strips are
remembered by scene and strip *name*, never by Python reference, because references die
with undo and file loads.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import bpy

from . import compat
from .placement import (
    PlacementError,
    Span,
    free_channel,
    media_range_s,
    same_rate,
    stem_file_name,
)

try:
    from .fsclient.client import Client, ClientError, ServerUnavailable
except ImportError as exc:  # the source folder without the vendored client, or no pyzmq/msgpack
    raise ImportError(f"FoleySpace add-on: the thin client cannot be imported ({exc}); "
                      "install the zip made by host_plugins/blender/build.py") from exc

#: Seconds between timer ticks while jobs run.
POLL_INTERVAL_S = 0.25
#: A job without events for this long is asked for its status (events may be lost on reconnects).
STATUS_EVERY_S = 2.0
#: A job whose server does not answer for this long is given up.
GIVE_UP_AFTER_S = 60.0
#: Per-attempt timeout of requests made from the UI (submit, cancel); one retry.
UI_TIMEOUT_S = 0.75
#: Timeout of the ping before a submit and of the timer's status polls (no retry): a dead
#: server costs the UI this long, not ``2 * UI_TIMEOUT_S``.
QUICK_TIMEOUT_S = 0.3
#: How long "Start Server" waits for the new server to answer.
START_TIMEOUT_S = 120.0
#: Custom strip property holding the video chosen for a sound strip.
VIDEO_PROP = "foleyspace_video"
#: Custom properties written on a placed stem strip.
JOB_PROP, SOURCE_PROP = "foleyspace_job", "foleyspace_source"


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


@dataclass
class Job:
    """A submitted job, remembered until its stem is placed or it ends otherwise."""

    id: str
    scene: str
    strip: str
    source: Source
    stem: str
    mute: bool
    progress: str = "queued"
    submitted: float = field(default_factory=time.monotonic)
    last_heard: float = field(default_factory=time.monotonic)
    next_status: float = field(default_factory=lambda: time.monotonic() + STATUS_EVERY_S)
    cancelling: bool = False


@dataclass
class Session:
    """State shared by the operators, the panel and the timers."""

    client: Client | None = None
    jobs: dict[str, Job] = field(default_factory=dict)
    message: str = ""
    message_is_error: bool = False
    server_text: str = "not checked"
    server_ok: bool | None = None
    server_proc: subprocess.Popen | None = None
    server_log: str = ""
    server_address: str | None = None
    server_started: float = 0.0


SESSION = Session()


def set_message(text: str, error: bool = False) -> None:
    """Show one line in the panel (and on the console for errors from timers)."""
    SESSION.message, SESSION.message_is_error = text, error
    if error:
        print(f"FoleySpace: {text}", file=sys.stderr)
    redraw()


def redraw() -> None:
    """Ask Sequencer areas to redraw (the panel shows timer-made changes)."""
    wm = getattr(bpy.context, "window_manager", None)
    for window in getattr(wm, "windows", ()) or ():
        for area in window.screen.areas:
            if area.type == "SEQUENCE_EDITOR":
                area.tag_redraw()


def one_line(exc: BaseException) -> str:
    """An exception as one line of text."""
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text if len(text) <= 300 else text[:297] + "..."


# ------------------------------------------------------------------------- describing a strip
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
        audio = None if _same_file(media, video) else media
        audio_start = start if audio is not None else 0.0  # the sound file shares the video's timeline
        kind = "sound"
    else:
        raise PlacementError(f"strip {strip.name!r} is a {strip.type.lower()} strip; choose a movie or sound strip")
    for path, what in ((video, "video"), (audio, "sound")):
        if path and not os.path.isfile(path):
            raise PlacementError(f"the {what} file is missing: {path}")
    return Source(kind, video, audio, audio_start, start, end, span, media, compat.content_start(strip))


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def output_folder(setting: str) -> str:
    """The stem folder: ``setting`` made absolute (``//`` = next to the .blend), created.

    With an unsaved .blend a ``//`` path has no anchor; the temp folder is used instead.
    """
    setting = setting.strip() or "//foleyspace_stems"
    if setting.startswith("//") and not bpy.data.filepath:
        path = os.path.join(tempfile.gettempdir(), setting[2:].strip("/\\") or "foleyspace_stems")
    else:
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


# ------------------------------------------------------------------------- server connection
def client(address: str | None) -> Client:
    """The session's client for ``address`` (blank: ``FOLEYSPACE_SERVER``, server.json, default)."""
    address = address or None
    current = SESSION.client
    if current is not None and (address is None or current.address == address):
        return current
    if current is not None:
        if SESSION.jobs:
            raise PlacementError(f"jobs are running on {current.address}; wait for them before changing the address")
        current.close()
    SESSION.client = Client(address, timeout=UI_TIMEOUT_S, retries=2)
    return SESSION.client


@contextmanager
def quick(c: Client) -> Iterator[Client]:
    """Use ``c`` with :data:`QUICK_TIMEOUT_S` and no retry for the requests in the block."""
    saved = c.timeout, c.retries
    c.timeout, c.retries = QUICK_TIMEOUT_S, 1
    try:
        yield c
    finally:
        c.timeout, c.retries = saved


def check_server(address: str | None, timeout_s: float = 0.5) -> bool:
    """Ask the server for ``hello``; update the panel's server line. Blocks at most ``timeout_s``."""
    probe = Client(address or None, timeout=timeout_s, retries=1)
    try:
        hello = probe.hello()
    except ClientError as exc:
        SESSION.server_ok = False
        SESSION.server_text = ("no server at " + probe.address) if isinstance(exc, ServerUnavailable) \
            else f"{probe.address}: {one_line(exc)}"
        return False
    finally:
        probe.close()
        redraw()
    SESSION.server_ok = True
    SESSION.server_text = (f"FoleySpace {hello.get('version', '?')} at {probe.address}, "
                           f"{hello.get('workers', '?')} worker(s), device {hello.get('device', '?')}")
    return True


def start_server(command: str, address: str | None) -> subprocess.Popen:
    """Launch the configured server command in the background; :func:`wait_for_server` follows it.

    ``--bind ADDRESS`` is appended when an address is configured and the command names none.
    Raises :class:`PlacementError` when the command cannot be run.
    """
    try:
        argv = shlex.split(command, posix=os.name != "nt")
    except ValueError as exc:
        raise PlacementError(f"server command {command!r}: {exc}") from exc
    if not argv:
        raise PlacementError("the server start command is empty; set it in the add-on preferences")
    if address and "--bind" not in argv:
        argv += ["--bind", address]
    log_path = os.path.join(tempfile.gettempdir(), "foleyspace-server.log")
    kwargs: dict[str, Any] = {}
    if os.name == "nt":
        kwargs["creationflags"] = (getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)
                                   | getattr(subprocess, "DETACHED_PROCESS", 0))
    else:
        kwargs["start_new_session"] = True  # survives Blender's Ctrl-C; ends with `shutdown`
    try:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, **kwargs)
    except OSError as exc:
        raise PlacementError(f"cannot run {argv[0]!r}: {exc.strerror or exc}; set the server command in the "
                             "add-on preferences") from exc
    SESSION.server_proc, SESSION.server_log = proc, log_path
    SESSION.server_address, SESSION.server_started = address or None, time.monotonic()
    SESSION.server_ok, SESSION.server_text = None, f"starting: {' '.join(argv)}"
    if not bpy.app.timers.is_registered(wait_for_server):
        bpy.app.timers.register(wait_for_server, first_interval=0.5, persistent=True)
    return proc


def _log_tail(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 2000))
            lines = [ln for ln in fh.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def wait_for_server() -> float | None:
    """Timer: follow a server started by :func:`start_server` until it answers, exits or times out."""
    proc = SESSION.server_proc
    if proc is None:
        return None
    try:
        if check_server(SESSION.server_address, timeout_s=0.3):
            set_message("server started")
            return None
        code = proc.poll()
        if code is not None:
            SESSION.server_ok = False
            SESSION.server_text = f"the server exited with status {code}"
            tail = _log_tail(SESSION.server_log)
            set_message(f"the server exited with status {code}" + (f": {tail}" if tail else "")
                        + f" (log: {SESSION.server_log})", error=True)
            return None
        if time.monotonic() - SESSION.server_started > START_TIMEOUT_S:
            set_message(f"the server did not answer within {START_TIMEOUT_S:.0f} s (log: {SESSION.server_log})",
                        error=True)
            return None
    except Exception as exc:  # noqa: BLE001 - a timer must never raise: Blender would drop it
        set_message(f"server start: {one_line(exc)}", error=True)
        return None
    return 0.5


# ------------------------------------------------------------------------- submitting
def submit(scene: Any, strip: Any, settings: Any, prefs: Any) -> Job:
    """Describe ``strip``, submit its job and start the polling timer. Raises on failure.

    Errors are :class:`PlacementError` (the strip) or :class:`ClientError` (the server).
    """
    source = describe(scene, strip)
    folder = output_folder(prefs.output_dir)
    taken = {j.stem for j in SESSION.jobs.values()}
    name = stem_file_name(strip.name, source.span.left, source.span.right,
                          lambda n: os.path.exists(os.path.join(folder, n)) or os.path.join(folder, n) in taken)
    spec = job_spec(source, folder, name, settings)
    c = client(prefs.server_address.strip())
    with quick(c):
        c.request("ping")  # fail fast when no server runs
    job_id = c.submit(spec)
    job = Job(job_id, scene.name, strip.name, source, os.path.join(folder, name), bool(prefs.mute_original))
    SESSION.jobs[job_id] = job
    SESSION.server_ok = True
    ensure_timer()
    set_message(f"{strip.name}: job {job_id} queued ({source.start_s:.2f}–{source.end_s:.2f} s)")
    return job


def ensure_timer() -> None:
    """Register :func:`poll_jobs` unless it already is."""
    if not bpy.app.timers.is_registered(poll_jobs):
        bpy.app.timers.register(poll_jobs, first_interval=POLL_INTERVAL_S, persistent=True)


def cancel(job_id: str | None) -> list[str]:
    """Ask the server to cancel one job (or all of this session's); returns the ids asked."""
    ids = [job_id] if job_id else list(SESSION.jobs)
    asked = []
    for jid in ids:
        job = SESSION.jobs.get(jid)
        if job is None:
            continue
        assert SESSION.client is not None
        reply = SESSION.client.cancel(jid)
        job.cancelling, job.progress = True, "cancelling"
        asked.append(jid)
        if reply.get("state") == "cancelled":
            _end(job, f"{job.strip}: cancelled")
    return asked


# ------------------------------------------------------------------------- polling
def poll_jobs() -> float | None:
    """Timer: take the jobs' events, place finished stems. Returns the next interval, or None
    (which unregisters the timer) when no job is left. Never raises."""
    try:
        _poll_once()
    except Exception as exc:  # noqa: BLE001 - a timer must never raise
        set_message(f"polling failed: {one_line(exc)}", error=True)
    if not SESSION.jobs:
        return None
    return POLL_INTERVAL_S


def _poll_once() -> None:
    c = SESSION.client
    if c is None or not SESSION.jobs:
        return
    for event in c.poll_events(0):
        job = SESSION.jobs.get(str(event.get("job")))
        if job is not None:
            job.last_heard = time.monotonic()
            job.next_status = job.last_heard + STATUS_EVERY_S
            _on_event(job, event)
    now = time.monotonic()
    for job in list(SESSION.jobs.values()):
        if now < job.next_status:
            continue
        job.next_status = now + STATUS_EVERY_S  # also after a failed attempt: at most one stall per period
        try:
            with quick(c):
                status = c.status(job.id, watch=True)
        except ServerUnavailable:
            if now - job.last_heard > GIVE_UP_AFTER_S:
                _end(job, f"{job.strip}: the server stopped answering for {GIVE_UP_AFTER_S:.0f} s; "
                          f"job {job.id} given up", error=True)
            continue
        except ClientError as exc:
            _end(job, f"{job.strip}: {one_line(exc)}", error=True)
            continue
        job.last_heard = time.monotonic()
        state = status.get("state")
        if state in ("done", "failed", "cancelled"):
            _on_event(job, {"event": state, "job": job.id, "result": status.get("result"),
                            "error": status.get("error")})
        elif state == "running" and isinstance(status.get("progress"), dict):
            _on_event(job, {"event": "progress", "job": job.id, **status["progress"]})


def _on_event(job: Job, event: dict[str, Any]) -> None:
    kind = event.get("event")
    if job.id not in SESSION.jobs:
        return  # already ended (an event and a status can both report the end)
    if kind == "progress":
        fraction = event.get("fraction")
        stage = str(event.get("stage", "?"))
        job.progress = f"{stage} {fraction:.0%}" if isinstance(fraction, (int, float)) else stage
        redraw()
    elif kind == "done":
        result = event.get("result") or {}
        try:
            strip = place_stem(job, str(result.get("stem") or job.stem))
        except PlacementError as exc:
            _end(job, f"{job.strip}: {one_line(exc)}", error=True)
        else:
            _end(job, f"{job.strip}: stem placed as {strip.name!r} on channel {strip.channel}")
    elif kind == "failed":
        error = event.get("error") or {}
        _end(job, f"{job.strip}: the server failed the job: {error.get('message', error.get('code', 'unknown error'))}",
             error=True)
    elif kind == "cancelled":
        _end(job, f"{job.strip}: cancelled")


def _end(job: Job, message: str, error: bool = False) -> None:
    SESSION.jobs.pop(job.id, None)
    set_message(message, error)


# ------------------------------------------------------------------------- placing
def place_stem(job: Job, stem: str) -> Any:
    """Add the stem as a stereo, unpanned sound strip under the source strip's visible range.

    If the source strip still shows the same source range (it may have been moved since the
    job was submitted) the stem follows it; otherwise it goes where the strip was. The stem
    lands on the lowest free channel above the source strip, and its handles are set to the
    range exactly (Blender rounds a sound's length to whole frames).
    """
    scene = bpy.data.scenes.get(job.scene)
    if scene is None or compat.editor(scene) is None:
        raise PlacementError(f"scene {job.scene!r} is gone; the stem is at {stem}")
    if not os.path.isfile(stem):
        raise PlacementError(f"the server reported a stem that is not here: {stem}")
    ed = compat.editor(scene)
    strips = compat.top_strips(ed)
    span, note = job.source.span, ""
    current = strips.get(job.strip)
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
    name = f"{job.strip[:48]} binaural"
    try:
        new = strips.new_sound(name, stem, channel, span.left)
    except (RuntimeError, TypeError) as exc:
        raise PlacementError(f"Blender could not add {stem}: {one_line(exc)}") from exc
    if new.sound is not None:
        new.sound.use_mono = False  # a binaural stem is stereo; SoundStrip.pan only acts on mono
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
        _mute_original(strips, job, span, new)
    if note:
        print(f"FoleySpace: {job.strip}{note}")
    return new


def _mute_original(strips: Any, job: Job, span: Span, placed: Any) -> None:
    """Mute the source's own sound: the sound strip itself, or the movie's sound strips (the same
    file, in sync with the movie: same content start, overlapping the range)."""
    movie = strips.get(job.strip)
    start = compat.content_start(movie) if movie is not None else job.source.content_start
    for s in strips:
        if s == placed or s.type != "SOUND":
            continue
        if job.source.kind == "sound":
            if s.name == job.strip:
                s.mute = True
        elif (compat.span(s).overlaps(span.left, span.right) and abs(compat.content_start(s) - start) < 0.5
              and _same_file(compat.strip_media_path(s), job.source.media)):
            s.mute = True


def shutdown() -> None:
    """Forget the session (on unregister): close the client, keep a started server running."""
    for fn in (poll_jobs, wait_for_server):
        if bpy.app.timers.is_registered(fn):
            bpy.app.timers.unregister(fn)
    if SESSION.client is not None:
        SESSION.client.close()
    SESSION.client = None
    SESSION.jobs.clear()
