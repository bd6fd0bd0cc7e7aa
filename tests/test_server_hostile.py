"""The server against hostile peers: nothing a local process sends stops it.

Real server process, real ZeroMQ sockets on loopback. Each test ends by checking that the server
still answers a ping.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import msgpack
import pytest
import zmq

from foleyspace.protocol import OPS, PROTOCOL_VERSION
from serverproc import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("hostile") / "home"
    home.mkdir()
    srv = ServerProcess(home, tmp_path_factory.getbasetemp(), workers=1).start()  # the clips live there too
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def token(server) -> str:
    return (server.home / "token").read_text().strip()


class Peer:
    """One DEALER (or REQ) connection that sends raw frames and reads raw replies."""

    def __init__(self, address: str, kind: int = zmq.DEALER) -> None:
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(kind)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(address)

    def send(self, payload: bytes) -> None:
        self.sock.send(payload)

    def reply(self, wait_s: float = 2.0) -> dict | None:
        if not self.sock.poll(int(wait_s * 1000)):
            return None
        return msgpack.unpackb(self.sock.recv(), raw=False, strict_map_key=False)

    def drain(self) -> None:
        while self.sock.poll(0):
            self.sock.recv()

    def close(self) -> None:
        self.sock.close()


class Nested:
    """A list nested ``depth`` deep around ``leaf``: legal msgpack up to depth 1023, deeper than
    msgpack's own packer writes (511), so :func:`packed` writes it by hand."""

    def __init__(self, depth: int, leaf=0) -> None:
        self.depth, self.leaf = depth, leaf

    def encode(self) -> bytes:
        return b"\x91" * self.depth + msgpack.packb(self.leaf)


def nested(depth: int, leaf=0) -> Nested:
    return Nested(depth, leaf)


def packed(value) -> bytes:
    """msgpack of ``value``, with :class:`Nested` parts anywhere inside."""
    if isinstance(value, Nested):
        return value.encode()
    if isinstance(value, dict):
        head = bytes([0x80 | len(value)]) if len(value) < 16 else b"\xde" + len(value).to_bytes(2, "big")
        return head + b"".join(packed(k) + packed(v) for k, v in value.items())
    if isinstance(value, list):
        head = bytes([0x90 | len(value)]) if len(value) < 16 else b"\xdc" + len(value).to_bytes(2, "big")
        return head + b"".join(packed(v) for v in value)
    return msgpack.packb(value, use_bin_type=True)


def assert_alive(server, token: str) -> None:
    peer = Peer(server.address)
    try:
        peer.send(packed({"v": PROTOCOL_VERSION, "op": "ping", "id": "alive", "token": token}))
        reply = peer.reply(5.0)
        assert reply is not None and reply["ok"] and reply["re"] == "alive", "the server stopped answering"
    finally:
        peer.close()
    assert server.proc.poll() is None, "the server process died"


def test_a_deeply_nested_message_without_a_token_is_answered(server, token):
    """1004 bytes of legal msgpack (depth 1000) used to crash the server through repr()."""
    peer = Peer(server.address)
    try:
        message = packed({"v": nested(1000)})
        assert len(message) < 1100
        peer.send(message)
        reply = peer.reply()
        assert reply["error"]["code"] == "version" and "of type list" in reply["error"]["message"]
        for field in ("op", "id", "token"):
            peer.send(packed({"v": PROTOCOL_VERSION, field: nested(1000), **({} if field == "token" else {"token": token})}))
            reply = peer.reply()
            assert reply is not None and not reply["ok"], field
        peer.send(packed({"v": PROTOCOL_VERSION, "op": nested(1000), "token": token}))
        reply = peer.reply()
        assert reply["error"]["code"] == "unknown_op" and len(reply["error"]["message"]) < 200
        for op, field in (("status", "job"), ("cancel", "job"), ("result", "job"), ("list", "limit"),
                          ("submit", "spec"), ("submit", "key"), ("status", "watch")):
            peer.send(packed({"v": PROTOCOL_VERSION, "op": op, "token": token, "id": 1, field: nested(1000)}))
            reply = peer.reply()
            assert reply is not None and not reply["ok"] and reply["error"]["code"] == "bad_request", (op, field, reply)
    finally:
        peer.close()
    assert_alive(server, token)


