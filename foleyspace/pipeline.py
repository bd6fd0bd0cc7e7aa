"""The one pipeline: video → boxes → depth → trajectory → mono → binaural stem (+ sidecar).

CLI, server and plug-ins call :func:`spatialize` and nothing below it. Progress is reported as
``progress(stage, fraction)``; ``cancel()`` is polled often and stops the job with
:class:`~foleyspace.errors.Cancelled`. Nothing is written under the output name unless the job
completes.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from foleyspace import __version__
from foleyspace.config import SpatializeConfig
from foleyspace.coords import to_spherical
from foleyspace.depth import BoxScaleDepth, DepthEstimator
from foleyspace.errors import Cancelled, InputError
from foleyspace.hrtf import HrirSet, load_hrir_set
from foleyspace.localize.base import BoxTrack, Localizer
from foleyspace.localize.motion import MotionLocalizer
from foleyspace.localize.tracker import SeededTracker
from foleyspace.mono import ClipAudio, FileAudio, MonoSource
from foleyspace.render import DspRenderer, Renderer, Trajectory
from foleyspace.stem import atomic_outputs, check_writable, encode_json, encode_wav, limit_peak
from foleyspace.trajectory import SourcePath, box_centres, source_path
from foleyspace.video import VideoInfo, analysis_size, frame_count, iter_frames, probe, resolve_range

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
CancelCheck = Callable[[], bool]

#: Stages in the order they report progress.
STAGES = ("analyse", "depth", "audio", "render", "write")


@dataclass(frozen=True)
class SeedBox:
    """A user-drawn box around the sounding object, in source-video pixels, at ``time_s`` of the clip."""

    x: float
    y: float
    w: float
    h: float
    time_s: float | None = None  # None: the start of the range


@dataclass(frozen=True)
class Job:
    """One spatialization request.

    Attributes:
        video: the clip.
        output: the stem WAV to write; the sidecar goes beside it with suffix ``.json``.
        audio: a mono source file instead of the clip's own audio.
        audio_start_s: where in ``audio`` the range starts, seconds (the file is aligned with
            the clip so that this point plays at ``start_s``).
        start_s, end_s: the source range in clip seconds (``None`` = clip start / end).
        seed_box: track this box instead of finding the moving object.
        hrtf: a SOFA file instead of the analytic spherical head.
        config: the settings.
        write_sidecar: write ``<output>.json`` with the per-frame trajectory.
        label: text label of the sounding object, for label-aware localizers (YOLO-World, a
            later backend); the offline localizers do not use it, the sidecar records it.
    """

    video: Path
    output: Path
    audio: Path | None = None
    audio_start_s: float = 0.0
    start_s: float | None = None
    end_s: float | None = None
    seed_box: SeedBox | None = None
    hrtf: Path | None = None
    config: SpatializeConfig = field(default_factory=SpatializeConfig)
    write_sidecar: bool = True
    label: str | None = None

    @property
    def sidecar_path(self) -> Path:
        return Path(self.output).with_suffix(".json")


@dataclass(frozen=True)
class Result:
    """What a finished job produced."""

    stem: Path
    sidecar: Path | None
    start_s: float
    end_s: float
    sample_rate: int
    samples: int
    gain_db: float
    path: SourcePath
    stereo: np.ndarray = field(repr=False)

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate


class _Reporter:
    """Progress + cancel in one object passed down the stages."""

    def __init__(self, progress: Progress | None, cancel: CancelCheck | None) -> None:
        self._progress = progress
        self._cancel = cancel

    def check(self) -> None:
        if self._cancel is not None and self._cancel():
            raise Cancelled("the job was cancelled")

    def __call__(self, stage: str, fraction: float) -> None:
        self.check()
        if self._progress is not None:
            self._progress(stage, min(max(float(fraction), 0.0), 1.0))

    def stage(self, name: str) -> Callable[[float], None]:
        return lambda fraction: self(name, fraction)


def choose_localizer(job: Job, info: VideoInfo, size: tuple[int, int], start_s: float, fps: float) -> Localizer:
    """The seeded tracker when the job has a box, else the motion localizer."""
    if job.seed_box is None:
        return MotionLocalizer()
    sx, sy = size[0] / info.width, size[1] / info.height
    b = job.seed_box
    seed_t = start_s if b.time_s is None else b.time_s
    seed_frame = int(round((seed_t - start_s) * fps))
    return SeededTracker((b.x * sx, b.y * sy, b.w * sx, b.h * sy), seed_frame)


def choose_mono(job: Job) -> MonoSource:
    """``--audio`` when given, else the clip's own audio."""
    return FileAudio(job.audio, job.audio_start_s) if job.audio is not None else ClipAudio(job.video)


def spatialize(
    job: Job,
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
    *,
    localizer: Localizer | None = None,
    depth: DepthEstimator | None = None,
    hrir_set: HrirSet | None = None,
    renderer: Renderer | None = None,
) -> Result:
    """Run the whole job; components default to the offline backends (DESIGN.md §3).

    Raises :class:`~foleyspace.errors.FoleySpaceError` subclasses for bad input/output and
    :class:`~foleyspace.errors.Cancelled` when ``cancel()`` turns true.
    """
    report = _Reporter(progress, cancel)
    cfg = job.config
    rate = cfg.output.sample_rate
    check_writable(job.output)
    if job.write_sidecar:
        check_writable(job.sidecar_path)
    info = probe(job.video)
    start, end = resolve_range(info, job.start_s, job.end_s)
    if job.audio is None and not info.has_audio:
        raise InputError(f"{job.video}: the clip has no audio track; pass --audio FILE to give a sound")
    mono_source = choose_mono(job)
    fps = cfg.analysis.fps
    size = analysis_size(info.width, info.height, cfg.analysis.long_side)
    n_frames = frame_count(start, end, fps)
    localizer = localizer or choose_localizer(job, info, size, start, fps)
    depth = depth or BoxScaleDepth()
    hrir_set = hrir_set or load_hrir_set(str(job.hrtf) if job.hrtf else None, fs=rate)
    renderer = renderer or DspRenderer(hrir_set, cfg.render)
    t0 = time.perf_counter()

    def frames():
        for i, frame in enumerate(iter_frames(job.video, start, end, fps, cfg.analysis.long_side)):
            if i % 8 == 0:
                report.check()
            yield frame

    log.info("analysing %d frames of %s (%.3f–%.3f s) with %s", n_frames, job.video, start, end, localizer.name)
    track: BoxTrack = localizer.localize(frames(), n_frames, report.stage("analyse"))
    report("analyse", 1.0)
    depth_values = depth.estimate(track, frames() if depth.needs_frames else None)
    report("depth", 1.0)
    try:
        path = source_path(box_centres(track.boxes), depth_values, track.confidence, size[0], size[1], fps, cfg.trajectory)
    except ValueError as exc:
        raise InputError(
            f"{job.video}: no sounding object was found in {start:.2f}–{end:.2f} s; "
            "draw one with --box X,Y,W,H[@T]"
        ) from exc
    analysis_s = time.perf_counter() - t0

    report("audio", 0.0)
    mono = mono_source.mono(start, end, rate)
    report("audio", 1.0)
    report("render", 0.0)
    t1 = time.perf_counter()
    stereo = renderer.render(mono, Trajectory(path.render_times_s, path.render_xyz), rate)
    render_s = time.perf_counter() - t1
    stereo, gain_db = limit_peak(stereo, cfg.output.peak_dbfs)
    if gain_db:
        log.warning("stem scaled by %.1f dB to keep its peak at %.1f dBFS", gain_db, cfg.output.peak_dbfs)
    report("render", 1.0)

    report("write", 0.0)
    targets = [job.output, job.sidecar_path] if job.write_sidecar else [job.output]
    with atomic_outputs(*targets) as temps:  # nothing replaces the targets before the block ends
        encode_wav(temps[0], stereo, rate, cfg.output.subtype)
        if job.write_sidecar:
            meta = sidecar_data(job, info, (start, end), size, track, path, stereo.shape[1], rate, gain_db,
                                names={"localizer": localizer.name, "depth": depth.name, "mono": mono_source.name,
                                       "renderer": renderer.name, "hrir_set": hrir_set.name},
                                timings={"analysis_s": analysis_s, "render_s": render_s})
            encode_json(temps[1], meta)
        report.check()  # the last moment a cancel stops the job
    sidecar = job.sidecar_path if job.write_sidecar else None
    report("write", 1.0)
    return Result(stem=Path(job.output), sidecar=sidecar, start_s=start, end_s=end, sample_rate=rate,
                  samples=stereo.shape[1], gain_db=gain_db, path=path, stereo=stereo)


