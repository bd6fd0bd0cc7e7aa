"""Build the diffusion model's training set (paper §IV): mono segments binauralised along random
smooth trajectories with measured HRIRs, by the DSP renderer (eq. 8, distance by delay §IV-A).

Steps: find the audio files; decode each (any rate, channels, wav/flac/ogg/mp3/m4a), cut
non-overlapping ``segment_s`` windows at the config's rate and keep those above the silence
threshold; hold out whole recordings; give each group of recordings one HRIR subject; draw the
examples and their trajectories (every draw seeded by the build seed and the example's number,
so the worker count changes nothing); render and write shards in parallel; keep the manifest up
to date after each shard so a stopped build resumes where it was. Format: :mod:`.shards`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from foleyspace.diffusion.config import DiffusionConfig
from foleyspace.errors import FoleySpaceError, InputError, OutputError
from foleyspace.hrtf.directions import DirectionSetConfig

from .shards import FORMAT, MANIFEST, SPLITS, DatasetError, read_manifest, sha256_file, shard_name, write_manifest, write_npz
from .trajectories import TrajectoryRanges, coarse_trajectory, fine_trajectory

log = logging.getLogger(__name__)

#: File name endings taken as audio; videos (VGGSound is mp4) give their first audio track.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff",
                    ".mp4", ".mkv", ".mov", ".webm")
SCHEMES = ("fine", "coarse")


@dataclass(frozen=True)
class BuildSettings:
    """What a build makes (everything that changes its output; the worker count does not).

    Attributes:
        scheme: ``fine`` (``config.positions`` per segment within the fine ranges) or ``coarse``
            (``coarse_rate_hz`` positions per second on the 15 × 5 grid; the config's
            ``positions`` is overridden to match).
        examples: how many examples in all; ``None`` = one per non-silent segment. More than the
            segments reuses them with new trajectories.
        heldout: fraction of the recordings (those with sound) held out.
        seed: seeds every random draw.
        shard_size: examples per shard.
        silence_dbfs: a segment whose RMS is below this (dB re full scale) is skipped (ours: −60; a quiet field recording sits near −50).
        level_dbfs: each kept mono segment is scaled to this RMS (ours: −20 dBFS; ``None`` keeps
            the recording's level). The binaural target may then exceed ±1 near the head (1/r gain).
        coarse_rate_hz: coarse positions per second (paper: 8 per 8 s).
        interp: HRIR interpolation of the fine scheme (``aligned``); the coarse scheme serves each
            grid direction by its nearest measured one (``nearest``), as the coarse set is defined.
        ranges: the fine trajectories' ranges.
    """

    scheme: str = "fine"
    examples: int | None = None
    heldout: float = 0.1
    seed: int = 0
    shard_size: int = 64
    silence_dbfs: float = -60.0
    level_dbfs: float | None = -20.0
    coarse_rate_hz: float = 1.0
    interp: str = "aligned"
    ranges: TrajectoryRanges = field(default_factory=TrajectoryRanges)

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, not {self.scheme!r}")
        if self.examples is not None and self.examples < 1:
            raise ValueError("--examples must be at least 1")
        if not 0 <= self.heldout < 1:
            raise ValueError("--heldout must be in [0, 1)")
        if self.shard_size < 1:
            raise ValueError("--shard-size must be at least 1")
        if self.coarse_rate_hz <= 0:
            raise ValueError("coarse_rate_hz must be positive")


def scheme_config(config: DiffusionConfig, settings: BuildSettings) -> DiffusionConfig:
    """The config the set is cut for: the coarse scheme's ``positions`` follow ``coarse_rate_hz``."""
    if settings.scheme == "coarse":
        return replace(config, positions=max(1, int(round(config.segment_s * settings.coarse_rate_hz))))
    return config


# ---------------------------------------------------------------- audio


def find_audio(audio_dir: Path) -> list[Path]:
    """Audio files under ``audio_dir`` (recursive, hidden ones skipped), sorted by relative path.

    Raises:
        InputError: the folder is missing or holds no audio file.
    """
    if not audio_dir.is_dir():
        raise InputError(f"{audio_dir}: no such folder of audio files")
    files = sorted((p for p in audio_dir.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                    and not any(part.startswith(".") for part in p.relative_to(audio_dir).parts)),
                   key=lambda p: p.relative_to(audio_dir).as_posix())
    if not files:
        raise InputError(f"{audio_dir}: no audio files ({' '.join(AUDIO_EXTENSIONS)})")
    return files


def _ffmpeg_problem(exc: Exception, path: str) -> str:
    """What FFmpeg's :class:`InputError` says about ``path``, worded for a recording."""
    text = str(exc)
    text = text[len(path) + 2:] if text.startswith(f"{path}: ") else text
    text = text.split("; pass --audio")[0].replace("the clip has no audio track", "holds no audio track")
    return text.replace("not a readable video file", "not a readable audio or video file")


def _decode(path: str) -> tuple[np.ndarray, int]:
    """``(samples (channels, n), native rate)`` of a whole file; :class:`InputError` naming it."""
    import soundfile as sf

    from foleyspace.mono import libsndfile_fallback, libsndfile_reads
    from foleyspace.video import read_audio

    def by_libsndfile() -> tuple[np.ndarray, int] | str:
        """The file through libsndfile, or why libsndfile cannot read it."""
        try:
            data, native = sf.read(path, dtype="float64", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
            return str(exc).split("': ", 1)[-1].strip().rstrip(".")
        return data.T, int(native)

    sf_problem = None
    if libsndfile_reads(path):
        read = by_libsndfile()
        if not isinstance(read, str):
            return read
        sf_problem = read  # e.g. a WAV codec only FFmpeg knows: try FFmpeg
    try:
        samples, native = read_audio(path)
    except (InputError, OSError) as exc:
        if sf_problem is not None:
            raise InputError(f"{path}: not a readable audio file ({sf_problem})") from None
        if libsndfile_fallback(path):  # MATLAB, HTK, … only libsndfile reads
            read = by_libsndfile()
            if not isinstance(read, str):
                return read
        raise InputError(f"{path}: {_ffmpeg_problem(exc, path)}") from None
    return samples, int(native)


@lru_cache(maxsize=2)  # per process: consecutive examples often share a recording (whole files: keep few)
def load_mono(path: str, sample_rate: int) -> np.ndarray:
    """A whole audio file, downmixed to mono and resampled to ``sample_rate``: float64 ``(n,)``.

    WAV, FLAC, Ogg and AIFF through soundfile (libsndfile), the rest (mp3, m4a, video, …) and
    what libsndfile cannot read through FFmpeg (PyAV), as :class:`foleyspace.mono.FileAudio` does.

    Raises:
        InputError: the file cannot be decoded, holds NaN/inf samples, has a sample rate outside
            :data:`foleyspace.mono.RATE_RANGE_HZ`, or is too long to hold in memory.
    """
    from foleyspace.mono import check_finite, check_rate, downmix, resample

    try:
        samples, native = _decode(path)
        check_rate(native, path)
        mono = check_finite(downmix(samples), path)
        out = resample(mono, native, sample_rate)
    except MemoryError:
        raise InputError(f"{path}: too long to load at once; cut it into shorter files") from None
    out.setflags(write=False)
    return out


def rms_dbfs(x: np.ndarray) -> float:
    """RMS level of ``x`` in dB re full scale (−inf for silence)."""
    power = float(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def sounding_offsets(mono: np.ndarray, length: int, silence_dbfs: float) -> list[int]:
    """Starts of the non-overlapping ``length``-sample windows of ``mono`` whose RMS ≥ ``silence_dbfs``."""
    return [s for s in range(0, len(mono) - length + 1, length) if rms_dbfs(mono[s : s + length]) >= silence_dbfs]


def _scan(path: str, sample_rate: int, length: int, silence_dbfs: float) -> tuple[list[int], str | None]:
    """Pool task: a recording's sounding offsets, or ``([], message)`` if it cannot be read."""
    try:
        return sounding_offsets(load_mono(path, sample_rate), length, silence_dbfs), None
    except FoleySpaceError as exc:
        return [], str(exc)


# ---------------------------------------------------------------- rendering


@dataclass(frozen=True)
class Example:
    """One planned example: ``number`` in the build (seeds its trajectory), its recording
    (index into the sources, path), segment ``offset`` (samples at the config rate), ``subject``."""

    number: int
    source: int
    path: str
    offset: int
    subject: int


@dataclass(frozen=True)
class ShardTask:
    """Everything a worker needs to render and write one shard."""

    out: str
    file: str
    examples: tuple[Example, ...]
    hrtf_paths: tuple[str, ...]
    config: DiffusionConfig
    settings: BuildSettings


def renderer_settings(config: DiffusionConfig, settings: BuildSettings) -> dict[str, Any]:
    """The DSP renderer's settings for this set (recorded in the manifest)."""
    coarse = settings.scheme == "coarse"
    return {"name": "dsp", "interp": "nearest" if coarse else settings.interp, "directions": settings.scheme,
            "distance_delay": True, "distance_gain": True, "segment_rate_hz": config.positions / config.segment_s}


@lru_cache(maxsize=4)  # per process: HRIR sets cost ~0.5 s to load and triangulate
def make_renderer(sofa: str, sample_rate: int, interp: str, directions: str, segment_rate_hz: float) -> Any:
    """The DSP renderer of one subject (eq. 8, distance by delay and 1/r gain)."""
    from foleyspace.hrtf.sofa import SofaHrirSet, SofaSettings
    from foleyspace.render import DspRenderer, DspRendererConfig

    hrirs = SofaHrirSet(sofa, sample_rate=sample_rate, config=SofaSettings(interp=interp, directions=directions))
    return DspRenderer(hrirs, DspRendererConfig(distance_delay=True, segment_rate_hz=segment_rate_hz))


def position_times(config: DiffusionConfig) -> np.ndarray:
    """Seconds of the N trajectory positions: the starts of the eq.-8 segments ``(N,)``."""
    from foleyspace.render import segment_bounds

    return segment_bounds(config.segment_samples, config.positions)[:-1] / config.sample_rate


def example_trajectory(seed: int, number: int, config: DiffusionConfig, settings: BuildSettings) -> np.ndarray:
    """Example ``number``'s positions ``(N, 3)`` float32, drawn from its own seed ``(seed, number)``."""
    rng = np.random.default_rng([seed, 1, number])
    if settings.scheme == "coarse":
        xyz = coarse_trajectory(rng, config.positions, DirectionSetConfig())
    else:
        xyz = fine_trajectory(rng, position_times(config), config.segment_s, settings.ranges)
    return xyz.astype(np.float32)


def render_example(mono: np.ndarray, xyz: np.ndarray, renderer: Any, config: DiffusionConfig) -> np.ndarray:
    """Binaural ``(2, L)`` float32 of ``mono`` ``(L,)`` along ``xyz`` ``(N, 3)``: the renderer's eq.-8
    boundaries are the positions' times, so boundary i gets exactly ``xyz[i]`` (the last is held)."""
    from foleyspace.render import Waypoints, segment_bounds

    length, rate = config.segment_samples, config.sample_rate
    bounds = segment_bounds(length, config.positions)
    waypoints = Waypoints(bounds[:-1] / rate, np.asarray(xyz, np.float64))
    if not np.array_equal(renderer.bounds(length, rate, waypoints), bounds):
        raise ValueError("the renderer's eq. 8 segments differ from the stored positions' segments")
    return renderer.render(np.asarray(mono, np.float64), waypoints, rate).astype(np.float32)


def example_mono(example: Example, config: DiffusionConfig, settings: BuildSettings) -> np.ndarray:
    """The example's mono segment ``(L,)`` float32, scaled to ``settings.level_dbfs``."""
    length = config.segment_samples
    mono = load_mono(example.path, config.sample_rate)[example.offset : example.offset + length]
    if settings.level_dbfs is not None:
        mono = mono * 10.0 ** ((settings.level_dbfs - rms_dbfs(mono)) / 20.0)
    return mono.astype(np.float32)


def build_shard(task: ShardTask) -> tuple[str, str]:
    """Pool task: render ``task``'s examples and write its shard. Returns ``(file, sha256)``."""
    cfg, settings = task.config, task.settings
    rs = renderer_settings(cfg, settings)
    k, length = len(task.examples), cfg.segment_samples
    arrays = {"mono": np.empty((k, length), np.float32), "binaural": np.empty((k, 2, length), np.float32),
              "xyz": np.empty((k, cfg.positions, 3), np.float32)}
    for row, ex in enumerate(task.examples):
        renderer = make_renderer(task.hrtf_paths[ex.subject], cfg.sample_rate, rs["interp"], rs["directions"],
                                 rs["segment_rate_hz"])
        arrays["mono"][row] = example_mono(ex, cfg, settings)
        arrays["xyz"][row] = example_trajectory(settings.seed, ex.number, cfg, settings)
        arrays["binaural"][row] = render_example(arrays["mono"][row], arrays["xyz"][row], renderer, cfg)
    arrays["source"] = np.array([e.source for e in task.examples], np.int32)
    arrays["offset"] = np.array([e.offset for e in task.examples], np.int64)
    arrays["subject"] = np.array([e.subject for e in task.examples], np.int32)
    arrays["example"] = np.array([e.number for e in task.examples], np.int64)
    return task.file, write_npz(Path(task.out) / task.file, arrays)


# ---------------------------------------------------------------- planning


def subject_of(index: int, n_sources: int, n_subjects: int) -> int:
    """The subject of recording ``index`` (sorted order): consecutive groups of recordings, one per subject."""
    return index * n_subjects // max(n_sources, 1)


def heldout_sources(sounding: Sequence[int], fraction: float, seed: int) -> set[int]:
    """Which recordings (indices among ``sounding``, those with sound) are held out: a seeded draw of
    ``round(fraction · n)`` of them, at least one when ``fraction > 0``, never all.

    Raises:
        InputError: a held-out split asked for with fewer than two recordings with sound.
    """
    if fraction <= 0:
        return set()
    if len(sounding) < 2:
        raise InputError(f"a held-out split needs at least 2 recordings with sound, found {len(sounding)} "
                         "(add recordings or pass --heldout 0)")
    n = min(max(1, round(fraction * len(sounding))), len(sounding) - 1)
    order = np.random.default_rng([seed, 0]).permutation(len(sounding))
    return {int(sounding[i]) for i in order[:n]}


def draw_examples(segments: Sequence[tuple[int, int]], examples: int | None, seed: int) -> list[tuple[int, int]]:
    """The examples' ``(source, offset)`` in draw order: every segment once in a seeded order, or
    ``examples`` of them, passing over all segments (each pass its own order) as often as needed."""
    rng = np.random.default_rng([seed, 2])
    total = len(segments) if examples is None else examples
    drawn: list[tuple[int, int]] = []
    while len(drawn) < total:
        drawn.extend(segments[i] for i in rng.permutation(len(segments))[: total - len(drawn)])
    return drawn


def _hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@dataclass
class Plan:
    """A build's manifest (shards without hashes) and its shard tasks."""

    manifest: dict[str, Any]
    tasks: list[ShardTask]


def plan_build(audio_dir: Path, hrtfs: Sequence[tuple[str, Path]], out: Path, config: DiffusionConfig,
               settings: BuildSettings, scan: Callable[[list[str]], list[tuple[list[int], str | None]]]) -> Plan:
    """The whole build decided: sources and their splits and subjects, examples, shards.

    ``hrtfs`` are ``(name as given, SOFA path)``; ``scan(paths)`` returns each recording's sounding
    offsets (see :func:`_scan`).

    Raises:
        InputError: no audio, no sounding segment, a split left empty.
    """
    files = find_audio(audio_dir)
    scans = scan([str(f) for f in files])
    errors = [error for _, error in scans if error]
    sounding = [i for i, (offsets, _) in enumerate(scans) if offsets]
    if not sounding:  # one line: why each kind of file was of no use
        first = f"{errors[0]}{f', and {len(errors) - 1} more' if len(errors) > 1 else ''}" if errors else ""
        if len(errors) == len(files):
            raise InputError(f"{audio_dir}: none of its {len(files)} audio file(s) can be used ({first})")
        unusable = f" ({len(errors)} unusable: {first})" if errors else ""
        raise InputError(f"{audio_dir}: no {config.segment_s:g} s segment of sound (RMS ≥ {settings.silence_dbfs:g} dBFS) "
                         f"in {len(files)} audio file(s){unusable}; recordings must last at least {config.segment_s:g} s")
    for error in errors:
        log.warning("skipped %s", error)
    held = heldout_sources(sounding, settings.heldout, settings.seed)
    sources = [{"file": f.relative_to(audio_dir).as_posix(), "bytes": f.stat().st_size,
                "subject": subject_of(i, len(files), len(hrtfs)), "split": "heldout" if i in held else "train",
                "segments": len(scans[i][0]), **({"error": scans[i][1]} if scans[i][1] else {})}
               for i, f in enumerate(files)]
    segments = [(i, off) for i in sounding for off in scans[i][0]]
    drawn = draw_examples(segments, settings.examples, settings.seed)
    per_split: dict[str, list[Example]] = {s: [] for s in SPLITS}
    for number, (src, off) in enumerate(drawn):
        per_split[sources[src]["split"]].append(Example(number, src, str(files[src]), off, sources[src]["subject"]))
    if settings.heldout > 0 and not per_split["heldout"]:
        raise InputError(f"{audio_dir}: no held-out example drawn from {len(drawn)}; ask for more --examples")
    if not per_split["train"]:
        raise InputError(f"{audio_dir}: no training example drawn from {len(drawn)}; ask for more --examples")
    hrtf_entries = [{"name": name, "path": str(path.absolute()), "file": path.name, "sha256": sha256_file(path)}
                    for name, path in hrtfs]
    settings_dict = asdict(settings)
    renderer = renderer_settings(config, settings)
    shards, tasks = [], []
    for split in SPLITS:
        exs = per_split[split]
        for k in range(0, len(exs), settings.shard_size):
            chunk = tuple(exs[k : k + settings.shard_size])
            file = shard_name(split, k // settings.shard_size)
            plan_hash = _hash({"config": config.to_dict(), "settings": settings_dict, "renderer": renderer,
                               "hrtf": [e["sha256"] for e in hrtf_entries],
                               "examples": [(e.number, sources[e.source]["file"], sources[e.source]["bytes"],
                                             e.offset, e.subject) for e in chunk]})
            shards.append({"file": file, "split": split, "count": len(chunk), "plan": plan_hash, "sha256": None})
            tasks.append(ShardTask(str(out), file, chunk, tuple(str(p) for _, p in hrtfs), config, settings))
    manifest = {"format": FORMAT, "complete": False, "config": config.to_dict(), "scheme": settings.scheme,
                "seed": settings.seed, "settings": settings_dict, "renderer": renderer, "hrtf": hrtf_entries,
                "audio_dir": str(audio_dir.absolute()), "sources": sources, "shards": shards,
                "counts": {s: len(per_split[s]) for s in SPLITS}}
    return Plan(manifest, tasks)


# ---------------------------------------------------------------- the build


def _check_output(out: Path) -> None:
    """Create ``out`` and check a file can be written there (one-line :class:`OutputError` if not)."""
    from foleyspace.stem import file_in_the_way

    blocker = file_in_the_way(out)
    if blocker is not None:
        raise OutputError(f"{out}: cannot write the dataset there ({'it' if blocker == out else blocker} is a file, "
                          "not a folder)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the dataset there ({exc.strerror or exc})") from None


def _check_hrtfs(hrtfs: Sequence[tuple[str, Path]]) -> None:
    """Open every SOFA file once (its own one-line error if it cannot be used)."""
    from foleyspace.hrtf.sofa import read_sofa

    if not hrtfs:
        raise InputError("no HRIR set: give at least one --hrtf SOFA")
    for _, path in hrtfs:
        read_sofa(path)


def _reusable(out: Path, manifest: dict[str, Any]) -> dict[str, str]:
    """Shards of an earlier build in ``out`` that this build can keep: ``file → sha256``.

    Raises:
        OutputError: ``out`` holds a dataset built with other inputs or settings.
    """
    if not (out / MANIFEST).exists():
        return {}
    try:
        old = read_manifest(out, require_complete=False)
    except DatasetError as exc:
        raise OutputError(f"{out}: holds a {MANIFEST} that is not a training set's ({exc}); choose another --out") from None
    same = {k: v for k, v in old.items() if k not in ("shards", "complete")} == \
        {k: v for k, v in manifest.items() if k not in ("shards", "complete")}
    if not same or [(e["file"], e["plan"]) for e in old["shards"]] != [(e["file"], e["plan"]) for e in manifest["shards"]]:
        raise OutputError(f"{out}: holds a dataset built from other inputs or settings; choose another --out or empty it")
    keep = {}
    for entry in old["shards"]:
        path = out / entry["file"]
        if entry.get("sha256") and path.is_file() and sha256_file(path) == entry["sha256"]:
            keep[entry["file"]] = entry["sha256"]
    return keep


def build_dataset(audio_dir: str | Path, hrtfs: Sequence[tuple[str, str | Path]], out: str | Path,
                  config: DiffusionConfig, settings: BuildSettings = BuildSettings(), workers: int = 1,
                  quiet: bool = False) -> dict[str, Any]:
    """Build (or finish) a training set in ``out``; returns its manifest.

    ``hrtfs``: ``(name as given, SOFA path)`` per subject. Shards already complete and matching
    the manifest are kept; the rest are rendered by ``workers`` processes. Same inputs and seed →
    byte-identical shards and manifest, whatever ``workers``.

    Raises:
        FoleySpaceError: one line — no audio, too little sound, an unusable SOFA file, an
            unwritable ``out``, or ``out`` holding another dataset. A build that fails before
            writing anything removes the ``out`` folder it created.
    """
    audio_dir, out = Path(audio_dir), Path(out)
    hrtf_paths = [(name, Path(path)) for name, path in hrtfs]
    _check_hrtfs(hrtf_paths)
    created = [p for p in (out, *out.parents) if not p.exists()]  # deepest first
    _check_output(out)
    try:
        return _build(audio_dir, hrtf_paths, out, scheme_config(config, settings), settings, workers, quiet)
    except BaseException:  # a failed or stopped build leaves no empty folder of its own behind
        for folder in created:
            try:
                folder.rmdir()  # only when empty: written shards stay, for the rerun that finishes them
            except OSError:
                break
        raise


def _build(audio_dir: Path, hrtf_paths: list[tuple[str, Path]], out: Path, config: DiffusionConfig,
           settings: BuildSettings, workers: int, quiet: bool) -> dict[str, Any]:
    """:func:`build_dataset` once the inputs and ``out`` are checked."""
    from tqdm import tqdm

    workers = max(1, int(workers))
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        def scan(paths: list[str]) -> list[tuple[list[int], str | None]]:
            args = (config.sample_rate, config.segment_samples, settings.silence_dbfs)
            with tqdm(total=len(paths), desc="reading audio", unit="file", disable=quiet, leave=False) as bar:
                if pool is None:
                    results = []
                    for p in paths:
                        results.append(_scan(p, *args))
                        bar.update()
                    return results
                futures = [pool.submit(_scan, p, *args) for p in paths]
                for f in futures:
                    f.add_done_callback(lambda _: bar.update())
                return [f.result() for f in futures]

        plan = plan_build(audio_dir, hrtf_paths, out, config, settings, scan)
        manifest = plan.manifest
        done = _reusable(out, manifest)
        for entry in manifest["shards"]:
            entry["sha256"] = done.get(entry["file"])
        write_manifest(out, manifest)
        todo = [t for t in plan.tasks if t.file not in done]
        index = {e["file"]: e for e in manifest["shards"]}
        if done:
            log.info("%d of %d shards already built; %d to go", len(done), len(plan.tasks), len(todo))
        total = sum(e["count"] for e in manifest["shards"])
        with tqdm(total=total, initial=total - sum(len(t.examples) for t in todo), desc="rendering", unit="ex",
                  disable=quiet) as bar:
            def finished(file: str, digest: str) -> None:
                index[file]["sha256"] = digest
                write_manifest(out, manifest)
                bar.update(index[file]["count"])

            if pool is None:
                for task in todo:
                    finished(*build_shard(task))
            else:
                pending: set[Future] = {pool.submit(build_shard, t) for t in todo}
                while pending:
                    complete, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in complete:
                        finished(*f.result())
        manifest["complete"] = True
        write_manifest(out, manifest)
        return manifest
    except OSError as exc:
        raise OutputError(f"{out}: cannot write the dataset ({exc.strerror or exc})") from None
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
