"""FoleySpace job-server benchmark: per-job overhead, tiny-job throughput, start-up time.

Run from the repository root with the project installed (``pip install -e .``: the server is the
``foleyspace.server`` package, which exists only in an installed checkout)::

    python benchmarks/bench_server.py [--jobs 40] [--workers 2] [--repeat 3]

Everything happens in a temporary folder (clip, server state folders, stems, server logs); each
server is a real ``python -m foleyspace serve`` process on a free loopback port with its own
``FOLEYSPACE_HOME``, and it is shut down in a ``finally:`` even when the benchmark fails. One
tiny job is used throughout: a 1 s, 160x96 synthetic ``cross_lr`` clip with default options.

1. Per-job overhead: the job run directly in this process with ``pipeline.spatialize`` and
   through a 1-worker server (``Client.submit`` + ``Client.wait``, one job at a time), each after
   one warm-up, alternating direct / server for ``5 x --repeat`` samples. Median and best wall
   time of both, overhead = server - direct (ms), ratio = server / direct.
2. Throughput: ``--jobs`` jobs submitted at once to a ``--workers``-worker server from one client
   and from four client threads (one ``Client`` each), timed from the first submit to the last
   terminal event; baseline: the same number of direct sequential ``spatialize`` calls in this
   process, in the same rounds (direct, 1 client, 4 clients, repeated ``--repeat`` times).
3. Start-up: for both servers above, the time from ``Popen`` until a ``ping`` is answered and
   until the first job (submitted right after the ping) is done.

Every server job must end ``done``; the script exits 1 otherwise (or on any error), 2 for bad
arguments. Timings use ``time.perf_counter``. See benchmarks/README.md ("Server").
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TERMINAL = ("done", "failed", "cancelled")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
CLIENT_THREADS = 4
JOB_TIMEOUT_S = 120.0  # one job, or one batch of jobs, must end within this


class BenchError(Exception):
    """A failure that makes the figures meaningless (server did not start, job timed out...)."""


def _make_importable() -> None:
    try:
        import foleyspace  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


class Server:
    """``python -m foleyspace serve`` in a subprocess with its own state folder and log."""

    def __init__(self, base: Path, name: str, root: Path, workers: int) -> None:
        self.name = name
        self.home = base / f"home-{name}"
        self.home.mkdir()
        self.log_path = base / f"server-{name}.log"
        self.root, self.workers = root, workers
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.t_popen = 0.0
        self.ping_s = float("nan")
        self.first_done_s = float("nan")

    def client(self, **kwargs: Any):
        from foleyspace.client import Client

        return Client(self.address, home=self.home, **kwargs)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self) -> None:
        """Start the process; return once a ``ping`` is answered (``ping_s`` after ``Popen``)."""
        env = {**os.environ, "FOLEYSPACE_HOME": str(self.home)}
        env.pop("FOLEYSPACE_SERVER", None)
        self._log = open(self.log_path, "ab")  # noqa: SIM115  (kept open for the process; closed in stop())
        self.t_popen = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "foleyspace", "serve", "--bind", self.address, "--workers", str(self.workers),
             "--root", str(self.root)], env=env, cwd=str(self.root), stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + 60
        # A short reply timeout: each silent attempt reconnects, so the ping lands ~50 ms after the
        # server's socket is listening (ZeroMQ would otherwise retry the TCP connect every 100 ms).
        with self.client(timeout=0.05, retries=1) as c:
            while time.monotonic() < deadline:
                if c.ping():
                    self.ping_s = time.perf_counter() - self.t_popen
                    return
                if self.proc.poll() is not None:
                    raise BenchError(f"server exited with {self.proc.returncode} during start-up:\n{self.log_tail()}")
        raise BenchError(f"server did not answer a ping within 60 s:\n{self.log_tail()}")

    def stop(self) -> None:
        """Ask for a shutdown; kill the process if it does not exit in time."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                with self.client(timeout=2.0, retries=1) as c:
                    c.shutdown()
                self.proc.wait(20)
            except Exception:  # noqa: BLE001  (unanswered shutdown, wait timeout...: make sure it goes)
                self.proc.kill()
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None


