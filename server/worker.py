"""Worker processes: each hosts the pipeline and one :class:`~foleyspace.backends.Backends` (models
loaded once per worker, on the server's ``--device``) and runs one job at a time.

The server talks to a worker over a ``multiprocessing`` pipe carrying msgpack bytes only
(never pickles). Server → worker: ``{"type": "run", "job": id, "spec": {...}}``,
``{"type": "cancel", "job": id}``, ``{"type": "stop"}``. Worker → server: ``ready``,
``progress`` (stage, fraction; throttled), ``done`` (result), ``failed`` (code, message),
``cancelled``. A worker dies with the server (``PR_SET_PDEATHSIG`` on Linux, and it exits when
its pipe closes), so a killed server leaves no orphan writing stems.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from foleyspace.backends import Backends
from foleyspace.protocol import pack, unpack

log = logging.getLogger(__name__)

#: Seconds between two progress messages of the same stage.
PROGRESS_INTERVAL_S = 0.1


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the server dies (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


class _JobChannel:
    """Progress out and cancel in, for the job being run."""

    def __init__(self, conn: Connection, job_id: str) -> None:
        self.conn = conn
        self.job_id = job_id
        self.cancelled = False
        self.stop_after = False
        self._last: dict[str, float] = {}

    def send(self, message: dict[str, Any]) -> None:
        self.conn.send_bytes(pack(message))

    def progress(self, stage: str, fraction: float) -> None:
        now = time.monotonic()
        if 0.0 < fraction < 1.0 and now - self._last.get(stage, 0.0) < PROGRESS_INTERVAL_S:
            return
        self._last[stage] = now
        self.send({"type": "progress", "job": self.job_id, "stage": stage, "fraction": round(fraction, 4)})

    def cancel_requested(self) -> bool:
        try:
            while self.conn.poll():
                message = unpack(self.conn.recv_bytes())
                if message.get("type") == "cancel" and message.get("job") == self.job_id:
                    self.cancelled = True
                elif message.get("type") == "stop":
                    self.cancelled = self.stop_after = True
        except (EOFError, OSError):
            os._exit(0)  # the server is gone: stop at once, leaving no partial output
        return self.cancelled


def run_job(channel: _JobChannel, spec: dict[str, Any], backends: Backends, policy: Any = None) -> dict[str, Any]:
    """Run one job spec with the worker's backends; ``policy`` (the server's path policy) is
    applied where the files are opened. Returns the message to send back (done / failed / cancelled)."""
    from foleyspace.errors import Cancelled, FoleySpaceError
    from foleyspace.jobspec import job_from_spec
    from foleyspace.pipeline import spatialize

    jid = channel.job_id
    try:
        job = job_from_spec(spec, backends.registry)
        result = spatialize(job, backends, channel.progress, channel.cancel_requested, guard=policy)
    except Cancelled:
        return {"type": "cancelled", "job": jid}
    except FoleySpaceError as exc:
        return {"type": "failed", "job": jid, "code": exc.code, "message": str(exc)}
    except Exception as exc:  # a bug: the job fails, the worker lives on
        log.exception("job %s failed", jid)
        return {"type": "failed", "job": jid, "code": "internal", "message": f"{exc.__class__.__name__}: {exc}"}
    return {"type": "done", "job": jid, "result": {
        "stem": str(result.stem), "sidecar": str(result.sidecar) if result.sidecar else None,
        "duration_s": result.duration_s, "sample_rate": result.sample_rate, "samples": result.samples,
        "start_s": result.start_s, "end_s": result.end_s, "gain_db": result.gain_db,
        "preview": str(result.preview) if result.preview else None}}


def worker_main(conn: Connection, index: int, device: str, log_level: int,
                roots: tuple[str, ...] = (), private: tuple[str, ...] = ()) -> None:
    """Entry point of a worker process; ``roots``/``private``: the server's path policy (none: no checks)."""
    _die_with_parent()
    # Ctrl-C and SIGTERM to the process group go to the server, which stops us (and re-queues the job)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format=f"foleyspace worker {index}: %(levelname)s: %(message)s")
    backends = Backends(device)  # this worker's models: each built on first use, then kept
    from foleyspace.server.policy import PathPolicy

    policy = PathPolicy.from_paths(list(roots), list(private)) if roots else None
    import foleyspace.pipeline  # noqa: F401  (load the heavy modules before saying ready)

    conn.send_bytes(pack({"type": "ready", "pid": os.getpid()}))
    while True:
        try:
            message = unpack(conn.recv_bytes())
        except (EOFError, OSError):
            return
        kind = message.get("type")
        if kind == "stop":
            return
        if kind == "run":
            channel = _JobChannel(conn, str(message["job"]))
            reply = run_job(channel, message["spec"], backends, policy)
            reply["models"] = backends.models.names()  # what stays loaded for the next job
            try:
                channel.send(reply)
            except (BrokenPipeError, OSError):
                return
            if channel.stop_after:
                return


def stop_workers(workers: list[WorkerHandle], timeout: float) -> None:
    """Ask every worker to stop, wait for all of them together at most ``timeout`` seconds,
    then kill the ones still running: a stop is bounded whatever the workers do."""
    for worker in workers:
        try:
            worker.send({"type": "stop"})
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    for worker in workers:
        worker.process.join(max(0.0, deadline - time.monotonic()))
    for worker in workers:
        worker.kill()


class WorkerHandle:
    """The server's side of one worker process."""

    def __init__(self, index: int, device: str, log_level: int = logging.WARNING,
                 roots: tuple[str, ...] = (), private: tuple[str, ...] = ()) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.index = index
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=worker_main, args=(child, index, device, log_level, roots, private),
                                   name=f"foleyspace-worker-{index}", daemon=True)
        self.process.start()
        child.close()
        self.ready = False
        self.job: str | None = None
        self.cancel_sent_at: float | None = None
        self.started_at = 0.0  # monotonic time the current job was sent
        self.heard_at = 0.0  # monotonic time of the worker's last message about it
        self.kill_reason: tuple[str, str] | None = None  # (code, message) when the server killed it
        self.models: list[str] = []  # the models the worker holds loaded (as of its last job)

    def fileno(self) -> int:
        return self.conn.fileno()

    @property
    def idle(self) -> bool:
        return self.ready and self.job is None

    def send(self, message: dict[str, Any]) -> None:
        self.conn.send_bytes(pack(message))

    def receive(self) -> list[dict[str, Any]]:
        """All messages waiting; raises EOFError when the worker is gone."""
        messages = []
        while self.conn.poll():
            messages.append(unpack(self.conn.recv_bytes()))
        return messages

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()
