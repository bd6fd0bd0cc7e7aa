"""The job: one spatialization request, and what it produced (numpy and the standard library only).

A :class:`Job` is built by :func:`foleyspace.jobspec.job_from_spec` — the one validator every
way in (CLI, server, render-otio, the editor plug-ins) goes through — and run by
:func:`foleyspace.pipeline.spatialize`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from foleyspace.config import SpatializeConfig
from foleyspace.timewarp import TimeWarp


@dataclass(frozen=True)
class SeedBox:
    """A user-drawn box around the sounding object, in display pixels of the clip (``x, y`` top-left
    corner, ``w, h`` size), drawn at ``time_s`` seconds of the clip (``None``: the range start)."""

    x: float
    y: float
    w: float
    h: float
    time_s: float | None = None


@dataclass(frozen=True)
class Job:
    """One spatialization request.

    Attributes:
        video: the clip.
        output: the stem WAV to write; the sidecar goes beside it with suffix ``.json``.
        audio: a sound file to spatialize instead of the clip's own audio.
        generate_audio: make the sound with a mono generator backend (MMAudio or a
            ``foleyspace.mono_sources`` plug-in) from the clip's picture and ``label``.
        audio_start_s: where in ``audio`` the range starts, seconds (that point plays at ``start_s``;
            the file is taken in timeline time, so a retimed clip does not retime it).
        start_s, end_s: the source range in clip seconds (``None`` = clip start / end); for a
            freeze frame ``start_s`` is the held frame and ``end_s`` is ``None``.
        warp: how the timeline plays that range (speed, reverse, freeze frame); the stem lasts
            the range's timeline duration and follows the picture (:mod:`foleyspace.timewarp`).
        seed_box: a box to track instead of finding the object (the first keyframe).
        more_boxes: further keyframes of the same object, each with its ``time_s``; the tracker
            honours every keyframe exactly (like correction keyframes in an editor's tracker).
        hrtf: a SOFA file instead of the analytic spherical head.
        label: text naming the sounding object; handed to the localizer (label-aware backends
            detect it, the offline ones record it).
        config: settings, including the backend choices.
        write_sidecar: write ``<output>.json`` with the per-frame trajectory.
        overwrite: replace an existing file at ``output`` (or its sidecar) even if FoleySpace did
            not write it; without it such a file is refused (earlier stems are always replaced).
        preview: also write this MP4: the clip with the stem as its sound and the tracking drawn
            (:mod:`foleyspace.preview`); beside the stem it is replaced together with stem and sidecar.
    """

    video: Path
    output: Path
    audio: Path | None = None
    generate_audio: bool = False
    audio_start_s: float = 0.0
    start_s: float | None = None
    end_s: float | None = None
    warp: TimeWarp = field(default_factory=TimeWarp)
    seed_box: SeedBox | None = None
    more_boxes: tuple[SeedBox, ...] = ()
    hrtf: Path | None = None
    label: str | None = None
    config: SpatializeConfig = field(default_factory=SpatializeConfig)
    write_sidecar: bool = True
    overwrite: bool = False
    preview: Path | None = None

    @property
    def keyframes(self) -> tuple[SeedBox, ...]:
        """Every user-drawn box, the first one first (``()`` without a box)."""
        return () if self.seed_box is None else (self.seed_box, *self.more_boxes)

    @property
    def sidecar_path(self) -> Path:
        return Path(self.output).with_suffix(".json")


@dataclass(frozen=True)
class Result:
    """What a finished job produced.

    Attributes:
        stem, sidecar: the files written (``sidecar`` is ``None`` without one).
        start_s, end_s: the source range rendered, clip seconds (for a freeze frame the held
            frame both).
        sample_rate, samples: of the stem.
        gain_db: peak-limiting gain applied (0 or negative).
        source_path: the analyzed path of the source (:class:`foleyspace.trajectory.SourcePath`).
            The stem's samples are in the file only (a long clip's would not fit in memory).
        lost_spans: where the localizer lost the object, ``(start, end)`` seconds from the
            analysed range's start.
        preview: the preview MP4 written (``None`` without one).
    """

    stem: Path
    sidecar: Path | None
    start_s: float
    end_s: float
    sample_rate: int
    samples: int
    gain_db: float
    source_path: object
    lost_spans: tuple[tuple[float, float], ...] = ()
    preview: Path | None = None

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate
