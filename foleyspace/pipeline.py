"""The one pipeline: video → boxes → depth → trajectory → mono → binaural stem (+ sidecar).

CLI, server and plug-ins call :func:`spatialize` and nothing below it. Which backend runs each
stage comes from the job and the registry (:mod:`foleyspace.backends`); the :class:`Backends`
passed in owns them (built once per process). Progress is reported as
``progress(stage, fraction)``; ``cancel()`` is polled often and stops the job with
:class:`~foleyspace.errors.Cancelled`. Nothing is written under the output name unless the job
completes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np

from foleyspace.backends import Backends, Stages
from foleyspace.blocks import BLOCK_SAMPLES, collect, fit_blocks
from foleyspace.config import AUTO
from foleyspace.errors import Cancelled, FoleySpaceError, InputError
from foleyspace.frames import FrameSource
from foleyspace.job import Job, Result
from foleyspace.localize.base import LOST, BoxTrack, LocalizeRequest, NotDetected
from foleyspace.mono import MonoSource, mono_blocks, reversed_mono_blocks
from foleyspace.render import Renderer, Waypoints, render_blocks
from foleyspace.sidecar import sidecar_data
from foleyspace.stem import (StemSpool, apply_gain, atomic_outputs, check_replaceable, check_writable, encode_json,
                             encode_wav_blocks, peak_gain)
from foleyspace.timewarp import TimeWarp, warp_path
from foleyspace.trajectory import box_centers, source_path
from foleyspace.video import VideoInfo, analysis_size, probe, resolve_range

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
CancelCheck = Callable[[], bool]


class PathGuard(Protocol):
    """What a job may read and write, judged where the files are really opened (a server's path
    policy). Each method raises a :class:`~foleyspace.errors.FoleySpaceError` to refuse."""

    def check_input(self, real: Path, what: str) -> None:
        """An input file as opened (its real path); ``what``: "video", "audio", "HRTF file"."""
        ...

    def check_output_folder(self, real: Path) -> None:
        """The output folder as opened (its real path)."""
        ...


_INPUTS = (("video", "video"), ("audio", "audio"), ("hrtf", "HRTF file"))
#: Private folders of input links are named by the process that made them (see :func:`held_inputs`).
_HELD_PREFIX = "foleyspace-inputs-{pid}-"


def remove_held_inputs(pid: int) -> None:
    """Remove the private input-link folders process ``pid`` left (a killed worker cannot)."""
    import shutil
    import tempfile

    for folder in Path(tempfile.gettempdir()).glob(_HELD_PREFIX.format(pid=pid) + "*"):
        shutil.rmtree(folder, ignore_errors=True)


def setting_files(job: Job) -> list[str]:
    """Files a job's backend settings name (a vocabulary file, a local model folder): every
    absolute path among their string fields; a server's policy judges them like the inputs."""
    from dataclasses import fields, is_dataclass

    found = []
    for settings in job.config.settings.values():
        if is_dataclass(settings):
            for f in fields(settings):
                value = getattr(settings, f.name)
                if isinstance(value, str) and os.path.isabs(value):
                    found.append(value)
    return found


@contextlib.contextmanager
def held_inputs(job: Job, guard: PathGuard | None) -> Iterator[Job]:
    """Open the job's input files once and check them: each must be a regular file (a pipe or a
    device would block the job), and with a ``guard`` inside what it allows. With a guard the
    stages then read the opened files — through links in a private temporary folder to
    ``/proc/self/fd/N``, which keep each file's name suffix for the libraries that look at it —
    so a path swapped for a link after this check cannot redirect them; the job yielded names
    those, errors name the originals."""
    fds: list[int] = []
    held: dict[str, Path] = {}
    private: Path | None = None
    try:
        for field, what in _INPUTS:
            path = getattr(job, field)
            if path is None:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                raise InputError(f"{path}: no such {'' if what == 'video' else what + ' '}file") from None
            except OSError as exc:
                raise InputError(f"{path}: cannot be opened ({exc.strerror})") from None
            fds.append(fd)
            mode = os.fstat(fd).st_mode
            if stat.S_ISDIR(mode):
                raise InputError(f"{path}: is a directory, not a{'n' if what[0] in 'aeiouH' else ''} {what} file")
            if not stat.S_ISREG(mode):
                raise InputError(f"{path}: not a regular file (the {what} must be a file, not a pipe or device)")
            if guard is not None and os.path.isdir("/proc/self/fd"):
                guard.check_input(Path(os.readlink(f"/proc/self/fd/{fd}")), what)
                if private is None:
                    import tempfile

                    # mode 0700; named by the process so a server can clean up after a killed worker
                    private = Path(tempfile.mkdtemp(prefix=_HELD_PREFIX.format(pid=os.getpid())))
                held[field] = private / f"{field}{Path(path).suffix}"
                held[field].symlink_to(f"/proc/self/fd/{fd}")
            elif guard is not None:
                guard.check_input(Path(os.path.realpath(path)), what)
        if guard is not None:
            for path in setting_files(job):
                guard.check_input(Path(os.path.realpath(path)), "model or vocabulary file")
        if not held:
            yield job
            return
        try:
            yield replace(job, **held)
        except FoleySpaceError as exc:  # name the user's files, not the descriptors
            text = str(exc)
            for field, fd_path in held.items():
                text = text.replace(str(fd_path), str(getattr(job, field)))
            if text == str(exc):
                raise
            try:
                renamed = type(exc)(text)
                renamed.code = exc.code
            except Exception:
                raise exc from None
            raise renamed from exc
    finally:
        for fd in fds:
            os.close(fd)
        if private is not None:
            import shutil

            shutil.rmtree(private, ignore_errors=True)


