"""Unit tests of the job server's parts, without sockets or processes: the wire envelope, the
state folder, job specs, the SQLite job table and the path policy.

The whole-server behavior over real ZeroMQ sockets is in ``test_server.py``.
"""

from __future__ import annotations

import json
import math
import os
import stat
import sys
from dataclasses import replace
from pathlib import Path

import msgpack
import pytest

from foleyspace import home
from foleyspace.config import SpatializeConfig
from foleyspace.errors import FoleySpaceError
from foleyspace.jobspec import OPTION_DEFAULTS, SpecError, default_name, job_from_spec, spec_from_job
from foleyspace.job import Job, SeedBox
from foleyspace.render import DspRendererConfig
from foleyspace.protocol import (
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    ProtocolError,
    error_reply,
    pack,
    unpack,
)
from foleyspace.server.policy import PathPolicy, PolicyError
from foleyspace.server.store import JobStore

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes and symlinks are POSIX here")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ============================================================================ protocol
class TestProtocol:
    def test_round_trip_adds_version(self):
        message = {"op": "submit", "id": 7, "token": "t", "spec": {"video": "/a.mov", "box": [1, 2.5, 3, 4]},
                   "blob": b"\x00\xff"}
        data = pack(message)
        assert msgpack.unpackb(data, raw=False)["v"] == PROTOCOL_VERSION == 1
        assert unpack(data) == {"v": 1, **message}
        assert isinstance(unpack(data)["blob"], bytes)  # bin stays bin, str stays str

    def test_pack_does_not_mutate_its_argument(self):
        message = {"op": "ping", "id": "x"}
        pack(message)
        assert message == {"op": "ping", "id": "x"}

    @pytest.mark.parametrize("value", [[1, 2], "hello", 3, None, b"bytes", [{"v": 1}]])
    def test_rejects_non_map(self, value):
        with pytest.raises(ProtocolError) as info:
            unpack(msgpack.packb(value, use_bin_type=True))
        assert info.value.code == "malformed"

    @pytest.mark.parametrize("message", [{"v": 2, "op": "ping"}, {"v": 0}, {"op": "ping"}, {"v": "1"},
                                         {"v": None}, {"v": [1]}])
    def test_rejects_wrong_version(self, message):
        with pytest.raises(ProtocolError) as info:
            unpack(msgpack.packb(message, use_bin_type=True))
        assert info.value.code == "version"

    def test_rejects_boolean_version(self):
        with pytest.raises(ProtocolError):
            unpack(msgpack.packb({"v": True, "op": "ping"}))

    @pytest.mark.parametrize("data", [
        b"",                                   # nothing
        b"\xc1",                               # the one byte msgpack never uses
        pack({"op": "ping", "id": 1})[:-1],    # truncated
        pack({"op": "ping"}) + b"\x01",        # trailing data
        b"\x81\xa1v",                          # map whose value is missing
        msgpack.packb({1: "x", "v": 1}),       # non-string map key
        b"\xff" * 40,
    ])
    def test_rejects_garbage(self, data):
        with pytest.raises(ProtocolError) as info:
            unpack(data)
        assert info.value.code == "malformed"

    def test_rejects_oversized_before_decoding(self):
        with pytest.raises(ProtocolError) as info:
            unpack(b"\x00" * (MAX_MESSAGE_BYTES + 1))  # garbage, but the size is checked first
        assert info.value.code == "too_large"
        big = pack({"op": "ping", "pad": "x" * 200})
        with pytest.raises(ProtocolError) as info:
            unpack(big, max_bytes=len(big) - 1)
        assert info.value.code == "too_large"
        assert unpack(big, max_bytes=len(big))["pad"] == "x" * 200  # the limit itself is allowed

    @pytest.mark.parametrize("ext", [msgpack.ExtType(5, b"abc"), msgpack.ExtType(42, b"\x00" * 16),
                                     msgpack.Timestamp(1_700_000_000, 5)])
    def test_rejects_ext_types(self, ext):
        with pytest.raises(ProtocolError) as info:
            unpack(msgpack.packb({"v": 1, "op": "ping", "x": ext}))
        assert info.value.code == "malformed"

    def test_rejects_empty_ext_type(self):
        with pytest.raises(ProtocolError):
            unpack(msgpack.packb({"v": 1, "op": "ping", "x": msgpack.ExtType(5, b"")}))

    def test_error_reply_shape(self):
        reply = error_reply(12, "forbidden", "no")
        assert reply == {"re": 12, "ok": False, "error": {"code": "forbidden", "message": "no"}}
        assert unpack(pack(reply)) == {"v": 1, **reply}
        assert error_reply(None, "malformed", "x")["re"] is None

    def test_protocol_error_carries_code(self):
        err = ProtocolError("version", "bad version")
        assert err.code == "version" and str(err) == "bad version"


