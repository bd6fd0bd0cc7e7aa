"""The job server over real ZeroMQ sockets on loopback, started as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import soundfile as sf
import zmq

from foleyspace.client import Client, ClientError, ServerUnavailable
from foleyspace.jobspec import job_from_spec
from foleyspace.pipeline import spatialize
from foleyspace.protocol import PROTOCOL_VERSION
from serverproc import ServerProcess, free_port


@pytest.fixture
def workdir(tmp_path_factory) -> Path:
    """A folder under pytest's base temp folder, which the test servers take as their root
    (it also holds the session's synthetic clips)."""
    tmp_path = tmp_path_factory.mktemp("server")
    (tmp_path / "home").mkdir()
    (tmp_path / "media").mkdir()
    (tmp_path / "out").mkdir()
    return tmp_path


@pytest.fixture
def server(workdir):
    srv = ServerProcess(workdir / "home", workdir.parent).start()
    yield srv
    srv.stop()


def wait_until_running(client: Client, timeout_s: float = 60.0) -> None:
    """Block until the client receives a progress event (its job is running)."""
    deadline = time.monotonic() + timeout_s
    while not any(e["event"] == "progress" for e in client.poll_events(0.2)):
        assert time.monotonic() < deadline, "the job never started"


def spec_for(video: Path, out: Path, name: str, **extra) -> dict:
    return {"video": str(video), "output_dir": str(out), "name": name, **extra}


def test_hello_and_token_file(server):
    with server.client() as c:
        hello = c.hello()
    assert hello["protocol"] == PROTOCOL_VERSION and hello["server"] == "foleyspace"
    assert "submit" in hello["capabilities"]["ops"] and hello["workers"] == 2
    token = server.home / "token"
    assert token.stat().st_mode & 0o777 == 0o600
    assert len(token.read_text().strip()) >= 32


def test_ten_clients_fifty_jobs_each_done_once_and_identical(server, workdir, clip_factory):
    clip = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))
    reference = spatialize(job_from_spec(spec_for(clip, workdir / "media", "reference.wav")))
    expected = sf.read(str(reference.stem), dtype="int32")[0]
    terminal: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client_thread(k: int) -> None:
        try:
            with server.client(timeout=10) as c:
                mine = {c.submit(spec_for(clip, workdir / "out", f"c{k}_j{j}.wav")): f"c{k}_j{j}.wav"
                        for j in range(5)}
                ended: dict[str, list[str]] = {jid: [] for jid in mine}
                deadline = time.monotonic() + 240
                while not all(ended.values()) and time.monotonic() < deadline:
                    for event in c.poll_events(0.5):
                        if event["event"] in ("done", "failed", "cancelled"):
                            ended[event["job"]].append(event["event"])
                time.sleep(0.5)  # anything repeated would arrive now
                for event in c.poll_events(0.2):
                    if event["event"] in ("done", "failed", "cancelled"):
                        ended[event["job"]].append(event["event"])
                with lock:
                    terminal.update(ended)
                    names.update(mine)
        except BaseException as exc:  # surface thread failures in the test
            errors.append(exc)

    threads = [threading.Thread(target=client_thread, args=(k,)) for k in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert len(terminal) == 50
    assert all(events == ["done"] for events in terminal.values()), terminal
    with server.client() as c:
        listed = {j["job"]: j for j in c.jobs(limit=100)}
    assert all(listed[jid]["state"] == "done" and listed[jid]["attempts"] == 1 for jid in terminal)
    for jid, name in names.items():
        data = sf.read(str(workdir / "out" / name), dtype="int32")[0]
        assert np.array_equal(data, expected), name
        assert listed[jid]["result"]["stem"] == str(workdir / "out" / name)


def test_done_event_arrives_exactly_once(server, workdir, clip_factory):
    clip = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))
    with server.client() as c:
        jid = c.submit(spec_for(clip, workdir / "out", "once.wav"))
        c.wait(jid, timeout=60)
        time.sleep(0.5)
        late = [e for e in c.poll_events(0.2) if e.get("job") == jid and e["event"] == "done"]
    assert late == []  # wait() consumed the single done event; nothing repeats it