SAFE_OPS = [op for op in OPS if op != "shutdown"]  # a valid shutdown would (rightly) stop it
SPEC_FIELDS = ("video", "output_dir", "name", "start_s", "end_s", "audio", "audio_start_s", "box", "box_time_s",
               "options")
OPTION_FIELDS = ("scheme", "hrtf", "segments_per_second", "distance_delay", "long_side", "sidecar", "label",
                 "localizer", "depth", "renderer")


def random_value(rng: random.Random, depth: int = 0):
    """A random msgpack value: scalars of every type (with edge cases), or containers."""
    choice = rng.random()
    if depth > 3 or choice < 0.55:
        return rng.choice([
            None, True, False, 0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 1.5, math.nan, math.inf, -math.inf, -0.0,
            "", "x" * rng.randint(1, 300), "/abs/path.mp4", "../../etc/passwd", "\x00", "ünï\u202e", b"\x00\xff",
            rng.randint(-10**6, 10**6), rng.random() * 1e300,
        ])
    if choice < 0.7:
        return nested(rng.randint(1, 1023), rng.choice([0, "a", None]))
    if choice < 0.85:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return {rng.choice(["a", "v", "op", "spec", "", "\x00"]): random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def random_message(rng: random.Random, token: str):
    """Structure-aware: a plausible envelope with some fields replaced by random values."""
    message = {"v": PROTOCOL_VERSION, "id": rng.randint(0, 10**6), "token": token, "op": rng.choice(SAFE_OPS)}
    spec = {field: random_value(rng) for field in rng.sample(SPEC_FIELDS, rng.randint(0, len(SPEC_FIELDS)))}
    if rng.random() < 0.5:
        spec["options"] = {f: random_value(rng) for f in rng.sample(OPTION_FIELDS, rng.randint(0, len(OPTION_FIELDS)))}
    message.update({"spec": spec, "job": random_value(rng), "key": random_value(rng), "limit": random_value(rng),
                    "watch": random_value(rng)})
    for field in rng.sample(list(message), rng.randint(0, 3)):
        if field == "op" and rng.random() < 0.5:
            continue
        message[field] = random_value(rng)
    if message.get("op") == "shutdown":
        message["token"] = "not-the-token"
    return message


def test_fuzzed_messages_never_stop_the_server(server, token):
    rng = random.Random(20261126)
    peer = Peer(server.address)
    deadline = time.monotonic() + 30
    sent = 0
    try:
        for batch in range(8):
            for _ in range(40):
                kind = rng.random()
                if kind < 0.15:
                    payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
                elif kind < 0.25:
                    payload = packed(random_value(rng))
                else:
                    payload = packed(random_message(rng, token))
                peer.send(payload)
                sent += 1
            time.sleep(0.05)
            peer.drain()
            assert_alive(server, token)
            if time.monotonic() > deadline:
                break
    finally:
        peer.close()
    assert sent >= 80


def test_a_req_socket_gets_its_reply(server, token):
    """The protocol document says REQ peers are tolerated: the reply carries their empty frame."""
    peer = Peer(server.address, zmq.REQ)
    try:
        peer.send(packed({"v": PROTOCOL_VERSION, "op": "ping", "id": 3, "token": token}))
        reply = peer.reply()
        assert reply is not None and reply["ok"] and reply["re"] == 3
        peer.send(packed({"v": PROTOCOL_VERSION, "op": "hello", "id": 4, "token": token}))  # REQ: strictly alternating
        assert peer.reply()["server"] == "foleyspace"
    finally:
        peer.close()


# ------------------------------------------------------------------------------ state folder
def test_a_second_server_on_the_same_state_folder_exits_2_naming_the_first(server, token):
    import os
    import subprocess
    import sys

    from serverproc import free_port

    done = subprocess.run([sys.executable, "-m", "foleyspace", "serve", "--bind", f"tcp://127.0.0.1:{free_port()}"],
                          env={**os.environ, "FOLEYSPACE_HOME": str(server.home)}, capture_output=True, text=True,
                          timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert f"pid {server.proc.pid}" in lines[0] and server.address in lines[0]
    info = (server.home / "server.json").read_text()
    assert server.address in info  # still points at the running server
    assert_alive(server, token)


def test_state_files_are_private_and_a_shared_home_is_tightened(tmp_path):
    import os
    import stat

    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    srv = ServerProcess(home, tmp_path, workers=1).start()
    try:
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        for name in ("token", "server.json", "jobs.sqlite3", "server.lock"):
            assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
        for extra in home.glob("jobs.sqlite3-*"):  # SQLite's WAL and shared-memory files follow the database
            assert stat.S_IMODE(extra.stat().st_mode) == 0o600, extra.name
    finally:
        srv.stop()


# ------------------------------------------------------------------------------ outputs
def test_a_job_does_not_replace_files_foleyspace_did_not_write(server, token, clip_factory, tmp_path):
    clip = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))
    out = tmp_path / "out"
    out.mkdir()
    (out / "my_recording.wav").write_bytes(b"RIFF not ours")
    (out / "project.json").write_text('{"mine": true}')
    with server.client(timeout=30) as client:
        for name in ("my_recording.wav", "project.wav"):
            final = client.wait(client.submit({"video": str(clip), "output_dir": str(out), "name": name}), timeout=60)
            assert final["state"] == "failed" and final["error"]["code"] == "bad_output", final
            assert "was not written by FoleySpace" in final["error"]["message"]
        assert (out / "my_recording.wav").read_bytes() == b"RIFF not ours"
        assert (out / "project.json").read_text() == '{"mine": true}'
        spec = {"video": str(clip), "output_dir": str(out), "name": "my_recording.wav", "options": {"overwrite": True}}
        assert client.wait(client.submit(spec), timeout=60)["state"] == "done"
    assert (out / "my_recording.wav").read_bytes()[:4] == b"RIFF" and (out / "my_recording.json").exists()


