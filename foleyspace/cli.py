"""``foleyspace`` command line: ``spatialize`` a clip, or run the ``demo``.

Exit codes: 0 success, 2 bad input/output or usage, 130 interrupted, 1 internal error.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from foleyspace import __version__
from foleyspace.cli_eval import add_eval_parser, run_eval
from foleyspace.cli_hrtf import add_hrtf_parser, run_hrtf
from foleyspace.cli_server import add_server_commands, run_client_command, run_serve, run_submit
from foleyspace.cli_train import add_train_parser, run_train
from foleyspace.config import AUTO, LONG_SIDE_RANGE, SCHEMES
from foleyspace.errors import FoleySpaceError
from foleyspace.hrtf.catalog import hrtf_option

log = logging.getLogger("foleyspace")


def parse_box(text: str) -> tuple[tuple[float, float, float, float], str | None]:
    """``"x,y,w,h[@T]"`` → box in display pixels and the time text (or None)."""
    box_text, _, time_text = text.partition("@")
    parts = box_text.split(",")
    try:
        x, y, w, h = (float(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--box wants X,Y,W,H[@TIME] in pixels, got {text!r}") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise argparse.ArgumentTypeError(f"--box {text!r}: width and height must be positive, x and y not negative")
    return (x, y, w, h), (time_text or None)


def _spatialize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", type=Path, help="the video clip")
    p.add_argument("-o", "--output", type=Path, help="stem WAV to write (default: VIDEO_binaural.wav beside the clip)")
    p.add_argument("--audio", type=Path, help="sound to spatialize instead of the clip's own audio (any rate/channels); "
                   "'generate': make it from the picture and --label with a generator (MMAudio, when installed)")
    p.add_argument("--audio-start", metavar="TIME", help="where in --audio the range starts (default: its start)")
    p.add_argument("--in", dest="in_point", metavar="TIME", help="range start: seconds, NNNf (frames) or [HH:]MM:SS")
    p.add_argument("--out", dest="out_point", metavar="TIME", help="range end, same forms as --in")
    p.add_argument("--speed", type=float, metavar="K",
                   help="the timeline plays the range at K× speed: 2 faster, 0.5 slower, -1 backwards, "
                        "0 holds the --in frame (needs --hold); the stem lasts the range's timeline time and its "
                        "sound plays varispeed (default 1)")
    p.add_argument("--hold", metavar="TIME", help="with --speed 0: how long the frame at --in is held on the timeline")
    p.add_argument("--box", type=parse_box, action="append", metavar="X,Y,W,H[@TIME]",
                   help="track this box (display pixels) drawn at TIME (default: range start) instead of finding motion; "
                        "repeat it with @TIME for correction keyframes the tracker honours exactly")
    p.add_argument("--label", metavar="TEXT", help="what makes the sound (for label-aware localizers; recorded)")
    p.add_argument("--scheme", choices=SCHEMES, default=SCHEMES[0],
                   help="fine: a position per frame; coarse: 5x3 grid once per second (paper §III-E)")
    p.add_argument("--hrtf", type=Path, metavar="SOFA|SET:SUBJECT",
                   help="measured HRIRs: a SOFA SimpleFreeFieldHRIR file, or a set fetched with `foleyspace hrtf fetch` "
                        "as SET:SUBJECT, e.g. hutubs:96 or sadie:H3 (default: analytic spherical head)")
    _hrtf_args(p)
    p.add_argument("--segments-per-second", type=float, metavar="HZ",
                   help="eq. 8 segment rate (default: one per analysis frame; coarse: 1)")
    p.add_argument("--distance-delay", action="store_true", help="also delay arrival with distance (§IV-A)")
    p.add_argument("--long-side", type=int, metavar="PX", default=640,
                   help=f"analysis frames are scaled to this long side, {LONG_SIDE_RANGE[0]}-{LONG_SIDE_RANGE[1]} px "
                        "(default 640)")
    _backend_args(p)
    p.add_argument("--plot", type=Path, metavar="PNG", help="draw azimuth/elevation/distance and L-R level to this PNG")
    p.add_argument("--no-sidecar", action="store_true", help="do not write the OUT.json sidecar")
    p.add_argument("--overwrite", action="store_true",
                   help="replace OUT.wav/OUT.json even if FoleySpace did not write them (earlier stems are always replaced)")
    _preview_arg(p)


def _hrtf_args(p: argparse.ArgumentParser) -> None:
    """--hrtf-interp/--hrtf-directions: how a measured (--hrtf) set is used."""
    p.add_argument("--hrtf-interp", metavar="nearest|linear|aligned",
                   help="with --hrtf: between measured directions use the nearest one, a plain mix of the three "
                        "around, or that mix with their arrival times aligned (default aligned: no comb filtering)")
    p.add_argument("--hrtf-directions", metavar="all|fine|coarse",
                   help="with --hrtf: the measured directions used: all (default), the paper's frontal fine set "
                        "(|az| <= 90, |el| <= 40) or its 15 coarse ones")


def hrtf_options(args: argparse.Namespace) -> dict[str, Any]:
    """The job-spec options of --hrtf-interp/--hrtf-directions that were given."""
    return {key: value for key, value in (("hrtf_interp", args.hrtf_interp), ("hrtf_directions", args.hrtf_directions))
            if value is not None}


def _preview_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preview", nargs="?", const="", metavar="OUT.mp4",
                   help="also write an MP4 to check the stem by eye and ear: the clip with the stem as its sound "
                        "and the tracked box, its state and the azimuth drawn (default OUT.preview.mp4 beside the stem)")


def _preview_only_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preview-only", action="store_true",
                   help="only (re)draw the preview from the existing OUT.wav and its OUT.json, without analysing "
                        "the clip again")


def _backend_args(p: argparse.ArgumentParser) -> None:
    """--localizer/--depth/--renderer: names from the backend registry (``foleyspace backends``),
    and the settings of the model backends."""
    for kind, what in (("localizer", "finds the object"), ("depth", "measures its distance"),
                       ("renderer", "makes the binaural signal")):
        p.add_argument(f"--{kind}", default=AUTO, metavar="NAME",
                       help=f"the backend that {what} (default auto; list: foleyspace backends)")
    p.add_argument("--vocab", metavar="NAME|FILE",
                   help="yolo-world without --label: score every label of coco (default), imagenet, vggsound, "
                        "audioset or a file (one label per line) and follow the best")
    p.add_argument("--detect-every", type=int, metavar="K",
                   help="yolo-world: detect every K-th analysis frame and interpolate between (default 1)")
    p.add_argument("--depth-model", metavar="NAME|DIR",
                   help="depth-anything: small (default), base, large, metric-indoor-small, metric-outdoor-small, "
                        "metric-indoor-large, metric-outdoor-large, or a model folder")
    p.add_argument("--depth-every", type=int, metavar="K",
                   help="depth-anything: a depth map every K-th analysis frame, interpolated between (default 10); "
                        "depth is the costly stage on a CPU")
    p.add_argument("--checkpoint", type=Path, metavar="CKPT",
                   help="diffusion renderer: a trained checkpoint (with it, --renderer auto picks diffusion)")
    p.add_argument("--diffusion-steps", choices=("standard", "fast"), default=None,
                   help="diffusion renderer: standard (the checkpoint's 50 steps, as the paper) or fast "
                        "(DiffWave's 6 steps); default standard")
    p.add_argument("--seed", type=int, metavar="N", help="diffusion renderer: the sampler's seed (default 0)")


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The job-spec options of the model-backend flags (files made absolute)."""
    from foleyspace.localize.vocabulary import VOCABULARIES
    from foleyspace.models import DEPTH_ANYTHING_MODELS

    vocab, depth = args.vocab, args.depth_model
    return {"vocab": vocab if vocab is None or vocab in VOCABULARIES else str(Path(vocab).expanduser().absolute()),
            "detect_every": args.detect_every,
            "depth_model": depth if depth is None or depth in DEPTH_ANYTHING_MODELS
            else str(Path(depth).expanduser().absolute()), "depth_every": args.depth_every,
            "checkpoint": None if args.checkpoint is None else str(args.checkpoint.expanduser().absolute()),
            "seed": args.seed, **({"diffusion_schedule": args.diffusion_steps} if args.diffusion_steps else {})}


