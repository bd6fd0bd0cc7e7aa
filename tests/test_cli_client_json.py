"""``submit``/``status``/``cancel --json`` and Ctrl-C during ``submit --wait``, run as real CLI
processes against a real server process on loopback."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serverproc import ServerProcess

STATUS_FIELDS = {"job", "state", "created", "updated", "attempts", "video"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """As in test_server: a folder under pytest's base temp folder (the server's root, which also
    holds the session's synthetic clips)."""
    tmp_path = tmp_path_factory.mktemp("cli_json")
    for name in ("home", "out"):
        (tmp_path / name).mkdir()
    return tmp_path


@pytest.fixture(scope="module")
def server(workdir):
    srv = ServerProcess(workdir / "home", workdir.parent).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def short_clip(clip_factory) -> Path:
    return clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))


@pytest.fixture(scope="module")
def long_clip(clip_factory) -> Path:
    """Long enough to still be running seconds after it started (as test_server's cancel tests)."""
    return clip_factory(motion="cross_lr", duration_s=8.0, size=(640, 360))


def foleyspace(server: ServerProcess, *args: object, **kwargs) -> subprocess.CompletedProcess:
    """Run ``foleyspace ARGS --server ADDR`` as a process (stdout and stderr captured)."""
    env = {**os.environ, "FOLEYSPACE_HOME": str(server.home)}
    return subprocess.run([sys.executable, "-m", "foleyspace", *map(str, args), "--server", server.address],
                          capture_output=True, text=True, env=env, timeout=120, **kwargs)


def assert_status_dict(status: dict, job: str) -> None:
    assert STATUS_FIELDS <= set(status), status
    assert status["job"] == job
    assert not {"ok", "re", "v"} & set(status), "the reply envelope is not part of the status"


def wait_for_state(server: ServerProcess, job: str, states: tuple[str, ...], timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    with server.client() as c:
        while (state := c.status(job)["state"]) not in states:
            assert time.monotonic() < deadline, f"job {job} stayed {state}"
            time.sleep(0.1)
    return state


def test_submit_json_prints_the_job_and_status_json_follows_it(server, workdir, short_clip):
    out = workdir / "out" / "nowait.wav"
    proc = foleyspace(server, "submit", short_clip, "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    submitted = json.loads(proc.stdout)
    assert set(submitted) == {"job"} and isinstance(submitted["job"], str) and submitted["job"]
    job = submitted["job"]
    assert wait_for_state(server, job, ("done", "failed", "cancelled")) == "done"
    proc = foleyspace(server, "status", job, "--json")
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert_status_dict(status, job)
    assert status["state"] == "done" and status["video"] == str(short_clip)
    assert status["result"]["stem"] == str(out) and out.is_file()
    with server.client() as c:  # the same dict as `jobs --json` lists
        assert [j for j in c.jobs(100) if j["job"] == job] == [status]


def test_submit_wait_json_prints_the_final_status_alone(server, workdir, short_clip):
    out = workdir / "out" / "wait.wav"
    proc = foleyspace(server, "submit", short_clip, "-o", out, "--wait", "--json")  # progress stays on stderr
    assert proc.returncode == 0, proc.stderr
    final = json.loads(proc.stdout)  # stdout is the JSON value and nothing else
    assert_status_dict(final, final["job"])
    assert final["state"] == "done" and Path(final["result"]["stem"]) == out and out.is_file()
    status = foleyspace(server, "status", final["job"], "--json")
    assert status.returncode == 0 and json.loads(status.stdout) == final


def test_submit_wait_json_failed_job_exits_2(server, workdir, clip_factory):
    silent = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96), audio=None)
    proc = foleyspace(server, "-q", "submit", silent, "-o", workdir / "out" / "failed.wav", "--wait", "--json")
    assert proc.returncode == 2
    final = json.loads(proc.stdout)
    assert_status_dict(final, final["job"])
    assert final["state"] == "failed" and final["error"]["code"] == "bad_input"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"foleyspace: error: job {final['job']} failed: "), proc.stderr


def test_cancel_json(server, workdir, long_clip):
    with server.client() as c:
        job = c.submit({"video": str(long_clip), "output_dir": str(workdir / "out"), "name": "cancel.wav"})
        proc = foleyspace(server, "cancel", job, "--json")
        assert proc.returncode == 0, proc.stderr
        reply = json.loads(proc.stdout)
        assert set(reply) == {"job", "state"} and reply["job"] == job
        assert reply["state"] in ("cancelled", "running")  # a running job ends with the cancelled event
        assert c.wait(job, timeout=30)["state"] == "cancelled"
    status = json.loads(foleyspace(server, "status", job, "--json").stdout)
    assert_status_dict(status, job)
    assert status["state"] == "cancelled"


@pytest.mark.parametrize("command", ["status", "cancel"])
def test_unknown_job_is_one_error_line_and_no_json(server, command):
    proc = foleyspace(server, command, "no-such-job", "--json")
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("foleyspace: error: "), proc.stderr


def read_line(proc: subprocess.Popen, timeout_s: float) -> str:
    """The first line ``proc`` writes to stdout, waiting at most ``timeout_s``."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout_s), "the CLI printed no job id"
    return proc.stdout.readline().strip()


def test_ctrl_c_while_waiting_leaves_the_job_running(server, workdir, long_clip):
    env = {**os.environ, "FOLEYSPACE_HOME": str(server.home)}
    proc = subprocess.Popen([sys.executable, "-m", "foleyspace", "-q", "submit", str(long_clip),
                             "-o", str(workdir / "out" / "interrupted.wav"), "--wait", "--server", server.address],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        job = read_line(proc, 60)
        assert job
        wait_for_state(server, job, ("running", "done", "failed"))  # interrupt it mid-job
        assert proc.poll() is None, "submit --wait ended before the Ctrl-C"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130
    assert "Traceback" not in stderr and stdout == ""
    hint = f"--server {server.address}"
    assert stderr.splitlines() == [f"foleyspace: stopped waiting; job {job} goes on on the server "
                                   f"(foleyspace status {job} {hint}, foleyspace cancel {job} {hint})"]
    time.sleep(0.3)  # anything the interruption set off would show now
    with server.client() as c:
        assert c.status(job)["state"] in ("queued", "running", "done")  # not cancelled
        c.cancel(job)  # free the worker (the test is done with the job)
        c.wait(job, timeout=30)
