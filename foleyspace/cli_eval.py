"""``foleyspace eval localization ANNOTATIONS.csv | SET.json``: the localizer against annotated footage.

A ``.csv`` is per-second annotations scored with the paper's eq. 9/10 (:func:`evaluate_localization`);
a ``.json`` is a per-frame localization set (``tests/data/localization/set.json``) scored frame by
frame in the default and seeded modes (:func:`~foleyspace.evaluate.evaluate_set`).

Wiring (in :mod:`foleyspace.cli`): ``add_eval_parser(sub)`` in ``build_parser`` and
``if args.command == "eval": return run_eval(args)`` in ``main``. :func:`run_eval` raises
:class:`~foleyspace.errors.FoleySpaceError` (one line, exit 2) for bad annotations or videos.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from foleyspace.config import SCHEMES
from foleyspace.errors import FoleySpaceError
from foleyspace.evaluate import LABEL_MODES, SET_MODES, evaluate_localization, evaluate_set, format_set_table, format_table

#: Localizers evaluated when ``--localizer`` is not given.
DEFAULT_LOCALIZERS = ("motion", "seeded")


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``eval`` (subcommands ``localization`` and ``binaural``) to ``subparsers``; returns ``eval``'s parser."""
    ev = subparsers.add_parser("eval", help="measure the pipeline against annotations (paper eq. 9/10)")
    what = ev.add_subparsers(dest="eval_command", required=True)
    loc = what.add_parser("localization", help="MAE of azimuth and elevation (eq. 9/10) against per-second annotations",
                          description="Runs the pipeline's localizers on each annotated shot and prints eq. 9 "
                                      "(MAE azimuth, 360° wrap) and eq. 10 (MAE elevation), in degrees, per "
                                      "localizer, label mode and scheme. Format: docs/evaluation.md.")
    loc.add_argument("annotations", type=Path,
                     help="annotation CSV (video, [shot,] second, cell | u_px,v_px, [box,] label), or a per-frame "
                          "localization set (.json, e.g. tests/data/localization/set.json)")
    loc.add_argument("--localizer", action="append", metavar="NAME",
                     help=f"CSV: a localizer backend to evaluate (repeatable; default: {', '.join(DEFAULT_LOCALIZERS)}); "
                          "the seeded one gets each shot's annotated box. Set: the default mode's localizer "
                          "(default auto; the seeded modes run auto with the boxes)")
    loc.add_argument("--label-mode", action="append", choices=LABEL_MODES,
                     help="text: hand the annotated label to the localizer; none: no label (CSV: repeatable, "
                          "default text; set: one, default none, i.e. what a user gets without --label)")
    loc.add_argument("--mode", action="append", choices=SET_MODES,
                     help="set only: default (no box), seeded1 (the first keyframe box), seeded3 (up to three "
                          "keyframe boxes) (repeatable; default all three)")
    loc.add_argument("--shot", action="append", metavar="NAME", help="set only: just this shot (repeatable)")
    loc.add_argument("--scheme", action="append", choices=SCHEMES,
                     help="which trajectory scheme's per-second position to score (repeatable; default both)")
    loc.add_argument("--videos-dir", action="append", type=Path, metavar="DIR",
                     help="folder holding the annotated videos (repeatable; default: the CSV's folder)")
    loc.add_argument("--distance", type=float, metavar="M",
                     help="map both positions at this distance in metres (e.g. 1.47, the paper's HRIR radius) "
                          "instead of the pipeline's own distance of each second")
    loc.add_argument("--json", action="store_true", help="print JSON (summaries and every window) instead of the table")
    add_binaural_parser(what)
    for command in what.choices.values():  # the common flags also work after a subcommand
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log what happens")
        command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress output")
    return ev


