"""The job server: a ZeroMQ ROUTER that queues jobs, runs them in worker processes and streams
their events back to the clients that submitted them (zguide: ROUTER/DEALER + "Titanic").

Single-threaded event loop: the ROUTER socket and the worker pipes are polled together; the
SQLite store is only touched here. Requests need the per-user token; garbage that does not even
decode is dropped, everything else gets a reply.
"""

from __future__ import annotations

import glob
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from foleyspace import __version__
from foleyspace.backends import default_registry
from foleyspace.config import SCHEMES
from foleyspace.device import check_device_name
from foleyspace.errors import FoleySpaceError, shown
from foleyspace.home import (
    check_private, ensure_state_dir, ensure_token, lock_home, private_file, read_server_info, write_server_info,
)
from foleyspace.jobspec import job_from_spec, output_paths
from foleyspace.protocol import (
    DEFAULT_ADDRESS, MAX_MESSAGE_BYTES, OPS, PROTOCOL_VERSION, SOCKET_MAX_MESSAGE_BYTES, TERMINAL_STATES,
    ProtocolError, error_reply, pack, unpack,
)
from .policy import PathPolicy, default_roots
from .store import JobRecord, JobStore, StoreError
from .worker import WorkerHandle, stop_workers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerConfig:
    """Server settings.

    Attributes:
        bind: ZeroMQ endpoint (loopback by default).
        workers: worker processes (each runs one job at a time).
        device: compute device handed to the workers (``auto``, ``cpu``, ``cuda``, ``cuda:N``).
        home: state folder (token, job database, address file).
        roots: folders jobs may read from and write to.
        max_queued: queued jobs accepted before ``queue_full``.
        max_attempts: times a job is started before a crash-restart marks it failed.
        cancel_grace_s: a worker that ignores a cancel this long is killed and replaced.
        job_timeout_s: a job running longer is stopped (its worker killed) and fails with ``timeout``.
        stall_timeout_s: ... as is a job whose worker reports no progress for this long (a read
            that never returns).
        allow_remote: permit a non-loopback bind.
    """

    bind: str = DEFAULT_ADDRESS
    workers: int = 1
    device: str = "auto"
    home: Path = field(default_factory=ensure_state_dir)
    roots: tuple[Path, ...] = field(default_factory=lambda: tuple(default_roots()))
    max_queued: int = 256
    max_attempts: int = 2
    cancel_grace_s: float = 5.0
    job_timeout_s: float = 6 * 3600.0
    stall_timeout_s: float = 1800.0
    allow_remote: bool = False


