"""Model-backend benchmark: YOLO-World and Depth Anything V2 on CPU, alone and in the whole process.

Run from the repository root (not part of the pytest suite)::

    python benchmarks/bench_models.py [--repeat N] [--threads 1|2] [--detect-every 1,3,5]

The models are built in a temporary models folder (``FOLEYSPACE_MODELS``) with **random
weights** at their real sizes — YOLO-World v2 small from ultralytics' ``yolov8s-worldv2.yaml``
(contrastive-head bias 0, so it outputs boxes) and Depth Anything V2 with the published Small
config — by the helpers of ``tests/random_models.py``, saved in the real file formats and read by
the product's own loading code. Speed does not depend on the weight values (the same layers run on
tensors of the same shapes; only the boxes kept after NMS differ, and the random model keeps the
maximum of 30 per frame, so NMS is if anything slower than with trained weights). No download.

1. Per-backend throughput at 640 px analysis frames (RGB 640×360, decoded from a synthetic
   clip): YOLO-World ``localize`` with batch 1 and batch 8 (detect every frame), and Depth
   Anything ``maps`` (its batch of 4) at its default ``input_size`` 364 and at the model's 518,
   each with ``torch.set_num_threads(1)`` and ``(2)``. Frames/s, best / median of ``--repeat``.
2. End to end: ``python -m foleyspace spatialize`` on an 8 s 640×360 synthetic clip in a fresh
   process, ``--localizer yolo-world --label engine --depth depth-anything --detect-every K``
   for each K, against the offline pipeline (``--localizer motion --depth box-scale``) in the
   same run; the rows alternate round by round. Seconds best / median, × real time, the ratio
   models / offline (medians), and whether the median meets the issue's goal (≤ 60 s).

Thread settings: section 1 sets torch's intra-op threads itself; section 2 leaves the child's
thread variables as this process has them unless ``--threads N`` is given, which sets
``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/``OPENBLAS_NUM_THREADS`` to N for the child (torch reads
``OMP_NUM_THREADS`` for its thread count). Exit 0, 1 when a run fails, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FPS = 25.0
SIZE = (640, 360)
GOAL_S = 60.0
LABEL = "engine"
DEPTH_REPO = "depth-anything/Depth-Anything-V2-Small-hf"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
RUN_TIMEOUT_S = 900.0


def _make_importable() -> None:
    """The checkout's ``foleyspace`` (when not installed) and ``tests/random_models.py``."""
    try:
        import foleyspace  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "tests"))


def best_median(times: list[float]) -> tuple[float, float]:
    return min(times), statistics.median(times)


def _version(*dists: str) -> str:
    for dist in dists:  # the first installed of several distributions of one package
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return "-"


def print_machine(args: argparse.Namespace) -> None:
    import torch

    print("FoleySpace model-backend benchmark (CPU)")
    print(f"machine : {platform.platform()} | {platform.machine()} | {platform.processor() or '?'}")
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"cpus    : os.cpu_count()={os.cpu_count()}, usable={affinity}, torch default threads="
          f"{torch.get_num_threads()}, cuda used: no")
    print(f"python  : {platform.python_version()} | torch {torch.__version__} | ultralytics {_version('ultralytics', 'ultralytics-opencv-headless')}"
          f" | transformers {_version('transformers')}")
    print("threads : " + ", ".join(f"{v}={os.environ.get(v, 'unset')}" for v in THREAD_VARS))
    print(f"settings: repeat={args.repeat} (best / median), clip {args.seconds:g} s {SIZE[0]}x{SIZE[1]} at "
          f"{FPS:g} fps, detect-every {','.join(map(str, args.detect_every))}, "
          f"child threads: {args.threads if args.threads else 'torch default (variables as above)'}")
    print("weights : RANDOM, real architectures and sizes (YOLO-World v2-s from yolov8s-worldv2.yaml, head bias 0;"
          " Depth Anything V2 Small config); speed does not depend on the weight values")


def build_models(root: Path) -> float:
    """Random-weight models of the real sizes in models folder ``root``; seconds taken."""
    from random_models import fill_text_embeddings, make_depth_anything, make_yolo_world

    t0 = time.perf_counter()
    make_yolo_world(root, head_bias=0.0)
    make_depth_anything(root / DEPTH_REPO, size="small")
    fill_text_embeddings(root, [LABEL])
    return time.perf_counter() - t0


def parameter_count(model: object) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


# --------------------------------------------------------------------------- 1. throughput


def rate(fn: Callable[[], int], repeat: int) -> tuple[float, float]:
    """Frames/s best / median of ``repeat`` timed calls of ``fn`` (which returns its frame count)."""
    times, n = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - t0)
    best, med = best_median(times)
    return n / best, n / med