def collect(client, jobs: set[str], timeout: float = JOB_TIMEOUT_S) -> dict[str, dict[str, Any]]:
    """Wait for the terminal event of every job in ``jobs`` (submitted by ``client``).

    Returns ``{job: event}``. Falls back to polling the status of the missing jobs when no event
    arrived for 5 s (events could in principle be dropped); raises BenchError after ``timeout``.
    """
    ended: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while len(ended) < len(jobs):
        events = client.poll_events(0.5)
        for event in events:
            if event.get("event") in TERMINAL and event.get("job") in jobs:
                ended.setdefault(event["job"], event)
        now = time.monotonic()
        if events:
            quiet_since = now
        elif now - quiet_since > 5.0:
            for jid in jobs - ended.keys():
                status = client.status(jid, watch=True)
                if status["state"] in TERMINAL:
                    ended[jid] = {"event": status["state"], "job": jid, **status}
            quiet_since = now
        if now > deadline:
            raise BenchError(f"{len(jobs) - len(ended)} of {len(jobs)} jobs did not end within {timeout:.0f} s")
    return ended


class Tally:
    """Terminal states of every server job; anything but ``done`` fails the run."""

    def __init__(self) -> None:
        self.total = 0
        self.bad: list[str] = []
        self._lock = threading.Lock()

    def add(self, jid: str, state: str, info: dict[str, Any]) -> None:
        with self._lock:
            self.total += 1
            if state != "done":
                self.bad.append(f"{jid}: {state} {info.get('error') or ''}")


def best_median(values: list[float]) -> tuple[float, float]:
    return min(values), statistics.median(values)


def header(args: argparse.Namespace) -> None:
    import numpy
    import zmq

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print("FoleySpace server benchmark")
    print(f"machine : {platform.platform()} | {platform.machine()} | {platform.processor() or '?'}")
    print(f"cpus    : os.cpu_count()={os.cpu_count()}, usable={usable}")
    print(f"python  : {platform.python_version()} | numpy {numpy.__version__} | pyzmq {zmq.__version__} "
          f"(libzmq {zmq.zmq_version()})")
    print("threads : " + ", ".join(f"{v}={os.environ.get(v, 'unset')}" for v in THREAD_VARS))
    print(f"settings: jobs={args.jobs}, workers={args.workers}, repeat={args.repeat}, "
          f"latency samples={5 * args.repeat}, client threads={CLIENT_THREADS}; "
          "job: 1 s 160x96 synthetic cross_lr clip, default options")
    print(flush=True)


