"""Job specs: the plain-data form of a :class:`~foleyspace.job.Job`, and the one validator.

Every way in — the CLI, the server, render-otio and the editor plug-ins — builds a spec and
turns it into a job with :func:`job_from_spec`. A spec is a map of JSON/msgpack types (see
``docs/protocol.md``)::

    {"video": "/abs/clip.mov", "output_dir": "/abs/stems", "name": "clip_binaural.wav",
     "start_s": 1.0, "end_s": 5.0, "speed": 1.0, "hold_s": null, "audio": null, "audio_start_s": 0.0,
     "box": [x, y, w, h] | null, "box_time_s": null, "more_boxes": [[x, y, w, h, t], ...] | null,
     "options": {"scheme": "fine", "hrtf": null | "/abs/h.sofa" | "hutubs:96", "segments_per_second": null,
                 "distance_delay": false, "long_side": 640, "sidecar": true, "label": null,
                 "localizer": "auto", "depth": "auto", "renderer": "auto", "overwrite": false,
                 "vocab": null, "detect_every": null, "depth_model": null, "depth_every": null,
                 "preview": false, "hrtf_interp": "aligned", "hrtf_directions": "all",
                 "checkpoint": null | "/abs/model.pt", "diffusion_schedule": "standard", "seed": null}}

Only ``video`` and ``output_dir`` are required. :func:`job_from_spec` checks every field's type
and range, and that the named backends exist, are installed and fit the job, and raises
:class:`SpecError` with a one-line message naming the field. Importing this module loads no
media, signal-processing or model library.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from foleyspace.backends import CHOSEN_KINDS, KINDS, BackendError, Registry, default_registry
from foleyspace.config import AUTO, LONG_SIDE_RANGE, MAX_SEGMENT_RATE_HZ, SCHEMES, AnalysisConfig, SpatializeConfig, TrajectoryConfig
from foleyspace.errors import FoleySpaceError, shown
from foleyspace.hrtf.catalog import is_name as is_hrtf_name, resolve_hrtf
from foleyspace.job import Job, SeedBox
from foleyspace.render import DspRendererConfig
from foleyspace.localize.vocabulary import VOCABULARIES
from foleyspace.timewarp import MAX_HOLD_S, SPEED_RANGE, TimeWarp

OPTION_DEFAULTS: dict[str, Any] = {
    "scheme": "fine",
    "hrtf": None,
    "segments_per_second": None,
    "distance_delay": False,
    "long_side": AnalysisConfig.long_side,
    "sidecar": True,
    "label": None,
    "localizer": AUTO,
    "depth": AUTO,
    "renderer": AUTO,
    "overwrite": False,
    "vocab": None,
    "detect_every": None,
    "depth_model": None,
    "depth_every": None,
    "hrtf_interp": "aligned",
    "hrtf_directions": "all",
    "preview": False,
    "checkpoint": None,
    "diffusion_schedule": "standard",
    "seed": None,
}
#: The settings keys of the model backends that the options ``vocab``/``detect_every`` and
#: ``depth_model`` configure.
YOLO = "localizer:yolo-world"
DEPTH_ANYTHING = "depth:depth-anything"
#: Options that configure one backend: the backend's settings key.
BACKEND_OPTIONS = {"segments_per_second": "renderer:dsp", "distance_delay": "renderer:dsp",
                   "vocab": YOLO, "detect_every": YOLO, "depth_model": DEPTH_ANYTHING, "depth_every": DEPTH_ANYTHING,
                   "hrtf_interp": "hrir:sofa", "hrtf_directions": "hrir:sofa",
                   "checkpoint": "renderer:diffusion", "diffusion_schedule": "renderer:diffusion",
                   "seed": "renderer:diffusion"}
#: The settings key of the diffusion renderer, which ``checkpoint``, ``diffusion_schedule`` and ``seed`` configure.
DIFFUSION = "renderer:diffusion"
#: The settings key of the SOFA HRIR set, which ``hrtf_interp`` and ``hrtf_directions`` configure.
SOFA = "hrir:sofa"
#: The ``audio`` value that asks for a generated sound instead of a file.
GENERATE = "generate"
SPEC_KEYS = {"video", "output_dir", "name", "start_s", "end_s", "speed", "hold_s", "audio", "audio_start_s", "box",
             "box_time_s", "more_boxes", "options"}
#: Most keyframe boxes a job may give.
MAX_KEYFRAMES = 100
MAX_LABEL_CHARS = 200
#: The settings key of the DSP renderer, which the options ``segments_per_second`` and
#: ``distance_delay`` configure.
DSP = "renderer:dsp"
#: The spec field that decides the backends of the kinds a job does not name.
INPUT_FIELDS = {"mono": "audio", "hrir": "hrtf"}


class SpecError(FoleySpaceError):
    """A job spec with a missing, unknown or ill-typed field.

    Attributes:
        field: the spec key or option at fault (``None`` for the spec as a whole), so a front end
            can name its own flag for it; ``str(err)`` reads ``"job spec: <field>: <problem>"``.
        problem: the message without the field.
    """

    code = "bad_request"

    def __init__(self, problem: str, field: str | None = None) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"job spec: {field!r}: {problem}" if field else f"job spec: {problem}")


class OverwriteError(SpecError):
    """A stem that would replace one of the job's own input files."""

    code = "forbidden"