def bench_throughput(clip: Path, seconds: float, repeat: int, n_yolo: int) -> None:
    import numpy as np
    import torch

    from foleyspace.depth_anything import DepthAnythingEstimator, DepthAnythingSettings
    from foleyspace.frames import FrameForm, FrameSource
    from foleyspace.localize.base import LocalizeRequest
    from foleyspace.localize.yolo_world import YoloWorldConfig, YoloWorldLocalizer

    source = FrameSource(clip, 0.0, seconds, FPS, SIZE)
    frames = list(source.frames(FrameForm("rgb")))  # what the pipeline hands both backends at 640 px
    assert frames[0].shape == (SIZE[1], SIZE[0], 3), frames[0].shape
    yolo_frames = frames[:n_yolo]
    depth_frames = frames[::10]  # every 10th frame, as the pipeline's default depth.every
    t0 = time.perf_counter()
    yolos = {b: YoloWorldLocalizer(YoloWorldConfig(batch=b)) for b in (1, 8)}
    depths = {s: DepthAnythingEstimator(DepthAnythingSettings(input_size=s)) for s in (364, 518)}
    load_s = time.perf_counter() - t0
    batch = DepthAnythingSettings().batch
    print()
    print(f"1. Backend throughput on decoded {SIZE[0]}x{SIZE[1]} RGB frames (frames/s; best / median of {repeat})")
    print(f"  YOLO-World v2-s {parameter_count(yolos[1].model):.1f} M params, input 640x384 (letterboxed); "
          f"Depth Anything V2 Small {parameter_count(depths[364].model):.1f} M params; "
          f"both loaded in {load_s:.2f} s")
    header = f"  {'backend':<54}{'frames/call':>12}{'1 thread':>16}{'2 threads':>16}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    request = LocalizeRequest(len(yolo_frames), FPS, LABEL)
    warm_request = LocalizeRequest(2, FPS, LABEL)
    # (label, frames per call, timed call, untimed warm-up call: one per row and thread count)
    rows: list[tuple[str, int, Callable[[], int], Callable[[], object]]] = []
    for b, localizer in yolos.items():
        rows.append((f"YOLO-World localize, batch {b}, every frame", len(yolo_frames),
                     lambda loc=localizer: len(loc.localize(yolo_frames, request)),
                     lambda loc=localizer: loc.localize(yolo_frames[:2], warm_request)))
    offset = [0]

    def depth_call(estimator: DepthAnythingEstimator) -> int:
        start = offset[0] % (len(depth_frames) - batch + 1)
        offset[0] += batch
        got = estimator.maps(depth_frames[start:start + batch])
        assert len(got) == batch and all(np.isfinite(m).any() for m in got)
        return batch

    for s, estimator in depths.items():
        h, w = (int(round(v * s / min(SIZE) / 14)) * 14 for v in (SIZE[1], SIZE[0]))
        rows.append((f"Depth Anything maps, input_size {s} ({w}x{h}){', default' if s == 364 else ''}", batch,
                     lambda est=estimator: depth_call(est), lambda est=estimator: est.maps(depth_frames[:1])))
    results: dict[tuple[str, int], tuple[float, float]] = {}
    default_threads = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for label, _, fn, warm in rows:
                warm()
                results[label, threads] = rate(fn, repeat)
    finally:
        torch.set_num_threads(default_threads)
    for label, n, _, _ in rows:
        cells = "".join(f"{results[label, t][0]:>9.2f} /{results[label, t][1]:>5.2f}" for t in (1, 2))
        print(f"  {label:<54}{n:>12}{cells}")
    print(f"  YOLO rows: localize() of {len(yolo_frames)} frames (label {LABEL!r}, association included); "
          f"depth rows: one maps() call of {batch} frames (its batch)")


# --------------------------------------------------------------------------- 2. end to end