def run(args: argparse.Namespace, base: Path, servers: list[Server]) -> Tally:
    from foleyspace.jobspec import job_from_spec
    from foleyspace.pipeline import spatialize
    from foleyspace.synth import SynthSpec, make_clip

    tally = Tally()
    media = base / "media"
    out = base / "out"
    media.mkdir()
    out.mkdir()
    clip = make_clip(media / "tiny.mp4", SynthSpec(duration_s=1.0, size=(160, 96), motion="cross_lr"))

    def spec(name: str, folder: Path = out) -> dict[str, Any]:
        return {"video": str(clip), "output_dir": str(folder), "name": name}

    def direct(name: str) -> None:
        spatialize(job_from_spec(spec(name, media)))

    def server_one(client, name: str) -> tuple[float, float]:
        """Submit one job and wait for it; (submit reply time, submit → done time)."""
        t0 = time.perf_counter()
        jid = client.submit(spec(name))
        t1 = time.perf_counter()
        final = client.wait(jid, timeout=JOB_TIMEOUT_S)
        t2 = time.perf_counter()
        tally.add(jid, final["state"], final)
        return t1 - t0, t2 - t0

    def first_job(srv: Server) -> None:
        with srv.client(timeout=10.0) as c:
            server_one(c, f"first-{srv.name}.wav")
        srv.first_done_s = time.perf_counter() - srv.t_popen

    def clear_outputs() -> None:
        for path in out.iterdir():
            path.unlink()

    def check_section(bad_before: int) -> None:
        if len(tally.bad) > bad_before:
            print(f"  INVALID: {len(tally.bad) - bad_before} server job(s) in this section did not end done "
                  "(listed at the end); the figures above do not measure finished work")

    # ------------------------------------------------------------------ 1. per-job overhead

    srv1 = Server(base, "latency", base, 1)
    servers.append(srv1)
    srv1.start()
    first_job(srv1)  # also the server side's warm-up job
    direct("warmup.wav")
    samples = 5 * args.repeat
    t_direct: list[float] = []
    t_server: list[float] = []
    t_submit: list[float] = []
    with srv1.client(timeout=10.0) as c:
        t_ping = []
        for _ in range(20):
            t0 = time.perf_counter()
            if not c.ping():
                raise BenchError("the 1-worker server stopped answering pings")
            t_ping.append(time.perf_counter() - t0)
        for i in range(samples):  # alternate so that background load hits both sides alike
            t0 = time.perf_counter()
            direct(f"direct-{i % 2}.wav")
            t_direct.append(time.perf_counter() - t0)
            submit_s, done_s = server_one(c, f"lat-{i}.wav")
            t_submit.append(submit_s)
            t_server.append(done_s)
    clear_outputs()
    srv1.stop()
    d_best, d_med = best_median(t_direct)
    s_best, s_med = best_median(t_server)
    print(f"1. Per-job overhead: one tiny job at a time ({samples} samples each; ms, best / median)")
    print(f"  direct spatialize() in-process        {ms(d_best):>6} / {ms(d_med):>6}")
    print(f"  server, 1 worker (submit -> done)     {ms(s_best):>6} / {ms(s_med):>6}")
    print(f"  overhead = server - direct            {ms(s_best - d_best):>6} / {ms(s_med - d_med):>6}")
    print(f"  ratio    = server / direct            {s_best / d_best:>6.2f} / {s_med / d_med:>6.2f}")
    p_best, p_med = best_median(t_ping)
    sub_best, sub_med = best_median(t_submit)
    check_section(0)
    print(f"  for scale: ping round trip {p_best * 1000:.2f} / {p_med * 1000:.2f} ms (20 pings), "
          f"submit reply {sub_best * 1000:.1f} / {sub_med * 1000:.1f} ms")
    print(flush=True)

    # ------------------------------------------------------------------ 2. throughput
    n = args.jobs
    bad_before = len(tally.bad)
    srv2 = Server(base, "throughput", base, args.workers)
    servers.append(srv2)
    srv2.start()
    first_job(srv2)
    with srv2.client(timeout=10.0) as c:  # warm-up: one job per worker, all at once
        warm = {c.submit(spec(f"warm-{k}.wav")) for k in range(args.workers)}
        for jid, event in collect(c, warm).items():
            tally.add(jid, event["event"], event)

    def direct_batch(r: int) -> None:
        for k in range(n):
            direct(f"seq-{k % 2}.wav")

    def one_client(r: int) -> float:
        with srv2.client(timeout=10.0) as c:
            t0 = time.perf_counter()
            jobs = {c.submit(spec(f"r{r}-one-{k}.wav")) for k in range(n)}
            ended = collect(c, jobs)
            elapsed = time.perf_counter() - t0
        for jid, event in ended.items():
            tally.add(jid, event["event"], event)
        return elapsed

    def many_clients(r: int) -> float:
        shares = [n // CLIENT_THREADS + (1 if t < n % CLIENT_THREADS else 0) for t in range(CLIENT_THREADS)]
        barrier = threading.Barrier(CLIENT_THREADS + 1)
        errors: list[BaseException] = []

        def client_thread(t: int) -> None:
            try:
                with srv2.client(timeout=10.0) as c:
                    barrier.wait()
                    jobs = {c.submit(spec(f"r{r}-t{t}-{k}.wav")) for k in range(shares[t])}
                    for jid, event in collect(c, jobs).items():
                        tally.add(jid, event["event"], event)
            except BaseException as exc:  # noqa: BLE001  (re-raised in the main thread below)
                errors.append(exc)
                barrier.abort()

        threads = [threading.Thread(target=client_thread, args=(t,), daemon=True) for t in range(CLIENT_THREADS)]
        for thread in threads:
            thread.start()
        barrier.wait()
        t0 = time.perf_counter()
        for thread in threads:
            thread.join(JOB_TIMEOUT_S + 30)
        elapsed = time.perf_counter() - t0
        if errors:
            raise BenchError(f"a client thread failed: {errors[0]!r}") from errors[0]
        if any(thread.is_alive() for thread in threads):
            raise BenchError("a client thread did not finish")
        return elapsed

    rates: dict[str, list[float]] = {"direct": [], "one": [], "many": []}
    for r in range(args.repeat):  # alternate the three so that background load hits all alike
        t0 = time.perf_counter()
        direct_batch(r)
        rates["direct"].append(n / (time.perf_counter() - t0))
        rates["one"].append(n / one_client(r))
        clear_outputs()
        rates["many"].append(n / many_clients(r))
        clear_outputs()
    srv2.stop()
    print(f"2. Tiny-job throughput: {n} jobs at once, server with {args.workers} worker(s) "
          f"(jobs/s, best / median of {args.repeat})")
    d_rate = statistics.median(rates["direct"])
    rows = [(f"direct sequential spatialize() x{n}", "direct"),
            ("server, 1 client", "one"),
            (f"server, {CLIENT_THREADS} client threads", "many")]
    print(f"  {'':38}{'jobs/s':>15}   vs direct")
    for label, key in rows:
        best, med = max(rates[key]), statistics.median(rates[key])
        print(f"  {label:38}{best:>6.1f} / {med:>6.1f}   {med / d_rate:>6.2f}x")
    print("  vs direct = median server jobs/s / median direct jobs/s")
    check_section(bad_before)
    print(flush=True)

    # ------------------------------------------------------------------ 3. start-up
    print("3. Server start-up (s after Popen; first job submitted right after the ping)")
    for srv in servers:
        print(f"  {srv.name:10} ({srv.workers} worker(s)): ping answered {srv.ping_s:5.2f} s, "
              f"first job done {srv.first_done_s:5.2f} s")
    print(flush=True)
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=40, help="jobs per throughput batch (default 40)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the throughput server (default 2)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="throughput rounds; 5x this many latency samples (default 3)")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.workers < 1 or args.repeat < 1:
        parser.error("--jobs, --workers and --repeat must be at least 1")
    if args.jobs > 256:
        parser.error("--jobs above 256 would fill the server's default queue (--max-queued 256)")

    _make_importable()
    try:
        import foleyspace.server.app  # noqa: F401
    except ImportError as exc:
        print(f"cannot import foleyspace.server ({exc}); install the checkout: pip install -e .", file=sys.stderr)
        return 1
    # SIGTERM runs the finally: below too, so no server outlives the benchmark
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    t_start = time.perf_counter()
    header(args)
    servers: list[Server] = []
    with tempfile.TemporaryDirectory(prefix="foleyspace-bench-server-") as tmp:
        base = Path(tmp).resolve()
        try:
            tally = run(args, base, servers)
        except BenchError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
        except Exception:  # noqa: BLE001  (report any failure as exit status 1)
            traceback.print_exc()
            print("FAILED: unexpected error (traceback above)", file=sys.stderr)
            return 1
        finally:
            for srv in servers:
                srv.stop()
    print(f"server jobs: {tally.total}, done {tally.total - len(tally.bad)}, not done {len(tally.bad)}")
    for line in tally.bad[:10]:
        print(f"  NOT DONE {line}")
    print(f"total benchmark time {time.perf_counter() - t_start:.1f} s")
    return 1 if tally.bad or tally.total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