def _path(spec: dict[str, Any], key: str, required: bool = False) -> Path | None:
    value = spec.get(key)
    if value is None:
        if required:
            raise SpecError("is required", key)
        return None
    if not isinstance(value, str) or not value or "\x00" in value:
        raise SpecError("must be a non-empty path string", key)
    path = Path(value)
    if not path.is_absolute():
        raise SpecError(f"must be an absolute path, got {shown(value)}", key)
    return path


def _number(value: Any, key: str, positive: bool = False) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError("must be a finite number", key)
    try:
        value = float(value)
    except OverflowError:
        raise SpecError("must be a finite number", key) from None
    if not math.isfinite(value):
        raise SpecError("must be a finite number", key)
    if value < 0 or (positive and value == 0):
        raise SpecError(f"must be {'positive' if positive else 'non-negative'}", key)
    return float(value)


def _hrtf(opts: dict[str, Any]) -> Path | None:
    """Option ``hrtf``: an absolute SOFA path, or a fetched set named ``SET:SUBJECT`` (``hutubs:96``)
    resolved to its file in this machine's HRTF folder (:mod:`foleyspace.hrtf.catalog`)."""
    value = opts.get("hrtf")
    if isinstance(value, str) and is_hrtf_name(value):
        try:
            return resolve_hrtf(value)
        except FoleySpaceError as exc:
            raise SpecError(str(exc), "hrtf") from None
    return _path(opts, "hrtf")


def default_name(video: Path) -> str:
    """The stem file name for a clip: ``<clip stem>_binaural.wav``."""
    return f"{video.stem}_binaural.wav"


#: Longest stem name in bytes: its temporary ``.<name>.<8 hex>.tmp`` and its ``.json`` sidecar
#: must fit the usual 255-byte limit of a file name.
MAX_NAME_BYTES = 240
#: ... and with the option ``preview``, the temporary file of ``<name>.preview.mp4`` too.
MAX_PREVIEW_NAME_BYTES = MAX_NAME_BYTES - len(".preview.mp4") + len(".wav")


def stem_name(spec: dict[str, Any], video: Path) -> str:
    """The validated stem file name: a plain ``*.wav`` name, no folders, no ``..``, at most
    :data:`MAX_NAME_BYTES` bytes (a default name from a long clip name is shortened)."""
    name = spec.get("name")
    if name is None:
        name = default_name(video)
        while len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            stem = name[: -len("_binaural.wav")]
            name = stem[:-1] + "_binaural.wav"
        return name
    if not isinstance(name, str) or not name.lower().endswith(".wav"):
        raise SpecError("must be a file name ending in .wav", "name")
    if Path(name).name != name or name in (".", "..") or name.startswith(".") or "\\" in name or "\x00" in name:
        raise SpecError(f"{shown(name)} must be a plain file name (no folders, not hidden)", "name")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise SpecError(f"is {len(name.encode('utf-8', 'surrogateescape'))} bytes long; at most {MAX_NAME_BYTES}", "name")
    return name