def _device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=AUTO, help="auto, cpu, cuda, cuda:N or mps, for model backends (default auto)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="foleyspace", description="Binaural stems that follow the object on screen.")
    parser.add_argument("--version", action="version", version=f"foleyspace {__version__}")
    _common_flags(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("spatialize", help="turn a clip into a binaural stem")
    _spatialize_args(sp)
    _preview_only_arg(sp)
    _device_arg(sp)
    pv = sub.add_parser("preview", help="draw the preview MP4 of an existing stem from its sidecar (no analysis)")
    pv.add_argument("stem", type=Path, help="the stem WAV (its sidecar OUT.json must be beside it)")
    pv.add_argument("-o", "--output", type=Path, help="the MP4 to write (default: STEM.preview.mp4 beside the stem)")
    pv.add_argument("--video", type=Path, help="the clip (default: the one the sidecar names)")
    pv.add_argument("--overwrite", action="store_true", help="replace OUT.mp4 even if FoleySpace did not write it")
    dp = sub.add_parser("demo", help="make a short clip in code and spatialize it")
    dp.add_argument("directory", nargs="?", type=Path, default=Path("foleyspace-demo"), help="where to put the files")
    add_server_commands(sub, _spatialize_args)
    ro = sub.add_parser("render-otio", help="spatialize every video clip of an OpenTimelineIO timeline")
    ro.add_argument("timeline", type=Path, help="input timeline (.otio, or any format an installed adapter reads)")
    ro.add_argument("-o", "--output", type=Path, required=True, help="output timeline with the stem tracks")
    ro.add_argument("--stems", type=Path, metavar="DIR", help="where the stems go (default: OUTPUT_stems/ beside it)")
    ro.add_argument("--server", metavar="ADDR", nargs="?", const="", default=None,
                    help="render through the job server (default address if ADDR is left out); default: in-process")
    ro.add_argument("--handles", type=float, default=0.0, metavar="SECONDS",
                    help="render this much extra source before and after each clip (clamped to the media), "
                         "so a mixer can slip and cross-fade the stems (default 0)")
    ro.add_argument("--overwrite", action="store_true",
                    help="replace stems of an earlier run in the stems folder (default: new names, _v2, _v3 ...)")
    ro.add_argument("--adapter-arg", action="append", default=[], metavar="KEY=VALUE",
                    help="an option for the OTIO adapter that writes OUTPUT (repeatable; VALUE as JSON, else text)")
    ro.add_argument("--scheme", choices=SCHEMES, default=SCHEMES[0])
    ro.add_argument("--hrtf", type=Path, metavar="SOFA|SET:SUBJECT", help="a SOFA file or a fetched set, e.g. hutubs:96")
    _hrtf_args(ro)
    ro.add_argument("--label", metavar="TEXT")
    _backend_args(ro)
    _device_arg(ro)
    bk = sub.add_parser("backends", help="list the backends of each stage and whether they can run here")
    bk.add_argument("--json", action="store_true", help="print JSON")
    mo = sub.add_parser("models", help="list the model files FoleySpace can use, or fetch them (online)")
    mo_sub = mo.add_subparsers(dest="models_command", required=True)
    ml = mo_sub.add_parser("list", help="which models are present, where, and their sizes")
    ml.add_argument("--json", action="store_true", help="print JSON")
    mf = mo_sub.add_parser("fetch", help="download a model into the models folder (needs the network)")
    mf.add_argument("name", help="yolo-world, depth-anything-small (…-base, -large, -metric-indoor-small, …), "
                                 "clip (label embeddings of the shipped vocabularies), or all")
    add_eval_parser(sub)
    add_hrtf_parser(sub)
    add_train_parser(sub)
    ins = sub.add_parser("install", help="install an editor integration")
    ins.add_argument("target", choices=("resolve",), help="resolve: the DaVinci Resolve Utility script")
    ins.add_argument("--dest", type=Path, help="folder to install into (default: the editor's per-user folder)")
    for command in sub.choices.values():  # the common flags also work after the command
        _common_flags(command, suppress=True)
    return parser


def _common_flags(parser: argparse.ArgumentParser, suppress: bool) -> None:
    extra = {"default": argparse.SUPPRESS} if suppress else {}
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens", **extra)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors", **extra)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars", **extra)
    parser.add_argument("--models-dir", type=Path, metavar="DIR",
                        help="where model files are (default: $FOLEYSPACE_MODELS, else the user data folder)", **extra)


