"""A background thread that talks to the server for the UI timer, so a tick never waits.

The UI timer (:func:`.jobs.poll_jobs`) never sends a request: it hands commands to the
:class:`Poller` (``watch``, ``forget``, ``cancel``) and takes its answers from a queue without
waiting. The thread owns its own :class:`Client` (ZeroMQ sockets must not be shared between
threads) and never touches ``bpy``. A dead or hung server therefore only slows the thread:
each request waits at most :data:`REQUEST_TIMEOUT_S`, and after one request finds no server the
rest of that round is skipped.

Answers (``Poller.answers``), each a tuple:

* ``("event", event)`` — an event the server pushed (``progress``, ``done``, …);
* ``("status", job_id, reply)`` — a ``status`` reply;
* ``("cancel", job_id, reply)`` — a ``cancel`` reply;
* ``("unavailable", job_id, message)`` — no server answered a request about the job;
* ``("error", job_id, code, message)`` — the server refused a request about the job.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from .server import Client, ClientError, ServerUnavailable

log = logging.getLogger(__name__)

#: Seconds the thread waits for one reply (one attempt, no resend).
REQUEST_TIMEOUT_S = 1.0
#: Seconds between two status requests for a job.
STATUS_EVERY_S = 1.0
#: Seconds the thread waits for pushed events when it has nothing else to do.
IDLE_WAIT_S = 0.1


class Poller(threading.Thread):
    """Status polling and cancels for the jobs of one server address, off the UI thread."""

    def __init__(self, address: str | None) -> None:
        super().__init__(name="FoleySpace poller", daemon=True)
        self.address = address
        self.commands: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self.answers: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._stop_event = threading.Event()
        self._watched: dict[str, float] = {}  # job id -> monotonic time of its next status request

    # ---------------------------------------------------------------- UI side (never blocks)
    def watch(self, job_id: str) -> None:
        self.commands.put(("watch", job_id))

    def forget(self, job_id: str) -> None:
        self.commands.put(("forget", job_id))

    def cancel(self, job_id: str) -> None:
        self.commands.put(("cancel", job_id))

    def stop(self) -> None:
        """Ask the thread to end (it closes its client); does not wait for it."""
        self._stop_event.set()
        self.commands.put(("stop", ""))

    def take(self) -> list[tuple[Any, ...]]:
        """Every answer so far, without waiting."""
        out = []
        while True:
            try:
                out.append(self.answers.get_nowait())
            except queue.Empty:
                return out

    # ---------------------------------------------------------------- the thread
    def run(self) -> None:
        try:
            client = Client(self.address, timeout=REQUEST_TIMEOUT_S, retries=1)
        except Exception as exc:  # noqa: BLE001 - reported to the UI, never raised in a thread
            log.error("FoleySpace poller: cannot make a client: %s", exc)
            self.answers.put(("unavailable", "*", str(exc)))
            return
        try:
            while not self._stop_event.is_set():
                self._round(client)
        except Exception as exc:  # noqa: BLE001 - a thread must not die silently
            log.exception("FoleySpace poller stopped")
            self.answers.put(("unavailable", "*", f"the poller stopped: {exc}"))
        finally:
            client.close()

    def _round(self, client: Client) -> None:
        cancels = self._take_commands()
        for i, job_id in enumerate(cancels):
            if not self._ask(client, "cancel", job_id, lambda j: client.cancel(j)):
                for other in cancels[i + 1:]:  # no server now: do not wait once per job
                    self.answers.put(("unavailable", other, "skipped: no server answered"))
                break
        for event in client.poll_events(IDLE_WAIT_S if not cancels else 0.0):
            self.answers.put(("event", event))
        now = time.monotonic()
        for job_id, due in list(self._watched.items()):
            if self._stop_event.is_set() or due > now or job_id not in self._watched:
                continue
            self._watched[job_id] = time.monotonic() + STATUS_EVERY_S
            if not self._ask(client, "status", job_id, lambda j: client.status(j, watch=True)):
                for other in self._watched:  # no server now: do not wait once per job
                    self._watched[other] = max(self._watched[other], time.monotonic() + STATUS_EVERY_S)
                    if other != job_id:
                        self.answers.put(("unavailable", other, "skipped: no server answered"))
                break

    def _take_commands(self) -> list[str]:
        cancels = []
        while True:
            try:
                kind, job_id = self.commands.get_nowait()
            except queue.Empty:
                return cancels
            if kind == "watch":
                self._watched.setdefault(job_id, time.monotonic())
            elif kind == "forget":
                self._watched.pop(job_id, None)
            elif kind == "cancel":
                cancels.append(job_id)

    def _ask(self, client: Client, kind: str, job_id: str, request: Any) -> bool:
        """One request; its answer goes to the queue. False when no server answered."""
        try:
            reply = request(job_id)
        except ServerUnavailable as exc:
            self.answers.put(("unavailable", job_id, str(exc)))
            return False
        except ClientError as exc:
            self.answers.put(("error", job_id, exc.code, str(exc)))
            return True
        self.answers.put((kind, job_id, reply))
        return True