def add_binaural_parser(what: Any) -> argparse.ArgumentParser:
    """``eval binaural``: a diffusion checkpoint against the DSP targets of held-out examples
    (run by :mod:`foleyspace.training.eval_binaural`)."""
    bi = what.add_parser("binaural", help="a diffusion checkpoint against a data set's held-out DSP targets, "
                                          "beside mono and nearest-HRIR baselines",
                         description="Samples the checkpoint's EMA model on held-out examples of a data set built "
                                     "by `foleyspace train dataset` and scores it, mono duplicated to both ears and "
                                     "the DSP renderer with nearest-neighbour HRIRs against the set's DSP targets: "
                                     "waveform L2 (MSE x10^3), STFT amplitude and phase errors (BinauralGrad), "
                                     "multi-resolution STFT, ILD error (dB) and ITD error (us) per 100 ms window.")
    bi.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT", help="a diffusion checkpoint (.pt)")
    bi.add_argument("--data", type=Path, required=True, metavar="DIR", help="the data set (its held-out split is used)")
    bi.add_argument("--examples", type=int, default=8, metavar="N", help="held-out examples scored (default 8)")
    bi.add_argument("--schedule", choices=("standard", "fast"), default="fast",
                    help="sampler: standard (the config's inference steps, paper 50) or fast (6; default)")
    bi.add_argument("--seed", type=int, default=0, help="sampling seed of the first example (+1 per example)")
    bi.add_argument("--device", default=None, help="cpu or cuda (default: CUDA when available)")
    bi.add_argument("--json", action="store_true", help="print JSON (means and every example) instead of the table")
    return bi


def run_eval_binaural(args: argparse.Namespace) -> int:
    """Run ``eval binaural`` from parsed ``args``; print the table (or JSON); return 0."""
    try:
        from foleyspace.training.eval_binaural import evaluate_binaural, format_binaural_table
    except ImportError as exc:
        raise FoleySpaceError(f"eval binaural needs the training package and PyTorch ({exc})") from None
    progress = None if getattr(args, "quiet", False) or args.json else (lambda text: print(f"  {text}", file=sys.stderr))
    report = evaluate_binaural(args.checkpoint, args.data, examples=args.examples, schedule=args.schedule,
                               seed=args.seed, device=args.device, progress=progress)
    print(json.dumps(report.to_json(), indent=2, ensure_ascii=False) if args.json else format_binaural_table(report))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    """Run ``eval localization`` from parsed ``args``; print the table (or JSON); return 0."""
    if getattr(args, "eval_command", None) == "binaural":
        return run_eval_binaural(args)
    if getattr(args, "eval_command", None) != "localization":
        raise FoleySpaceError("eval: the evaluations are 'localization' and 'binaural'")
    quiet = getattr(args, "quiet", False) or args.json
    progress = None if quiet else (lambda text: print(f"  {text}", file=sys.stderr))
    if Path(args.annotations).suffix.lower() == ".json":
        if args.label_mode and len(args.label_mode) > 1 or args.localizer and len(args.localizer) > 1:
            raise FoleySpaceError("eval localization: a set takes one --localizer and one --label-mode")
        set_report = evaluate_set(args.annotations, modes=args.mode or SET_MODES, videos_dirs=args.videos_dir,
                                  localizer=(args.localizer or ["auto"])[0], label_mode=(args.label_mode or ["none"])[0],
                                  shots=args.shot, progress=progress)
        print(json.dumps(set_report.to_json(), indent=2, ensure_ascii=False) if args.json else format_set_table(set_report))
        return 0
    if args.mode or args.shot:
        raise FoleySpaceError("eval localization: --mode and --shot apply to a .json set, not a CSV")
    report = evaluate_localization(
        args.annotations,
        localizers=args.localizer or DEFAULT_LOCALIZERS,
        label_modes=args.label_mode or ("text",),
        videos_dirs=args.videos_dir,
        distance_m=args.distance,
        schemes=args.scheme or SCHEMES,
        progress=progress,
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print(format_table(report))
    return 0
