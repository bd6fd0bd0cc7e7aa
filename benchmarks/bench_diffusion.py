"""Diffusion sampling benchmark: real-time factor of the binaural DiffWave sampler per config.

Run from the repository root (not part of the pytest suite)::

    python benchmarks/bench_diffusion.py [--seconds 8] [--threads 1] [--device cpu]
        [--max-steps tiny=0,small=10,paper=1] [--configs tiny,small,paper]

For each named config (random weights: the work does not depend on them) an ``--seconds`` clip
of noise at the config's model rate is sampled along a fine-scheme trajectory (25 positions/s)
by :func:`foleyspace.diffusion.sampler.sample` — the real code path, chunks and cross-fades
included — with the ``standard`` (``inference_steps``, paper 50) and ``fast`` (DiffWave's 6)
schedules. RTF = seconds of compute per second of audio (< 1 is faster than real time).

Where a config's whole run would take too long (the paper config on a 2-core CPU), only the
first ``--max-steps`` reverse steps are run (the progress callback stops the sampler) and the
time is extrapolated linearly to all steps of all chunks: every step runs the same network on
the same length, so the cost per step is constant. The ``steps`` column says how many steps
were timed of how many; rows marked ``*`` are extrapolated. ``0`` = run all steps.

PyTorch runs fastest with one thread on the 2-core VMs (DESIGN §4): ``--threads 1`` by default.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


class _Stop(Exception):
    """Raised from the progress callback after the timed steps."""


def time_sampling(name: str, schedule: str, seconds: float, max_steps: int, device: str) -> dict:
    """Time ``sample`` on a ``seconds`` clip; returns measured and extrapolated figures."""
    import numpy as np
    import torch

    from foleyspace.diffusion.config import named_config
    from foleyspace.diffusion.model import BinauralDiffWave, parameter_count
    from foleyspace.diffusion.sampler import chunk_starts, sample
    from foleyspace.diffusion.schedule import sampling_schedule

    cfg = named_config(name)
    torch.manual_seed(0)
    model = BinauralDiffWave(cfg).eval()
    n = int(round(seconds * cfg.sample_rate))
    rng = np.random.default_rng(0)
    mono = (0.1 * rng.standard_normal(n)).astype(np.float32)
    t = np.arange(int(seconds * 25)) / 25.0
    xyz = np.stack([1 + 2 * (1 + np.sin(t)), 1.5 * np.sin(2 * t), 0.3 * np.cos(t)], axis=1)
    total = len(chunk_starts(n, cfg.segment_samples, int(round(cfg.chunk_overlap_s * cfg.sample_rate)))) * \
        len(sampling_schedule(cfg, schedule))
    limit = total if max_steps <= 0 else min(max_steps, total)
    done = [0]

    def progress(fraction: float) -> None:
        done[0] += 1
        if done[0] >= limit and done[0] < total:
            raise _Stop

    def warm_up(fraction: float) -> None:
        warm[0] += 1
        if warm[0] >= 1:
            raise _Stop

    # warm-up: the first step of the same call (same shapes, dtype and autocast: allocator,
    # kernel selection), then the timed run; the GPU is synchronised before each clock reading
    warm = [0]
    try:
        sample(model, cfg, mono, xyz, schedule, seed=0, device=device, progress=warm_up)
    except _Stop:
        pass
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sync()
    start = time.perf_counter()
    try:
        sample(model, cfg, mono, xyz, schedule, seed=0, device=device, progress=progress)
    except _Stop:
        pass
    sync()
    elapsed = time.perf_counter() - start
    compute = elapsed * total / done[0]
    return {"config": name, "schedule": schedule, "params": parameter_count(model), "steps": done[0], "total": total,
            "timed_s": elapsed, "compute_s": compute, "rtf": compute / seconds, "extrapolated": done[0] < total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", default="tiny,small,paper")
    parser.add_argument("--max-steps", default="tiny=0,small=10,paper=1",
                        help="per config: reverse steps to time before extrapolating (0 = all)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    caps = {k: int(v) for k, v in (item.split("=") for item in args.max_steps.split(","))}
    print(f"diffusion sampling, {args.seconds:g} s clip, {args.device}, torch {torch.__version__}, "
          f"{args.threads} thread(s), {platform.processor() or platform.machine()}")
    if args.device.startswith("cuda"):
        print(f"  GPU: {torch.cuda.get_device_name(0)}")
    print(f"  {'config':8} {'params':>11} {'schedule':9} {'steps':>9} {'timed s':>9} {'compute s':>10} {'RTF':>9}")
    for name in args.configs.split(","):
        for schedule in ("standard", "fast"):
            r = time_sampling(name, schedule, args.seconds, caps.get(name, 0), args.device)
            mark = "*" if r["extrapolated"] else " "
            print(f"  {name:8} {r['params']:>11,} {schedule:9} {r['steps']:>4}/{r['total']:<4} {r['timed_s']:>9.2f} "
                  f"{r['compute_s']:>10.1f} {r['rtf']:>8.3f}{mark}", flush=True)
    print("  * extrapolated linearly from the steps timed (each step runs the same network on the same length)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