def bench_end_to_end(clip: Path, models: Path, workdir: Path, seconds: float, repeat: int,
                     ks: list[int], threads: int | None) -> bool:
    env = {**os.environ, "FOLEYSPACE_MODELS": str(models), "HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1"}
    if threads:
        env.update({v: str(threads) for v in THREAD_VARS})
    rows: list[tuple[str, list[str]]] = [("offline: motion + box-scale", ["--localizer", "motion", "--depth", "box-scale"])]
    for k in ks:
        rows.append((f"models: detect-every {k}, depth every 10",
                     ["--localizer", "yolo-world", "--label", LABEL, "--depth", "depth-anything", "--detect-every", str(k)]))
    times: dict[str, list[float]] = {name: [] for name, _ in rows}
    cpu: dict[str, list[float]] = {name: [] for name, _ in rows}
    analysis: dict[str, float] = {}
    print()
    print(f"2. End to end: python -m foleyspace spatialize, {seconds:g} s {SIZE[0]}x{SIZE[1]} clip, fresh process "
          f"(imports, model load, decode, analysis, render, write); child threads: "
          f"{threads if threads else 'torch default'}")
    sys.stdout.flush()
    for round_ in range(repeat):
        for i, (name, flags) in enumerate(rows):
            out = workdir / f"row{i}.wav"
            cmd = [sys.executable, "-m", "foleyspace", "-q", "spatialize", str(clip), "-o", str(out), "--overwrite",
                   "--device", "cpu", *flags]
            used0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"FAIL: {name}: no result after {RUN_TIMEOUT_S:g} s", file=sys.stderr)
                return False
            wall = time.perf_counter() - t0
            used1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            if done.returncode != 0 or not out.is_file():
                print(f"FAIL: {name}: exit {done.returncode}\n{done.stderr}", file=sys.stderr)
                return False
            sidecar = json.loads(out.with_suffix(".json").read_text())["analysis"]
            want = "yolo-world" if "yolo-world" in flags else "motion"
            if sidecar["localizer"] != want:
                print(f"FAIL: {name}: ran localizer {sidecar['localizer']}, not {want}", file=sys.stderr)
                return False
            times[name].append(wall)
            cpu[name].append(used1.ru_utime + used1.ru_stime - used0.ru_utime - used0.ru_stime)
            analysis[name] = sidecar["analysis_s"]
        print(f"  round {round_ + 1}/{repeat}: " + ", ".join(f"{times[n][-1]:.1f} s" for n, _ in rows)
              + f"  (load average 1 min {os.getloadavg()[0]:.1f})", flush=True)
    offline_median = statistics.median(times[rows[0][0]])
    header = (f"  {'pipeline':<40}{'wall s':>16}{'x real time':>15}{'models/offline':>16}"
              f"{'analysis s':>12}{'cpu s':>8}  goal <= {GOAL_S:g} s")
    print(header)
    print("  " + "-" * (len(header) - 2))
    for name, _ in rows:
        best, med = best_median(times[name])
        meets = "-" if name == rows[0][0] else ("yes" if med <= GOAL_S else "best only" if best <= GOAL_S else "NO")
        print(f"  {name:<40}{best:>7.1f} /{med:>6.1f}{seconds / best:>7.2f} /{seconds / med:>5.2f}"
              f"{med / offline_median:>15.1f}x{analysis[name]:>12.1f}{statistics.median(cpu[name]):>8.1f}  {meets}")
    print("  x real time = clip seconds / wall seconds (best / median); models/offline = ratio of the medians;")
    print("  analysis s = the last run's sidecar analysis_s (decode + localize + depth, no imports/loading);")
    print("  cpu s = median user + system CPU seconds of the process (all threads; > wall s: more than one core busy);")
    print(f"  goal: the {seconds:g} s clip with both models within {GOAL_S:g} s — yes: the median run; "
          "best only: only the best run")
    return True


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (best-of and median; default 3)")
    parser.add_argument("--threads", type=int, choices=(1, 2), default=None,
                        help="OMP/MKL/OpenBLAS threads for the end-to-end processes (default: leave torch's default)")
    parser.add_argument("--detect-every", type=lambda s: [int(k) for k in s.split(",")], default=[1, 3, 5],
                        metavar="K[,K...]", help="YOLO-World detect-every values end to end (default 1,3,5)")
    parser.add_argument("--seconds", type=float, default=8.0, help="clip length in seconds (default 8)")
    parser.add_argument("--yolo-frames", type=int, default=16, help="frames per YOLO throughput call (default 16)")
    parser.add_argument("--skip-throughput", action="store_true", help="only the end-to-end section")
    parser.add_argument("--skip-end-to-end", action="store_true", help="only the throughput section")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.seconds < 1 or not 1 <= args.yolo_frames <= 25 * args.seconds \
            or not all(1 <= k <= 250 for k in args.detect_every):
        parser.error("--repeat >= 1, --seconds >= 1, --yolo-frames 1..frames of the clip, --detect-every 1..250")
    _make_importable()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="foleyspace-bench-models-") as tmp:
        workdir = Path(tmp)
        models = workdir / "models"
        os.environ["FOLEYSPACE_MODELS"] = str(models)  # read at each lookup; set before any model is found
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("YOLO_OFFLINE", "1")
        print_machine(args)
        from foleyspace.synth import SynthSpec, make_clip

        clip = make_clip(workdir / "cross_lr.mp4", SynthSpec(duration_s=args.seconds, size=SIZE, motion="cross_lr"))
        built = build_models(models)
        print(f"models  : built in {built:.1f} s in a temporary FOLEYSPACE_MODELS folder")
        if not args.skip_throughput:
            bench_throughput(clip, args.seconds, args.repeat, args.yolo_frames)
        ok = True
        if not args.skip_end_to_end:
            ok = bench_end_to_end(clip, models, workdir, args.seconds, args.repeat, args.detect_every, args.threads)
    print()
    print(f"total benchmark time {time.perf_counter() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