def is_loopback(endpoint: str) -> bool:
    """Whether a ``tcp://host:port`` endpoint binds to loopback only (ipc/inproc count as local)."""
    if not endpoint.startswith("tcp://"):
        return endpoint.startswith(("ipc://", "inproc://"))
    host = endpoint[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


class JobServer:
    """Owns the socket, the store and the workers; :meth:`serve` runs until shutdown."""

    def __init__(self, config: ServerConfig) -> None:
        if not is_loopback(config.bind) and not config.allow_remote:
            raise FoleySpaceError(f"refusing to listen on {config.bind}: not loopback (use --allow-remote)")
        if config.workers < 1:
            raise FoleySpaceError("--workers must be at least 1")
        if not (config.job_timeout_s > 0 and config.stall_timeout_s > 0):  # also refuses NaN
            raise FoleySpaceError("--job-timeout and --stall-timeout must be positive seconds")
        check_device_name(config.device)
        self.config = config
        self.registry = default_registry()
        self.home = ensure_state_dir(config.home)
        why = check_private(self.home)
        if why:
            raise FoleySpaceError(f"refusing to keep job state in a shared folder: {why}")
        try:  # one server per state folder: a second would run the first one's jobs again
            self._lock = lock_home(self.home)
        except BlockingIOError:
            info = read_server_info(self.home)
            raise FoleySpaceError(
                f"another foleyspace server (pid {info.get('pid', '?')}, {info.get('address', 'address unknown')}) "
                f"uses the state folder {self.home}; stop it first, or give this one its own FOLEYSPACE_HOME"
            ) from None
        self.token = ensure_token(self.home)
        self.policy = PathPolicy.from_paths(list(config.roots), private=[self.home])
        self.store = JobStore(private_file(self.home / "jobs.sqlite3"))
        self.workers: list[WorkerHandle] = []
        self.subscribers: dict[str, set[bytes]] = {}
        self.progress: dict[str, tuple[str, float]] = {}
        #: jobs that ended while the database could not be written: saved (and announced) later
        self.unsaved: dict[str, tuple[str, dict[str, Any]]] = {}
        self._store_warned = 0.0
        self._trimmed_at = time.monotonic()
        self.ctx = zmq.Context()
        self.socket = self.ctx.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.socket.setsockopt(zmq.MAXMSGSIZE, SOCKET_MAX_MESSAGE_BYTES)
        self.socket.setsockopt(zmq.SNDHWM, 10000)
        # ZMTP heartbeats: a peer that vanished without closing (a killed editor, a half-open
        # TCP connection) is dropped after 30 s instead of holding its buffers forever
        self.socket.setsockopt(zmq.HEARTBEAT_IVL, 10_000)
        self.socket.setsockopt(zmq.HEARTBEAT_TIMEOUT, 30_000)
        try:
            self.socket.bind(config.bind)
        except zmq.ZMQError as exc:
            self.close()
            raise FoleySpaceError(f"cannot listen on {config.bind}: {exc}") from exc
        self.address = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.running = False
        requeued, failed = self.store.recover(config.max_attempts)
        for record in requeued:
            self._remove_partial_outputs(record.spec)
            log.warning("job %s was running when the server stopped: queued again", record.id)
        for record in failed:
            log.warning("job %s failed: interrupted %d times", record.id, record.attempts)

    # ---------------------------------------------------------------- lifecycle
    def serve(self) -> None:
        """Run the event loop until a ``shutdown`` request (or KeyboardInterrupt)."""
        log_level = logging.getLogger().getEffectiveLevel()
        self.workers = [self._new_worker(i, log_level) for i in range(self.config.workers)]
        write_server_info(self.address, os.getpid(), self.home)
        log.warning("foleyspace server %s listening on %s with %d worker(s)", __version__, self.address,
                    len(self.workers))
        self.running = True
        if threading.current_thread() is threading.main_thread():  # SIGTERM: stop like `shutdown`
            signal.signal(signal.SIGTERM, lambda signum, frame: setattr(self, "running", False))
        try:
            while self.running:
                self._tick()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the workers (killed after a bound), then release everything. Completes even when
        the job database cannot be written (a job it could not re-queue stays ``running`` and
        is re-queued at the next start)."""
        try:
            self._save_unsaved()
        except StoreError as exc:
            log.warning("%d job outcome(s) not saved (%s); those jobs run again at the next start",
                        len(self.unsaved), exc)
        for worker in self.workers:
            if worker.job is not None:
                try:
                    self.store.requeue(worker.job)
                except StoreError as exc:
                    log.warning("job %s not re-queued now (%s); the next start re-queues it", worker.job, exc)
        stop_workers(self.workers, timeout=2.0)
        for worker in self.workers:
            _remove_held_inputs(worker.process.pid)
        self.workers = []
        self.socket.close(linger=0)
        self.ctx.term()
        try:
            self.store.close()
        except StoreError as exc:
            log.warning("%s", exc)
        if self._lock is not None:
            os.close(self._lock)  # the next server may start
            self._lock = None

    def _tick(self) -> None:
        """One turn of the loop. Each step is guarded: a storage fault waits for the next tick,
        anything else (a worker pipe that broke, a worker that cannot be spawned now) is logged
        and retried — the loop itself never stops on an error."""
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        for worker in self.workers:
            poller.register(worker.fileno(), zmq.POLLIN)
        ready = dict(poller.poll(100))
        steps = [self._read_requests] if self.socket in ready else []
        steps += [lambda w=w: self._read_worker(w) for w in list(self.workers)
                  if w.fileno() in ready or not w.process.is_alive()]
        steps += [self._enforce_limits, self._release_memory, self._save_unsaved, self._dispatch,
                  self._respawn_workers]
        for step in steps:
            try:
                step()
            except StoreError as exc:  # disk full, or another process holds the database
                self._warn_once(str(exc))
            except Exception as exc:  # a bug or a resource fault: logged, the server goes on
                self._warn_once(f"{exc.__class__.__name__}: {exc}", exc_info=True)

    def _warn_once(self, message: str, exc_info: bool = False) -> None:
        """Log ``message`` at most every 10 s (a fault that lasts must not flood the log)."""
        now = time.monotonic()
        if now - self._store_warned > 10:
            log.warning("%s", message, exc_info=exc_info)
            self._store_warned = now

    def _respawn_workers(self) -> None:
        """Start the workers a failed spawn left missing (e.g. out of memory or file handles)."""
        if not self.running:
            return
        present = {w.index for w in self.workers}
        for index in range(self.config.workers):
            if index not in present:
                self.workers.append(self._new_worker(index, logging.getLogger().getEffectiveLevel()))

    def _release_memory(self, every_s: float = 60.0) -> None:
        """Give memory that closed connections left in the C allocator back to the system
        (glibc keeps it otherwise: 2000 idle connections opened and closed kept ~55 MB)."""
        now = time.monotonic()
        if now - self._trimmed_at < every_s:
            return
        self._trimmed_at = now
        if _LIBC is not None:
            _LIBC.malloc_trim(0)

    # ---------------------------------------------------------------- requests
    def _read_requests(self) -> None:
        for _ in range(1000):
            try:
                frames = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._handle_frames(frames)

    def _send(self, identity: bytes, body: dict[str, Any], delimiter: bool = False) -> None:
        """Send ``body`` to a peer; ``delimiter``: it is a REQ socket, whose envelope has an empty frame."""
        frames = [identity, b"", pack(body)] if delimiter else [identity, pack(body)]
        try:
            self.socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # peer gone or its queue full: it will poll status
            log.debug("cannot send to %r: %s", identity, exc)

    def _handle_frames(self, frames: list[bytes]) -> None:
        """Answer one request. Nothing a peer sends can stop the loop: every path is inside the
        catch-all, and untrusted values appear in messages only through :func:`shown`."""
        req = len(frames) == 3 and frames[1] == b""  # a REQ peer's envelope
        if req:
            frames = [frames[0], frames[2]]
        if len(frames) != 2:
            log.debug("dropped a message of %d frames", len(frames))
            return
        identity, payload = frames
        try:
            body = self._answer(identity, payload, req)
        except Exception as exc:  # a server bug: answer, log, keep serving (nothing here may raise)
            log.exception("a request failed")
            body = error_reply(None, "internal", f"the server failed on this request ({exc.__class__.__name__})")
        if body is not None:
            self._send(identity, body, delimiter=req)

    def _answer(self, identity: bytes, payload: bytes, req: bool) -> dict[str, Any] | None:
        """The reply to one request (``None``: drop it unanswered)."""
        if len(payload) > MAX_MESSAGE_BYTES:
            return error_reply(None, "too_large", f"message exceeds {MAX_MESSAGE_BYTES} bytes")
        try:
            message = unpack(payload)
        except ProtocolError as exc:
            if exc.code == "version":
                return error_reply(None, "version", str(exc))
            log.debug("dropped undecodable message: %s", exc)
            return None
        rid = message.get("id")
        if not isinstance(rid, (int, str)) or isinstance(rid, bool):
            rid = None
        token = message.get("token")
        if not isinstance(token, str) or not _same(token, self.token):
            return error_reply(rid, "unauthorized", "missing or wrong token")
        op = message.get("op")
        if not isinstance(op, str) or op not in OPS:
            return error_reply(rid, "unknown_op", f"unknown op {shown(op)}; known: {', '.join(OPS)}")
        try:
            body = getattr(self, f"_op_{op}")(identity, message, req)
        except FoleySpaceError as exc:
            return error_reply(rid, exc.code, str(exc))
        except Exception as exc:  # a server bug: answer, log, keep serving
            log.exception("op %s failed", op)
            return error_reply(rid, "internal", f"{exc.__class__.__name__}: {shown(str(exc))}")
        return {"re": rid, "ok": True, **body}

    def _job(self, message: dict[str, Any]) -> JobRecord:
        """The job a request names; ``bad_request`` / ``not_found`` errors otherwise."""
        jid = message.get("job")
        if not isinstance(jid, str) or not jid:
            raise FoleySpaceError("'job' must be a job id string", code="bad_request")
        record = self.store.get(jid)
        if record is None:
            raise FoleySpaceError(f"no job {jid!r}", code="not_found")
        return record

    def _op_ping(self, identity: bytes, message: dict[str, Any], req: bool = False) -> dict[str, Any]:
        return {"pong": time.time()}

    def _op_hello(self, identity: bytes, message: dict[str, Any], req: bool = False) -> dict[str, Any]:
        return {"server": "foleyspace", "version": __version__, "protocol": PROTOCOL_VERSION,
                "device": self.config.device, "workers": len(self.workers),
                "models_loaded": [{"worker": w.index, "models": list(w.models)} for w in self.workers],
                "capabilities": {"ops": list(OPS), "schemes": list(SCHEMES), "backends": self.registry.capabilities()},
                "roots": [str(r) for r in self.policy.roots],
                "limits": {"max_message_bytes": MAX_MESSAGE_BYTES, "max_queued": self.config.max_queued}}

    def _op_submit(self, identity: bytes, message: dict[str, Any], req: bool = False) -> dict[str, Any]:
        spec = message.get("spec")
        key = message.get("key")
        if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 128):
            raise FoleySpaceError("'key' must be a string of 1 to 128 characters", code="bad_request")
        if key is not None:  # a resend: the job it made, in its real state, whatever the queue holds now
            key = f"{identity.hex()}:{key}"  # keys belong to the client that chose them
            record = self.store.by_key(key)
            if record is not None:
                if record.spec != spec:
                    raise FoleySpaceError("this 'key' was used for a different job spec; use a new key per job",
                                          code="bad_request")
                if not req and record.state not in TERMINAL_STATES:
                    self.subscribers.setdefault(record.id, set()).add(identity)
                return {"event": "accepted", "job": record.id, "state": record.state, "resent": True,
                        **({"position": self._position(record.id)} if record.state == "queued" else {})}
        job = job_from_spec(spec, self.registry)  # SpecError → bad_request
        self.policy.check(job)  # PolicyError → forbidden
        if self.store.count("queued") >= self.config.max_queued:
            raise FoleySpaceError(f"the queue is full ({self.config.max_queued} jobs); try again later",
                                  code="queue_full")
        record = self.store.add(spec, key)
        if not req:  # a REQ peer takes exactly one reply per request: no events
            self.subscribers.setdefault(record.id, set()).add(identity)
        return {"event": "accepted", "job": record.id, "state": "queued", "position": self.store.count("queued")}

    def _position(self, jid: str) -> int:
        """1-based place of a queued job in the queue."""
        queued = self.store.queued()
        return queued.index(jid) + 1 if jid in queued else 0

    def _op_status(self, identity: bytes, message: dict[str, Any], req: bool = False) -> dict[str, Any]:
        record = self._job(message)
        jid = record.id
        if message.get("watch") is True and not req and record.state not in TERMINAL_STATES:
            self.subscribers.setdefault(jid, set()).add(identity)
        out = record.public()
        if jid in self.progress and record.state == "running":
            stage, fraction = self.progress[jid]
            out["progress"] = {"stage": stage, "fraction": fraction}
        return out

    def _op_result(self, identity: bytes, message: dict[str, Any], req: bool = False) -> dict[str, Any]:
        record = self._job(message)
        if record.state != "done":
            raise FoleySpaceError(f"job {record.id} is {record.state}, not done", code="not_done")
        return {"job": record.id, "result": record.result}

    def _op_list(self, identity: bytes, message: dict[str, Any], req: bool = False) -> dict[str, Any]:
        limit = message.get("limit", 100)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise FoleySpaceError("'limit' must be an integer from 1 to 1000", code="bad_request")
        return {"jobs": [r.public() for r in self.store.list(limit)]}

    def _op_cancel(self, identity: bytes, message: dict[str, Any], req: bool = False) -> dict[str, Any]:
        record = self._job(message)
        jid = record.id
        if record.state == "queued":
            self._finish(jid, "cancelled", {})
        elif record.state == "running":
            for worker in self.workers:
                if worker.job == jid and worker.cancel_sent_at is None:
                    worker.send({"type": "cancel", "job": jid})
                    worker.cancel_sent_at = time.monotonic()
        return {"job": jid, "state": self.store.get(jid).state}  # type: ignore[union-attr]

    def _op_shutdown(self, identity: bytes, message: dict[str, Any], req: bool = False) -> dict[str, Any]:
        self.running = False
        return {"stopping": True}

    # ---------------------------------------------------------------- workers
    def _dispatch(self) -> None:
        idle = [w for w in self.workers if w.idle]
        if not idle:
            return
        for jid in self.store.queued():
            if not idle:
                break
            if jid in self.unsaved:  # ended (e.g. cancelled) while the database was unwritable
                continue
            record = self.store.get(jid)
            if record is None:
                continue
            try:  # the roots (or the files) may have changed since the job was queued
                self.policy.check(job_from_spec(record.spec, self.registry))
            except FoleySpaceError as exc:
                self._finish(jid, "failed", {"error": {"code": exc.code, "message": str(exc)}})
                continue
            except Exception as exc:  # e.g. a symlink loop made after submit: the job fails, the server lives
                log.exception("job %s cannot start", jid)
                self._finish(jid, "failed", {"error": {"code": "internal", "message": f"{exc.__class__.__name__}: {exc}"}})
                continue
            if not self.store.start(jid):
                continue
            worker = idle.pop(0)
            worker.job, worker.cancel_sent_at = jid, None
            worker.started_at = worker.heard_at = time.monotonic()
            self.progress[jid] = ("starting", 0.0)
            try:
                worker.send({"type": "run", "job": jid, "spec": record.spec})
            except OSError:  # it died since the last look: replaced, the job fails as a crash
                self._replace_worker(worker)

    def _read_worker(self, worker: WorkerHandle) -> None:
        try:
            messages = worker.receive()
        except (EOFError, OSError, ProtocolError):
            messages = None  # gone, or speaking nonsense: replace it
        for message in messages or []:
            self._on_worker_message(worker, message)
        if messages is None or not worker.process.is_alive():
            self._replace_worker(worker)

    def _on_worker_message(self, worker: WorkerHandle, message: dict[str, Any]) -> None:
        kind, jid = message.get("type"), message.get("job")
        if kind == "ready":
            worker.ready = True
            return
        if jid != worker.job:
            return
        worker.heard_at = time.monotonic()
        if isinstance(message.get("models"), list):
            worker.models = [str(m) for m in message["models"]]
        if kind == "progress":
            self.progress[jid] = (message["stage"], message["fraction"])
            self._publish(jid, {"event": "progress", "job": jid, "stage": message["stage"],
                                "fraction": message["fraction"]})
            return
        if kind == "done":
            self._finish(jid, "done", {"result": message["result"]})
        elif kind == "failed":
            self._finish(jid, "failed", {"error": {"code": message["code"], "message": message["message"]}})
        elif kind == "cancelled":
            self._finish(jid, "cancelled", {})
        worker.job, worker.cancel_sent_at = None, None

    def _replace_worker(self, worker: WorkerHandle) -> None:
        worker.kill()
        code = worker.process.exitcode  # after kill(): the process has been reaped
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        if worker.job is not None:
            try:
                record = self.store.get(worker.job)
                if not self.running:  # the server is stopping: the job runs again at the next start
                    self.store.requeue(worker.job)
            except StoreError as exc:
                log.warning("%s", exc)
                record = None
            if self.running and worker.kill_reason is not None:
                code, message = worker.kill_reason
                self._finish(worker.job, "failed", {"error": {"code": code, "message": message}})
            elif self.running and worker.cancel_sent_at is not None:
                self._finish(worker.job, "cancelled", {})
            elif self.running:
                self._finish(worker.job, "failed", {"error": {
                    "code": "worker_crashed", "message": f"the worker process died ({how})"}})
            if record is not None:
                self._remove_partial_outputs(record.spec)
        _remove_held_inputs(worker.process.pid)
        self.workers.remove(worker)
        if self.running:
            log.warning("worker %d died (%s): starting a new one", worker.index, how)
            self._respawn_workers()

    def _new_worker(self, index: int, log_level: int) -> WorkerHandle:
        """A worker that applies this server's path policy where files are opened."""
        return WorkerHandle(index, self.config.device, log_level, tuple(map(str, self.policy.roots)),
                            tuple(map(str, self.policy.private)))

    def _enforce_limits(self) -> None:
        """Kill (and replace) a worker that ignores a cancel, runs a job past the time limit or
        has said nothing about it for the stall limit; the job fails with ``timeout``."""
        now = time.monotonic()
        cfg = self.config
        for worker in list(self.workers):
            why = None
            if worker.cancel_sent_at is not None and now - worker.cancel_sent_at > cfg.cancel_grace_s:
                why = None, f"ignored a cancel for {cfg.cancel_grace_s:.0f} s"
            elif worker.job is not None and now - worker.started_at > cfg.job_timeout_s:
                why = "timeout", f"the job ran longer than the server's limit of {cfg.job_timeout_s:.0f} s"
            elif worker.job is not None and now - worker.heard_at > cfg.stall_timeout_s:
                why = "timeout", f"the job made no progress for {cfg.stall_timeout_s:.0f} s"
            if why is None:
                continue
            if why[0] == "timeout":  # a result may be waiting in the pipe: take it before judging
                try:
                    for message_in in worker.receive():
                        self._on_worker_message(worker, message_in)
                except (EOFError, OSError, ProtocolError):
                    pass
                if worker.job is None:
                    continue
            code, message = why
            log.warning("worker %d: %s; killing it", worker.index, message)
            worker.kill_reason = (code, message) if code else None
            worker.process.kill()
            worker.process.join(timeout=5)
            self._replace_worker(worker)

    # ---------------------------------------------------------------- events
    def _finish(self, jid: str, state: str, extra: dict[str, Any]) -> None:
        """End a job: saved, then announced, once. When the database cannot be written now the
        outcome waits in :attr:`unsaved` and is saved and announced by a later tick."""
        error = extra.get("error")
        try:
            ended = self.store.finish(jid, state, extra.get("result"),
                                      (error["code"], error["message"]) if error else None)
        except StoreError as exc:
            if jid not in self.unsaved:
                log.warning("job %s %s, not saved yet: %s", jid, state, exc)
            self.unsaved[jid] = (state, extra)
            return
        self.unsaved.pop(jid, None)
        if not ended:
            return  # already ended: events go out exactly once
        self.progress.pop(jid, None)
        self._publish(jid, {"event": state, "job": jid, **extra})
        self.subscribers.pop(jid, None)

    def _save_unsaved(self) -> None:
        """Save the outcomes that could not be saved; stop at the first that still cannot."""
        for jid, (state, extra) in list(self.unsaved.items()):
            self._finish(jid, state, extra)
            if jid in self.unsaved:
                return

    def _publish(self, jid: str, event: dict[str, Any]) -> None:
        for identity in self.subscribers.get(jid, ()):
            self._send(identity, event)

    @staticmethod
    def _remove_partial_outputs(spec: dict[str, Any]) -> None:
        """Delete temporary files a killed worker left beside the job's outputs."""
        targets = output_paths(spec)
        for target in targets or ():
            for tmp in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
                try:
                    tmp.unlink()
                    log.warning("removed partial output %s", tmp)
                except OSError:
                    pass


def _remove_held_inputs(pid: int | None) -> None:
    """Remove the private input links a killed worker left."""
    if pid is not None:
        from foleyspace.pipeline import remove_held_inputs

        remove_held_inputs(pid)


def _glibc() -> Any:
    """glibc (for ``malloc_trim``), or ``None`` elsewhere."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _glibc()


def _same(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())