def _options(spec: dict[str, Any]) -> dict[str, Any]:
    options = spec.get("options")
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise SpecError("must be a map", "options")
    unknown = set(options) - set(OPTION_DEFAULTS)
    if unknown:
        raise SpecError(f"unknown option(s) {sorted(map(str, unknown))}", "options")
    opts = {**OPTION_DEFAULTS, **options}
    if opts["scheme"] not in SCHEMES:
        raise SpecError(f"must be one of {', '.join(SCHEMES)}", "scheme")
    for key in ("distance_delay", "sidecar", "overwrite", "preview"):
        if not isinstance(opts[key], bool):
            raise SpecError("must be true or false", key)
    lo, hi = LONG_SIDE_RANGE
    long_side = opts["long_side"]
    if isinstance(long_side, bool) or not isinstance(long_side, int) or not lo <= long_side <= hi:
        raise SpecError(f"must be an integer from {lo} to {hi} (pixels)", "long_side")
    label = opts["label"]
    if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL_CHARS):
        raise SpecError(f"must be a string of at most {MAX_LABEL_CHARS} characters", "label")
    for kind in CHOSEN_KINDS:
        if not isinstance(opts[kind], str) or not opts[kind]:
            raise SpecError("must be a backend name or 'auto'", kind)
    for key in ("vocab", "depth_model"):
        value = opts[key]
        if value is not None and (not isinstance(value, str) or not value or len(value) > 4096 or "\x00" in value):
            raise SpecError("must be a name or an absolute path", key)
    if opts["vocab"] is not None and opts["vocab"] not in VOCABULARIES:
        _path(opts, "vocab")  # a file: absolute, like every path in a spec
    from foleyspace.hrtf.directions import DIRECTION_SETS
    from foleyspace.hrtf.interpolate import METHODS

    for key, allowed in (("hrtf_interp", METHODS), ("hrtf_directions", DIRECTION_SETS)):
        if opts[key] not in allowed:
            raise SpecError(f"must be one of {', '.join(allowed)}, got {shown(opts[key])}", key)
    for key in ("detect_every", "depth_every"):
        every = opts[key]
        if every is not None and (isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= 250):
            raise SpecError("must be an integer from 1 to 250 (frames)", key)
    _diffusion_options(opts)
    return opts