def test_kill9_mid_job_then_restart_loses_nothing(workdir, clip_factory):
    long_clip = clip_factory(motion="cross_lr", duration_s=8.0, size=(640, 360))
    short_clip = clip_factory(motion="cross_rl", duration_s=1.0, size=(160, 96))
    srv = ServerProcess(workdir / "home", workdir.parent, workers=1).start()
    try:
        with srv.client() as c:
            running = c.submit(spec_for(long_clip, workdir / "out", "long.wav"))
            queued = [c.submit(spec_for(short_clip, workdir / "out", f"q{i}.wav")) for i in range(3)]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if any(e["event"] == "progress" and e["job"] == running for e in c.poll_events(0.2)):
                    break
            else:
                pytest.fail("the long job never started")
            workers = srv.children()
            assert workers, "the server should have a worker process"
            srv.kill9()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
            time.sleep(0.1)
        assert not any(Path(f"/proc/{p}").exists() for p in workers), "workers must die with the server"
        assert not (workdir / "out" / "long.wav").exists()
    finally:
        srv.stop()
    srv2 = ServerProcess(workdir / "home", workdir.parent, workers=1, port=srv.port).start()
    try:
        with srv2.client() as c:
            for jid in [running, *queued]:
                final = c.wait(jid, timeout=120)
                assert final["state"] == "done", final
            assert c.status(running)["attempts"] == 2
        assert sf.info(str(workdir / "out" / "long.wav")).frames == 8 * 48000
        for i in range(3):
            assert sf.info(str(workdir / "out" / f"q{i}.wav")).frames == 48000
        assert not list((workdir / "out").glob(".*.tmp")), "no partial outputs left behind"
    finally:
        srv2.stop()


def test_cancel_running_job(server, workdir, clip_factory):
    clip = clip_factory(motion="cross_lr", duration_s=8.0, size=(640, 360))
    with server.client() as c:
        jid = c.submit(spec_for(clip, workdir / "out", "cancelled.wav"))
        wait_until_running(c)
        t0 = time.monotonic()
        c.cancel(jid)
        final = c.wait(jid, timeout=30)
        assert final["state"] == "cancelled"
        assert time.monotonic() - t0 < 5.0, "cancel should stop a running job promptly"
        assert not (workdir / "out" / "cancelled.wav").exists()
        # the worker is still usable
        again = c.submit(spec_for(clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96)),
                                  workdir / "out", "after.wav"))
        assert c.wait(again, timeout=60)["state"] == "done"


def test_cancel_queued_job(workdir, clip_factory):
    srv = ServerProcess(workdir / "home", workdir.parent, workers=1).start()
    try:
        clip = clip_factory(motion="cross_lr", duration_s=8.0, size=(640, 360))
        with srv.client() as c:
            first = c.submit(spec_for(clip, workdir / "out", "a.wav"))
            second = c.submit(spec_for(clip, workdir / "out", "b.wav"))
            assert c.cancel(second)["state"] == "cancelled"
            assert c.wait(first, timeout=120)["state"] == "done"
            assert c.status(second)["state"] == "cancelled"
        assert not (workdir / "out" / "b.wav").exists()
    finally:
        srv.stop()


def test_worker_crash_is_contained(server, workdir, clip_factory):
    clip = clip_factory(motion="cross_lr", duration_s=8.0, size=(640, 360))
    with server.client() as c:
        jid = c.submit(spec_for(clip, workdir / "out", "crash.wav"))
        wait_until_running(c)
        for pid in server.children():
            os.kill(pid, signal.SIGKILL)
        final = c.wait(jid, timeout=30)
        assert final["state"] == "failed" and final["error"]["code"] == "worker_crashed"
        small = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))
        after = c.submit(spec_for(small, workdir / "out", "after.wav"))
        assert c.wait(after, timeout=120)["state"] == "done"