# ============================================================================ home
class TestHome:
    def test_foleyspace_home_respected(self, monkeypatch, tmp_path):
        monkeypatch.setenv("FOLEYSPACE_HOME", str(tmp_path / "state"))
        assert home.state_dir() == tmp_path / "state"
        assert not (tmp_path / "state").exists()  # state_dir does not create it
        token = home.ensure_token()  # no explicit home: the env var decides
        assert (tmp_path / "state" / home.TOKEN_FILE).read_text().strip() == token
        assert home.read_token() == token

    def test_foleyspace_home_expands_user(self, monkeypatch, tmp_path):
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.setenv("FOLEYSPACE_HOME", "~/sample_rate")
        assert home.state_dir() == tmp_path / "sample_rate"

    def test_without_env_uses_xdg_state_home(self, monkeypatch, tmp_path):
        if os.name == "nt" or sys.platform == "darwin":
            pytest.skip("Linux layout")
        monkeypatch.delenv("FOLEYSPACE_HOME", raising=False)
        monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
        assert home.state_dir() == tmp_path / "xdg" / "foleyspace"

    @posix_only
    def test_ensure_token_creates_0600_file_once(self, tmp_path):
        state = tmp_path / "a" / "b"
        assert home.read_token(state) is None
        token = home.ensure_token(state)
        assert len(token) >= 32
        path = state / home.TOKEN_FILE
        assert mode(path) == 0o600
        assert mode(state) & 0o077 == 0  # the folder is private too
        before = path.stat().st_mtime_ns, path.stat().st_ino
        assert home.ensure_token(state) == token
        assert home.read_token(state) == token
        assert (path.stat().st_mtime_ns, path.stat().st_ino) == before  # not rewritten
        assert [p.name for p in state.iterdir()] == [home.TOKEN_FILE]  # no temporary files left
        assert home.ensure_token(tmp_path / "other") != token  # random per state folder

    @posix_only
    def test_token_file_with_wrong_mode_is_fixed(self, tmp_path):
        tmp_path.chmod(0o700)
        path = tmp_path / home.TOKEN_FILE
        path.write_text("secret-token\n")
        path.chmod(0o644)
        assert home.ensure_token(tmp_path) == "secret-token"
        assert mode(path) == 0o600

    def test_empty_token_file_is_replaced(self, tmp_path):
        (tmp_path / home.TOKEN_FILE).write_text("\n")
        assert home.read_token(tmp_path) is None
        token = home.ensure_token(tmp_path)
        assert token and home.read_token(tmp_path) == token

    def test_server_info_round_trip(self, tmp_path):
        state = tmp_path / "state"
        assert home.read_server_address(state) is None
        home.write_server_info("tcp://127.0.0.1:5999", 4242, state)
        assert home.read_server_address(state) == "tcp://127.0.0.1:5999"
        assert json.loads((state / home.SERVER_FILE).read_text()) == {"address": "tcp://127.0.0.1:5999", "pid": 4242}
        home.write_server_info("ipc:///tmp/x", 4243, state)  # overwritten by the next server
        assert home.read_server_address(state) == "ipc:///tmp/x"
        assert sorted(p.name for p in state.iterdir()) == [home.SERVER_FILE]

    def test_server_info_uses_env_home(self, monkeypatch, tmp_path):
        monkeypatch.setenv("FOLEYSPACE_HOME", str(tmp_path))
        home.write_server_info("tcp://127.0.0.1:1", 1)
        assert home.read_server_address() == "tcp://127.0.0.1:1"

    @pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]", b'{"pid": 3}', b'"tcp://x"',
                                         b"\xff\xfe\x00garbage", b"null"])
    def test_read_server_address_on_garbage_is_none(self, tmp_path, content):
        (tmp_path / home.SERVER_FILE).write_bytes(content)
        assert home.read_server_address(tmp_path) is None

    def test_read_server_address_null_is_none(self, tmp_path):
        (tmp_path / home.SERVER_FILE).write_text('{"address": null, "pid": 1}')
        assert home.read_server_address(tmp_path) is None


