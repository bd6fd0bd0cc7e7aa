"""``foleyspace`` command line: ``spatialize`` a clip, or run the ``demo``.

Exit codes: 0 success, 2 bad input/output or usage, 130 interrupted, 1 internal error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from foleyspace import __version__
from foleyspace.cli_server import add_server_commands, run_client_command, run_serve, run_submit
from foleyspace.config import MAX_SEGMENT_RATE_HZ
from foleyspace.errors import FoleySpaceError

log = logging.getLogger("foleyspace")


def parse_box(text: str) -> tuple[tuple[float, float, float, float], str | None]:
    """``"x,y,w,h[@T]"`` → box in source pixels and the time text (or None)."""
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
    p.add_argument("--audio", type=Path, help="sound to spatialize instead of the clip's own audio (any rate/channels)")
    p.add_argument("--audio-start", metavar="TIME", help="where in --audio the range starts (default: its start)")
    p.add_argument("--in", dest="in_point", metavar="TIME", help="range start: seconds, NNNf (frames) or [HH:]MM:SS")
    p.add_argument("--out", dest="out_point", metavar="TIME", help="range end, same forms as --in")
    p.add_argument("--box", type=parse_box, metavar="X,Y,W,H[@TIME]",
                   help="track this box (source pixels) drawn at TIME (default: range start) instead of finding motion")
    p.add_argument("--label", metavar="TEXT", help="what makes the sound (for label-aware localizers; recorded)")
    p.add_argument("--scheme", choices=("fine", "coarse"), default="fine",
                   help="fine: a position per frame; coarse: 5x3 grid once per second (paper §III-E)")
    p.add_argument("--hrtf", type=Path, metavar="SOFA", help="SOFA SimpleFreeFieldHRIR file (default: analytic spherical head)")
    p.add_argument("--segments-per-second", type=float, metavar="HZ",
                   help="eq. 8 segment rate (default: one per analysis frame; coarse: 1)")
    p.add_argument("--distance-delay", action="store_true", help="also delay arrival with distance (§IV-A)")
    p.add_argument("--long-side", type=int, metavar="PX", default=640,
                   help="analysis frames are scaled to this long side in pixels (default 640)")
    p.add_argument("--plot", type=Path, metavar="PNG", help="draw azimuth/elevation/distance and L-R level to this PNG")
    p.add_argument("--no-sidecar", action="store_true", help="do not write the OUT.json sidecar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="foleyspace", description="Binaural stems that follow the object on screen.")
    parser.add_argument("--version", action="version", version=f"foleyspace {__version__}")
    _common_flags(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("spatialize", help="turn a clip into a binaural stem")
    _spatialize_args(sp)
    dp = sub.add_parser("demo", help="make a short clip in code and spatialize it")
    dp.add_argument("directory", nargs="?", type=Path, default=Path("foleyspace-demo"), help="where to put the files")
    add_server_commands(sub, _spatialize_args)
    ro = sub.add_parser("render-otio", help="spatialize every video clip of an OpenTimelineIO timeline")
    ro.add_argument("timeline", type=Path, help="input timeline (.otio, or any format an installed adapter reads)")
    ro.add_argument("-o", "--output", type=Path, required=True, help="output timeline with the stem tracks")
    ro.add_argument("--stems", type=Path, metavar="DIR", help="where the stems go (default: OUTPUT_stems/ beside it)")
    ro.add_argument("--server", metavar="ADDR", nargs="?", const="", default=None,
                    help="render through the job server (default address if ADDR is left out); default: in-process")
    ro.add_argument("--scheme", choices=("fine", "coarse"), default="fine")
    ro.add_argument("--hrtf", type=Path, metavar="SOFA")
    ro.add_argument("--label", metavar="TEXT")
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


def job_from_args(args: argparse.Namespace):
    """Build a pipeline :class:`~foleyspace.pipeline.Job` from parsed ``spatialize`` arguments."""
    from foleyspace.config import SpatializeConfig
    from foleyspace.pipeline import Job, SeedBox
    from foleyspace.video import parse_time, probe

    video: Path = args.video
    info = probe(video)
    times = {}
    for name, text in (("--in", args.in_point), ("--out", args.out_point), ("--audio-start", args.audio_start)):
        try:
            times[name] = None if text is None else parse_time(text, info.fps)
        except ValueError:
            raise FoleySpaceError(f"{name} {text!r}: not a time (seconds, NNNf or [HH:]MM:SS)") from None
    seed = None
    if args.box is not None:
        (x, y, w, h), t_text = args.box
        try:
            t = None if t_text is None else parse_time(t_text, info.fps)
        except ValueError:
            raise FoleySpaceError(f"--box time {t_text!r}: not a time") from None
        seed = SeedBox(x, y, w, h, t)
    config = SpatializeConfig.for_scheme(args.scheme)
    render = config.render
    if args.segments_per_second is not None:
        if not 0 < args.segments_per_second <= MAX_SEGMENT_RATE_HZ:  # also false for NaN
            raise FoleySpaceError(f"--segments-per-second must be in (0, {MAX_SEGMENT_RATE_HZ:g}]")
        render = replace(render, segment_rate_hz=args.segments_per_second)
    if args.distance_delay:
        render = replace(render, distance_delay=True)
    if args.long_side < 32:
        raise FoleySpaceError("--long-side must be at least 32 pixels")
    analysis = replace(config.analysis, long_side=args.long_side)
    output = args.output or video.with_name(video.stem + "_binaural.wav")
    if output.resolve() == video.resolve():
        raise FoleySpaceError(f"{output}: refusing to overwrite the source clip")
    if args.audio_start is not None and args.audio is None:
        raise FoleySpaceError("--audio-start needs --audio")
    return Job(video=video, output=output, audio=args.audio, audio_start_s=times["--audio-start"] or 0.0,
               start_s=times["--in"], end_s=times["--out"],
               seed_box=seed, hrtf=args.hrtf, config=replace(config, render=render, analysis=analysis),
               write_sidecar=not args.no_sidecar, label=args.label)


def run_job(job, plot: Path | None, quiet: bool) -> int:
    """Run a job with progress on stderr and a summary on stdout."""
    from foleyspace.console import StageProgress
    from foleyspace.pipeline import spatialize

    progress = None if quiet else StageProgress()
    result = spatialize(job, progress)
    if progress is not None:
        progress.finish()
    print(f"wrote {result.stem} ({result.duration_s:.3f} s, {result.sample_rate} Hz, 24-bit stereo)")
    if result.sidecar:
        print(f"wrote {result.sidecar}")
    if plot is not None:
        from foleyspace.plot import plot_result

        plot_result(plot, result.path.times_s, result.path.xyz, result.stereo, result.sample_rate, title=job.video.name)
        print(f"wrote {plot}")
    return 0


def run_demo(directory: Path, quiet: bool) -> int:
    """Make ``demo.mp4`` (an object crossing left → right with an engine sound) and spatialize it."""
    from foleyspace.pipeline import Job
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

    options = {"scheme": args.scheme, "hrtf": str(args.hrtf.resolve()) if args.hrtf else None, "label": args.label}
    report = render_otio(args.timeline, args.output, args.stems, server=args.server or None,
                         use_server=args.server is not None, options=options, progress=progress)
    if bar is not None:
        bar.finish()
    for task in report.rendered:
        print(f"stem   {task.track_name} / {task.clip_name}: {task.result['stem']}")
    for item in report.skipped:
        print(f"skip   {item.track} / {item.name}: {item.reason}")
    print(f"wrote {report.output} ({len(report.rendered)} stem(s), {len(report.skipped)} skipped)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="foleyspace: %(levelname)s: %(message)s")
    try:
        if args.command == "demo":
            return run_demo(args.directory, args.quiet)
        if args.command == "serve":
            return run_serve(args)
        if args.command == "submit":
            return run_submit(args, job_from_args(args), args.quiet)
        if args.command in ("status", "cancel", "jobs"):
            return run_client_command(args)
        if args.command == "render-otio":
            return run_render_otio(args)
        if args.command == "install":
            from foleyspace.install import install_resolve

            print(f"installed {install_resolve(args.dest)}")
            return 0
        return run_job(job_from_args(args), args.plot, args.quiet)
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
