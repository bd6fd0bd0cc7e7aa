"""Jobs of this Blender session: submit a strip, poll its events from a timer, cancel.

Nothing here blocks the UI for long: requests use short Lazy-Pirate timeouts, and the job's
events are collected by :func:`poll_jobs`, a plain function that the session registers with
``bpy.app.timers`` (bound to it; tests call it directly: bpy as a module has no event loop).
Strips are remembered by scene and strip *name*, never by Python reference, because
references die with undo and file loads.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from .placement import PlacementError, stem_file_name
from .server import ClientError, ServerUnavailable, client, quick
from .session import Session, one_line, redraw
from .source import Source, describe, job_spec, output_folder
from .stems import check_room, place_stem

#: Seconds between timer ticks while jobs run.
POLL_INTERVAL_S = 0.25
#: A job without events for this long is asked for its status (events may be lost on reconnects).
STATUS_EVERY_S = 2.0
#: A job whose server does not answer for this long is given up.
GIVE_UP_AFTER_S = 60.0


@dataclass
class StripJob:
    """A job submitted for one strip, remembered until its stem is placed or it ends otherwise."""

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


# ------------------------------------------------------------------------- submitting
def submit(s: Session, scene: Any, strip: Any, settings: Any, prefs: Any) -> StripJob:
    """Describe ``strip``, submit its job and start the polling timer. Raises on failure.

    Errors are :class:`PlacementError` (the strip) or :class:`ClientError` (the server).
    """
    source = describe(scene, strip)
    check_room(scene, source)  # a stem that cannot be placed would be rendered for nothing
    folder = output_folder(prefs.output_dir)
    taken = {j.stem for j in s.jobs.values()}
    name = stem_file_name(strip.name, source.span.left, source.span.right,
                          lambda n: os.path.exists(os.path.join(folder, n)) or os.path.join(folder, n) in taken)
    spec = job_spec(source, folder, name, settings)
    c = client(s, prefs.server_address.strip())
    with quick(c):
        c.request("ping")  # fail fast when no server runs
    job_id = c.submit(spec)
    job = StripJob(job_id, scene.name, strip.name, source, os.path.join(folder, name), bool(prefs.mute_original))
    s.jobs[job_id] = job
    s.server_ok = True
    s.start_timer(poll_jobs, first_interval=POLL_INTERVAL_S)
    s.set_message(f"{strip.name}: job {job_id} queued ({source.start_s:.2f}–{source.end_s:.2f} s)")
    return job


def cancel(s: Session, job_id: str | None) -> list[str]:
    """Ask the server to cancel one job (or all of this session's); returns the ids asked."""
    ids = [job_id] if job_id else list(s.jobs)
    asked = []
    for jid in ids:
        job = s.jobs.get(jid)
        if job is None:
            continue
        assert s.client is not None
        reply = s.client.cancel(jid)
        job.cancelling, job.progress = True, "cancelling"
        asked.append(jid)
        if reply.get("state") == "cancelled":
            _end(s, job, f"{job.strip}: cancelled")
    return asked


# ------------------------------------------------------------------------- polling
def poll_jobs(s: Session) -> float | None:
    """Timer: take the jobs' events, place finished stems. Returns the next interval, or None
    (which unregisters the timer) when no job is left. Never raises."""
    try:
        _poll_once(s)
    except Exception as exc:  # noqa: BLE001 - a timer must never raise
        s.set_message(f"polling failed: {one_line(exc)}", error=True)
    if not s.jobs:
        return None
    return POLL_INTERVAL_S


def _poll_once(s: Session) -> None:
    c = s.client
    if c is None or not s.jobs:
        return
    for event in c.poll_events(0):
        job = s.jobs.get(str(event.get("job")))
        if job is not None:
            job.last_heard = time.monotonic()
            job.next_status = job.last_heard + STATUS_EVERY_S
            _on_event(s, job, event)
    now = time.monotonic()
    for job in list(s.jobs.values()):
        if now < job.next_status:
            continue
        job.next_status = now + STATUS_EVERY_S  # also after a failed attempt: at most one stall per period
        try:
            with quick(c):
                status = c.status(job.id, watch=True)
        except ServerUnavailable:
            if now - job.last_heard > GIVE_UP_AFTER_S:
                _end(s, job, f"{job.strip}: the server stopped answering for {GIVE_UP_AFTER_S:.0f} s; "
                             f"job {job.id} given up", error=True)
            continue
        except ClientError as exc:
            _end(s, job, f"{job.strip}: {one_line(exc)}", error=True)
            continue
        job.last_heard = time.monotonic()
        state = status.get("state")
        if state in ("done", "failed", "cancelled"):
            _on_event(s, job, {"event": state, "job": job.id, "result": status.get("result"),
                               "error": status.get("error")})
        elif state == "running" and isinstance(status.get("progress"), dict):
            _on_event(s, job, {"event": "progress", "job": job.id, **status["progress"]})


def _on_event(s: Session, job: StripJob, event: dict[str, Any]) -> None:
    kind = event.get("event")
    if job.id not in s.jobs:
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
            _end(s, job, f"{job.strip}: {one_line(exc)}", error=True)
        else:
            _end(s, job, f"{job.strip}: stem placed as {strip.name!r} on channel {strip.channel}")
    elif kind == "failed":
        error = event.get("error") or {}
        _end(s, job, f"{job.strip}: the server failed the job: "
                     f"{error.get('message', error.get('code', 'unknown error'))}", error=True)
    elif kind == "cancelled":
        _end(s, job, f"{job.strip}: cancelled")


def _end(s: Session, job: StripJob, message: str, error: bool = False) -> None:
    s.jobs.pop(job.id, None)
    s.set_message(message, error)
