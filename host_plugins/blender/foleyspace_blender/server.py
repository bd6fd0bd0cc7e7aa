"""The server connection: the session's client, checking the server, starting it from Blender.

This module imports the vendored thin client (``.fsclient``); the other modules take
``Client``, ``ClientError`` and ``ServerUnavailable`` from here.

Nothing here blocks the UI for long: requests use short Lazy-Pirate timeouts (:func:`quick`
for the ones that must fail fast), and a server started by :func:`start_server` is followed by
the session timer :func:`wait_for_server` rather than waited for.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import backends
from .placement import PlacementError
from .session import Session, one_line, redraw

try:
    from .fsclient.client import Client, ClientError, ServerUnavailable
except ImportError as exc:  # the source folder without the vendored client, or no pyzmq/msgpack
    raise ImportError(f"FoleySpace add-on: the thin client cannot be imported ({exc}); "
                      "install the zip made by host_plugins/blender/build.py") from exc

#: Per-attempt timeout of requests made from the UI (submit, cancel); one retry.
UI_TIMEOUT_S = 0.75
#: Timeout of the ping before a submit and of the timer's status polls (no retry): a dead
#: server costs the UI this long, not ``2 * UI_TIMEOUT_S``.
QUICK_TIMEOUT_S = 0.3
#: How long "Start Server" waits for the new server to answer.
START_TIMEOUT_S = 120.0


def client(s: Session, address: str | None) -> Client:
    """The session's client for ``address`` (blank: ``FOLEYSPACE_SERVER``, server.json, default)."""
    address = address or None
    current = s.client
    if current is not None and (address is None or current.address == address):
        return current
    if current is not None:
        if s.jobs:
            raise PlacementError(f"jobs are running on {current.address}; wait for them before changing the address")
        current.close()
    s.client = Client(address, timeout=UI_TIMEOUT_S, retries=2)
    return s.client


@contextmanager
def quick(c: Client) -> Iterator[Client]:
    """Use ``c`` with :data:`QUICK_TIMEOUT_S` and no retry for the requests in the block."""
    saved = c.timeout, c.retries
    c.timeout, c.retries = QUICK_TIMEOUT_S, 1
    try:
        yield c
    finally:
        c.timeout, c.retries = saved


def check_server(s: Session, address: str | None, timeout_s: float = 0.5) -> bool:
    """Ask the server for ``hello``; update the panel's server line. Blocks at most ``timeout_s``."""
    probe = Client(address or None, timeout=timeout_s, retries=1)
    try:
        hello = probe.hello()
    except ClientError as exc:
        s.server_ok = False
        s.capabilities = {}  # what an earlier server had says nothing now
        s.server_text = ("no server at " + probe.address) if isinstance(exc, ServerUnavailable) \
            else f"{probe.address}: {one_line(exc)}"
        return False
    finally:
        probe.close()
        redraw()
    s.server_ok = True
    s.capabilities = backends.capabilities(hello)
    s.server_text = (f"FoleySpace {hello.get('version', '?')} at {probe.address}, "
                     f"{hello.get('workers', '?')} worker(s), device {hello.get('device', '?')}")
    return True


def start_server(s: Session, command: str, address: str | None) -> subprocess.Popen:
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
    s.server_proc, s.server_log = proc, log_path
    s.server_address, s.server_started = address or None, time.monotonic()
    s.server_ok, s.server_text = None, f"starting: {' '.join(argv)}"
    s.start_timer(wait_for_server, first_interval=0.5)
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


def wait_for_server(s: Session) -> float | None:
    """Timer: follow a server started by :func:`start_server` until it answers, exits or times out."""
    proc = s.server_proc
    if proc is None:
        return None
    try:
        if check_server(s, s.server_address, timeout_s=0.3):
            s.set_message("server started")
            return None
        code = proc.poll()
        if code is not None:
            s.server_ok = False
            s.server_text = f"the server exited with status {code}"
            tail = _log_tail(s.server_log)
            s.set_message(f"the server exited with status {code}" + (f": {tail}" if tail else "")
                          + f" (log: {s.server_log})", error=True)
            return None
        if time.monotonic() - s.server_started > START_TIMEOUT_S:
            s.set_message(f"the server did not answer within {START_TIMEOUT_S:.0f} s (log: {s.server_log})",
                          error=True)
            return None
    except Exception as exc:  # noqa: BLE001 - a timer must never raise: Blender would drop it
        s.set_message(f"server start: {one_line(exc)}", error=True)
        return None
    return 0.5
