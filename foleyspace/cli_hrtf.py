"""``foleyspace hrtf info|fetch|list``: look inside a SOFA file, download measured sets, see what is fetched.

Wiring (in :mod:`foleyspace.cli`): ``add_hrtf_parser(sub)`` in ``build_parser`` and
``if args.command == "hrtf": return run_hrtf(args)`` in ``main``. Errors are
:class:`~foleyspace.errors.FoleySpaceError` (one line, exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from foleyspace.errors import FoleySpaceError
from foleyspace.hrtf.catalog import CATALOG, TIMEOUT_S, catalog_set, fetch, hrtf_dir, resolve_hrtf


def add_hrtf_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``hrtf`` and its subcommands to ``subparsers``; returns ``hrtf``'s parser."""
    hp = subparsers.add_parser("hrtf", help="measured HRTFs: inspect a SOFA file, fetch HUTUBS / SADIE II subjects")
    what = hp.add_subparsers(dest="hrtf_command", required=True)
    info = what.add_parser("info", help="what a SOFA file holds and which of the paper's directions it can serve",
                           description="Prints the convention, sample rate, taps, receivers, measurement radius, "
                                       "directions and their coverage, how many fall in the fine set "
                                       "(|azimuth| <= 90°, |elevation| <= 40°) and, for each of the 15 coarse "
                                       "targets, the nearest measured direction and its angular error.")
    info.add_argument("file", metavar="SOFA", help="a SOFA file, or a fetched set as SET:SUBJECT (e.g. hutubs:96)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.add_argument("--plot", type=Path, metavar="PNG", help="also draw the measured directions to this PNG")
    fe = what.add_parser("fetch", help="download one subject of a measured HRTF set into the HRTF folder (online)",
                         description="Downloads one subject's SOFA file, checks it and stores it in the HRTF "
                                     "folder ($FOLEYSPACE_HRTF_DIR, else the user data folder's hrtf/); then "
                                     "--hrtf SET:SUBJECT uses it. "
                                     + " ".join(f"{s.name}: subjects {s.subject_range()}, {s.licence}." for s in CATALOG.values()))
    fe.add_argument("set", metavar="SET", help=f"the set: {', '.join(CATALOG)}")
    fe.add_argument("--subject", required=True, metavar="ID", help="hutubs: 1-96 (pp96 works too); sadie: D1, D2, H3-H20")
    fe.add_argument("--force", action="store_true", help="download again even if a valid file is there")
    fe.add_argument("--timeout", type=float, default=TIMEOUT_S, metavar="SECONDS",
                    help=f"give up when the server is silent this long (default {TIMEOUT_S:g})")
    ls = what.add_parser("list", help="the sets that can be fetched, and the subjects fetched here")
    ls.add_argument("--json", action="store_true", help="print JSON")
    for command in what.choices.values():  # the common flags also work after a subcommand
        command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log what happens")
        command.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress output")
    return hp


def run_hrtf(args: argparse.Namespace) -> int:
    """Run ``hrtf info``, ``hrtf fetch`` or ``hrtf list``."""
    if args.hrtf_command == "info":
        return _info(args)
    if args.hrtf_command == "fetch":
        return _fetch(args)
    return _list(args.json)


def _info(args: argparse.Namespace) -> int:
    from foleyspace.hrtf.coverage import coverage, format_coverage, plot_coverage
    from foleyspace.hrtf.sofa import read_sofa

    data = read_sofa(resolve_hrtf(args.file))
    info = coverage(data)
    if args.plot is not None:
        plot_coverage(data, args.plot)
    if args.json:
        print(json.dumps({**info, "plot": str(args.plot) if args.plot else None}, indent=1))
    else:
        print(format_coverage(info))
        if args.plot is not None:
            print(f"wrote {args.plot}")
    return 0


class _Bar:
    """Download progress on stderr (about 10 updates a second, only on a terminal unless it ends)."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.label, self.quiet, self.last, self.open = label, quiet, 0.0, False

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if self.quiet or (now - self.last < 0.1 and done != total):
            return
        self.last, self.open = now, True
        size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
        pct = f" {100 * done / total:3.0f}%" if total else ""
        print(f"\r{self.label}:{pct} {size}", end="", file=sys.stderr, flush=True)

    def end_line(self) -> None:
        """End the progress line (before the result or an error message)."""
        if self.open:
            print(file=sys.stderr, flush=True)
            self.open = False


def _fetch(args: argparse.Namespace) -> int:
    hset = catalog_set(args.set)
    subject = hset.subject(args.subject)
    if not args.timeout > 0:  # also NaN
        raise FoleySpaceError(f"--timeout {args.timeout:g}: give a positive number of seconds")
    bar = _Bar(f"{hset.name}:{subject} {hset.url_for(subject)}", args.quiet)
    try:
        path = fetch(hset.name, subject, timeout_s=args.timeout, force=args.force, progress=bar)
    finally:
        bar.end_line()
    print(f"{hset.name}:{subject}: {path}")
    print(f"  {hset.title}; licence {hset.licence} ({hset.source})")
    print(f"  use it with --hrtf {hset.name}:{subject}")
    return 0


def _list(as_json: bool) -> int:
    root = hrtf_dir()
    rows = [{"set": s.name, "title": s.title, "licence": s.licence, "source": s.source,
             "subjects": s.subject_range(),
             "fetched": [subj for subj in s.subjects if s.path_for(subj).is_file()]} for s in CATALOG.values()]
    if as_json:
        print(json.dumps({"hrtf_dir": str(root), "sets": rows}, indent=1))
        return 0
    print(f"HRTF folder: {root}")
    for row in rows:
        fetched = ", ".join(f"{row['set']}:{s}" for s in row["fetched"]) or "none"
        print(f"  {row['set']:<8} {row['title']}")
        print(f"           subjects {row['subjects']}; licence {row['licence']}; fetched: {fetched}")
    return 0
