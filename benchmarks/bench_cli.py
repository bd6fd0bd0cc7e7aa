"""Whole-process benchmark: ``foleyspace spatialize`` as a user runs it, against a baseline revision.

Run from the repository root (a git checkout; not part of the pytest suite)::

    python benchmarks/bench_cli.py [--baseline REV] [--repeat N] [--seconds 8]

Each figure is the wall time of a fresh ``python -m foleyspace spatialize`` process — import,
probe, decode, localize, depth, render, write — on synthetic clips made in code (640×360 and
1920×1080, ``cross_lr``, with their own 48 kHz audio). The baseline is the same command run from
``git archive REV`` (default: 21b2898, the last commit before the backend-registry refactor) in a
temporary folder, with the checkout's editable install hidden so that the archived package is the
one imported. The two sides alternate (a, b, a, b, ...) so background load hits both alike.

Printed per clip: best / median seconds, the speed as a multiple of real time (clip seconds per
wall second, best run) and the ratio current / baseline of the medians. Exit 0, or 1 when a run
fails.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_BASELINE = "21b2898"
SIZES = {"640x360": (640, 360), "1920x1080": (1920, 1080)}

#: Runs a CLI from another source tree: drops the editable-install finder, imports from ``base``.
RUNNER = """
import sys
base = sys.argv[1]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(type(f)).lower()]
sys.path.insert(0, base)
import foleyspace
assert foleyspace.__file__.startswith(base), foleyspace.__file__
from foleyspace.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _make_importable() -> None:
    try:
        import foleyspace  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO))


def export(rev: str, into: Path) -> Path:
    """``git archive rev`` unpacked into ``into``; returns the folder."""
    archive = into / "baseline.tar"
    with archive.open("wb") as f:
        subprocess.run(["git", "-C", str(REPO), "archive", rev], stdout=f, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "src", filter="data")
    return into / "src"


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help=f"git revision to compare with (default {DEFAULT_BASELINE})")
    parser.add_argument("--repeat", type=int, default=5, help="runs per side and clip (default 5)")
    parser.add_argument("--seconds", type=float, default=8.0, help="clip length (default 8)")
    args = parser.parse_args()
    _make_importable()
    from foleyspace.synth import SynthSpec, make_clip

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        base = export(args.baseline, tmp_path)
        runner = tmp_path / "run_baseline.py"
        runner.write_text(RUNNER)
        print(f"foleyspace spatialize, whole process; baseline {args.baseline}; best / median of {args.repeat}")
        print(f"  {'clip':<12}{'current s':>18}{'baseline s':>18}{'x real time':>16}{'ratio':>8}")
        for label, size in SIZES.items():
            clip = make_clip(tmp_path / f"{label}.mp4", SynthSpec(duration_s=args.seconds, size=size, motion="cross_lr"))
            out = tmp_path / "stem.wav"
            current = [sys.executable, "-m", "foleyspace", "-q", "spatialize", str(clip), "-o", str(out)]
            baseline = [sys.executable, str(runner), str(base), "-q", "spatialize", str(clip), "-o", str(out)]
            wall(current), wall(baseline)  # warm the file cache and the byte-code of both trees
            a, b = [], []
            for _ in range(args.repeat):
                a.append(wall(current))
                b.append(wall(baseline))
            am, bm = statistics.median(a), statistics.median(b)
            print(f"  {label:<12}{min(a):>9.2f} /{am:>6.2f}{min(b):>11.2f} /{bm:>6.2f}"
                  f"{args.seconds / min(a):>8.1f} /{args.seconds / min(b):>5.1f}{am / bm:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
