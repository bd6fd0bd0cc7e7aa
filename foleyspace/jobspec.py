"""Job specs: the plain-data form of a :class:`~foleyspace.pipeline.Job` that crosses the wire.

A spec is a map of JSON/msgpack types (see ``docs/protocol.md``)::

    {"video": "/abs/clip.mov", "output_dir": "/abs/stems", "name": "clip_binaural.wav",
     "start_s": 1.0, "end_s": 5.0, "audio": null, "audio_start_s": 0.0,
     "box": [x, y, w, h] | null, "box_time_s": null,
     "options": {"scheme": "fine", "hrtf": null, "segments_per_second": null,
                 "distance_delay": false, "long_side": 640, "sidecar": true, "label": null}}

Only ``video`` and ``output_dir`` are required. :func:`job_from_spec` checks every field's type
and range and raises :class:`SpecError` with a one-line message.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from foleyspace.config import MAX_SEGMENT_RATE_HZ, SpatializeConfig
from foleyspace.errors import FoleySpaceError
from foleyspace.pipeline import Job, SeedBox

OPTION_DEFAULTS: dict[str, Any] = {
    "scheme": "fine",
    "hrtf": None,
    "segments_per_second": None,
    "distance_delay": False,
    "long_side": 640,
    "sidecar": True,
    "label": None,
}
SPEC_KEYS = {"video", "output_dir", "name", "start_s", "end_s", "audio", "audio_start_s", "box", "box_time_s",
             "options"}


class SpecError(FoleySpaceError):
    """A job spec with a missing, unknown or ill-typed field."""

    code = "bad_request"


def _path(spec: dict[str, Any], key: str, required: bool = False) -> Path | None:
    value = spec.get(key)
    if value is None:
        if required:
            raise SpecError(f"job spec: {key!r} is required")
        return None
    if not isinstance(value, str) or not value or "\x00" in value:
        raise SpecError(f"job spec: {key!r} must be a non-empty path string")
    path = Path(value)
    if not path.is_absolute():
        raise SpecError(f"job spec: {key!r} must be an absolute path, got {value!r}")
    return path


def _number(value: Any, key: str, positive: bool = False) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"job spec: {key!r} must be a finite number")
    try:
        value = float(value)
    except OverflowError:
        raise SpecError(f"job spec: {key!r} must be a finite number") from None
    if not math.isfinite(value):
        raise SpecError(f"job spec: {key!r} must be a finite number")
    if value < 0 or (positive and value == 0):
        raise SpecError(f"job spec: {key!r} must be {'positive' if positive else 'non-negative'}")
    return float(value)


def default_name(video: Path) -> str:
    """The stem file name for a clip: ``<clip stem>_binaural.wav``."""
    return f"{video.stem}_binaural.wav"


def stem_name(spec: dict[str, Any], video: Path) -> str:
    """The validated stem file name: a plain ``*.wav`` name, no folders, no ``..``."""
    name = spec.get("name")
    if name is None:
        return default_name(video)
    if not isinstance(name, str) or not name.lower().endswith(".wav"):
        raise SpecError("job spec: 'name' must be a file name ending in .wav")
    if Path(name).name != name or name in (".", "..") or name.startswith(".") or "\\" in name or "\x00" in name:
        raise SpecError(f"job spec: 'name' {name!r} must be a plain file name (no folders)")
    return name


def job_from_spec(spec: Any) -> Job:
    """Build the pipeline job a spec describes; raise :class:`SpecError` if it is malformed."""
    if not isinstance(spec, dict):
        raise SpecError("job spec must be a map")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise SpecError(f"job spec: unknown field(s) {sorted(map(str, unknown))}")
    video = _path(spec, "video", required=True)
    output_dir = _path(spec, "output_dir", required=True)
    assert video is not None and output_dir is not None
    options = spec.get("options")
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise SpecError("job spec: 'options' must be a map")
    unknown = set(options) - set(OPTION_DEFAULTS)
    if unknown:
        raise SpecError(f"job spec: unknown option(s) {sorted(map(str, unknown))}")
    opts = {**OPTION_DEFAULTS, **options}
    if opts["scheme"] not in ("fine", "coarse"):
        raise SpecError("job spec: option 'scheme' must be 'fine' or 'coarse'")
    if not isinstance(opts["distance_delay"], bool) or not isinstance(opts["sidecar"], bool):
        raise SpecError("job spec: options 'distance_delay' and 'sidecar' must be booleans")
    long_side = opts["long_side"]
    if isinstance(long_side, bool) or not isinstance(long_side, int) or not 32 <= long_side <= 8192:
        raise SpecError("job spec: option 'long_side' must be an integer from 32 to 8192")
    seg_rate = _number(opts["segments_per_second"], "segments_per_second", positive=True)
    if seg_rate is not None and seg_rate > MAX_SEGMENT_RATE_HZ:
        raise SpecError(f"job spec: option 'segments_per_second' must be at most {MAX_SEGMENT_RATE_HZ:g}")
    label = opts["label"]
    if label is not None and (not isinstance(label, str) or len(label) > 200):
        raise SpecError("job spec: option 'label' must be a string of at most 200 characters")
    hrtf = _path(opts, "hrtf")
    start, end = _number(spec.get("start_s"), "start_s"), _number(spec.get("end_s"), "end_s")
    seed = None
    box_time = _number(spec.get("box_time_s"), "box_time_s")
    if spec.get("box") is not None:
        box = spec["box"]
        if not isinstance(box, list) or len(box) != 4:
            raise SpecError("job spec: 'box' must be [x, y, w, h]")
        x, y, w, h = (_number(v, "box") for v in box)
        seed = SeedBox(x, y, w, h, box_time)  # type: ignore[arg-type]
    config = SpatializeConfig.for_scheme(opts["scheme"])
    render = replace(config.render, distance_delay=opts["distance_delay"])
    if seg_rate is not None:
        render = replace(render, segment_rate_hz=seg_rate)
    config = replace(config, render=render, analysis=replace(config.analysis, long_side=long_side))
    audio_start = _number(spec.get("audio_start_s"), "audio_start_s") or 0.0
    return Job(video=video, output=output_dir / stem_name(spec, video), audio=_path(spec, "audio"),
               audio_start_s=audio_start,
               start_s=start, end_s=end, seed_box=seed, hrtf=hrtf, config=config,
               write_sidecar=opts["sidecar"], label=label or None)


def spec_from_job(job: Job) -> dict[str, Any]:
    """The spec of a job (absolute paths), e.g. to submit a CLI-built job to a server."""
    cfg = job.config
    box = job.seed_box
    return {
        "video": str(Path(job.video).resolve()),
        "output_dir": str(Path(job.output).resolve().parent),
        "name": Path(job.output).name,
        "start_s": job.start_s,
        "end_s": job.end_s,
        "audio": str(Path(job.audio).resolve()) if job.audio else None,
        "audio_start_s": job.audio_start_s,
        "box": None if box is None else [box.x, box.y, box.w, box.h],
        "box_time_s": None if box is None else box.time_s,
        "options": {
            "scheme": cfg.trajectory.scheme,
            "hrtf": str(Path(job.hrtf).resolve()) if job.hrtf else None,
            "segments_per_second": cfg.render.segment_rate_hz,
            "distance_delay": cfg.render.distance_delay,
            "long_side": cfg.analysis.long_side,
            "sidecar": job.write_sidecar,
            "label": job.label,
        },
    }
