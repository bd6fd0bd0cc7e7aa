"""Jobs of the open .blend: submit a strip, follow it from a timer, cancel, re-adopt on load.

The timer :func:`poll_jobs` never waits for the server: it drains the events that arrived at
the session's client (a zero-wait poll) and the answers of the :class:`.poller.Poller` thread,
which does the status requests and cancels. A tick costs well under a millisecond plus the
time to place a finished stem, whatever the server does.

A job is bound to the file it was submitted from (``StripJob.blend``, see :mod:`.binding`) and
to its strip's stable identity; it is placed only while that file is open. The open file's
pending jobs are stored in the file (:func:`.binding.write_stores`), so they survive a restart.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import bpy

from . import backends, binding, boxes, messages
from .placement import PlacementError, stem_file_name
from .poller import Poller
from .server import ClientError, ServerUnavailable, client, quick
from .session import Session, one_line, redraw
from .source import Source, describe, job_spec, keyframes_of, output_folder
from .stems import check_room, place_stem

log = logging.getLogger(__name__)

#: Seconds between timer ticks while jobs run.
POLL_INTERVAL_S = 0.25
#: A job whose server does not answer for this long is given up.
GIVE_UP_AFTER_S = 60.0
#: Custom property of a placed stem strip: the preview movie its job wrote (option Preview).
PREVIEW_PROP = "foleyspace_preview"
#: Terminal states of a job on the server.
ENDED = ("done", "failed", "cancelled")


@dataclass
class StripJob:
    """A job submitted for one strip of one .blend, remembered until its stem is placed or it ends."""

    id: str
    scene: str
    strip: str  # the strip's name at submit (for messages; the strip is found by ``strip_id``)
    source: Source
    stem: str
    mute: bool
    strip_id: str = ""
    blend: str = ""  # the file key (binding.file_key) of the .blend it belongs to
    progress: str = "queued"
    last_heard: float = field(default_factory=time.monotonic)
    cancelling: bool = False
    preview: bool = False  # the job also writes <stem>.preview.mp4 (option Preview)


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
    box_fields, left_out = boxes.spec_fields(keyframes_of(strip), source.start_s,
                                             None if source.speed == 0 else source.end_s)
    if box_fields and settings.localizer != "auto":  # the server refuses another localizer with a box
        raise PlacementError(f"strip {strip.name!r} has box keyframes, which the seeded tracker follows: set "
                             f"Localizer to Auto in the FoleySpace panel (it follows the boxes), or remove the "
                             f"strip's box keyframes")
    refused = backends.refusal(settings)
    if refused:  # the server refuses it too, but only after the ping and hello
        raise PlacementError(refused)
    spec = job_spec(source, folder, name, settings, box_fields)
    c = client(s, prefs.server_address.strip())
    chosen = {k: v for k, v in spec["options"].items() if k in backends.KINDS and v != "auto"}
    with quick(c):
        c.request("ping")  # fail fast when no server runs
    if chosen:  # a model named: does this server have it? (nothing is rendered when it has not)
        s.capabilities = backends.capabilities(c.request("hello"))
    refusal = backends.unavailable(chosen, s.capabilities) if chosen else None
    if refusal:
        raise PlacementError(refusal)
    try:
        job_id = c.submit(spec)
    except ServerUnavailable:
        raise
    except ClientError as exc:  # a refused spec names its field: say it in the panel's terms
        raise ClientError(exc.code, f"the server refused the job: {messages.for_blender(str(exc))}") from None
    s.file_key = s.file_key or binding.file_key()
    job = StripJob(job_id, scene.name, strip.name, source, os.path.join(folder, name), bool(prefs.mute_original),
                   strip_id=binding.strip_identity(strip), blend=s.file_key,
                   preview=bool(spec["options"].get("preview")))
    s.jobs[job_id] = job
    binding.write_stores(list(s.jobs.values()))
    s.server_ok = True
    _follow(s, job)
    n_boxes = len(spec.get("more_boxes") or ()) + (1 if "box" in spec else 0)
    extra = f", {n_boxes} box keyframe(s)" if n_boxes else ""
    if left_out:
        extra += f"; {left_out} box keyframe(s) outside the strip not sent"
    s.set_message(f"{strip.name}: job {job_id} queued ({source.start_s:.2f}–{source.end_s:.2f} s{extra})")
    return job


def _poller(s: Session) -> Poller:
    """The session's poller thread for the client's address (made and started on first use)."""
    address = s.client.address if s.client is not None else None
    if s.poller is None or not s.poller.is_alive() or s.poller.address != address:
        if s.poller is not None:
            s.poller.stop()
        s.poller = Poller(address)
        s.poller.start()
        for job in s.jobs.values():
            s.poller.watch(job.id)
    return s.poller


def _follow(s: Session, job: StripJob) -> None:
    job.last_heard = time.monotonic()
    _poller(s).watch(job.id)
    s.start_timer(poll_jobs, first_interval=POLL_INTERVAL_S)


def cancel(s: Session, job_id: str | None) -> list[str]:
    """Ask the server to cancel one job (or all of the open file's); returns the ids asked.

    Never waits: the poller thread sends the cancels and the timer takes the answers. A job
    whose server does not answer the cancel is dropped here.
    """
    ids = [job_id] if job_id else list(s.jobs)
    asked = []
    for jid in ids:
        job = s.jobs.get(jid)
        if job is None:
            continue
        _poller(s).cancel(jid)
        job.cancelling, job.progress = True, "cancelling"
        asked.append(jid)
    if asked:
        s.start_timer(poll_jobs, first_interval=POLL_INTERVAL_S)
    redraw()
    return asked


# ------------------------------------------------------------------------- polling
def poll_jobs(s: Session) -> float | None:
    """Timer: take what arrived from the server, place finished stems. Returns the next interval,
    or None (which unregisters the timer) when no job of the open file is left. Never raises,
    never waits for the server."""
    try:
        _poll_once(s)
    except Exception as exc:  # noqa: BLE001 - a timer must never raise
        s.set_message(f"polling failed: {one_line(exc)}", error=True)
    if not s.jobs:
        return None
    return POLL_INTERVAL_S


def _poll_once(s: Session) -> None:
    if not s.jobs:
        return
    if s.client is not None:  # events pushed to the client that submitted (a zero-wait poll)
        for event in s.client.poll_events(0):
            _heard_event(s, event)
    if s.poller is not None:
        for answer in s.poller.take():
            _on_answer(s, answer)
    now = time.monotonic()
    for job in list(s.jobs.values()):
        if now - job.last_heard > GIVE_UP_AFTER_S and job.cancelling:
            _end(s, job, f"{_name(job)}: cancelled here; the server did not answer (it may still write the stem)")
        elif now - job.last_heard > GIVE_UP_AFTER_S:
            _end(s, job, f"{_name(job)}: the FoleySpace server stopped answering {GIVE_UP_AFTER_S:.0f} s ago; "
                         f"job {job.id} given up (start the server, then spatialize the strip again)", error=True)


def _heard_event(s: Session, event: dict[str, Any]) -> None:
    job = s.jobs.get(str(event.get("job")))
    if job is not None:
        job.last_heard = time.monotonic()
        _on_event(s, job, event)


def _on_answer(s: Session, answer: tuple[Any, ...]) -> None:
    kind = answer[0]
    if kind == "event":
        _heard_event(s, answer[1])
        return
    job_id = str(answer[1])
    jobs = list(s.jobs.values()) if job_id == "*" else [s.jobs[job_id]] if job_id in s.jobs else []
    for job in jobs:
        if kind == "unavailable":
            if job.cancelling:
                _end(s, job, f"{_name(job)}: cancelled here; the server did not answer (it may still write the stem)")
        elif kind == "error":
            _end(s, job, f"{_name(job)}: {messages.for_blender(answer[3])}", error=True)
        elif kind in ("status", "cancel"):
            job.last_heard = time.monotonic()
            reply = answer[2]
            state = reply.get("state")
            if state in ENDED:
                _on_event(s, job, {"event": state, "job": job.id, "result": reply.get("result"),
                                   "error": reply.get("error")})
            elif state == "running" and isinstance(reply.get("progress"), dict):
                _on_event(s, job, {"event": "progress", "job": job.id, **reply["progress"]})


def _on_event(s: Session, job: StripJob, event: dict[str, Any]) -> None:
    kind = event.get("event")
    if s.jobs.get(job.id) is not job:
        return  # already ended (an event and a status can both report the end)
    if job.blend != s.file_key:  # never place into another file
        park(s, job)
        return
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
            _end(s, job, f"{_name(job)}: {one_line(exc)}", error=True)
        else:
            _end(s, job, f"{_name(job)}: stem placed as {strip.name!r} on channel {strip.channel}"
                         f"{_preview_note(job, strip, result)}")
    elif kind == "failed":
        error = event.get("error") or {}
        text = messages.for_blender(str(error.get("message", error.get("code", "unknown error"))))
        _end(s, job, f"{_name(job)}: the server failed the job: {text}", error=True)
    elif kind == "cancelled":
        _end(s, job, f"{_name(job)}: cancelled")


def _preview_note(job: StripJob, stem_strip: Any, result: dict[str, Any]) -> str:
    """``"; Preview: <file>"`` when the job wrote a preview (also kept on the placed stem strip as
    its custom property ``foleyspace_preview``), a note when one was asked for and is missing."""
    if not job.preview:
        return ""
    path = result.get("preview")
    if not isinstance(path, str) or not path or not os.path.isfile(path):
        return "; no preview was written" + (f" ({path} is missing)" if isinstance(path, str) and path else "")
    try:
        stem_strip[PREVIEW_PROP] = bpy.path.relpath(path) if bpy.data.filepath else path
    except ValueError:  # another drive on Windows: keep it absolute
        stem_strip[PREVIEW_PROP] = path
    return f"; Preview: {path}"


def _name(job: StripJob) -> str:
    """The strip's name now (it may have been renamed since the submit)."""
    _, strip = binding.find_strip(job.strip_id, job.scene)
    return strip.name if strip is not None else job.strip


def _end(s: Session, job: StripJob, message: str, error: bool = False) -> None:
    s.jobs.pop(job.id, None)
    if s.poller is not None:
        s.poller.forget(job.id)
    try:
        binding.write_stores(list(s.jobs.values()))
    except (AttributeError, RuntimeError) as exc:  # a file being loaded: written again at save
        log.warning("FoleySpace: cannot update the job store: %s", exc)
    s.set_message(message, error)


# ------------------------------------------------------------------------- files
def park(s: Session, job: StripJob) -> None:
    """Keep a job of another file aside (not polled) until that file is open again."""
    s.jobs.pop(job.id, None)
    s.parked.setdefault(job.blend, {})[job.id] = job
    if s.poller is not None:
        s.poller.forget(job.id)


def on_load(s: Session, address: str) -> int:
    """A file was loaded: park the jobs of the previous file; adopt this file's stored jobs and
    those parked for it, and follow them on the server at ``address`` (blank: the default).
    Returns the number of jobs now followed."""
    s.file_key = binding.file_key(fresh_token=True)
    for job in list(s.jobs.values()):
        park(s, job)
    adopted = s.parked.pop(s.file_key, {})
    for kwargs in binding.stored_jobs():
        if kwargs["id"] not in adopted:
            adopted[kwargs["id"]] = StripJob(**kwargs)
    for job in adopted.values():
        job.blend, job.cancelling, job.progress = s.file_key, False, "waiting for the server"
        s.jobs[job.id] = job
    if s.jobs:
        try:
            client(s, address)
        except (ClientError, PlacementError, OSError) as exc:
            s.set_message(f"cannot follow the file's FoleySpace jobs: {one_line(exc)}", error=True)
            return 0
        for job in s.jobs.values():
            _follow(s, job)
        s.set_message(f"following {len(s.jobs)} FoleySpace job(s) of this file")
    return len(s.jobs)


def on_save(s: Session) -> None:
    """Before a save: store the open file's pending jobs in it."""
    binding.write_stores(list(s.jobs.values()))


def after_save(s: Session) -> None:
    """After a save (maybe to a new path): the open file's jobs belong to its new key."""
    s.file_key = binding.file_key(previous=s.file_key)
    for job in s.jobs.values():
        job.blend = s.file_key