# ------------------------------------------------------------------------------ idempotency keys
def submit_raw(peer: Peer, token: str, spec: dict, key: str) -> dict:
    peer.send(packed({"v": PROTOCOL_VERSION, "op": "submit", "id": key, "token": token, "spec": spec, "key": key}))
    while True:  # skip events of earlier jobs
        reply = peer.reply(10.0)
        assert reply is not None, "no reply"
        if reply.get("re") == key:
            return reply


def test_submit_keys_return_the_real_job_and_belong_to_their_client(clip_factory, tmp_path):
    long_clip = clip_factory(motion="cross_lr", duration_s=10.0, size=(640, 360))
    short = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))
    home = tmp_path / "home"
    home.mkdir()
    srv = ServerProcess(home, tmp_path.parent.parent, workers=1, args=("--max-queued", "1")).start()
    token = (home / "token").read_text().strip()
    out = tmp_path / "out"
    out.mkdir()
    a, b = Peer(srv.address), Peer(srv.address)
    try:
        running = submit_raw(a, token, {"video": str(long_clip), "output_dir": str(out), "name": "long.wav"}, "k0")
        spec = {"video": str(short), "output_dir": str(out), "name": "short.wav"}
        deadline = time.monotonic() + 20
        while True:  # wait until the long job runs, so the next one stays queued and fills the queue
            a.send(packed({"v": PROTOCOL_VERSION, "op": "status", "id": "s", "token": token, "job": running["job"]}))
            status = a.reply()
            while status.get("re") != "s":
                status = a.reply()
            if status["state"] == "running":
                break
            assert time.monotonic() < deadline
        first = submit_raw(a, token, spec, "k1")
        assert first["ok"] and first["state"] == "queued"
        # 1. a resend while the queue is full is the accepted job, not queue_full
        again = submit_raw(a, token, spec, "k1")
        assert again["ok"] and again["job"] == first["job"] and again["state"] == "queued" and again["resent"]
        assert submit_raw(a, token, {**spec, "name": "other.wav"}, "k2")["error"]["code"] == "queue_full"
        # 2. the same key with another spec is refused
        clash = submit_raw(a, token, {**spec, "name": "different.wav"}, "k1")
        assert clash["error"]["code"] == "bad_request" and "different job spec" in clash["error"]["message"]
        # 3. keys belong to their client: another client's k1 is its own job (refused here: queue full)
        assert submit_raw(b, token, spec, "k1")["error"]["code"] == "queue_full"
        # 4. a resend after the job ended answers its real state
        with srv.client(timeout=30) as c:
            assert c.wait(first["job"], timeout=120)["state"] == "done"
        late = submit_raw(a, token, spec, "k1")
        assert late["ok"] and late["job"] == first["job"] and late["state"] == "done"
    finally:
        a.close()
        b.close()
        srv.stop()