#: Job-spec fields and the spatialize flags that set them, for error messages.
FLAGS = {"video": "VIDEO", "name": "-o", "output_dir": "-o", "start_s": "--in", "end_s": "--out", "speed": "--speed",
         "hold_s": "--hold", "audio": "--audio",
         "audio_start_s": "--audio-start", "box": "--box", "box_time_s": "--box", "more_boxes": "--box",
         "scheme": "--scheme",
         "hrtf": "--hrtf", "segments_per_second": "--segments-per-second", "distance_delay": "--distance-delay",
         "long_side": "--long-side", "label": "--label", "localizer": "--localizer", "depth": "--depth",
         "renderer": "--renderer", "overwrite": "--overwrite", "vocab": "--vocab", "detect_every": "--detect-every",
         "depth_model": "--depth-model", "depth_every": "--depth-every", "preview": "--preview",
         "hrtf_interp": "--hrtf-interp", "hrtf_directions": "--hrtf-directions", "checkpoint": "--checkpoint",
         "diffusion_schedule": "--diffusion-steps", "seed": "--seed"}


def _audio_arg(audio: Path | None) -> str | None:
    """``--audio``: ``generate`` (a generated sound; ``./generate`` names a file of that name) or a file."""
    if audio is None:
        return None
    return "generate" if str(audio) == "generate" else str(audio.absolute())


def spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The job spec a ``spatialize``/``submit`` command line asks for (times parsed, paths absolute)."""
    from foleyspace.jobspec import default_name
    from foleyspace.video import parse_time, probe

    video: Path = args.video
    info = probe(video)

    def seconds(flag: str, text: str | None) -> float | None:
        try:
            return None if text is None else parse_time(text, info.fps)
        except ValueError:
            raise FoleySpaceError(f"{flag} {text!r}: not a time (seconds, NNNf or [HH:]MM:SS)") from None

    if args.audio_start is not None and args.audio is None:
        raise FoleySpaceError("--audio-start needs --audio (a start point in a separate sound file)")
    box, box_time, more = None, None, None
    if args.box:  # keyframes: the first is the seed, the others need their time
        box_values, time_text = args.box[0]
        box, box_time = list(box_values), seconds("--box time", time_text)
        more = []
        for values, text in args.box[1:]:
            if text is None:
                raise FoleySpaceError("--box: every box after the first needs its time (X,Y,W,H@TIME)")
            more.append([*values, seconds("--box time", text)])
    output = (args.output or video.with_name(default_name(video))).absolute()
    if output.is_dir():
        raise FoleySpaceError(f"{output}: is a directory; -o names the stem file (e.g. -o {output / default_name(video)})")
    return {"video": str(video.absolute()), "output_dir": str(output.parent), "name": output.name,
            "start_s": seconds("--in", args.in_point), "end_s": seconds("--out", args.out_point),
            "speed": args.speed, "hold_s": seconds("--hold", args.hold),
            "audio": _audio_arg(args.audio),
            "audio_start_s": seconds("--audio-start", args.audio_start) or 0.0, "box": box, "box_time_s": box_time,
            "more_boxes": more or None,
            "options": {"scheme": args.scheme, "hrtf": hrtf_option(args.hrtf),
                        "segments_per_second": args.segments_per_second, "distance_delay": args.distance_delay,
                        "long_side": args.long_side, "sidecar": not args.no_sidecar, "label": args.label,
                        "overwrite": args.overwrite, **model_options(args), **hrtf_options(args),
                        "preview": getattr(args, "preview", None) is not None and not _own_preview_path(args, output),
                        "localizer": args.localizer, "depth": args.depth, "renderer": args.renderer}}


def _stem_path(args: argparse.Namespace) -> Path:
    """The stem a spatialize/submit command line writes: ``-o``, else ``VIDEO_binaural.wav`` beside the clip."""
    from foleyspace.jobspec import default_name

    return (args.output or args.video.with_name(default_name(args.video))).absolute()


def _own_preview_path(args: argparse.Namespace, stem: Path) -> bool:
    """Whether ``--preview`` names a file other than the default ``STEM.preview.mp4``."""
    from foleyspace.preview import default_preview_path

    given = getattr(args, "preview", None)
    return bool(given) and Path(given).absolute() != default_preview_path(stem.absolute())


def job_from_args(args: argparse.Namespace):
    """The :class:`~foleyspace.job.Job` of a ``spatialize`` command line, validated by the job-spec
    validator like every other way in; its errors name the flag."""
    from dataclasses import replace

    from foleyspace.jobspec import SpecError, job_from_spec

    try:
        job = job_from_spec(spec_from_args(args))
    except SpecError as exc:
        flag = FLAGS.get(exc.field or "")
        raise FoleySpaceError(f"{flag} {exc.problem}" if flag else str(exc)) from None
    if _own_preview_path(args, job.output):  # a preview elsewhere: the CLI's own (a spec writes it beside)
        preview = Path(args.preview).absolute()
        for given in (job.video, job.audio, job.output, job.sidecar_path):
            if given is not None and preview.resolve() == Path(given).resolve():
                raise FoleySpaceError(f"--preview {args.preview}: is {given}; give the preview its own .mp4 name")
        job = replace(job, preview=preview)
    return job


def run_job(job, plot: Path | None, quiet: bool, backends=None) -> int:
    """Run a job with progress on stderr and a summary on stdout; ``backends``: the run's one
    backend set (default: a fresh one on the automatic device)."""
    from foleyspace.backends import Backends
    from foleyspace.console import StageProgress
    from foleyspace.pipeline import spatialize

    backends = backends or Backends(AUTO)
    progress = None if quiet else StageProgress()
    result = spatialize(job, backends, progress)
    if progress is not None:
        progress.finish()
    print(f"wrote {result.stem} ({result.duration_s:.3f} s, {result.sample_rate} Hz, 24-bit stereo)")
    if result.sidecar:
        print(f"wrote {result.sidecar}")
    if result.preview:
        print(f"wrote {result.preview} (preview: the clip with the stem as its sound)")
    if plot is not None:
        from foleyspace.plot import plot_result, stem_level_difference_db

        plot_result(plot, result.source_path.times_s, result.source_path.xyz, stem_level_difference_db(result.stem),
                    title=job.video.name, lost_spans=result.lost_spans)
        print(f"wrote {plot}")
    return 0


#: spatialize flags that --preview-only uses; any other one changes what a full run would make.
_PREVIEW_ONLY_FLAGS = {"video", "output", "preview", "preview_only", "overwrite", "device", "verbose", "debug",
                       "quiet", "models_dir", "command"}
_FLAG_OF = {"in_point": "--in", "out_point": "--out"}


def run_preview_only(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``spatialize VIDEO [-o OUT.wav] --preview-only [--preview OUT.mp4]``: the preview of the stem
    a previous run wrote, from its sidecar; ``preview STEM``: the same without naming the clip."""
    from foleyspace.preview import default_preview_path, describe, write_preview

    if args.command == "spatialize":
        defaults = vars(parser.parse_args(["spatialize", str(args.video)]))
        for dest, value in vars(args).items():
            if dest not in _PREVIEW_ONLY_FLAGS and value != defaults.get(dest):
                raise FoleySpaceError(f"--preview-only draws what the sidecar holds; {_FLAG_OF.get(dest, '--' + dest.replace('_', '-'))} "
                                      "needs a full run (leave out --preview-only)")
        stem = _stem_path(args)
        video: Path | None = args.video
        output = Path(args.preview) if args.preview else default_preview_path(stem)
    else:
        stem, video = args.stem.absolute(), args.video
        output = args.output or default_preview_path(stem)
    from foleyspace.console import StageProgress

    progress = None if args.quiet else StageProgress()
    info = write_preview(output, stem, video=video, progress=progress, overwrite=args.overwrite)
    if progress is not None:
        progress.finish()
    print(f"wrote {output} ({describe(info)})")
    return 0


