"""The command line: success paths, and bad input answered with one line and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from foleyspace.cli import main


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["-q", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_failure(code: int, err: str, folder: Path, needle: str) -> None:
    """Exit 2, one line on stderr that names the problem, and no WAV (or temp file) left behind."""
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("foleyspace: error: ")
    assert needle.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in err
    assert not [p for p in folder.iterdir() if p.suffix in (".tmp", ".json") or p.name == "s.wav"]


def test_spatialize_writes_stem_sidecar_and_plot(clip_factory, tmp_path, capsys):
    out = tmp_path / "s.wav"
    code, stdout, _ = cli(capsys, "spatialize", clip_factory(motion="cross_lr"), "-o", out, "--plot", tmp_path / "p.png")
    assert code == 0
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in stdout


def test_range_in_frames_and_timecode(clip_factory, tmp_path, capsys):
    out = tmp_path / "s.wav"
    code, _, _ = cli(capsys, "spatialize", clip_factory(motion="cross_lr"), "-o", out, "--in", "25f", "--out", "00:02.5")
    assert code == 0
    assert sf.info(str(out)).frames == int(1.5 * 48000)


def test_audio_file_at_odd_rate_and_channel_count(clip_factory, tmp_path, capsys):
    rng = np.random.default_rng(1)
    audio = tmp_path / "odd.wav"
    sf.write(str(audio), 0.1 * rng.standard_normal((22050 * 5, 3)), 22050)  # 22.05 kHz, 3 channels, 5 s
    out = tmp_path / "s.wav"
    code, _, _ = cli(capsys, "spatialize", clip_factory(motion="cross_lr", audio=None), "--audio", audio, "-o", out)
    assert code == 0
    data, rate = sf.read(str(out))
    assert rate == 48000 and data.shape == (4 * 48000, 2)
    assert np.abs(data).max() > 0.01


def test_seed_box_from_the_command_line(clip_factory, tmp_path, capsys):
    out = tmp_path / "s.wav"
    box = f"{0.85 * 320 - 21.6},{0.5 * 180 - 21.6},43.2,43.2@0"
    code, _, _ = cli(capsys, "spatialize", clip_factory(motion="bob_right"), "--box", box, "-o", out)
    assert code == 0
    data, _ = sf.read(str(out))
    assert (data[:, 1] ** 2).sum() > 2 * (data[:, 0] ** 2).sum()


def test_missing_file(tmp_path, capsys):
    code, _, err = cli(capsys, "spatialize", tmp_path / "nope.mp4", "-o", tmp_path / "s.wav")
    assert_clean_failure(code, err, tmp_path, "no such file")


def test_not_a_video(tmp_path, capsys):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video\n" * 50)
    code, _, err = cli(capsys, "spatialize", fake, "-o", tmp_path / "s.wav")
    assert_clean_failure(code, err, tmp_path, "not a readable video")


def test_empty_file(tmp_path, capsys):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    code, _, err = cli(capsys, "spatialize", empty, "-o", tmp_path / "s.wav")
    assert_clean_failure(code, err, tmp_path, "empty")


@pytest.mark.parametrize("kind", ["avi", "y4m"])
def test_zero_length_clip(tmp_path, capsys, kind):
    clip = tmp_path / f"zero.{kind}"
    if kind == "y4m":  # a raw YUV4MPEG stream header with no frame after it
        clip.write_bytes(b"YUV4MPEG2 W64 H64 F25:1 Ip A1:1 C420jpeg\n")
    else:  # a container written by a real encoder whose video stream holds no frame
        with av.open(str(clip), "w") as c:
            s = c.add_stream("mpeg4", rate=25)
            s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
            c.start_encoding()
    code, _, err = cli(capsys, "spatialize", clip, "-o", tmp_path / "s.wav")
    assert_clean_failure(code, err, tmp_path, "zero length")


def test_clip_without_audio(clip_factory, tmp_path, capsys):
    code, _, err = cli(capsys, "spatialize", clip_factory(motion="cross_lr", audio=None), "-o", tmp_path / "s.wav")
    assert_clean_failure(code, err, tmp_path, "no audio track")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_audio(clip_factory, tmp_path, capsys, bad):
    audio = tmp_path / "bad.wav"
    x = np.zeros(48000 * 4, dtype=np.float32)
    x[1000] = bad
    sf.write(str(audio), x, 48000, subtype="FLOAT")
    code, _, err = cli(capsys, "spatialize", clip_factory(motion="cross_lr"), "--audio", audio, "-o", tmp_path / "s.wav")
    assert_clean_failure(code, err, tmp_path, "NaN or infinite")


@pytest.mark.parametrize("kind", ["damaged mp3", "7 Hz"])
def test_damaged_audio_file_is_one_line_at_the_descriptor_level(clip_factory, tmp_path, capfd, kind):
    """--audio with a damaged file: one line, also counting what C libraries write to fd 2 (libsndfile's
    mpg123 printed "Note: Illegal Audio-MPEG-Header" lines for a damaged mp3), and no stem."""
    if kind == "damaged mp3":
        audio, needle = tmp_path / "bad.mp3", "not a readable audio file"
        audio.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8).tobytes())
    else:  # a header claiming 7 Hz: it would be resampled into minutes of garbage
        audio, needle = tmp_path / "slow.wav", "sample rate 7 Hz is not an audio rate"
        sf.write(str(audio), np.random.default_rng(1).standard_normal(100) * 0.1, 7)
    code, _, err = cli(capfd, "spatialize", clip_factory(motion="cross_lr", audio=None), "--audio", audio,
                       "-o", tmp_path / "s.wav")
    assert_clean_failure(code, err, tmp_path, needle)
    assert str(audio) in err


@pytest.mark.parametrize("fmt,ext", [("HTK", "htk"), ("MAT5", "mat"), ("CAF", "caf"), ("AU", "au")])
def test_audio_formats_ffmpeg_refuses_still_play_through_libsndfile(tmp_path, fmt, ext):
    """Files that do not start like WAV/FLAC/Ogg/AIFF go to FFmpeg first; what it refuses (HTK,
    MATLAB) is read by libsndfile, from --audio-start on, sample for sample."""
    from foleyspace.mono import FileAudio

    x = 0.3 * np.sin(np.arange(48000) / 10.0)
    path = tmp_path / f"sound.{ext}"
    sf.write(str(path), x, 16000, format=fmt, subtype="DOUBLE" if fmt == "MAT5" else "PCM_16")
    played = FileAudio(path, start_s=0.5).mono(0.0, 2.0, 16000)
    assert len(played) == 32000
    np.testing.assert_allclose(played, x[8000:40000], atol=2 ** -15)


def test_in_point_past_the_end(clip_factory, tmp_path, capsys):
    code, _, err = cli(capsys, "spatialize", clip_factory(motion="cross_lr"), "--in", "9", "-o", tmp_path / "s.wav")
    assert_clean_failure(code, err, tmp_path, "past the end")


def test_empty_range(clip_factory, tmp_path, capsys):
    code, _, err = cli(capsys, "spatialize", clip_factory(motion="cross_lr"), "--in", "2", "--out", "2",
                       "-o", tmp_path / "s.wav")
    assert_clean_failure(code, err, tmp_path, "empty")


def test_output_folder_missing(clip_factory, tmp_path, capsys):
    code, _, err = cli(capsys, "spatialize", clip_factory(motion="cross_lr"), "-o", tmp_path / "no" / "s.wav")
    assert_clean_failure(code, err, tmp_path, "does not exist")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write to read-only folders")
def test_output_folder_read_only(clip_factory, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        code, _, err = cli(capsys, "spatialize", clip_factory(motion="cross_lr"), "-o", ro / "s.wav")
        assert_clean_failure(code, err, ro, "not writable")
    finally:
        ro.chmod(0o700)


def test_output_that_is_a_directory(clip_factory, tmp_path, capsys):
    code, _, err = cli(capsys, "spatialize", clip_factory(motion="cross_lr"), "-o", tmp_path)
    assert_clean_failure(code, err, tmp_path, "is a directory")


def test_refuses_to_overwrite_the_source(clip_factory, tmp_path, capsys):
    clip = clip_factory(motion="cross_lr")
    before = clip.read_bytes()
    code, _, err = cli(capsys, "spatialize", clip, "-o", clip)
    assert code == 2 and "overwrite the source" in err
    assert clip.read_bytes() == before


def test_bad_box_is_a_usage_error(clip_factory, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["spatialize", str(clip_factory(motion="cross_lr")), "--box", "1,2,3"])
    assert exc.value.code == 2
    assert "--box wants X,Y,W,H" in capsys.readouterr().err


def test_failed_write_keeps_the_previous_stem(clip_factory, tmp_path, capsys, monkeypatch):
    """An error after rendering leaves an existing stem (and its sidecar) untouched and no temp file."""
    import soundfile

    clip = clip_factory(motion="cross_lr")
    out = tmp_path / "s.wav"
    assert cli(capsys, "spatialize", clip, "-o", out, "--in", "0", "--out", "1")[0] == 0
    before = out.read_bytes(), out.with_suffix(".json").read_bytes()

    def broken_write(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(soundfile.SoundFile, "write", broken_write)
    code, _, err = cli(capsys, "spatialize", clip, "-o", out)
    assert code == 2 and "No space left on device" in err
    assert (out.read_bytes(), out.with_suffix(".json").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json", "s.wav"]


def test_a_file_foleyspace_did_not_write_is_not_replaced(clip_factory, tmp_path, capsys):
    clip = clip_factory(motion="cross_lr")
    recording = tmp_path / "my_recording.wav"
    recording.write_bytes(b"RIFF a take that matters")
    project = tmp_path / "project.json"
    project.write_text('{"edit": "mine"}')
    for target in (recording, tmp_path / "project.wav"):  # the stem, or the sidecar beside it, exists
        code, _, err = cli(capsys, "spatialize", clip, "-o", target)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "was not written by FoleySpace" in lines[0], err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["my_recording.wav", "project.json"]
    assert recording.read_bytes() == b"RIFF a take that matters" and project.read_text() == '{"edit": "mine"}'
    # our own stem is replaced freely; --overwrite replaces someone else's on request
    assert cli(capsys, "spatialize", clip, "-o", tmp_path / "ours.wav", "--in", "0", "--out", "1")[0] == 0
    assert cli(capsys, "spatialize", clip, "-o", tmp_path / "ours.wav", "--in", "1", "--out", "2")[0] == 0
    assert cli(capsys, "spatialize", clip, "-o", recording, "--in", "0", "--out", "1", "--overwrite")[0] == 0
    assert recording.read_bytes()[:4] == b"RIFF" and len(recording.read_bytes()) > 1000


def test_installed_entry_point_exit_code_and_one_line(tmp_path):
    """The real process: exit status 2 and a single stderr line, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "foleyspace", "spatialize", str(tmp_path / "missing.mp4")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"foleyspace: error: {tmp_path / 'missing.mp4'}: no such file"]