# ------------------------------------------------------------------------------ storage faults
def test_a_locked_database_is_answered_and_nothing_is_lost(clip_factory, tmp_path):
    """Another process holds the job database's write lock for seconds: requests that must write
    are answered `unavailable`, everything else keeps working, and a job that ends meanwhile is
    saved and announced once the lock is gone."""
    import sqlite3

    from foleyspace.client import ClientError

    clip = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))
    home = tmp_path / "home"
    home.mkdir()
    srv = ServerProcess(home, tmp_path.parent.parent, workers=1).start()
    out = tmp_path / "out"
    out.mkdir()
    try:
        with srv.client(timeout=10) as client:
            job = client.submit({"video": str(clip), "output_dir": str(out), "name": "a.wav"})
            other = sqlite3.connect(str(home / "jobs.sqlite3"), isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # the write lock
            try:
                with pytest.raises(ClientError) as exc:
                    client.submit({"video": str(clip), "output_dir": str(out), "name": "b.wav"})
                assert exc.value.code == "unavailable" and "database" in str(exc.value)
                assert client.ping()
                assert client.status(job)["state"] in ("queued", "running")  # reads still work
                time.sleep(3.0)  # the job can start or end meanwhile; neither can be saved yet
            finally:
                other.execute("ROLLBACK")
                other.close()
            assert client.wait(job, timeout=60)["state"] == "done"
            again = client.wait(client.submit({"video": str(clip), "output_dir": str(out), "name": "b.wav"}), timeout=60)
            assert again["state"] == "done"
    finally:
        srv.stop()
    assert srv.proc.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs (needs root; skipped elsewhere)."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(folder: Path) -> Path:
    """Write a file until the file system is full; returns it."""
    filler = folder / "filler"
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_is_answered_shutdown_completes_and_the_job_runs_after(small_disk, clip_factory, tmp_path):
    from foleyspace.client import ClientError

    clip = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))
    home = small_disk / "home"
    home.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    srv = ServerProcess(home, tmp_path.parent.parent, workers=1).start()
    with srv.client(timeout=10) as client:
        job = client.submit({"video": str(clip), "output_dir": str(out), "name": "a.wav"})
        filler = fill(small_disk)
        with pytest.raises(ClientError) as exc:
            for i in range(20):  # the WAL may still hold a little room: fill it
                client.submit({"video": str(clip), "output_dir": str(out), "name": f"more{i}.wav"})
        assert exc.value.code == "unavailable" and "full" in str(exc.value)
        assert client.ping()
        client.shutdown()
    srv.proc.wait(20)  # the stop completes on a full disk (it used to hang until kill -9)
    assert srv.proc.returncode == 0
    srv.log.close()
    filler.unlink()
    srv = ServerProcess(home, tmp_path.parent.parent, workers=1).start()
    try:
        with srv.client(timeout=10) as client:
            assert client.wait(job, timeout=60)["state"] == "done"  # nothing was lost
    finally:
        srv.stop()


