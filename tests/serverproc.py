"""A real ``foleyspace serve`` process for tests (real sockets on loopback)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from foleyspace.client import Client, ClientError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``foleyspace serve`` in a subprocess with its own state folder."""

    def __init__(self, home: Path, root: Path, workers: int = 2, port: int | None = None,
                 new_session: bool = False, args: tuple[str, ...] = ()) -> None:
        self.home, self.root, self.workers, self.args = home, root, workers, args
        self.new_session = new_session
        self.port = port or free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServerProcess:
        env = {**os.environ, "FOLEYSPACE_HOME": str(self.home)}
        self.log = open(self.home.parent / f"server-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "foleyspace", "serve", "--bind", self.address, "--workers", str(self.workers),
             "--root", str(self.root), *self.args], env=env, stdout=self.log, stderr=self.log, start_new_session=self.new_session)
        deadline = time.monotonic() + 60
        with self.client(timeout=0.5, retries=1) as c:
            while time.monotonic() < deadline:
                if c.ping():
                    return self
                if self.proc.poll() is not None:
                    break
        log = (self.home.parent / f"server-{self.port}.log").read_text(errors="replace")
        self.proc.kill()  # never leave a half-started server behind
        self.proc.wait(10)
        self.log.close()
        raise AssertionError(f"server did not start:\n{log}")

    def client(self, **kwargs) -> Client:
        return Client(self.address, home=self.home, **kwargs)

    def children(self) -> list[int]:
        """PIDs of the server's child processes (its workers), from /proc."""
        pids = []
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                text = status.read_text()
            except OSError:
                continue
            if f"\nPPid:\t{self.proc.pid}\n" in text:
                pids.append(int(status.parent.name))
        return pids

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                with self.client(timeout=2, retries=1) as c:
                    c.shutdown()
                self.proc.wait(20)
            except (ClientError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