def timeline_blocks(mono: MonoSource, warp: TimeWarp, start_s: float, end_s: float, rate: int, n_out: int,
                    block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """The mono signal of the clip as the timeline plays it: ``n_out`` samples at ``rate`` in
    blocks of ``block_samples``, read as they are consumed.

    A source that follows the picture (the clip's own sound; ``timing == "source"``, the default)
    is read over the source range at ``rate/|speed|`` and played at ``rate`` — varispeed, pitch
    following speed, reversed for a negative speed; one in timeline time (a separate sound file,
    ``timing == "timeline"``) is read for the timeline duration as it is.

    Reversed playback (``speed < 0``) reads the range from its end backwards, a block at a time
    (:func:`~foleyspace.mono.reversed_mono_blocks`), with the same samples as reading it whole
    and reversing; a source without a backwards reader (a generator) is read whole.
    """
    if getattr(mono, "timing", "source") == "timeline":
        return fit_blocks(mono_blocks(mono, start_s, start_s + n_out / rate, rate, block_samples), n_out, block_samples)
    read = reversed_mono_blocks if warp.speed < 0 else mono_blocks
    return fit_blocks(read(mono, start_s, end_s, warp.varispeed_rate(rate), block_samples), n_out, block_samples)


def timeline_mono(mono: MonoSource, warp: TimeWarp, start_s: float, end_s: float, rate: int, n_out: int) -> np.ndarray:
    """:func:`timeline_blocks` whole: ``(n_out,)``."""
    return collect(timeline_blocks(mono, warp, start_s, end_s, rate, n_out))


def render_to_spool(renderer: Renderer, mono: Iterator[np.ndarray], n_out: int, waypoints: Waypoints, rate: int,
                    spool: StemSpool, progress: Callable[[float], None],
                    block_samples: int = BLOCK_SAMPLES) -> None:
    """Render the mono blocks (``n_out`` samples in all) block by block into ``spool``, reporting
    the share done after each block (where a cancel stops it). A renderer with ``with_progress``
    (the diffusion sampler, which streams chunk by chunk) reports its own steps instead."""
    own = getattr(renderer, "with_progress", None)
    if own is not None:
        renderer, progress = own(progress), lambda fraction: None
    for block in render_blocks(renderer, mono, n_out, waypoints, rate, block_samples):
        spool.append(block)
        progress(spool.samples / n_out)


def scaled_blocks(spool: StemSpool, scale: float, progress: Callable[[float], None],
                  block_samples: int = BLOCK_SAMPLES) -> Iterator[np.ndarray]:
    """The spooled stem times ``scale`` (the peak limiter's gain), block by block, reporting the
    share handed out after each block (where a cancel stops it)."""
    done = 0
    for block in spool.blocks(block_samples):
        yield apply_gain(block, scale)
        done += block.shape[1]
        progress(done / max(spool.samples, 1))


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


def localize_request(job: Job, info: VideoInfo, size: tuple[int, int], start_s: float, n_frames: int) -> LocalizeRequest:
    """The localizer's view of ``job``: the keyframe boxes scaled to the localizer's frame
    ``size`` and their frames (the first keyframe is the seed)."""
    fps = job.config.analysis.fps
    if job.seed_box is None:
        return LocalizeRequest(n_frames, fps, job.label)
    sx, sy = size[0] / info.width, size[1] / info.height
    keyframes = []
    for box in job.keyframes:
        seed_t = start_s if box.time_s is None else box.time_s
        keyframes.append(((box.x * sx, box.y * sy, box.w * sx, box.h * sy), int(round((seed_t - start_s) * fps))))
    return LocalizeRequest(n_frames, fps, job.label, keyframes[0][0], keyframes[0][1],
                           tuple(sorted(keyframes, key=lambda k: k[1])))


def spatialize(
    job: Job,
    backends: Backends | None = None,
    progress: Progress | None = None,
    cancel: CancelCheck | None = None,
    guard: PathGuard | None = None,
) -> Result:
    """Run the whole job with the backends ``backends`` holds (default: a fresh CPU set).

    ``guard`` (a server's path policy) judges the inputs and the output folder where they are
    opened. Raises :class:`~foleyspace.errors.FoleySpaceError` subclasses for bad input/output
    and :class:`~foleyspace.errors.Cancelled` when ``cancel()`` turns true.
    """
    with held_inputs(job, guard) as opened:
        return _run(job, opened, backends, _Reporter(progress, cancel), guard)


#: A clip whose object is lost on more than this fraction of frames gets a warning.
MOSTLY_LOST = 0.5


def warn_if_mostly_lost(job: Job, track: BoxTrack, start_s: float, fps: float) -> None:
    """Warn, naming the time ranges (clip seconds), when the object is lost on most frames, and
    suggest a ``--box`` keyframe where it is lost longest."""
    if not len(track):
        return
    lost = float(np.mean(track.state == LOST))
    if lost <= MOSTLY_LOST:
        return
    spans = sorted(track.lost_spans(fps, start_s), key=lambda sp: sp[0] - sp[1])
    where = ", ".join(f"{a:.2f}–{b:.2f} s" for a, b in sorted(spans[:4]))
    longest = spans[0]
    log.warning("%s: the object is lost on %.0f%% of the frames (%s%s); draw a box there, e.g. --box X,Y,W,H@%.2f",
                job.video, 100 * lost, where, ", …" if len(spans) > 4 else "", (longest[0] + longest[1]) / 2)


def _analyze(job: Job, opened: Job, info: VideoInfo, stages: Stages, span: tuple[float, float],
             size: tuple[int, int], report: _Reporter) -> tuple[BoxTrack, np.ndarray]:
    """One decoding pass over ``span``: the localizer's boxes (in analysis pixels ``size``) and
    the depth backend's values along them."""
    source = FrameSource(opened.video, span[0], span[1], job.config.analysis.fps, size, check=report.check)
    form = stages.localizer.frame_form
    form_size = source.size_of(form)  # the localizer works in its own pixels; boxes come back to analysis pixels
    request = localize_request(job, info, form_size, span[0], source.n_frames)
    depth_run = stages.depth.start(source.n_frames)
    depth_form = stages.depth.frame_form
    depth_size = size if depth_form is None else source.size_of(depth_form)
    taps = [] if depth_form is None else [(depth_form, depth_run)]
    track: BoxTrack = stages.localizer.localize(source.frames(form, taps), request, report.stage("analyze"))
    if form_size != size:
        track = track.scaled(size[0] / form_size[0], size[1] / form_size[1])
    report("analyze", 1.0)
    depth_values = depth_run.finish(track if depth_size == size else
                                    track.scaled(depth_size[0] / size[0], depth_size[1] / size[1]))
    report("depth", 1.0)
    return track, depth_values


def _run(job: Job, opened: Job, backends: Backends | None, report: _Reporter, guard: PathGuard | None) -> Result:
    """:func:`spatialize` with the inputs held: stages read ``opened``; the outputs, the sidecar
    and the result name ``job``."""
    cfg = job.config
    rate = cfg.output.sample_rate
    for target in [job.output, job.sidecar_path] if job.write_sidecar else [job.output]:
        check_writable(target)
        check_replaceable(target, job.overwrite)
    if job.preview is not None:
        from foleyspace.preview import check_preview_target

        check_preview_target(job.preview, job.overwrite)
    info = probe(opened.video)
    warp = job.warp
    if warp.is_freeze:
        start, _ = resolve_range(info, job.start_s, None)
        end = start
    else:
        start, end = resolve_range(info, job.start_s, job.end_s)
    span = warp.analysis_range(start, end, info.duration_s, cfg.analysis.freeze_context_s)
    n_out = int(round(warp.timeline_duration(start, end) * rate))
    if n_out < 1:
        raise InputError(f"{job.video}: the range lasts less than one sample on the timeline")
    own_sound = opened.audio is None and not job.generate_audio
    if own_sound and warp.is_freeze:
        raise InputError(f"{job.video}: a freeze frame plays none of the clip's sound; "
                         "pass --audio FILE to give the sound to place there")
    if own_sound and not info.has_audio:
        raise InputError(f"{job.video}: the clip has no audio track; pass --audio FILE to give a sound")
    backends = backends or Backends("cpu")
    stages = backends.for_job(opened)
    size = analysis_size(info.width, info.height, cfg.analysis.long_side)
    t0 = time.perf_counter()
    log.info("analyzing %s (%.3f–%.3f s, %s) with %s", job.video, span[0], span[1],
             "no retime" if warp.is_identity else warp.describe(), stages.described["localizer"]["name"])
    try:
        track, depth_values = _analyze(job, opened, info, stages, span, size, report)
    except NotDetected as exc:
        failed = stages.described["localizer"]["name"]
        fallback = backends.fallback("localizer", opened, failed) if cfg.localizer == AUTO else None
        if fallback is None:
            raise
        log.warning("%s: %s; using the %s localizer instead", failed, exc, fallback[1]["name"])
        stages = replace(stages, localizer=fallback[0], described={**stages.described, "localizer": fallback[1]})
        track, depth_values = _analyze(job, opened, info, stages, span, size, report)
    lost_spans = tuple(track.lost_spans(cfg.analysis.fps))
    warn_if_mostly_lost(job, track, span[0], cfg.analysis.fps)
    try:
        path = source_path(box_centers(track.boxes), depth_values, track.confidence, size[0], size[1],
                           cfg.analysis.fps, cfg.trajectory, metric=bool(getattr(stages.depth, "metric", False)))
    except ValueError as exc:
        raise InputError(
            f"{job.video}: no sounding object was found in {span[0]:.2f}–{span[1]:.2f} s; "
            "draw one with --box X,Y,W,H[@T]"
        ) from exc
    analysis_s = time.perf_counter() - t0

    report("audio", 0.0)
    block = cfg.output.block_samples
    mono = timeline_blocks(stages.mono, warp, start, end, rate, n_out, block)  # read as the render consumes it
    report("audio", 1.0)
    report("render", 0.0)
    t1 = time.perf_counter()
    times, xyz = path.render_times_s, path.render_xyz
    if not warp.is_identity:
        times, xyz = warp_path(warp, times, xyz, start, end, span[0])
    with StemSpool(job.output) as spool:  # the stem on disk until its peak is known
        render_to_spool(stages.renderer, mono, n_out, Waypoints(times, xyz), rate, spool, report.stage("render"), block)
        render_s = time.perf_counter() - t1
        scale, gain_db = peak_gain(spool.peak, cfg.output.peak_dbfs)
        if gain_db:
            log.warning("stem scaled by %.1f dB to keep its peak at %.1f dBFS", gain_db, cfg.output.peak_dbfs)
        report("render", 1.0)

        report("write", 0.0)
        targets = [job.output, job.sidecar_path] if job.write_sidecar else [job.output]
        beside = job.preview is not None and Path(job.preview).parent == Path(job.output).parent
        with atomic_outputs(*targets, *([job.preview] if beside else []),  # a preview beside: one commit with the stem
                            check_folder=guard.check_output_folder if guard else None,
                            overwrite=job.overwrite) as temps:  # nothing replaces the targets before the block ends
            encode_wav_blocks(temps[0], scaled_blocks(spool, scale, report.stage("write"), block), rate,
                              cfg.output.subtype)
            sidecar = sidecar_data(job, info, (start, end), size, track, path, spool.samples, gain_db,
                                   stages.described, {"analysis_s": analysis_s, "render_s": render_s},
                                   analysed=None if span == (start, end) else span)
            if job.write_sidecar:
                encode_json(temps[1], sidecar)
            if job.preview is not None:
                _write_preview(job, opened, temps[0], sidecar, temps[-1] if beside else None, report)
            report.check()  # the last moment a cancel stops the job
    report("write", 1.0)
    return Result(stem=Path(job.output), sidecar=job.sidecar_path if job.write_sidecar else None,
                  start_s=start, end_s=end, sample_rate=rate, samples=spool.samples, gain_db=gain_db,
                  source_path=path, lost_spans=lost_spans, preview=job.preview)


def _write_preview(job: Job, opened: Job, stem_tmp: Path, sidecar: dict, preview_tmp: Path | None,
                   report: _Reporter) -> None:
    """The job's preview, from the stem as written (its temporary file) and the sidecar data, into
    ``preview_tmp`` (beside the stem: committed with it). A preview in another folder (a CLI
    ``--preview`` path) gets its own temporary file there, committed just before the stem."""
    from foleyspace.preview import read_stem, render_preview

    stem = read_stem(stem_tmp)
    if preview_tmp is not None:
        render_preview(preview_tmp, stem, sidecar, opened.video, report)
        return
    assert job.preview is not None
    with atomic_outputs(job.preview, overwrite=job.overwrite) as (tmp,):
        render_preview(tmp, stem, sidecar, opened.video, report)
        report.check()