def test_demo_runs(tmp_path, capsys):
    code, out, _ = cli(capsys, "demo", tmp_path / "demo")
    assert code == 0
    for name in ("demo.mp4", "demo_binaural.wav", "demo_binaural.json", "demo_plot.png"):
        assert (tmp_path / "demo" / name).is_file()
    data, rate = sf.read(str(tmp_path / "demo" / "demo_binaural.wav"))
    left_first = 10 * np.log10((data[:rate, 0] ** 2).sum() / (data[:rate, 1] ** 2).sum())
    left_last = 10 * np.log10((data[-rate:, 0] ** 2).sum() / (data[-rate:, 1] ** 2).sum())
    assert left_first > 2 and left_last < -2


def test_audio_start_plays_the_file_from_that_point(clip_factory, tmp_path, capsys):
    rng = np.random.default_rng(2)
    noise = 0.1 * rng.standard_normal((44100 * 6, 2))
    sf.write(str(tmp_path / "long.wav"), noise, 44100)
    sf.write(str(tmp_path / "cut.wav"), noise[int(1.5 * 44100):], 44100)  # the same file, first 1.5 s removed
    clip = clip_factory(motion="cross_lr", audio=None)
    for name, extra in (("a.wav", ["--audio", tmp_path / "long.wav", "--audio-start", "1.5"]),
                        ("b.wav", ["--audio", tmp_path / "cut.wav"])):
        code, _, err = cli(capsys, "spatialize", clip, *extra, "-o", tmp_path / name)
        assert code == 0, err
    a, b = (sf.read(str(tmp_path / n), dtype="int32")[0] for n in ("a.wav", "b.wav"))
    assert np.array_equal(a, b)
    (tmp_path / "fail").mkdir()
    code, _, err = cli(capsys, "spatialize", clip, "--audio", tmp_path / "long.wav", "--audio-start", "7",
                       "-o", tmp_path / "fail" / "s.wav")
    assert_clean_failure(code, err, tmp_path / "fail", "past the end of the file")


