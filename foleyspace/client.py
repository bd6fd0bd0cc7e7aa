"""Thin client for the FoleySpace server: pyzmq + msgpack + the standard library only.

It imports inside Blender's and Resolve's Python (no numpy, no torch); it imports its two
siblings (``home``, ``protocol``) relatively, so the three files can be vendored as a package
of their own (the Blender extension does). Requests use the Lazy
Pirate pattern (zguide): send, poll with a timeout, on silence reconnect and resend a few times,
then give up with :class:`ServerUnavailable`. Job events (progress, done, failed, cancelled) are
pushed by the server to the client that submitted the job; :meth:`Client.poll_events` collects
them without blocking, for UI timers.

Example::

    with Client() as client:
        job = client.submit({"video": "/abs/clip.mov", "output_dir": "/abs/stems"})
        final = client.wait(job, timeout=600, on_event=print)
"""

from __future__ import annotations

import itertools
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import zmq

from .home import read_server_address, read_token, state_dir
from .protocol import DEFAULT_ADDRESS, TERMINAL_STATES, ProtocolError, pack, unpack


class ClientError(Exception):
    """A request the server answered with an error (``code``, one-line message)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ServerUnavailable(ClientError):
    """No server answered."""

    def __init__(self, message: str) -> None:
        super().__init__("unavailable", message)


class Client:
    """One connection to a server.

    Args:
        address: ``tcp://host:port``; default: ``FOLEYSPACE_SERVER``, else the address the last
            started server recorded in the state folder, else ``tcp://127.0.0.1:5571``.
        token: default: read from the state folder (``FOLEYSPACE_HOME``).
        timeout: seconds to wait for each reply attempt.
        retries: attempts before :class:`ServerUnavailable`.
    """

    def __init__(self, address: str | None = None, token: str | None = None, *, home: Path | None = None,
                 timeout: float = 3.0, retries: int = 3) -> None:
        home = home or state_dir()
        self._home = home
        self.address = address or os.environ.get("FOLEYSPACE_SERVER") or read_server_address(home) or DEFAULT_ADDRESS
        self.token = token or read_token(home) or ""
        self.timeout = timeout
        self.retries = max(1, retries)
        self._ctx = zmq.Context()
        self._identity = os.urandom(12)
        self._ids = itertools.count(1)
        self._submits = itertools.count(1)
        self._events: deque[dict[str, Any]] = deque()
        self._socket: zmq.Socket | None = None
        self._connect()

    # ---------------------------------------------------------------- connection
    def _connect(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTING_ID, self._identity)  # same identity across reconnects keeps event routing
        sock.connect(self.address)
        self._socket = sock

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        self._ctx.term()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _receive(self, wait_s: float) -> dict[str, Any] | None:
        assert self._socket is not None
        if not self._socket.poll(int(wait_s * 1000), zmq.POLLIN):
            return None
        try:
            return unpack(self._socket.recv(zmq.NOBLOCK))
        except (ProtocolError, zmq.Again):
            return None

    # ---------------------------------------------------------------- requests
    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return the reply body; raise :class:`ClientError` if it failed."""
        rid = next(self._ids)
        if not self.token:  # a server started after this client was made writes the token late
            self.token = read_token(self._home) or ""
        payload = pack({"op": op, "id": rid, "token": self.token, **fields})
        for attempt in range(self.retries):
            assert self._socket is not None
            self._socket.send(payload)
            deadline = time.monotonic() + self.timeout
            while (left := deadline - time.monotonic()) > 0:
                message = self._receive(left)
                if message is None:
                    continue
                if "event" in message and "re" not in message:
                    self._events.append(message)
                    continue
                if message.get("re") not in (rid, None):
                    continue  # a late answer to an earlier attempt
                if not message.get("ok"):
                    error = message.get("error") or {}
                    raise ClientError(str(error.get("code", "error")), str(error.get("message", "request failed")))
                return message
            self._connect()  # Lazy Pirate: the socket may be wedged; reconnect and resend
        raise ServerUnavailable(f"no FoleySpace server answers at {self.address} "
                                f"(waited {self.timeout * self.retries:.0f} s); start one with `foleyspace serve`")

    def hello(self) -> dict[str, Any]:
        return self.request("hello")

    def ping(self) -> bool:
        """True if a server answers (never raises)."""
        try:
            self.request("ping")
            return True
        except ClientError:
            return False

    def submit(self, spec: dict[str, Any]) -> str:
        """Queue a job; returns its id. Its events then arrive at this client.

        The request carries a key unique to this submit, so a resend (Lazy Pirate) whose first
        copy did reach the server returns the same job instead of queueing a second one.
        """
        key = f"{self._identity.hex()}:{next(self._submits)}"
        return str(self.request("submit", spec=spec, key=key)["job"])

    def status(self, job: str, watch: bool = False) -> dict[str, Any]:
        """The job's state (and progress while running); ``watch`` also subscribes to its events."""
        return self.request("status", job=job, watch=watch)

    def result(self, job: str) -> dict[str, Any]:
        return self.request("result", job=job)["result"]

    def cancel(self, job: str) -> dict[str, Any]:
        return self.request("cancel", job=job)

    def jobs(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.request("list", limit=limit)["jobs"]

    def shutdown(self) -> None:
        self.request("shutdown")

    # ---------------------------------------------------------------- events
    def poll_events(self, wait_s: float = 0.0) -> list[dict[str, Any]]:
        """Events received so far (waits at most ``wait_s`` for the first); never blocks longer."""
        message = self._receive(wait_s) if not self._events else None
        while message is not None:
            if "event" in message and "re" not in message:
                self._events.append(message)
            message = self._receive(0)
        events = list(self._events)
        self._events.clear()
        return events

    def run_batch(self, specs: Sequence[dict[str, Any]], timeout: float | None = None,
                  on_event: Callable[[int, dict[str, Any]], None] | None = None,
                  before_wait: Callable[[int, str], None] | None = None,
                  on_end: Callable[[int, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        """Submit every spec, then wait for each job in turn; one outcome per spec, in order.

        An outcome is a final status (``state`` done/failed/cancelled, with ``result`` or
        ``error``) or, when the job did not run to an end here, ``{"state": ..., "error": {code,
        message}}`` with state ``refused`` (the server rejected the spec), ``unsent`` (no server
        answered; later specs are not tried), ``timeout`` (no end within ``timeout`` seconds per
        job; the job is cancelled), ``lost`` (a request failed while waiting) or ``abandoned``
        (not waited for: the server went away earlier — a submit found no server, or it stayed
        away after a failed wait). ``on_event(index, event)``
        gets each job's events, ``before_wait(index, job)`` is called before waiting for it and
        ``on_end(index, outcome)`` as soon as its outcome is known.
        """
        outcomes: list[dict[str, Any] | None] = [None] * len(specs)
        gone: str | None = None

        def settle(i: int, outcome: dict[str, Any]) -> None:
            outcomes[i] = outcome
            if on_end is not None:
                on_end(i, outcome)

        jobs: list[tuple[int, str]] = []
        for i, spec in enumerate(specs):
            try:
                jobs.append((i, self.submit(spec)))
            except ServerUnavailable as exc:
                for j in range(i, len(specs)):
                    settle(j, {"job": None, "state": "unsent", "error": {"code": exc.code, "message": str(exc)}})
                gone = f"the server went away: {exc}"  # the jobs it did take are not waited for
                break
            except ClientError as exc:
                settle(i, {"job": None, "state": "refused", "error": {"code": exc.code, "message": str(exc)}})
        for i, job in jobs:
            if gone is not None:
                settle(i, {"job": job, "state": "abandoned", "error": {"code": "unavailable", "message": gone}})
                continue
            if before_wait is not None:
                before_wait(i, job)
            try:
                forward = None if on_event is None else (lambda event, i=i: on_event(i, event))
                final = self.wait(job, timeout=timeout, on_event=forward)
            except TimeoutError as exc:
                try:
                    self.cancel(job)
                except ClientError:
                    pass
                settle(i, {"job": job, "state": "timeout", "error": {"code": "timeout", "message": str(exc)}})
            except ClientError as exc:
                settle(i, {"job": job, "state": "lost", "error": {"code": exc.code, "message": str(exc)}})
                if isinstance(exc, ServerUnavailable) and not self.ping():
                    gone = f"the server went away: {exc}"
            else:
                settle(i, final)
        assert all(o is not None for o in outcomes)
        return outcomes  # type: ignore[return-value]

    def wait(self, job: str, timeout: float | None = None,
             on_event: Callable[[dict[str, Any]], None] | None = None, status_every_s: float = 2.0) -> dict[str, Any]:
        """Block until ``job`` ends; returns its final status (``state`` is done/failed/cancelled).

        Events are passed to ``on_event``. The status is also polled every ``status_every_s``, so a
        job still finishes here if events were lost (e.g. the server restarted meanwhile).
        Raises ``TimeoutError`` after ``timeout`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        next_status = time.monotonic()
        others: list[dict[str, Any]] = []  # other jobs' events stay for poll_events()
        try:
            while True:
                for event in self.poll_events(0.2):
                    if event.get("job") != job:
                        others.append(event)
                        continue
                    if on_event is not None:
                        on_event(event)
                    if event.get("event") in TERMINAL_STATES:
                        return self.status(job)
                if time.monotonic() >= next_status:
                    status = self.status(job, watch=True)
                    if status["state"] in TERMINAL_STATES:
                        return status
                    next_status = time.monotonic() + status_every_s
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"job {job} did not finish within {timeout:.0f} s")
        finally:
            self._events.extendleft(reversed(others))