def test_failed_job_reports_code_and_message(server, workdir, clip_factory):
    silent = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96), audio=None)
    with server.client() as c:
        final = c.wait(c.submit(spec_for(silent, workdir / "out", "x.wav")), timeout=60)
    assert final["state"] == "failed"
    assert final["error"]["code"] == "bad_input" and "no audio track" in final["error"]["message"]


# ------------------------------------------------------------------ hostile input
def raw_request(address: str, frames: list[bytes], wait_s: float = 1.0, identity: bytes | None = None) -> dict | None:
    """Send raw frames from a fresh DEALER; the decoded reply or None if none came."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if identity is not None:  # a fixed routing id, as the thin client sets for its reconnects
        sock.setsockopt(zmq.ROUTING_ID, identity)
    sock.connect(address)
    try:
        sock.send_multipart(frames)
        if sock.poll(int(wait_s * 1000)):
            return msgpack.unpackb(sock.recv(), raw=False)
        return None
    finally:
        sock.close()


def body(**fields) -> bytes:
    return msgpack.packb({"v": PROTOCOL_VERSION, "id": 7, **fields}, use_bin_type=True)


def test_hostile_messages_get_errors_and_server_keeps_serving(server, workdir, clip_factory):
    token = (server.home / "token").read_text().strip()
    addr = server.address
    # undecodable garbage without a token: dropped
    assert raw_request(addr, [b"\xc1\xff garbage \x00"]) is None
    assert raw_request(addr, [b"a", b"b", b"c", b"d"]) is None
    # decodable but unauthenticated
    assert raw_request(addr, [body(op="ping")])["error"]["code"] == "unauthorized"
    assert raw_request(addr, [body(op="ping", token="wrong")])["error"]["code"] == "unauthorized"
    assert raw_request(addr, [body(op="ping", token=12345)])["error"]["code"] == "unauthorized"
    # authenticated nonsense
    assert raw_request(addr, [body(op="frobnicate", token=token)])["error"]["code"] == "unknown_op"
    assert raw_request(addr, [body(op=5, token=token)])["error"]["code"] == "unknown_op"
    assert raw_request(addr, [msgpack.packb({"v": 99, "op": "ping", "token": token})])["error"]["code"] == "version"
    assert raw_request(addr, [msgpack.packb([1, 2, 3])]) is None
    reply = raw_request(addr, [body(op="status", token=token, job=["not", "a", "string"])])
    assert reply["re"] == 7 and reply["error"]["code"] == "bad_request"
    assert raw_request(addr, [body(op="status", token=token, job="nope")])["error"]["code"] == "not_found"
    assert raw_request(addr, [body(op="list", token=token, limit="many")])["error"]["code"] == "bad_request"
    # oversized: answered under the protocol limit, dropped by the socket beyond the hard limit
    big = body(op="ping", token=token, pad="x" * (2 << 20))
    assert raw_request(addr, [big])["error"]["code"] == "too_large"
    assert raw_request(addr, [b"\x00" * (17 << 20)], wait_s=2.0) is None
    clip = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))
    with server.client() as c:
        def submit_error(spec) -> str:
            with pytest.raises(ClientError) as exc:
                c.submit(spec)
            return exc.value.code

        assert submit_error({"video": str(clip)}) == "bad_request"  # no output_dir
        assert submit_error(spec_for(clip, workdir / "out", "x.wav", start_s="soon")) == "bad_request"
        assert submit_error(spec_for(clip, workdir / "out", "x.wav", bogus=1)) == "bad_request"
        assert submit_error(spec_for(clip, workdir / "out", "../escape.wav")) == "bad_request"
        assert submit_error(spec_for(clip, workdir / "out", "x.wav", options={"scheme": "ultra"})) == "bad_request"
        assert submit_error(spec_for(clip, "relative/out", "x.wav")) == "bad_request"
        assert submit_error(spec_for(clip, Path("/etc"), "x.wav")) == "forbidden"
        assert submit_error(spec_for(Path("/etc/hostname"), workdir / "out", "x.wav")) == "forbidden"
        assert submit_error(spec_for(clip, workdir / "out" / ".." / ".." / "..", "x.wav")) == "forbidden"  # above the root
        link = workdir / "out" / "link"
        link.symlink_to("/etc")
        assert submit_error(spec_for(clip, link, "x.wav")) == "forbidden"
        audio = workdir / "out" / "voice.wav"
        sf.write(str(audio), np.zeros(4800), 48000)
        assert submit_error(spec_for(clip, workdir / "out", "voice.wav", audio=str(audio))) == "forbidden"
        assert submit_error(spec_for(clip, workdir / "out", "voice.wav",
                                     audio=str(workdir / "out" / "missing.wav"))) == "forbidden"
        # ... and the server still serves
        jid = c.submit(spec_for(clip, workdir / "out", "fine.wav"))
        assert c.wait(jid, timeout=60)["state"] == "done"
    assert server.proc.poll() is None


def test_queue_limit(workdir, clip_factory):
    srv = ServerProcess(workdir / "home", workdir.parent, workers=1)
    srv.start()
    srv.stop()  # restart with a tiny queue
    env = {**os.environ, "FOLEYSPACE_HOME": str(srv.home)}
    proc = subprocess.Popen([sys.executable, "-m", "foleyspace", "serve", "--bind", srv.address, "--workers", "1",
                             "--root", str(workdir.parent), "--max-queued", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        clip = clip_factory(motion="cross_lr", duration_s=8.0, size=(640, 360))
        with srv.client(timeout=1.0, retries=20) as c:
            c.ping()
            codes = []
            for i in range(6):
                try:
                    c.submit(spec_for(clip, workdir / "out", f"q{i}.wav"))
                    codes.append("ok")
                except ClientError as exc:
                    codes.append(exc.code)
            assert "queue_full" in codes and codes[:2] == ["ok", "ok"]
            c.shutdown()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()


# ------------------------------------------------------------------ client side
def test_client_gives_up_clearly_when_no_server(tmp_path):
    t0 = time.monotonic()
    with Client(f"tcp://127.0.0.1:{free_port()}", token="t", home=tmp_path, timeout=0.3, retries=2) as c:
        with pytest.raises(ServerUnavailable, match="no FoleySpace server answers"):
            c.ping() or c.request("ping")
        assert c.ping() is False
    assert time.monotonic() - t0 < 5


def test_cli_without_server_is_one_line_exit_2(tmp_path):
    env = {**os.environ, "FOLEYSPACE_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "foleyspace", "status", "abc", "--server",
                           f"tcp://127.0.0.1:{free_port()}", "--timeout", "0.2"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no FoleySpace server answers" in lines[0]


def test_cli_submit_wait(server, workdir, clip_factory):
    env = {**os.environ, "FOLEYSPACE_HOME": str(server.home)}
    clip = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))
    ok = subprocess.run([sys.executable, "-m", "foleyspace", "submit", str(clip), "-o", str(workdir / "out" / "c.wav"),
                         "--wait", "--server", server.address], capture_output=True, text=True, env=env, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "wrote" in ok.stdout and (workdir / "out" / "c.wav").is_file()
    silent = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96), audio=None)
    bad = subprocess.run([sys.executable, "-m", "foleyspace", "-q", "submit", str(silent), "--audio",
                          str(workdir / "nothing.wav"), "-o", str(workdir / "out" / "d.wav"), "--wait",
                          "--server", server.address], capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2
    jobs = subprocess.run([sys.executable, "-m", "foleyspace", "jobs", "--server", server.address],
                          capture_output=True, text=True, env=env, timeout=60)
    assert jobs.returncode == 0 and "done" in jobs.stdout


def test_thin_client_imports_without_heavy_modules():
    code = ("import sys, foleyspace.client; heavy = {'numpy', 'torch', 'av', 'cv2', 'scipy'} & set(sys.modules); "
            "print(sorted(heavy)); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_serve_refuses_bad_settings_with_one_line(server, tmp_path, monkeypatch, capsys):
    from foleyspace.cli import main

    monkeypatch.setenv("FOLEYSPACE_HOME", str(tmp_path / "home2"))
    cases = {
        ("--bind", server.address): "Address already in use",
        ("--bind", f"tcp://0.0.0.0:{free_port()}"): "not loopback",
        ("--device", "gpu9"): "--device",
        ("--workers", "0"): "--workers",
    }
    for args, needle in cases.items():
        assert main(["serve", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err


def test_sigterm_stops_gracefully_and_requeues_running_job(workdir, clip_factory):
    clip = clip_factory(motion="cross_lr", duration_s=8.0, size=(640, 360))
    srv = ServerProcess(workdir / "home", workdir.parent, workers=1).start()
    try:
        with srv.client() as c:
            jid = c.submit(spec_for(clip, workdir / "out", "term.wav"))
            wait_until_running(c)
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(20) == 0
    finally:
        srv.stop()
    import sqlite3

    with sqlite3.connect(workdir / "home" / "jobs.sqlite3") as db:
        assert db.execute("SELECT state, attempts FROM jobs WHERE id = ?", (jid,)).fetchone() == ("queued", 0)


def test_resent_submit_with_same_key_is_one_job(server, workdir, clip_factory):
    token = (server.home / "token").read_text().strip()
    clip = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))
    spec = spec_for(clip, workdir / "out", "once.wav")
    me = b"client-1"  # a resend comes over a new connection with the client's fixed routing id
    first = raw_request(server.address, [body(op="submit", token=token, spec=spec, key="client-1:1")], identity=me)
    again = raw_request(server.address, [body(op="submit", token=token, spec=spec, key="client-1:1")], identity=me)
    other = raw_request(server.address, [body(op="submit", token=token, spec=spec, key="client-1:2")], identity=me)
    assert first["ok"] and again["ok"] and other["ok"]
    assert first["job"] == again["job"] != other["job"]
    bad = raw_request(server.address, [body(op="submit", token=token, spec=spec, key=["x"])])
    assert bad["error"]["code"] == "bad_request"


def test_jobs_cannot_write_into_the_server_state_folder(server, clip_factory):
    clip = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))
    with server.client() as c:
        with pytest.raises(ClientError) as exc:
            c.submit(spec_for(clip, server.home, "server.wav"))  # its sidecar would be server.json
    assert exc.value.code == "forbidden" and "state folder" in str(exc.value)
    assert json.loads((server.home / "server.json").read_text())["address"] == server.address


def test_sigterm_to_the_process_group_requeues_the_running_job(workdir, clip_factory):
    """Service managers signal the whole group: workers must leave the stop to the server."""
    clip = clip_factory(motion="cross_lr", duration_s=8.0, size=(640, 360))
    srv = ServerProcess(workdir / "home", workdir.parent, workers=1, new_session=True).start()
    try:
        with srv.client() as c:
            jid = c.submit(spec_for(clip, workdir / "out", "group.wav"))
            wait_until_running(c)
        os.killpg(srv.proc.pid, signal.SIGTERM)
        assert srv.proc.wait(20) == 0
    finally:
        srv.stop()
    import sqlite3

    with sqlite3.connect(workdir / "home" / "jobs.sqlite3") as db:
        assert db.execute("SELECT state FROM jobs WHERE id = ?", (jid,)).fetchone() == ("queued",)