def test_common_flags_work_after_the_command(clip_factory, tmp_path, capsys):
    out = tmp_path / "s.wav"
    assert main(["spatialize", str(clip_factory(motion="cross_lr")), "-o", str(out), "-q"]) == 0
    assert capsys.readouterr().err == ""  # -q after the command silences the progress bars too


def test_unwritable_sidecar_fails_before_any_stem(clip_factory, tmp_path, capsys):
    (tmp_path / "s.json").mkdir()  # the sidecar's name is taken by a folder
    code, _, err = cli(capsys, "spatialize", clip_factory(motion="cross_lr"), "-o", tmp_path / "s.wav")
    assert code == 2 and "s.json: is a directory" in err
    assert not (tmp_path / "s.wav").exists()


def test_outputs_get_the_usual_file_mode(clip_factory, tmp_path, capsys):
    old = os.umask(0o022)
    try:
        code, _, _ = cli(capsys, "spatialize", clip_factory(motion="cross_lr"), "-o", tmp_path / "s.wav")
    finally:
        os.umask(old)
    assert code == 0
    assert (tmp_path / "s.wav").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "s.json").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("rate", ["0", "nan", "1e9"])
def test_segment_rate_out_of_range(clip_factory, tmp_path, capsys, rate):
    code, _, err = cli(capsys, "spatialize", clip_factory(motion="cross_lr"), "--segments-per-second", rate,
                       "-o", tmp_path / "s.wav")
    assert_clean_failure(code, err, tmp_path, "--segments-per-second must be in")