def versions() -> dict[str, str]:
    """Versions of the parts that shape the output."""
    import av
    import cv2
    import scipy
    import soundfile

    return {"foleyspace": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "av": av.__version__, "opencv": cv2.__version__,
            "soundfile": soundfile.__version__}


def _r(x: float, nd: int = 4) -> float | None:
    return None if not np.isfinite(x) else round(float(x), nd)


def sidecar_data(
    job: Job,
    info: VideoInfo,
    span: tuple[float, float],
    size: tuple[int, int],
    track: BoxTrack,
    path: SourcePath,
    samples: int,
    rate: int,
    gain_db: float,
    names: dict[str, str],
    timings: dict[str, float],
) -> dict[str, Any]:
    """The sidecar JSON: per-frame trajectory (source pixels, depth, x/y/z, az/el/r), settings, versions."""
    sx, sy = info.width / size[0], info.height / size[1]
    sph = to_spherical(path.xyz)
    frames = []
    for i in range(len(path.times_s)):
        box = track.boxes[i] if i < len(track) else np.full(4, np.nan)
        frames.append({
            "t": _r(path.times_s[i]), "detected": bool(path.detected[i]), "confidence": _r(path.confidence[i], 3),
            "box": None if not np.all(np.isfinite(box)) else [_r(box[0] * sx, 1), _r(box[1] * sy, 1), _r(box[2] * sx, 1), _r(box[3] * sy, 1)],
            "u_px": _r(path.u[i] * sx, 1), "v_px": _r(path.v[i] * sy, 1), "depth": _r(path.depth[i], 6),
            "distance_m": _r(sph[i, 2], 3), "x": _r(path.xyz[i, 0]), "y": _r(path.xyz[i, 1]), "z": _r(path.xyz[i, 2]),
            "azimuth_deg": _r(sph[i, 0], 2), "elevation_deg": _r(sph[i, 1], 2),
        })
    start, end = span
    return {
        "format": "foleyspace-sidecar/1",
        "stem": {"path": str(Path(job.output).resolve()), "sample_rate": rate, "channels": 2, "samples": samples,
                 "subtype": job.config.output.subtype, "gain_db": round(gain_db, 2)},
        "source": {"video": str(Path(job.video).resolve()), "start_s": start, "end_s": end,
                   "width": info.width, "height": info.height, "fps": info.fps,
                   "audio": str(job.audio) if job.audio else "clip", "audio_start_s": job.audio_start_s},
        "analysis": {"fps": job.config.analysis.fps, "width": size[0], "height": size[1], "label": track.label,
                     "requested_label": job.label,
                     "detected_fraction": round(float(np.mean(path.detected)), 3), **names,
                     **{k: round(v, 3) for k, v in timings.items()}},
        "conventions": "SOFA: x forward, y left, z up (m); azimuth deg CCW from ahead (left +), elevation up +; "
                       "pixels u right, v down in source-video pixels; t seconds from the range start",
        "settings": asdict(job.config),
        "versions": versions(),
        "frames": frames,
    }
