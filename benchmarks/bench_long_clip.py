"""Long-clip benchmark: wall time and peak memory of ``foleyspace spatialize`` against clip length.

Run from the repository root (not part of the pytest suite)::

    python benchmarks/bench_long_clip.py [--minutes 2 10] [--clips DIR] [--baseline REV]
                                         [--preview] [--speed S]

Makes (once, cached in ``--clips``, default ``<temp>/foleyspace-long-clips``) 1920×1080 25 fps
clips with a 48 kHz stereo AAC track: 8 s and one per ``--minutes`` value (default 2 and 10).
The picture is a still textured background with a bright square swinging left and right (8 s
period), encoded with libx264 ultrafast, so a 10-minute clip takes a minute or two to make.

Each clip is spatialized by a fresh ``python -m foleyspace -q spatialize`` process (defaults: the
motion localizer, box-scale depth, the clip's own sound). Printed per clip: wall seconds, peak
resident memory (the child's ``ru_maxrss`` from ``os.wait4``) and both as ratios to the 8 s clip;
the issue's goal is a peak within 1.3× of the 8 s clip's for 10 minutes. ``--baseline REV`` runs
the same from ``git archive REV`` (the checkout's editable install hidden) for a before/after
table. ``--preview`` also writes the preview MP4 (``--preview``: the stem muxed with the
overlay video), ``--speed S`` retimes the clip (``--speed -1``: reversed playback). Exit 0, or 1
when a run fails.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
from bench_cli import RUNNER, export  # a CLI from another source tree; git archive (benchmarks/ is on sys.path)

REPO = Path(__file__).resolve().parent.parent
SIZE = (1920, 1080)
FPS = 25
RATE = 48000
#: The goal: the longest clip's peak memory within this many times the 8 s clip's.
GOAL_RATIO = 1.3



def _picture_planes(t: float, background: np.ndarray) -> np.ndarray:
    """One yuv420p picture ``(H·3/2, W)`` at ``t`` seconds: the square at its swing position."""
    w, h = SIZE
    frame = background.copy()
    side = h // 5
    u = int((0.5 + 0.35 * np.sin(2 * np.pi * t / 8.0)) * w) - side // 2
    v = h // 2 - side // 2
    frame[v : v + side, u : u + side] = 235
    frame[v + side // 3 : v + 2 * side // 3, u + side // 3 : u + 2 * side // 3] = 60  # some texture inside
    return frame


def _engine(start: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(2, n)`` float32 of a harmonic buzz with noise, from sample ``start`` (continuous across calls)."""
    t = (start + np.arange(n)) / RATE
    x = sum(np.sin(2 * np.pi * 110 * k * t) / k for k in range(1, 6)) * 0.1 + 0.02 * rng.standard_normal(n)
    return np.repeat(x[None, :].astype(np.float32), 2, axis=0)


def make_long_clip(path: Path, seconds: float) -> Path:
    """Encode the benchmark clip of ``seconds`` to ``path`` (H.264 + AAC in MP4), block by block."""
    import av

    w, h = SIZE
    rng = np.random.default_rng(0)
    background = np.full((h * 3 // 2, w), 128, np.uint8)
    background[:h] = (60 + 40 * rng.random((h // 8, w // 8))).astype(np.uint8).repeat(8, 0).repeat(8, 1)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), mode="w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.options = {"preset": "ultrafast", "crf": "23"}
        audio = container.add_stream("aac", rate=RATE, layout="stereo")
        for i in range(int(round(seconds * FPS))):
            frame = av.VideoFrame.from_ndarray(_picture_planes(i / FPS, background), format="yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        total, block = int(round(seconds * RATE)), 1024
        for start in range(0, total, block):
            chunk = _engine(start, min(block, total - start), rng)
            aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            aframe.sample_rate, aframe.pts, aframe.time_base = RATE, start, Fraction(1, RATE)
            for packet in audio.encode(aframe):
                container.mux(packet)
        for packet in audio.encode():
            container.mux(packet)
    tmp.replace(path)
    return path


def clip_for(folder: Path, seconds: float) -> Path:
    """The cached clip of ``seconds``, made when missing."""
    path = folder / f"long_{SIZE[0]}x{SIZE[1]}_{seconds:g}s.mp4"
    if not path.exists():
        t0 = time.perf_counter()
        make_long_clip(path, seconds)
        print(f"  made {path.name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return path


def measure(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; its wall seconds and peak resident memory in MB (its own ``ru_maxrss``)."""
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)
    err = child.stderr.read().decode(errors="replace") if child.stderr else ""
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({child.returncode}):\n{err[-2000:]}")
    return seconds, usage.ru_maxrss / 1024  # KiB on Linux


def table(label: str, command: list[str], clips: list[tuple[float, Path]], out: Path,
          options: list[str] | None = None) -> bool:
    """Run every clip with ``command`` (+ clip, output, ``options``: more spatialize flags) and
    print one row each; False on a failure."""
    print(f"{label}")
    print(f"  {'clip':<10}{'wall s':>9}{'x real time':>13}{'peak RSS MB':>13}{'wall / 8 s':>12}{'RSS / 8 s':>11}")
    first: tuple[float, float] | None = None
    ok = True
    for seconds, clip in clips:
        try:
            wall, rss = measure([*command, "-q", "spatialize", str(clip), "-o", str(out), "--overwrite",
                                 *(options or [])])
        except RuntimeError as exc:
            print(f"  {seconds:>8g} s  failed: {exc}", file=sys.stderr)
            ok = False
            continue
        first = first or (wall, rss)
        name = f"{seconds:g} s" if seconds < 60 else f"{seconds / 60:g} min"
        print(f"  {name:<10}{wall:>9.1f}{seconds / wall:>13.2f}{rss:>13.0f}{wall / first[0]:>12.2f}{rss / first[1]:>11.2f}",
              flush=True)
    if first is not None and ok:
        print(f"  goal: the longest clip's peak RSS within {GOAL_RATIO}x of the 8 s clip's")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[2.0, 10.0],
                        help="lengths of the long clips in minutes (default 2 10)")
    parser.add_argument("--clips", type=Path, default=Path(tempfile.gettempdir()) / "foleyspace-long-clips",
                        help="folder caching the clips (made once)")
    parser.add_argument("--baseline", help="also run git archive REV of this checkout, e.g. 816649e")
    parser.add_argument("--preview", action="store_true", help="also write the preview MP4 (--preview)")
    parser.add_argument("--speed", type=float, help="retime the clip, e.g. -1 for reversed playback")
    args = parser.parse_args()
    if any(m <= 0 for m in args.minutes):
        parser.error("--minutes must be positive")
    options = (["--preview"] if args.preview else []) + ([] if args.speed is None else ["--speed", f"{args.speed:g}"])
    args.clips.mkdir(parents=True, exist_ok=True)
    clips = [(s, clip_for(args.clips, s)) for s in [8.0, *sorted(60 * m for m in args.minutes)]]
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        out = tmp_path / "stem.wav"
        print(f"foleyspace spatialize {' '.join(options)}, whole process, {SIZE[0]}x{SIZE[1]} {FPS} fps "
              "with 48 kHz audio")
        ok &= table("current checkout", [sys.executable, "-m", "foleyspace"], clips, out, options)
        if args.baseline:
            base = export(args.baseline, tmp_path)
            runner = tmp_path / "run_baseline.py"
            runner.write_text(RUNNER)
            ok &= table(f"baseline {args.baseline}", [sys.executable, str(runner), str(base)], clips, out, options)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
