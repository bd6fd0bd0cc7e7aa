"""``foleyspace train …``: the diffusion model's training side (``training/``, installed as
``foleyspace.training``).

``train dataset`` builds a training set (paper §IV); ``train fit`` trains on it
(:mod:`foleyspace.training.train`). Wiring (in :mod:`foleyspace.cli`):
``add_train_parser(sub)`` in ``build_parser`` and ``if args.command == "train": return
run_train(args)`` in ``main``. A new subcommand adds its parser in :func:`add_train_parser` and
its runner to :data:`RUNNERS`. Errors are :class:`~foleyspace.errors.FoleySpaceError` (one line, exit 2).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from foleyspace.errors import FoleySpaceError


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``train`` and its subcommands to ``subparsers``; returns ``train``'s parser."""
    tp = subparsers.add_parser("train", help="the diffusion renderer: build its training set (and train it)")
    what = tp.add_subparsers(dest="train_command", required=True)
    ds = what.add_parser(
        "dataset", help="binauralise a folder of recordings along random trajectories into training shards",
        description="Cuts every recording in AUDIO_DIR into segments of the config's length at its rate (silent "
                    "ones skipped), draws a random smooth trajectory per example (fine: the config's positions "
                    "within azimuth ±90°, elevation ±40°, 0.25-6 m; coarse: one a second on 15 directions × 5 "
                    "distances) and renders the binaural target with the DSP renderer (eq. 8, distance by delay) "
                    "and the measured HRIRs of one --hrtf subject per group of recordings. Writes .npz shards and "
                    "manifest.json to --out; whole recordings are held out. The same seed gives byte-identical "
                    "files; run it again to finish a stopped build.")
    ds.add_argument("audio_dir", type=Path, metavar="AUDIO_DIR",
                    help="folder of recordings (wav, flac, ogg, mp3, m4a, mp4, …; searched recursively)")
    ds.add_argument("--hrtf", action="append", required=True, metavar="SOFA|SET:SUBJECT",
                    help="measured HRIRs of one subject: a SOFA file or a fetched set such as hutubs:96; repeat it "
                         "for several subjects (the paper: ten HUTUBS subjects)")
    ds.add_argument("--out", type=Path, required=True, metavar="DIR", help="dataset folder (created)")
    ds.add_argument("--scheme", choices=("fine", "coarse"), default="fine", help="trajectory scheme (default fine)")
    ds.add_argument("--config", default="paper", metavar="tiny|small|paper",
                    help="diffusion config giving the rate, segment length and positions (default paper: "
                         "16 kHz, 8 s, 200 positions)")
    ds.add_argument("--examples", type=int, metavar="N",
                    help="examples in all (default: one per non-silent segment; more reuses segments with new paths)")
    ds.add_argument("--heldout", type=float, default=0.1, metavar="FRACTION",
                    help="fraction of the recordings held out for evaluation (default 0.1)")
    ds.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    ds.add_argument("--workers", type=int, default=1, metavar="K", help="processes rendering shards (default 1)")
    ds.add_argument("--shard-size", type=int, default=64, metavar="M", help="examples per shard (default 64)")
    _add_fit_parser(what)
    for command in what.choices.values():  # the common flags also work after a subcommand
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log what happens")
        command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    return tp


def _dataset(args: argparse.Namespace) -> int:
    from foleyspace.diffusion.config import named_config
    from foleyspace.hrtf.catalog import resolve_hrtf
    from foleyspace.training.dataset_build import BuildSettings, build_dataset

    try:
        config = named_config(args.config)
        settings = BuildSettings(scheme=args.scheme, examples=args.examples, heldout=args.heldout, seed=args.seed,
                                 shard_size=args.shard_size)
    except ValueError as exc:
        raise FoleySpaceError(str(exc)) from None
    if args.workers < 1:
        raise FoleySpaceError("--workers must be at least 1")
    hrtfs = [(name, resolve_hrtf(name)) for name in args.hrtf]
    manifest = build_dataset(args.audio_dir, hrtfs, args.out, config, settings, args.workers,
                             quiet=getattr(args, "quiet", False))
    counts = manifest["counts"]
    print(f"{args.out}: {counts['train']} training and {counts['heldout']} held-out examples in "
          f"{len(manifest['shards'])} shards ({manifest['scheme']} scheme, config {config.name}, "
          f"{manifest['config']['positions']} positions per {config.segment_s:g} s at {config.sample_rate} Hz)",
          file=sys.stdout)
    return 0


def _add_fit_parser(what: Any) -> None:
    from foleyspace.training.train_args import add_train_arguments

    fit = what.add_parser(
        "fit", help="train the diffusion model on a built dataset (one process; prints the torchrun line for several)",
        description="Trains the binaural DiffWave (DiffWave noise MSE, Adam, gradient clipping, EMA) on --data and "
                    "writes checkpoints, log.csv and EMA samples to --out; --resume continues exactly where the "
                    "newest checkpoint stopped. SIGINT/SIGTERM save a checkpoint and stop. With --nproc N > 1 it "
                    "prints the torchrun command that trains on N processes (gloo on CPUs, NCCL on GPUs).")
    add_train_arguments(fit)
    fit.add_argument("--nproc", type=int, default=1, metavar="N",
                     help="processes (GPUs) on this machine; above 1 the torchrun line is printed, not run")


def _fit(args: argparse.Namespace) -> int:
    from foleyspace.training.train_args import torchrun_command

    if args.nproc < 1:
        raise FoleySpaceError("--nproc must be at least 1")
    from foleyspace.training.run_state import check_run_dir

    check_run_dir(args.out)
    if args.nproc > 1:
        print(torchrun_command(args, args.nproc))
        return 0
    from foleyspace.training.train import train

    step = train(args)  # checks the data (and --out) before it makes the run folder
    print(f"{args.out}: trained to step {step} (checkpoints, log.csv{', samples/' if args.sample_every else ''})")
    return 0


#: ``train`` subcommand → its runner.
RUNNERS: dict[str, Callable[[argparse.Namespace], int]] = {"dataset": _dataset, "fit": _fit}


def run_train(args: argparse.Namespace) -> int:
    """Run a ``train`` subcommand."""
    return RUNNERS[args.train_command](args)