def run_demo(directory: Path, quiet: bool) -> int:
    """Make ``demo.mp4`` (an object crossing left → right with an engine sound) and spatialize it."""
    from foleyspace.job import Job
    from foleyspace.synth import SynthSpec, make_clip

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FoleySpaceError(f"{directory}: cannot create ({exc.strerror})") from exc
    clip = make_clip(directory / "demo.mp4", SynthSpec(duration_s=6.0, size=(640, 360), motion="cross_lr"))
    print(f"made {clip}: a disc crossing left -> right with an engine sound")
    code = run_job(Job(video=clip, output=directory / "demo_binaural.wav"), directory / "demo_plot.png", quiet)
    print("listen with headphones: the sound should travel from your left ear to your right ear")
    return code


def parse_adapter_args(items: list[str]) -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` → keyword arguments for an OTIO adapter (VALUE as JSON, else text)."""
    import json

    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise FoleySpaceError(f"--adapter-arg {item!r}: use KEY=VALUE with a Python-style key")
        try:
            parsed[key] = json.loads(value)
        except ValueError:
            parsed[key] = value
    return parsed


def run_render_otio(args: argparse.Namespace) -> int:
    """``render-otio``: stems for every clip, a new timeline with them aligned."""
    from foleyspace.console import StageProgress
    from foleyspace.otio_batch import render_otio

    bar = None if args.quiet else StageProgress()
    current = {"clip": 0}

    def progress(index: int, count: int, name: str, stage: str, fraction: float) -> None:
        if bar is None:
            return
        if index != current["clip"]:
            bar.reset()
            current["clip"] = index
            print(f"[{index}/{count}] {name}", file=sys.stderr, flush=True)
        bar(stage, fraction)

    if args.server is not None and args.device != AUTO:
        raise FoleySpaceError("--device applies to rendering in this process; the server uses its own "
                              "(foleyspace serve --device)")
    options = {"scheme": args.scheme, "hrtf": hrtf_option(args.hrtf), "label": args.label,
               "localizer": args.localizer, "depth": args.depth, "renderer": args.renderer,
               **{k: v for k, v in model_options(args).items() if v is not None}, **hrtf_options(args)}
    report = render_otio(args.timeline, args.output, args.stems, server=args.server or None,
                         use_server=args.server is not None, options=options, progress=progress,
                         device=args.device, adapter_args=parse_adapter_args(args.adapter_arg),
                         handles_s=args.handles, overwrite=args.overwrite)
    if bar is not None:
        bar.finish()
    for task in report.rendered:
        print(f"stem   {task.track_name} / {task.clip_name}: {task.result['stem']}")
    for item in report.skipped:
        print(f"skip   {item.track} / {item.name}: {item.reason}")
    print(f"wrote {report.output} ({len(report.rendered)} stem(s), {len(report.skipped)} skipped)")
    return 0


def run_backends(as_json: bool) -> int:
    """``backends``: every stage's backends, and whether each can run here."""
    import json

    from foleyspace.backends import default_registry

    capabilities = default_registry().capabilities()
    if as_json:
        print(json.dumps(capabilities, indent=1))
        return 0
    for kind, rows in capabilities.items():
        print(f"{kind}:")
        for row in rows:
            state = "" if row["available"] else f"  [unavailable: {row['missing']}]"
            print(f"  {row['name']:<16} {row['summary']}{state}")
    return 0


def run_models(args: argparse.Namespace) -> int:
    """``models list`` / ``models fetch NAME|all``."""
    import json

    from foleyspace.models import DEPTH_ANYTHING_MODELS, fetch, model_rows, models_dir

    if args.models_command == "list":
        rows = model_rows()
        if args.json:
            print(json.dumps({"models_dir": str(models_dir()), "models": [r.as_dict() for r in rows]}, indent=1))
            return 0
        print(f"models folder: {models_dir()}")
        for row in rows:
            where = f"{row.path} ({row.size_bytes / 1e6:.1f} MB)" if row.path else "not present"
            print(f"  {row.name:<36} {where}")
        return 0
    names = (["yolo-world", "depth-anything-small", "clip"] if args.name == "all" else [args.name])
    if args.name not in ("all", "yolo-world", "clip", *(f"depth-anything-{s}" for s in DEPTH_ANYTHING_MODELS)):
        fetch(args.name)  # raises the one-line "unknown model" error
    for name in names:
        print(f"{name}: {fetch(name)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="foleyspace: %(levelname)s: %(message)s")
    if getattr(args, "models_dir", None) is not None:  # this process and the workers it starts
        os.environ["FOLEYSPACE_MODELS"] = str(args.models_dir.expanduser().absolute())
    try:
        if args.command == "demo":
            return run_demo(args.directory, args.quiet)
        if args.command == "serve":
            return run_serve(args)
        if args.command == "submit":
            if args.plot is not None:
                raise FoleySpaceError("--plot works with spatialize; a submitted job writes its sidecar, "
                                      "which holds the same trajectory")
            if _own_preview_path(args, _stem_path(args)):
                raise FoleySpaceError("--preview: a server job writes its preview beside the stem "
                                      "(OUT.preview.mp4); give --preview without a name")
            return run_submit(args, spec_from_args(args), args.quiet)
        if args.command in ("status", "cancel", "jobs"):
            return run_client_command(args)
        if args.command == "render-otio":
            return run_render_otio(args)
        if args.command == "backends":
            return run_backends(args.json)
        if args.command == "models":
            return run_models(args)
        if args.command == "eval":
            return run_eval(args)
        if args.command == "hrtf":
            return run_hrtf(args)
        if args.command == "train":
            return run_train(args)
        if args.command == "preview" or getattr(args, "preview_only", False):
            return run_preview_only(args, parser)
        if args.command == "install":
            from foleyspace.install import install_resolve

            print(f"installed {install_resolve(args.dest)}")
            return 0
        from foleyspace.backends import Backends

        backends = Backends(args.device)
        backends.check_device()  # a missing GPU is reported before the job is even validated
        return run_job(job_from_args(args), args.plot, args.quiet, backends)
    except FoleySpaceError as exc:
        print(f"foleyspace: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("foleyspace: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal error: one line unless --debug
        if args.debug:
            raise
        print(f"foleyspace: internal error: {exc.__class__.__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