def _diffusion_options(opts: dict[str, Any]) -> None:
    """Options ``checkpoint`` (an absolute file path), ``diffusion_schedule`` and ``seed``; the
    last two only with a checkpoint."""
    from foleyspace.diffusion.config import MAX_SEED, SCHEDULES

    _path(opts, "checkpoint")
    if opts["diffusion_schedule"] not in SCHEDULES:
        raise SpecError(f"must be one of {', '.join(SCHEDULES)}, got {shown(opts['diffusion_schedule'])}",
                        "diffusion_schedule")
    seed = opts["seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise SpecError(f"must be an integer from 0 to {MAX_SEED}", "seed")
    for key in ("diffusion_schedule", "seed"):
        if opts[key] != OPTION_DEFAULTS[key] and opts["checkpoint"] is None:
            raise SpecError("is a setting of the diffusion renderer: give its checkpoint too (--checkpoint, "
                           "option checkpoint)", key)


def _config(opts: dict[str, Any]) -> SpatializeConfig:
    rate = opts["segments_per_second"]
    try:
        dsp = DspRendererConfig(segment_rate_hz=_number(rate, "segments_per_second", positive=True),
                                distance_delay=opts["distance_delay"])
    except (SpecError, ValueError):
        raise SpecError(f"must be in (0, {MAX_SEGMENT_RATE_HZ:g}] segments per second, got {shown(rate)}",
                        "segments_per_second") from None
    settings: dict[str, Any] = {} if dsp == DspRendererConfig() else {DSP: dsp}
    if (opts["hrtf_interp"], opts["hrtf_directions"]) != (OPTION_DEFAULTS["hrtf_interp"], OPTION_DEFAULTS["hrtf_directions"]):
        from foleyspace.hrtf.sofa import SofaSettings

        settings[SOFA] = SofaSettings(interp=opts["hrtf_interp"], directions=opts["hrtf_directions"])
    if opts["vocab"] is not None or opts["detect_every"] is not None:
        from foleyspace.localize.yolo_world import YoloWorldConfig

        settings[YOLO] = YoloWorldConfig(vocab=opts["vocab"] or YoloWorldConfig.vocab,
                                         detect_every=opts["detect_every"] or YoloWorldConfig.detect_every)
    if opts["depth_model"] is not None or opts["depth_every"] is not None:
        from foleyspace.depth_anything import DepthAnythingSettings
        from foleyspace.models import DEPTH_ANYTHING_MODELS

        if opts["depth_model"] is not None and opts["depth_model"] not in DEPTH_ANYTHING_MODELS:
            _path(opts, "depth_model")  # a local model folder: absolute
        settings[DEPTH_ANYTHING] = DepthAnythingSettings(model=opts["depth_model"] or DepthAnythingSettings.model,
                                                         every=opts["depth_every"] or DepthAnythingSettings.every)
    if opts["checkpoint"] is not None:
        from foleyspace.diffusion.config import DiffusionRendererSettings

        settings[DIFFUSION] = DiffusionRendererSettings(checkpoint=opts["checkpoint"],
                                                        schedule=opts["diffusion_schedule"], seed=opts["seed"] or 0)
    return SpatializeConfig(analysis=AnalysisConfig(long_side=opts["long_side"]),
                            trajectory=TrajectoryConfig(scheme=opts["scheme"]),
                            localizer=opts["localizer"], depth=opts["depth"], renderer=opts["renderer"],
                            settings=settings)


def _seed(spec: dict[str, Any]) -> SeedBox | None:
    box_time = _number(spec.get("box_time_s"), "box_time_s")
    box = spec.get("box")
    if box is None:
        return None
    if not isinstance(box, list) or len(box) != 4:
        raise SpecError("must be [x, y, w, h]", "box")
    x, y, w, h = (_number(v, "box") for v in box)
    if not (w and h):  # type: ignore[operator]
        raise SpecError("width and height must be positive", "box")
    return SeedBox(x, y, w, h, box_time)  # type: ignore[arg-type]


def _more_boxes(spec: dict[str, Any], first: SeedBox | None) -> tuple[SeedBox, ...]:
    """Keyframes after the first: ``[[x, y, w, h, time_s], ...]``, each at its own time."""
    rows = spec.get("more_boxes")
    if rows is None:
        return ()
    if first is None:
        raise SpecError("needs 'box' (the first keyframe)", "more_boxes")
    if not isinstance(rows, list) or len(rows) > MAX_KEYFRAMES - 1:
        raise SpecError(f"must be a list of at most {MAX_KEYFRAMES - 1} [x, y, w, h, time_s] boxes", "more_boxes")
    boxes = []
    for row in rows:
        if not isinstance(row, list) or len(row) != 5:
            raise SpecError("each box must be [x, y, w, h, time_s]", "more_boxes")
        x, y, w, h, t = (_number(v, "more_boxes") for v in row)
        if not (w and h):  # type: ignore[operator]
            raise SpecError("width and height must be positive", "more_boxes")
        boxes.append(SeedBox(x, y, w, h, t))  # type: ignore[arg-type]
    times = [first.time_s] + [b.time_s for b in boxes]
    if None not in times and len(set(times)) != len(times) or times.count(None) > 1:
        raise SpecError("two keyframes at the same time", "more_boxes")
    return tuple(boxes)


def _warp(spec: dict[str, Any]) -> TimeWarp:
    """The time warp of a spec: ``speed`` (source seconds per timeline second; negative plays
    backwards, 0 holds the frame at ``start_s`` for ``hold_s`` seconds)."""
    speed = spec.get("speed")
    speed = 1.0 if speed is None else speed
    try:
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(float(speed)):
            raise SpecError("must be a finite number", "speed")
    except OverflowError:
        raise SpecError("must be a finite number", "speed") from None
    hold = _number(spec.get("hold_s"), "hold_s", positive=True)
    lo, hi = SPEED_RANGE
    if speed == 0:
        if hold is None:
            raise SpecError("a freeze frame (speed 0) needs it: how long the frame is held, seconds", "hold_s")
        if hold > MAX_HOLD_S:
            raise SpecError(f"must be at most {MAX_HOLD_S:g} s", "hold_s")
        if spec.get("end_s") is not None:
            raise SpecError("is not used by a freeze frame (speed 0), which holds the frame at start_s", "end_s")
    elif not lo <= abs(speed) <= hi:
        raise SpecError(f"must be 0 (a freeze frame) or from {lo:g} to {hi:g} in size (negative: backwards)", "speed")
    elif hold is not None:
        raise SpecError("is for freeze frames (speed 0) only", "hold_s")
    return TimeWarp(float(speed), hold)


def job_from_spec(spec: Any, registry: Registry | None = None) -> Job:
    """Build the job a spec describes; raise :class:`SpecError` if it is malformed."""
    if not isinstance(spec, dict):
        raise SpecError("must be a map")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise SpecError(f"unknown field(s) {sorted(map(str, unknown))}")
    video = _path(spec, "video", required=True)
    output_dir = _path(spec, "output_dir", required=True)
    assert video is not None and output_dir is not None
    opts = _options(spec)
    generate = spec.get("audio") == GENERATE
    audio = None if generate else _path(spec, "audio")
    audio_start = _number(spec.get("audio_start_s"), "audio_start_s") or 0.0
    if audio_start and audio is None:
        raise SpecError("needs 'audio' (a start point in a separate sound file)", "audio_start_s")
    name = spec.get("name")
    for what, given in (("video", video), ("audio", audio)):  # before the name's own checks: the clearer message
        if given is not None and isinstance(name, str) and "\x00" not in name and _same_file(output_dir / name, given):
            raise OverwriteError(f"refusing to overwrite the source {what} {given} with the stem", "name")
    output = output_dir / stem_name(spec, video)
    if opts["preview"] and len(output.name.encode("utf-8", "surrogateescape")) > MAX_PREVIEW_NAME_BYTES:
        raise SpecError(f"is too long for its preview {preview_name(output)!r}: at most {MAX_PREVIEW_NAME_BYTES} "
                        "bytes with the option preview", "name")
    for what, given in (("video", video), ("audio", audio)):
        if opts["preview"] and given is not None and _same_file(output.parent / preview_name(output), given):
            raise OverwriteError(f"refusing to overwrite the source {what} {given} with the preview", "preview")
    job = Job(video=video, output=output, audio=audio, generate_audio=generate, audio_start_s=audio_start,
              start_s=_number(spec.get("start_s"), "start_s"), end_s=_number(spec.get("end_s"), "end_s"),
              warp=_warp(spec),
              seed_box=(first := _seed(spec)), more_boxes=_more_boxes(spec, first), hrtf=_hrtf(opts), label=opts["label"] or None,
              config=_config(opts), write_sidecar=opts["sidecar"], overwrite=opts["overwrite"],
              preview=output.parent / preview_name(output) if opts["preview"] else None)
    registry = registry or default_registry()
    chosen: dict[str, str] = {}
    for kind in KINDS:
        try:
            backend = registry.choose(kind, opts[kind] if kind in CHOSEN_KINDS else AUTO, job)
        except BackendError as exc:
            problem = str(exc)  # "localizer 'x' ...": the field names the kind already
            if kind in CHOSEN_KINDS and problem.startswith(f"{kind} "):
                problem = problem[len(kind) + 1:]
            raise SpecError(problem, kind if kind in CHOSEN_KINDS else INPUT_FIELDS[kind]) from None
        chosen[kind] = backend.name
    for option, key in BACKEND_OPTIONS.items():  # an option of a backend that was named away
        kind, name = key.split(":")
        if opts[option] != OPTION_DEFAULTS[option] and kind not in CHOSEN_KINDS and chosen[kind] != name:
            raise SpecError(f"applies to measured HRIRs (--hrtf, option hrtf), not to the {chosen[kind]} set", option)
        if opts[option] != OPTION_DEFAULTS[option] and kind in CHOSEN_KINDS and opts[kind] not in (AUTO, name):
            raise SpecError(f"is a setting of the {name} {kind}, not of {chosen[kind]!r}", option)
    return job


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (symlinks followed; a loop or an error: no)."""
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):
        return False


def preview_name(stem: Path) -> str:
    """The name of the preview the option ``preview`` writes beside a stem: ``<stem>.preview.mp4``
    (the same as :func:`foleyspace.preview.default_preview_path`, without importing it)."""
    return Path(stem).with_suffix(".preview.mp4").name


def output_paths(spec: dict[str, Any]) -> tuple[Path, ...] | None:
    """The stem and sidecar (and preview, with the option) a spec would write, from its paths alone
    (no other validation), or ``None`` if the spec does not name them; for cleaning up after a
    killed job."""
    try:
        video, output_dir = _path(spec, "video", required=True), _path(spec, "output_dir", required=True)
        stem = output_dir / stem_name(spec, video)  # type: ignore[operator, arg-type]
    except SpecError:
        return None
    options = spec.get("options")
    wants_preview = isinstance(options, dict) and options.get("preview") is True
    return (stem, stem.with_suffix(".json"), *([stem.parent / preview_name(stem)] if wants_preview else []))


def _model_options(cfg: SpatializeConfig) -> dict[str, Any]:
    """The spec options of a config's model-backend settings (``None`` where not set)."""
    yolo, depth = cfg.settings.get(YOLO), cfg.settings.get(DEPTH_ANYTHING)
    return {"vocab": yolo.vocab if yolo else None, "detect_every": yolo.detect_every if yolo else None,
            "depth_model": depth.model if depth else None, "depth_every": depth.every if depth else None}


def spec_from_job(job: Job) -> dict[str, Any]:
    """The spec of a job (absolute paths), e.g. to submit a CLI-built job to a server."""
    cfg = job.config
    dsp = cfg.settings.get(DSP) or DspRendererConfig()
    sofa = cfg.settings.get(SOFA)
    diffusion = cfg.settings.get(DIFFUSION)
    box = job.seed_box
    return {
        "video": str(Path(job.video).resolve()),
        "output_dir": str(Path(job.output).resolve().parent),
        "name": Path(job.output).name,
        "start_s": job.start_s,
        "end_s": job.end_s,
        "speed": job.warp.speed,
        "hold_s": job.warp.hold_s,
        "audio": GENERATE if job.generate_audio else str(Path(job.audio).resolve()) if job.audio else None,
        "audio_start_s": job.audio_start_s,
        "box": None if box is None else [box.x, box.y, box.w, box.h],
        "box_time_s": None if box is None else box.time_s,
        "more_boxes": [[b.x, b.y, b.w, b.h, b.time_s] for b in job.more_boxes] or None,
        "options": {
            "scheme": cfg.trajectory.scheme,
            "hrtf": str(Path(job.hrtf).resolve()) if job.hrtf else None,
            "segments_per_second": dsp.segment_rate_hz,
            "distance_delay": dsp.distance_delay,
            "hrtf_interp": sofa.interp if sofa else OPTION_DEFAULTS["hrtf_interp"],
            "hrtf_directions": sofa.directions if sofa else OPTION_DEFAULTS["hrtf_directions"],
            "long_side": cfg.analysis.long_side,
            "sidecar": job.write_sidecar,
            "label": job.label,
            "localizer": cfg.localizer,
            "depth": cfg.depth,
            "renderer": cfg.renderer,
            "overwrite": job.overwrite,
            "preview": job.preview is not None,  # (a server writes it beside the stem)
            "checkpoint": diffusion.checkpoint if diffusion else None,
            "diffusion_schedule": diffusion.schedule if diffusion else OPTION_DEFAULTS["diffusion_schedule"],
            "seed": diffusion.seed if diffusion else None,
            **_model_options(cfg),
        },
    }
