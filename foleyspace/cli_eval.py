"""``foleyspace eval localization ANNOTATIONS.csv``: the paper's eq. 9/10 on annotated footage.

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
from foleyspace.evaluate import LABEL_MODES, evaluate_localization, format_table

#: Localizers evaluated when ``--localizer`` is not given.
DEFAULT_LOCALIZERS = ("motion", "seeded")


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``eval`` (with its one subcommand ``localization``) to ``subparsers``; returns ``eval``'s parser."""
    ev = subparsers.add_parser("eval", help="measure the pipeline against annotations (paper eq. 9/10)")
    what = ev.add_subparsers(dest="eval_command", required=True)
    loc = what.add_parser("localization", help="MAE of azimuth and elevation (eq. 9/10) against per-second annotations",
                          description="Runs the pipeline's localizers on each annotated shot and prints eq. 9 "
                                      "(MAE azimuth, 360° wrap) and eq. 10 (MAE elevation), in degrees, per "
                                      "localizer, label mode and scheme. Format: docs/evaluation.md.")
    loc.add_argument("annotations", type=Path, help="annotation CSV (video, [shot,] second, cell | u_px,v_px, [box,] label)")
    loc.add_argument("--localizer", action="append", metavar="NAME",
                     help=f"a localizer backend to evaluate (repeatable; default: {', '.join(DEFAULT_LOCALIZERS)}); "
                          "the seeded one gets each shot's annotated box")
    loc.add_argument("--label-mode", action="append", choices=LABEL_MODES,
                     help="text: hand the annotated label to the localizer; none: no label (repeatable; default text)")
    loc.add_argument("--scheme", action="append", choices=SCHEMES,
                     help="which trajectory scheme's per-second position to score (repeatable; default both)")
    loc.add_argument("--videos-dir", action="append", type=Path, metavar="DIR",
                     help="folder holding the annotated videos (repeatable; default: the CSV's folder)")
    loc.add_argument("--distance", type=float, metavar="M",
                     help="map both positions at this distance in metres (e.g. 1.47, the paper's HRIR radius) "
                          "instead of the pipeline's own distance of each second")
    loc.add_argument("--json", action="store_true", help="print JSON (summaries and every window) instead of the table")
    return ev


def run_eval(args: argparse.Namespace) -> int:
    """Run ``eval localization`` from parsed ``args``; print the table (or JSON); return 0."""
    if getattr(args, "eval_command", None) != "localization":
        raise FoleySpaceError("eval: the only evaluation is 'localization'")
    quiet = getattr(args, "quiet", False) or args.json
    report = evaluate_localization(
        args.annotations,
        localizers=args.localizer or DEFAULT_LOCALIZERS,
        label_modes=args.label_mode or ("text",),
        videos_dirs=args.videos_dir,
        distance_m=args.distance,
        schemes=args.scheme or SCHEMES,
        progress=None if quiet else (lambda text: print(f"  {text}", file=sys.stderr)),
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print(format_table(report))
    return 0
