"""The command-line options of a training run, shared by ``python -m foleyspace.training.train``
and ``foleyspace train fit`` (argparse only: building the CLI must not import PyTorch)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from foleyspace.diffusion.config import CONFIGS


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The training options, shared with ``foleyspace train fit``."""
    p.add_argument("--data", type=Path, required=True, metavar="DIR", help="dataset built by `foleyspace train dataset`")
    p.add_argument("--config", choices=sorted(CONFIGS), required=True, help="named model/training configuration")
    p.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder: checkpoints, log.csv, samples/")
    p.add_argument("--max-steps", type=int, metavar="S", help="train until this step (default: the config's max_steps)")
    p.add_argument("--batch-size", type=int, metavar="B", help="examples per process per step (default: the config's)")
    p.add_argument("--save-every", type=int, default=1000, metavar="K", help="checkpoint every K steps (default 1000)")
    p.add_argument("--sample-every", type=int, default=0, metavar="K",
                   help="write an EMA sample of a held-out example every K steps (default 0: never)")
    p.add_argument("--keep", type=int, default=3, metavar="N", help="checkpoints kept (newest; 0 = all; default 3)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in RUN_DIR")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, the data order and the draws (default 0)")
    p.add_argument("--max-minutes", type=float, metavar="M",
                   help="stop (and checkpoint) after this many minutes of training in this run")
    p.add_argument("--workers", type=int, metavar="N", help="DataLoader workers per process (default: 0 on CPU, 4 on GPU)")
    p.add_argument("--device", default="auto",
                   help="auto (cuda:LOCAL_RANK when CUDA is there), cpu, cuda (cuda:LOCAL_RANK) or cuda:N (default auto)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per process (default 1)")


def torchrun_command(args: argparse.Namespace, nproc: int) -> str:
    """The ``torchrun`` line that runs these options on ``nproc`` processes of this machine."""
    words = ["torchrun", f"--nproc_per_node={nproc}", "-m", "foleyspace.training.train",
             "--data", str(args.data), "--config", args.config, "--out", str(args.out)]
    for name in ("max_steps", "batch_size", "save_every", "sample_every", "keep", "seed", "max_minutes", "workers",
                 "threads"):
        value = getattr(args, name, None)
        if value is not None:
            words += [f"--{name.replace('_', '-')}", str(value)]
    if args.device != "auto":
        words += ["--device", args.device]
    if args.resume:
        words.append("--resume")
    return shlex.join(words)