# ============================================================================ jobspec
MIN_SPEC = {"video": "/media/clip.mov", "output_dir": "/stems"}


def spec(**fields):
    return {**MIN_SPEC, **fields}


def opts(**options):
    return spec(options=options)


def dsp(job):
    """The DSP renderer's settings of a job (its defaults when the spec set none)."""
    return job.config.settings_for("renderer", "dsp") or DspRendererConfig()


class TestJobSpec:
    def test_minimal_spec_defaults(self):
        job = job_from_spec(dict(MIN_SPEC))
        assert job.video == Path("/media/clip.mov")
        assert job.output == Path("/stems/clip_binaural.wav")
        assert default_name(Path("/x/take 2.final.mp4")) == "take 2.final_binaural.wav"
        assert job.audio is None and job.hrtf is None and job.seed_box is None
        assert job.start_s is None and job.end_s is None
        assert job.config.trajectory.scheme == "fine"
        assert dsp(job).segment_rate_hz is None
        assert dsp(job).distance_delay is False
        assert job.config.analysis.long_side == 640
        assert job.write_sidecar is True
        assert job.config == SpatializeConfig.for_scheme("fine")

    def test_null_fields_mean_defaults(self):
        nulls = {k: None for k in ("name", "start_s", "end_s", "audio", "box", "box_time_s", "options")}
        assert job_from_spec(spec(**nulls)) == job_from_spec(dict(MIN_SPEC))
        assert job_from_spec(opts(**OPTION_DEFAULTS)) == job_from_spec(dict(MIN_SPEC))

    def test_coarse_scheme(self):
        job = job_from_spec(opts(scheme="coarse"))
        assert job.config.trajectory.scheme == "coarse"
        assert dsp(job).segment_rate_hz is None  # one segment per (per-second) position
        assert dsp(job_from_spec(opts(scheme="coarse", segments_per_second=4))).segment_rate_hz == 4.0

    def test_full_spec(self):
        job = job_from_spec(spec(name="Take.WAV", start_s=1, end_s=5.5, audio="/media/voice.wav",
                                 box=[10, 20, 30.5, 40], box_time_s=2.0,
                                 options={"hrtf": "/h/ku100.sofa", "distance_delay": True, "long_side": 32,
                                          "sidecar": False, "segments_per_second": 2.5}))
        assert job.output == Path("/stems/Take.WAV")
        assert (job.start_s, job.end_s) == (1.0, 5.5)
        assert job.audio == Path("/media/voice.wav")
        assert job.seed_box == SeedBox(10.0, 20.0, 30.5, 40.0, 2.0)
        assert job.hrtf == Path("/h/ku100.sofa")
        assert dsp(job).distance_delay is True
        assert dsp(job).segment_rate_hz == 2.5
        assert job.config.analysis.long_side == 32
        assert job.write_sidecar is False
        assert job_from_spec(opts(long_side=8192)).config.analysis.long_side == 8192

    @pytest.mark.parametrize("bad", [
        pytest.param(None, id="not-a-map-none"),
        pytest.param([], id="not-a-map-list"),
        pytest.param("spec", id="not-a-map-str"),
        pytest.param({"output_dir": "/stems"}, id="missing-video"),
        pytest.param({"video": "/media/clip.mov"}, id="missing-output_dir"),
        pytest.param(spec(video="media/clip.mov"), id="relative-video"),
        pytest.param(spec(output_dir="stems"), id="relative-output_dir"),
        pytest.param(spec(audio="voice.wav"), id="relative-audio"),
        pytest.param(opts(hrtf="ku100.sofa"), id="relative-hrtf"),
        pytest.param(spec(video=""), id="empty-video"),
        pytest.param(spec(video=42), id="non-string-video"),
        pytest.param(spec(output_dir=["/stems"]), id="list-output_dir"),
        pytest.param(spec(video="/media/cl\x00ip.mov"), id="nul-in-path"),
        pytest.param(spec(start_s=math.nan), id="nan-start"),
        pytest.param(spec(end_s=math.inf), id="inf-end"),
        pytest.param(spec(start_s=-1.0), id="negative-start"),
        pytest.param(spec(end_s=True), id="bool-end"),
        pytest.param(spec(start_s="1.0"), id="string-start"),
        pytest.param(spec(box=[1, 2, 3]), id="box-3"),
        pytest.param(spec(box=[1, 2, 3, 4, 5]), id="box-5"),
        pytest.param(spec(box=[]), id="box-empty"),
        pytest.param(spec(box="1,2,3,4"), id="box-string"),
        pytest.param(spec(box={"x": 1}), id="box-map"),
        pytest.param(spec(box=[1, 2, -3, 4]), id="box-negative"),
        pytest.param(spec(box=[1, 2, math.nan, 4]), id="box-nan"),
        pytest.param(spec(box=[1, True, 3, 4]), id="box-bool"),
        pytest.param(spec(box=[1, 2, 3, 4], box_time_s=-0.5), id="box-time-negative"),
        pytest.param(spec(box=[1, 2, 3, 4], box_time_s=False), id="box-time-bool"),
        pytest.param(spec(color="red"), id="unknown-field"),
        pytest.param(spec(Video="/media/clip.mov"), id="unknown-field-case"),
        pytest.param(opts(speed=2), id="unknown-option"),
        pytest.param(spec(options="fine"), id="options-not-map"),
        pytest.param(spec(options=[1]), id="options-list"),
        pytest.param(spec(name="../x.wav"), id="name-dotdot-dir"),
        pytest.param(spec(name="a/b.wav"), id="name-folder"),
        pytest.param(spec(name="/abs/b.wav"), id="name-absolute"),
        pytest.param(spec(name="a\\b.wav"), id="name-backslash"),
        pytest.param(spec(name=".hidden.wav"), id="name-hidden"),
        pytest.param(spec(name=".wav"), id="name-only-suffix"),
        pytest.param(spec(name="x.mp3"), id="name-mp3"),
        pytest.param(spec(name="x.wav.txt"), id="name-wav-not-last"),
        pytest.param(spec(name=".."), id="name-dotdot"),
        pytest.param(spec(name=""), id="name-empty"),
        pytest.param(spec(name=3), id="name-int"),
        pytest.param(spec(name="x\x00.wav"), id="name-nul"),
        pytest.param(opts(scheme="medium"), id="scheme-unknown"),
        pytest.param(opts(scheme="Fine"), id="scheme-case"),
        pytest.param(opts(scheme=None), id="scheme-null"),
        pytest.param(opts(long_side=31), id="long_side-too-small"),
        pytest.param(opts(long_side=8193), id="long_side-too-big"),
        pytest.param(opts(long_side=640.0), id="long_side-float"),
        pytest.param(opts(long_side=True), id="long_side-bool"),
        pytest.param(opts(long_side="640"), id="long_side-string"),
        pytest.param(opts(segments_per_second=0), id="segments-zero"),
        pytest.param(opts(segments_per_second=-1), id="segments-negative"),
        pytest.param(opts(segments_per_second=math.nan), id="segments-nan"),
        pytest.param(opts(distance_delay=1), id="distance_delay-int"),
        pytest.param(opts(sidecar="yes"), id="sidecar-string"),
        pytest.param(opts(sidecar=None), id="sidecar-null"),
    ])
    def test_invalid_specs_raise_spec_error(self, bad):
        with pytest.raises(SpecError) as info:
            job_from_spec(bad)
        assert info.value.code == "bad_request"
        assert isinstance(info.value, FoleySpaceError)
        assert "\n" not in str(info.value)

    def test_box_time_without_box_is_validated(self):
        with pytest.raises(SpecError):
            job_from_spec(spec(box_time_s=b"soon"))  # bytes: later json.dumps in JobStore.add fails

    @pytest.mark.parametrize("options", [[], 0, "", b""], ids=["list", "zero", "str", "bytes"])
    def test_falsy_non_map_options_rejected(self, options):
        with pytest.raises(SpecError):
            job_from_spec(spec(options=options))

    def test_huge_int_raises_spec_error(self):
        with pytest.raises(SpecError):
            job_from_spec(spec(start_s=10**400))

    def test_round_trip_minimal(self, tmp_path):
        base = tmp_path.resolve()
        job = job_from_spec({"video": str(base / "clip.mov"), "output_dir": str(base / "out")})
        again = spec_from_job(job)
        assert job_from_spec(again) == job
        assert again["name"] == "clip_binaural.wav"
        assert again["output_dir"] == str(base / "out")
        json.dumps(again)  # plain data
        msgpack.packb(again)

    def test_round_trip_everything(self, tmp_path):
        base = tmp_path.resolve()
        original = {
            "video": str(base / "media" / "clip.mov"), "output_dir": str(base / "stems"), "name": "dog.wav",
            "start_s": 0.5, "end_s": 4.0, "speed": -2.0, "hold_s": None,
            "audio": str(base / "media" / "bark.wav"), "audio_start_s": 0.75,
            "box": [12.0, 30.5, 64.0, 48.0], "box_time_s": 1.25, "more_boxes": [[20.0, 30.0, 60.0, 50.0, 3.0]],
            "options": {"scheme": "coarse", "hrtf": str(base / "hrtf" / "ku100.sofa"), "segments_per_second": 3.0,
                        "distance_delay": True, "long_side": 1280, "sidecar": False, "label": "dog",
                        "localizer": "auto", "depth": "auto", "renderer": "auto", "overwrite": False,
                        "vocab": "imagenet", "detect_every": 3, "depth_model": "metric-outdoor-small", "depth_every": 5,
                        "preview": True, "hrtf_interp": "linear", "hrtf_directions": "fine",
                        "checkpoint": str(base / "models" / "fine.pt"), "diffusion_schedule": "fast", "seed": 11},
        }
        job = job_from_spec(original)
        again = spec_from_job(job)
        assert again == original
        assert job_from_spec(again) == job
        assert job.seed_box.time_s == 1.25 and job.hrtf == base / "hrtf" / "ku100.sofa"
        assert job.preview == base / "stems" / "dog.preview.mp4"

    def test_round_trip_of_a_python_built_job(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        cfg = SpatializeConfig.for_scheme("fine")
        cfg = replace(cfg, settings={"renderer:dsp": DspRendererConfig(distance_delay=True)})
        job = Job(video=Path("clip.mp4"), output=Path("out/stem.wav"), audio=Path("voice.flac"), start_s=1,
                  seed_box=SeedBox(1, 2, 3, 4), hrtf=Path("h.sofa"), config=cfg)
        back = job_from_spec(spec_from_job(job))
        base = tmp_path.resolve()
        assert back == replace(job, video=base / "clip.mp4", output=base / "out" / "stem.wav",
                               audio=base / "voice.flac", hrtf=base / "h.sofa")
        assert back.seed_box == SeedBox(1.0, 2.0, 3.0, 4.0, None)
        assert job_from_spec(spec_from_job(back)) == back
        assert job_from_spec(spec_from_job(Job(video=base / "v.mp4", output=base / "o.wav"))) == \
            Job(video=base / "v.mp4", output=base / "o.wav")


# ============================================================================ store
@pytest.fixture
def store(tmp_path):
    s = JobStore(tmp_path / "jobs.sqlite")
    yield s
    s.close()


def add(store: JobStore, n: int = 1) -> list[str]:
    return [store.add({"video": f"/media/clip{i}.mov", "output_dir": "/stems"}).id for i in range(n)]


class TestStore:
    def test_add_is_queued_in_submission_order(self, store):
        record = store.add({"video": "/media/a.mov", "output_dir": "/stems"})
        assert record.state == "queued" and record.attempts == 0
        assert record.spec == {"video": "/media/a.mov", "output_dir": "/stems"}
        assert record.result is None and record.error_code is None
        assert store.get(record.id) == record
        ids = [record.id, *add(store, 4)]
        assert len(set(ids)) == 5
        assert store.queued() == ids
        assert store.count("queued") == 5 and store.count("running") == 0
        assert store.get("nope") is None

    def test_start_only_from_queued_and_counts_attempts(self, store):
        a, b = add(store, 2)
        assert store.start(a) is True
        assert store.get(a).state == "running" and store.get(a).attempts == 1
        assert store.start(a) is False  # already running
        assert store.get(a).attempts == 1
        assert store.queued() == [b]
        store.requeue(a)  # a graceful stop: the interrupted attempt does not count
        assert store.queued() == [a, b]  # keeps its place by submission order
        assert store.get(a).attempts == 0
        assert store.start(a) is True and store.get(a).attempts == 1
        assert store.finish(a, "done", result={"stem": "/stems/a.wav"})
        assert store.start(a) is False and store.get(a).state == "done"
        assert store.start("missing") is False

    def test_finish_only_once(self, store):
        (a,) = add(store)
        store.start(a)
        assert store.finish(a, "done", result={"stem": "/stems/a.wav", "samples": 10}) is True
        assert store.finish(a, "failed", error=("boom", "late")) is False
        assert store.finish(a, "cancelled") is False
        rec = store.get(a)
        assert rec.state == "done" and rec.result == {"stem": "/stems/a.wav", "samples": 10}
        assert rec.error_code is None
        assert store.finish("missing", "done") is False

    @pytest.mark.parametrize("state", ["queued", "running", "finished", ""])
    def test_finish_rejects_non_terminal_state(self, store, state):
        (a,) = add(store)
        with pytest.raises(ValueError):
            store.finish(a, state)
        assert store.get(a).state == "queued"

    def test_cancel_queued_job(self, store):
        a, b = add(store, 2)
        assert store.finish(a, "cancelled") is True
        rec = store.get(a)
        assert rec.state == "cancelled" and rec.attempts == 0
        assert store.queued() == [b]
        assert store.start(a) is False
        assert store.count("cancelled") == 1

    def test_failed_job_keeps_error(self, store):
        (a,) = add(store)
        store.start(a)
        assert store.finish(a, "failed", error=("bad_input", "no audio track"))
        rec = store.get(a)
        assert (rec.state, rec.error_code, rec.error_message, rec.result) == ("failed", "bad_input",
                                                                              "no audio track", None)

    def test_recover(self, store):
        once, twice, queued, done = add(store, 4)
        store.start(twice)
        assert [r.id for r in store.recover(max_attempts=2)[0]] == [twice]  # first crash: queued again
        store.start(twice)  # second attempt
        store.start(once)
        store.start(done); store.finish(done, "done", result={})  # noqa: E702
        requeued, failed = store.recover(max_attempts=2)
        assert [r.id for r in requeued] == [once]
        assert [r.id for r in failed] == [twice]
        assert store.get(once).state == "queued" and store.get(once).attempts == 1
        rec = store.get(twice)
        assert rec.state == "failed" and rec.error_code == "interrupted" and rec.attempts == 2
        assert rec.error_message
        assert store.get(queued).state == "queued"
        assert store.get(done).state == "done" and store.get(done).result == {}
        assert store.queued() == [once, queued]
        assert store.recover(max_attempts=2) == ([], [])  # nothing left running

    def test_survives_reopen(self, tmp_path):
        path = tmp_path / "jobs.sqlite"
        s = JobStore(path)
        a, b, c = add(s, 3)
        s.start(a)
        s.finish(b, "done", result={"stem": "/stems/b.wav"})
        s.close()
        s = JobStore(path)
        try:
            assert s.get(a).state == "running" and s.get(a).attempts == 1
            assert s.get(b).result == {"stem": "/stems/b.wav"}
            assert s.queued() == [c]
            d = s.add({"video": "/media/d.mov"}).id
            assert s.queued() == [c, d]  # sequence continues after the old rows
            assert [r.id for r in s.list()] == [d, c, b, a]
        finally:
            s.close()

    def test_list_newest_first_with_limit(self, store):
        ids = add(store, 5)
        assert [r.id for r in store.list()] == ids[::-1]
        assert [r.id for r in store.list(limit=2)] == ids[:2:-1]
        assert store.list(limit=0) == []
        store.start(ids[0]); store.finish(ids[0], "done", result={})  # noqa: E702
        assert store.list(limit=5)[-1].state == "done"  # order is by submission, not update

    def test_public(self, store):
        a, b, c = add(store, 3)
        pub = store.get(a).public()
        assert pub["job"] == a and pub["state"] == "queued" and pub["attempts"] == 0
        assert pub["video"] == "/media/clip0.mov"
        assert isinstance(pub["created"], float) and pub["updated"] >= pub["created"]
        assert "result" not in pub and "error" not in pub
        store.start(b)
        store.finish(b, "done", result={"stem": "/stems/b.wav", "gain_db": -1.5})
        pub = store.get(b).public()
        assert pub["state"] == "done" and pub["attempts"] == 1
        assert pub["result"] == {"stem": "/stems/b.wav", "gain_db": -1.5}
        store.finish(c, "failed", error=("forbidden", "outside the roots"))
        pub = store.get(c).public()
        assert pub["state"] == "failed"
        assert pub["error"] == {"code": "forbidden", "message": "outside the roots"}
        unpack(pack(pub))  # sendable as is


# ============================================================================ policy
@pytest.fixture
def tree(tmp_path):
    """root/{in/clip.mov, in/voice.wav, in/h.sofa, out/}, outside/{clip.mov, out/}."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    for d in (root / "in", root / "out", outside / "out"):
        d.mkdir(parents=True)
    for f in (root / "in" / "clip.mov", root / "in" / "voice.wav", root / "in" / "h.sofa", outside / "clip.mov"):
        f.write_bytes(b"not media")
    return root, outside


def check(root: Path, **fields) -> None:
    PathPolicy.from_paths([root]).check(Job(**fields))


def forbidden(root: Path, **fields) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        check(root, **fields)
    assert info.value.code == "forbidden"
    assert isinstance(info.value, FoleySpaceError)
    return info.value


class TestPolicy:
    def test_inside_root_passes(self, tree):
        root, _ = tree
        check(root, video=root / "in" / "clip.mov", output=root / "out" / "clip_binaural.wav")
        check(root, video=root / "in" / "clip.mov", output=root / "out" / "x.wav", audio=root / "in" / "voice.wav",
              hrtf=root / "in" / "h.sofa")
        check(root, video=root / "in" / "clip.mov", output=root / "in" / "clip_binaural.wav")  # beside inputs
        check(root, video=root / "in" / ".." / "in" / "clip.mov", output=root / "in" / ".." / "out" / "x.wav")

    def test_roots_are_resolved(self, tree, tmp_path):
        root, _ = tree
        assert PathPolicy.from_paths([tmp_path / "root" / ".." / "root"]).roots == (root.resolve(),)
        PathPolicy.from_paths([tmp_path / "outside", str(root)]).check(
            Job(video=root / "in" / "clip.mov", output=tmp_path / "outside" / "out" / "x.wav"))

    def test_video_outside(self, tree):
        root, outside = tree
        forbidden(root, video=outside / "clip.mov", output=root / "out" / "x.wav")

    def test_audio_and_hrtf_outside(self, tree):
        root, outside = tree
        forbidden(root, video=root / "in" / "clip.mov", output=root / "out" / "x.wav", audio=outside / "clip.mov")
        forbidden(root, video=root / "in" / "clip.mov", output=root / "out" / "x.wav", hrtf=outside / "clip.mov")

    def test_output_dir_outside(self, tree):
        root, outside = tree
        forbidden(root, video=root / "in" / "clip.mov", output=outside / "out" / "x.wav")

    @posix_only
    def test_output_dir_symlink_outside(self, tree):
        root, outside = tree
        (root / "link").symlink_to(outside / "out", target_is_directory=True)
        forbidden(root, video=root / "in" / "clip.mov", output=root / "link" / "x.wav")

    @posix_only
    def test_input_symlink_outside(self, tree):
        root, outside = tree
        (root / "in" / "sneaky.mov").symlink_to(outside / "clip.mov")
        forbidden(root, video=root / "in" / "sneaky.mov", output=root / "out" / "x.wav")

    @posix_only
    def test_output_file_symlink_outside(self, tree):
        root, outside = tree
        (root / "out" / "x.wav").symlink_to(outside / "out" / "x.wav")
        forbidden(root, video=root / "in" / "clip.mov", output=root / "out" / "x.wav")
        (root / "out" / "y.json").symlink_to(outside / "out" / "y.json")  # the sidecar escapes
        forbidden(root, video=root / "in" / "clip.mov", output=root / "out" / "y.wav")

    @posix_only
    def test_output_file_symlink_onto_input(self, tree):
        root, _ = tree
        (root / "out" / "x.wav").symlink_to(root / "in" / "voice.wav")
        forbidden(root, video=root / "in" / "clip.mov", output=root / "out" / "x.wav", audio=root / "in" / "voice.wav")

    def test_dotdot_escape(self, tree):
        root, outside = tree
        forbidden(root, video=root / "in" / "clip.mov", output=root / "out" / ".." / ".." / "outside" / "out" / "x.wav")
        forbidden(root, video=root / ".." / "outside" / "clip.mov", output=root / "out" / "x.wav")

    def test_stem_over_audio_input(self, tree):
        root, _ = tree
        err = forbidden(root, video=root / "in" / "clip.mov", output=root / "in" / "voice.wav",
                        audio=root / "in" / "voice.wav")
        assert "overwrite" in str(err)
        forbidden(root, video=root / "in" / "clip.mov", output=root / "out" / ".." / "in" / "voice.wav",
                  audio=root / "in" / "voice.wav")

    def test_sidecar_over_input(self, tree):
        root, _ = tree
        (root / "in" / "take.json").write_text("{}")
        forbidden(root, video=root / "in" / "clip.mov", output=root / "in" / "take.wav", audio=root / "in" / "take.json")

    def test_missing_input_file(self, tree):
        root, _ = tree
        forbidden(root, video=root / "in" / "nope.mov", output=root / "out" / "x.wav")
        forbidden(root, video=root / "in" / "clip.mov", output=root / "out" / "x.wav", audio=root / "in" / "nope.wav")
        forbidden(root, video=root / "in", output=root / "out" / "x.wav")  # a folder is not a file

    def test_missing_output_folder(self, tree):
        root, _ = tree
        forbidden(root, video=root / "in" / "clip.mov", output=root / "nope" / "x.wav")
        forbidden(root, video=root / "in" / "clip.mov", output=root / "in" / "clip.mov" / "x.wav")  # a file

    def test_spec_jobs_are_checked_too(self, tree):
        root, outside = tree
        policy = PathPolicy.from_paths([root])
        policy.check(job_from_spec({"video": str(root / "in" / "clip.mov"), "output_dir": str(root / "out")}))
        with pytest.raises(PolicyError):
            policy.check(job_from_spec({"video": str(root / "in" / "clip.mov"), "output_dir": str(outside / "out")}))