# ------------------------------------------------------------------------------ paths at the point of use
@pytest.fixture
def rooted(clip_factory, tmp_path):
    """A server whose only root is ``tmp_path/root`` (media and outputs inside), and a folder
    outside it; a 10 s clip so that a job runs long enough to tamper with it."""
    import shutil

    root, outside = tmp_path / "root", tmp_path / "outside"
    for folder in (root / "media", root / "out", outside, root / "home"):
        folder.mkdir(parents=True)
    clip = root / "media" / "clip.mp4"
    shutil.copy(clip_factory(motion="cross_lr", duration_s=10.0, size=(640, 360)), clip)
    srv = ServerProcess(root / "home", root, workers=1).start()
    yield srv, root, outside, clip
    srv.stop()


def wait_analyzing(client, job: str, timeout_s: float = 30.0) -> None:
    """Until the job reports analysis progress: its worker has opened the inputs and is reading."""
    deadline = time.monotonic() + timeout_s
    while not any(e.get("job") == job and e.get("event") == "progress" and e.get("stage") == "analyze"
                  and 0 < e.get("fraction", 0) < 1 for e in client.poll_events(0.05)):
        assert time.monotonic() < deadline, "the job never started analyzing"


def test_an_output_folder_swapped_for_a_link_after_dispatch_is_refused_at_write(rooted):
    import os

    srv, root, outside, clip = rooted
    out = root / "stems"
    out.symlink_to(root / "out")  # the output folder is a link inside the root ...
    with srv.client(timeout=10) as client:
        job = client.submit({"video": str(clip), "output_dir": str(out), "name": "stem.wav"})
        wait_analyzing(client, job)
        swap = root / "swap"
        swap.symlink_to(outside)
        os.replace(swap, out)  # ... atomically re-pointed outside the roots while the job runs
        final = client.wait(job, timeout=60)
    assert final["state"] == "failed" and final["error"]["code"] == "forbidden", final.get("error")
    assert "outside the folders" in final["error"]["message"]
    assert list(outside.iterdir()) == [] and list((root / "out").iterdir()) == []


def test_an_output_folder_swapped_for_the_state_folder_is_refused(rooted):
    import os

    srv, root, outside, clip = rooted
    out = root / "stems"
    out.symlink_to(root / "out")
    with srv.client(timeout=10) as client:
        job = client.submit({"video": str(clip), "output_dir": str(out), "name": "server.wav"})
        wait_analyzing(client, job)
        swap = root / "swap"
        swap.symlink_to(srv.home)  # the sidecar would replace server.json
        os.replace(swap, out)
        final = client.wait(job, timeout=60)
        assert final["state"] == "failed" and final["error"]["code"] == "forbidden", final.get("error")
        assert client.ping()
    assert "server.wav" not in {p.name for p in srv.home.iterdir()}


def test_an_input_swapped_after_the_job_started_is_not_read(rooted, tmp_path):
    """The audio path becomes a link to a pipe outside the roots while the job analyzes the
    video: the job reads the file it opened (and does not block on the pipe)."""
    import os

    import soundfile as sf
    import numpy as np

    srv, root, outside, clip = rooted
    audio = root / "media" / "voice.wav"
    sf.write(str(audio), 0.1 * np.sin(np.arange(48000 * 10) * 0.05), 48000)
    fifo = outside / "pipe"
    os.mkfifo(fifo)
    with srv.client(timeout=10) as client:
        job = client.submit({"video": str(clip), "output_dir": str(root / "out"), "name": "v.wav", "audio": str(audio)})
        wait_analyzing(client, job)
        audio.unlink()
        audio.symlink_to(fifo)
        final = client.wait(job, timeout=60)
    assert final["state"] == "done", final.get("error")
    stem, _ = sf.read(str(root / "out" / "v.wav"))
    assert np.abs(stem).max() > 0.01  # the voice it opened, not silence


