"""The preview MP4 (--preview, --preview-only, `foleyspace preview`, the job option `preview`):
decoded for real with PyAV — the stem is its audio sample for sample, the picture covers the range
(in timeline order when retimed) and the tracked box is drawn where the sidecar says, in the
colour of its state."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from foleyspace.cli import main
from foleyspace.errors import OutputError
from foleyspace.jobspec import SpecError, job_from_spec, output_paths, spec_from_job
from foleyspace.preview import MAX_LONG_SIDE, PREVIEW_TAG, STATE_COLOURS, preview_size

W, H = 320, 180


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main(["-q", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, needle: str) -> None:
    lines = [line for line in err.strip().splitlines() if "WARNING" not in line]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("foleyspace: error: "), err
    assert needle.lower() in lines[0].lower(), lines[0]


def decode(path: Path) -> tuple[list[np.ndarray], np.ndarray, dict]:
    """Every picture (RGB), the audio as integers ``(n, 2)`` and facts about the streams."""
    with av.open(str(path)) as container:
        v, a = container.streams.video[0], container.streams.audio[0]
        facts = {"video_codec": v.codec_context.name, "audio_codec": a.codec_context.name,
                 "rate": a.codec_context.sample_rate, "fps": float(v.average_rate),
                 "comment": container.metadata.get("comment"), "n_audio_streams": len(container.streams.audio)}
        pictures = [f.to_ndarray(format="rgb24") for f in container.decode(v)]
    with av.open(str(path)) as container:
        chunks = []
        for frame in container.decode(container.streams.audio[0]):
            data = frame.to_ndarray()
            chunks.append(data.T if frame.format.is_planar else data.reshape(-1, frame.layout.nb_channels))
    return pictures, np.concatenate(chunks), facts


def stem_ints(path: Path) -> np.ndarray:
    data, _ = sf.read(str(path), dtype="int32")  # 24-bit samples, left-justified like the FLAC decoder's
    return data


def is_colour(pixels: np.ndarray, colour: tuple[int, int, int], tol: int = 60) -> np.ndarray:
    return np.all(np.abs(pixels.astype(int) - np.array(colour)) <= tol, axis=-1)


def box_edge_and_far(picture: np.ndarray, row: dict, source_size=(W, H)) -> tuple[np.ndarray, np.ndarray]:
    """Pixels on the drawn box's top and bottom edges, and a block far from the box (the other half
    of the frame, away from the text panel at the top and the gauge at the bottom)."""
    h, w = picture.shape[:2]
    sx, sy = w / source_size[0], h / source_size[1]
    x, y, bw, bh = row["box"]
    x0, x1 = int(round(x * sx)) + 2, int(round((x + bw) * sx)) - 2
    top, bottom = int(round(y * sy)), int(round((y + bh) * sy))
    edges = np.concatenate([picture[top, x0:x1], picture[bottom, x0:x1]])
    cx = (x + bw / 2) * sx
    far_x = slice(int(w * 0.6), int(w * 0.95)) if cx < w / 2 else slice(int(w * 0.05), int(w * 0.4))
    far = picture[int(h * 0.25):int(h * 0.75), far_x].reshape(-1, 3)
    return edges, far


@pytest.fixture(scope="module")
def made(tmp_path_factory, clip_factory):
    """One spatialize run with --preview: the clip, stem, sidecar and preview."""
    folder = tmp_path_factory.mktemp("preview")
    clip = clip_factory(motion="cross_lr")
    stem = folder / "s.wav"
    code = main(["-q", "spatialize", str(clip), "-o", str(stem), "--preview"])
    assert code == 0
    return clip, stem, stem.with_suffix(".json"), folder / "s.preview.mp4"


def test_preview_has_the_stem_sample_exact_and_the_whole_range(made):
    clip, stem, sidecar, preview = made
    pictures, audio, facts = decode(preview)
    assert facts["video_codec"] == "h264" and facts["audio_codec"] == "flac" and facts["n_audio_streams"] == 1
    assert facts["comment"] == PREVIEW_TAG
    wav = stem_ints(stem)
    assert facts["rate"] == sf.info(str(stem)).samplerate == 48000
    assert audio.shape == wav.shape == (4 * 48000, 2)
    assert np.array_equal(audio, wav)  # lossless: every 24-bit sample as written
    assert np.abs(wav).max() > 0
    assert facts["fps"] == 25.0 and len(pictures) == 100  # 4 s at the clip's 25 fps
    assert pictures[0].shape == (H, W, 3)  # the clip's size (under the 1280 px cap)


def test_the_box_is_drawn_where_the_sidecar_has_it_in_the_tracked_colour(made):
    _, _, sidecar, preview = made
    rows = json.loads(sidecar.read_text())["frames"]
    pictures, _, _ = decode(preview)
    checked = 0
    for k in (10, 50, 90):
        row = rows[k]  # the clip and the analysis both run at 25 fps: preview frame k is row k
        assert row["state"] == "tracked" and row["box"] is not None
        edges, far = box_edge_and_far(pictures[k], row)
        assert is_colour(edges, STATE_COLOURS["tracked"]).mean() > 0.8, k
        assert is_colour(far, STATE_COLOURS["tracked"]).mean() < 0.002, k
        checked += 1
    assert checked == 3
    # the box follows the object: left of centre early, right of centre late
    assert rows[10]["box"][0] + rows[10]["box"][2] / 2 < W / 2 < rows[90]["box"][0] + rows[90]["box"][2] / 2


def test_preview_only_redraws_without_analysis_and_colours_each_state(made, tmp_path, capsys, monkeypatch):
    clip, stem, sidecar, _ = made
    data = json.loads(sidecar.read_text())
    for k, row in enumerate(data["frames"]):
        row["state"] = ("tracked", "predicted", "lost")[(k // 10) % 3]
    own_stem = tmp_path / "s.wav"
    own_stem.write_bytes(stem.read_bytes())
    own_stem.with_suffix(".json").write_text(json.dumps(data))

    import foleyspace.backends
    import foleyspace.pipeline

    def no_analysis(*args, **kwargs):
        raise AssertionError("--preview-only must not analyse the clip")

    monkeypatch.setattr(foleyspace.pipeline, "spatialize", no_analysis)
    monkeypatch.setattr(foleyspace.backends.Backends, "for_job", no_analysis)
    monkeypatch.setattr("foleyspace.video.read_audio", no_analysis)  # nor read the clip's sound
    code, out, err = cli(capsys, "spatialize", clip, "-o", own_stem, "--preview-only")
    assert code == 0, err
    preview = tmp_path / "s.preview.mp4"
    assert str(preview) in out
    pictures, audio, _ = decode(preview)
    assert np.array_equal(audio, stem_ints(stem))
    for k, state in ((45, "predicted"), (55, "lost"), (65, "tracked")):
        row = data["frames"][k]
        assert row["state"] == state
        edges, far = box_edge_and_far(pictures[k], row)
        assert is_colour(edges, STATE_COLOURS[state]).mean() > 0.8, state
        others = [s for s in STATE_COLOURS if s != state]
        assert all(is_colour(edges, STATE_COLOURS[o], 40).mean() < 0.2 for o in others), state
        assert is_colour(far, STATE_COLOURS[state], 40).mean() < 0.002, state
    assert not list(tmp_path.glob(".*.tmp"))


def test_preview_subcommand_finds_the_clip_in_the_sidecar_and_replaces_its_own_preview(made, tmp_path, capsys):
    _, stem, sidecar, _ = made
    out = tmp_path / "p.mp4"
    for _ in range(2):  # the second run replaces the first preview (ours) without --overwrite
        code, stdout, err = cli(capsys, "preview", stem, "-o", out)
        assert code == 0, err
    _, audio, _ = decode(out)
    assert np.array_equal(audio, stem_ints(stem))


def test_preview_only_without_a_sidecar_fails_in_one_line(made, tmp_path, capsys):
    clip, stem, _, _ = made
    lone = tmp_path / "lone.wav"
    lone.write_bytes(stem.read_bytes())
    code, _, err = cli(capsys, "spatialize", clip, "-o", lone, "--preview-only")
    one_line_error(code, err, "no sidecar")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lone.wav"]  # nothing written, no temp file


def test_a_sidecar_of_another_stem_is_refused(made, tmp_path, capsys):
    clip, stem, sidecar, _ = made
    short = tmp_path / "short.wav"
    data, rate = sf.read(str(stem), dtype="int32")
    sf.write(str(short), data[: rate], rate, subtype="PCM_24")
    short.with_suffix(".json").write_text(sidecar.read_text())
    code, _, err = cli(capsys, "preview", short)
    one_line_error(code, err, "does not match")
    assert not (tmp_path / "short.preview.mp4").exists()


def test_another_clip_is_refused(made, tmp_path, capsys, clip_factory):
    _, stem, _, _ = made
    code, _, err = cli(capsys, "preview", stem, "-o", tmp_path / "p.mp4", "--video", clip_factory(size=(160, 120)))
    one_line_error(code, err, "give that clip")


def test_preview_only_refuses_analysis_flags(made, capsys):
    clip, stem, _, _ = made
    code, _, err = cli(capsys, "spatialize", clip, "-o", stem, "--preview-only", "--box", "10,10,40,40")
    one_line_error(code, err, "--box needs a full run")


def test_unwritable_or_odd_preview_outputs_fail_before_any_work(made, tmp_path, capsys, clip_factory):
    clip, stem, _, _ = made
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    code, _, err = cli(capsys, "preview", stem, "-o", not_a_folder / "p.mp4")
    one_line_error(code, err, f"{not_a_folder}: not an output folder (it is a file)")
    code, _, err = cli(capsys, "preview", stem, "-o", not_a_folder / "sub" / "p.mp4")
    one_line_error(code, err, f"not an output folder ({not_a_folder} is a file)")
    code, _, err = cli(capsys, "preview", stem, "-o", tmp_path / "missing" / "p.mp4")
    one_line_error(code, err, "output folder does not exist")
    code, _, err = cli(capsys, "preview", stem, "-o", tmp_path / "p.mov")
    one_line_error(code, err, "ending in .mp4")
    foreign = tmp_path / "mine.mp4"
    foreign.write_bytes(b"a recording of mine")
    out = tmp_path / "s.wav"
    code, _, err = cli(capsys, "spatialize", clip, "-o", out, "--preview", foreign)
    one_line_error(code, err, "not written by FoleySpace")
    assert foreign.read_bytes() == b"a recording of mine" and not out.exists()  # refused before analysing


@pytest.mark.parametrize("speed", [2.0, -1.0])
def test_retimed_clip_plays_in_timeline_order(clip_factory, tmp_path, capsys, speed):
    clip = clip_factory(motion="cross_lr")
    stem = tmp_path / "r.wav"
    code, _, err = cli(capsys, "spatialize", clip, "-o", stem, "--speed", speed, "--preview")
    assert code == 0, err
    pictures, audio, _ = decode(tmp_path / "r.preview.mp4")
    assert np.array_equal(audio, stem_ints(stem))
    assert len(pictures) == round(4.0 / abs(speed) * 25)
    rows = json.loads(stem.with_suffix(".json").read_text())["frames"]

    def green_columns(picture: np.ndarray) -> float:
        band = is_colour(picture[int(H * 0.2):int(H * 0.8)], STATE_COLOURS["tracked"])
        return float(np.mean(np.nonzero(band)[1]))

    first, last = green_columns(pictures[1]), green_columns(pictures[-2])
    assert (first < last) if speed > 0 else (first > last)  # reversed: the disc crosses right to left
    # timeline frame k shows source second |speed|·k/25 from the range's start (or end, reversed)
    k = len(pictures) // 4
    source_s = abs(speed) * k / 25 if speed > 0 else 4.0 - k / 25
    row = rows[int(source_s * 25 + 1e-6)]
    edges, _ = box_edge_and_far(pictures[k], row)
    assert is_colour(edges, STATE_COLOURS["tracked"]).mean() > 0.8


def test_job_option_writes_the_preview_beside_the_stem(clip_factory, tmp_path):
    from foleyspace.pipeline import spatialize

    clip = clip_factory(motion="cross_lr")
    spec = {"video": str(clip), "output_dir": str(tmp_path), "name": "j.wav", "end_s": 2.0,
            "options": {"preview": True}}
    job = job_from_spec(spec)
    assert job.preview == tmp_path / "j.preview.mp4"
    assert spec_from_job(job)["options"]["preview"] is True
    assert output_paths(spec) == (tmp_path / "j.wav", tmp_path / "j.json", tmp_path / "j.preview.mp4")
    result = spatialize(job)
    assert result.preview == job.preview
    pictures, audio, _ = decode(job.preview)
    assert np.array_equal(audio, stem_ints(tmp_path / "j.wav")) and len(pictures) == 50
    spatialize(job)  # a second run replaces stem, sidecar and preview (all ours)
    assert job_from_spec({**spec, "options": {}}).preview is None


def test_a_failed_preview_keeps_the_previous_stem_and_preview(clip_factory, tmp_path, monkeypatch):
    import foleyspace.preview
    from foleyspace.pipeline import spatialize

    clip = clip_factory(motion="cross_lr")
    job = job_from_spec({"video": str(clip), "output_dir": str(tmp_path), "name": "j.wav", "end_s": 1.0,
                         "options": {"preview": True}})
    spatialize(job)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) == {"j.wav", "j.json", "j.preview.mp4"}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(foleyspace.preview, "render_preview", broken)
    with pytest.raises(OutputError, match="disk full"):
        spatialize(job)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # one transaction: all or nothing


def test_a_foreign_file_at_the_preview_name_fails_the_job_unless_overwrite(clip_factory, tmp_path):
    from foleyspace.pipeline import spatialize

    clip = clip_factory(motion="cross_lr")
    (tmp_path / "j.preview.mp4").write_bytes(b"not ours")
    spec = {"video": str(clip), "output_dir": str(tmp_path), "name": "j.wav", "end_s": 1.0,
            "options": {"preview": True}}
    with pytest.raises(OutputError, match="not written by FoleySpace"):
        spatialize(job_from_spec(spec))
    assert not (tmp_path / "j.wav").exists()
    spatialize(job_from_spec({**spec, "options": {"preview": True, "overwrite": True}}))
    assert (tmp_path / "j.preview.mp4").read_bytes()[4:8] == b"ftyp"


def test_job_option_validation(clip_factory, tmp_path):
    clip = clip_factory(motion="cross_lr")
    base = {"video": str(clip), "output_dir": str(tmp_path)}
    with pytest.raises(SpecError) as err:
        job_from_spec({**base, "options": {"preview": "yes"}})
    assert err.value.field == "preview"
    with pytest.raises(SpecError) as err:
        job_from_spec({**base, "name": "n" * 236 + ".wav", "options": {"preview": True}})
    assert err.value.field == "name"
    job_from_spec({**base, "name": "n" * 236 + ".wav"})  # fine without a preview
    video = tmp_path / "v_binaural.preview.mp4"
    video.write_bytes(Path(clip).read_bytes())
    with pytest.raises(SpecError) as err:  # the preview would replace the clip itself
        job_from_spec({"video": str(video), "output_dir": str(tmp_path), "name": "v_binaural.wav",
                       "options": {"preview": True}})
    assert err.value.field == "preview"


def test_submit_keeps_the_preview_beside_the_stem(clip_factory, tmp_path, capsys):
    code, _, err = cli(capsys, "submit", clip_factory(motion="cross_lr"), "-o", tmp_path / "s.wav",
                       "--preview", tmp_path / "elsewhere.mp4", "--server", "tcp://127.0.0.1:1")
    one_line_error(code, err, "beside the stem")


def test_preview_size_caps_the_long_side():
    assert preview_size(320, 180) == (320, 180)
    assert preview_size(3840, 2160) == (MAX_LONG_SIDE, 720)
    assert preview_size(1080, 1920) == (720, MAX_LONG_SIDE)
    w, h = preview_size(1921, 1081)
    assert max(w, h) <= MAX_LONG_SIDE and w % 2 == 0 and h % 2 == 0


def test_a_turned_phone_clip_is_previewed_upright_with_the_box_on_the_object(tmp_path, capsys):
    """A clip stored landscape with a display matrix that turns it 90° (a phone held upright):
    the preview is portrait, as players show it, and the box sits where the sidecar (display
    pixels) puts it."""
    from fractions import Fraction

    from foleyspace.synth import encode_audio, SynthSpec, _texture, engine_sound, render_frame

    spec = SynthSpec(size=(180, 320), motion="cross_lr", duration_s=2.0)
    rng = np.random.default_rng(0)
    background = (_texture(rng, 320, 180 * 4, 8) * 0.6).astype(np.uint8)
    sprite = np.clip(_texture(rng, 77, 77, 3).astype(int) // 2 + 128, 0, 255).astype(np.uint8)
    one = 1 << 16
    clip = tmp_path / "phone.mp4"
    with av.open(str(clip), "w") as container:
        vstream = container.add_stream("libx264", rate=25)
        vstream.width, vstream.height, vstream.pix_fmt = 320, 180, "yuv420p"
        vstream.set_display_matrix([0, one, 0, -one, 0, 0, 0, 0, 1 << 30])  # shown turned 90° clockwise
        astream = container.add_stream("aac", rate=48000, layout="stereo")
        for i in range(50):
            shown = render_frame(spec, i / 25, background, sprite)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(shown, 1)), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        encode_audio(container, astream, np.repeat(engine_sound(2.0, 48000)[None, :], 2, axis=0), 48000)
    stem = tmp_path / "phone.wav"
    code, _, err = cli(capsys, "spatialize", clip, "-o", stem, "--preview")
    assert code == 0, err
    data = json.loads(stem.with_suffix(".json").read_text())
    size = (data["source"]["width"], data["source"]["height"])
    assert size == (180, 320)
    pictures, audio, _ = decode(tmp_path / "phone.preview.mp4")
    assert pictures[0].shape == (320, 180, 3)  # portrait, as shown
    assert np.array_equal(audio, stem_ints(stem))
    row = data["frames"][40]
    edges, _ = box_edge_and_far(pictures[40], row, size)
    assert is_colour(edges, STATE_COLOURS["tracked"]).mean() > 0.8
    x, y, bw, bh = row["box"]
    assert x + bw / 2 > 90  # late in the cross the object is right of centre in the shown picture


def test_job_preview_under_a_path_guard_reads_the_held_clip(clip_factory, tmp_path):
    """As a server worker runs it: inputs held open and read through private links, the output
    folder judged where it is opened — the preview is written into that same judged folder."""
    from foleyspace.pipeline import spatialize

    seen = {"inputs": [], "folders": []}

    class Guard:
        def check_input(self, real, what):
            seen["inputs"].append(what)

        def check_output_folder(self, real):
            seen["folders"].append(real)

    job = job_from_spec({"video": str(clip_factory(motion="cross_lr")), "output_dir": str(tmp_path), "name": "g.wav",
                         "end_s": 1.0, "options": {"preview": True}})
    stages = []
    spatialize(job, progress=lambda stage, fraction: stages.append(stage), guard=Guard())
    assert seen["inputs"] == ["video"] and seen["folders"] == [tmp_path.resolve()]
    assert "preview" in stages
    pictures, audio, facts = decode(tmp_path / "g.preview.mp4")
    assert len(pictures) == 25 and np.array_equal(audio, stem_ints(tmp_path / "g.wav"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json", "g.preview.mp4", "g.wav"]


def test_the_stem_is_read_and_encoded_in_pieces_interleaved_with_the_pictures(made, tmp_path, monkeypatch):
    """A 16-bit stem: read a frame's worth at a time (never whole), decoded back sample for sample,
    and its packets lie in the file beside the pictures of the same time."""
    from foleyspace.preview import write_preview

    clip, stem, sidecar, _ = made
    data, rate = sf.read(str(stem), dtype="int32")
    stem16 = tmp_path / "s16.wav"
    sf.write(str(stem16), (data >> 16).astype(np.int16), rate, subtype="PCM_16")
    reads: list[int] = []
    real_read = sf.SoundFile.read

    def counted(self, frames=-1, *args, **kwargs):
        reads.append(frames)
        return real_read(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", counted)
    out = tmp_path / "p16.mp4"
    info = write_preview(out, stem16, sidecar, clip)
    monkeypatch.undo()
    assert info.samples == len(data) == 4 * 48000
    assert reads and -1 not in reads and max(reads) <= 48000 // 25 and sum(reads) == len(data)  # one frame's sound
    _, audio, _ = decode(out)
    assert audio.dtype == np.int16 and np.array_equal(audio, (data >> 16).astype(np.int16))
    with av.open(str(out)) as container:  # file order: audio never runs far ahead of or behind the video
        seen = {"video": 0.0, "audio": 0.0}
        worst = 0.0
        for packet in container.demux():
            if packet.pts is not None and packet.size:
                seen[packet.stream.type] = float(packet.pts * packet.time_base)
                worst = max(worst, abs(seen["video"] - seen["audio"]))
    assert seen["audio"] > 3.9 and seen["video"] > 3.9 and worst < 1.0