def test_inputs_are_judged_where_they_are_opened(rooted, tmp_path):
    """In the pipeline itself (what a worker runs): a link to outside the roots, a pipe."""
    import os

    from foleyspace.errors import FoleySpaceError, InputError
    from foleyspace.job import Job
    from foleyspace.pipeline import spatialize
    from foleyspace.server.policy import PathPolicy

    srv, root, outside, clip = rooted
    policy = PathPolicy.from_paths([root], [srv.home])
    secret = outside / "secret.wav"
    secret.write_bytes(b"RIFF")
    link = root / "media" / "link.wav"
    link.symlink_to(secret)
    with pytest.raises(FoleySpaceError, match="audio .* is outside the folders") as exc:
        spatialize(Job(video=clip, output=root / "out" / "a.wav", audio=link), guard=policy)
    assert exc.value.code == "forbidden"
    pipe = root / "media" / "pipe.wav"
    os.mkfifo(pipe)
    with pytest.raises(InputError, match="not a regular file"):
        spatialize(Job(video=clip, output=root / "out" / "a.wav", audio=pipe))  # no guard: still refused
    assert list((root / "out").iterdir()) == []


def test_a_stuck_job_is_stopped_and_the_server_goes_on(clip_factory, tmp_path, monkeypatch):
    clip = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))
    toy = Path(__file__).with_name("toy_plugin")
    monkeypatch.setenv("PYTHONPATH", str(toy))
    home = tmp_path / "home"
    home.mkdir()
    srv = ServerProcess(home, tmp_path.parent.parent, workers=1, args=("--stall-timeout", "3")).start()
    out = tmp_path / "out"
    out.mkdir()
    import tempfile

    held_before = set(Path(tempfile.gettempdir()).glob("foleyspace-inputs-*"))
    try:
        with srv.client(timeout=10) as client:
            t0 = time.monotonic()
            stuck = client.submit({"video": str(clip), "output_dir": str(out), "name": "stuck.wav",
                                   "options": {"localizer": "toy-stuck"}})
            final = client.wait(stuck, timeout=60)
            assert final["state"] == "failed" and final["error"]["code"] == "timeout", final
            assert "no progress for 3 s" in final["error"]["message"] and time.monotonic() - t0 < 30
            after = client.wait(client.submit({"video": str(clip), "output_dir": str(out), "name": "next.wav"}), timeout=60)
            assert after["state"] == "done"
    finally:
        srv.stop()
    # the killed worker's private input links were removed by the server
    assert set(Path(tempfile.gettempdir()).glob("foleyspace-inputs-*")) - held_before == set()


# ------------------------------------------------------------------------------ error codes
def test_a_full_output_disk_fails_the_job_as_bad_output_and_leaves_nothing(small_disk, clip_factory, tmp_path, server):
    clip = clip_factory(motion="cross_lr", duration_s=10.0, size=(640, 360))  # a 2.9 MB stem
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (2 << 20))  # 2 MiB of the 3: 1 MiB left, not enough for the stem
    with server.client(timeout=10) as client:
        final = client.wait(client.submit({"video": str(clip), "output_dir": str(small_disk), "name": "big.wav"}),
                            timeout=120)
        assert final["state"] == "failed" and final["error"]["code"] == "bad_output", final.get("error")
        assert "big.wav" in final["error"]["message"] and "/proc/" not in final["error"]["message"]
        assert client.ping()
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def test_names_too_long_for_the_file_system_are_refused_up_front(server, clip_factory, tmp_path):
    from foleyspace.client import ClientError

    clip = clip_factory(motion="cross_lr", duration_s=1.0, size=(160, 96))
    with server.client(timeout=10) as client:
        with pytest.raises(ClientError) as exc:
            client.submit({"video": str(clip), "output_dir": str(tmp_path), "name": "n" * 237 + ".wav"})  # 241 bytes
        assert exc.value.code == "bad_request" and "at most 240" in str(exc.value)
        fits = client.submit({"video": str(clip), "output_dir": str(tmp_path), "name": "n" * 236 + ".wav"})
        assert client.wait(fits, timeout=60)["state"] == "done"
