"""A run folder's checkpoints: names, the latest one, retention, and the
checks that a resumed run or a dataset fits the ``--config`` asked for."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from foleyspace.diffusion.config import DiffusionConfig
from foleyspace.errors import FoleySpaceError

log = logging.getLogger(__name__)

_NAME = re.compile(r"^checkpoint-(\d{8,})\.pt$")
#: Config fields a resumed run may change (the rest must equal the checkpoint's).
RESUMABLE_CHANGES = ("max_steps",)
#: Config fields the data must have been built with.
DATA_FIELDS = ("sample_rate", "segment_samples", "positions")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    """``RUN_DIR/checkpoint-SSSSSSSS.pt`` of ``step``."""
    return Path(run_dir) / f"checkpoint-{step:08d}.pt"


def checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every checkpoint in ``run_dir``, oldest first (temporary files ignored)."""
    found = []
    for path in Path(run_dir).glob("checkpoint-*.pt"):
        match = _NAME.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint of the highest step in ``run_dir``, or None."""
    found = checkpoints(run_dir)
    return found[-1][1] if found else None


def prune(run_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest checkpoints (``keep`` ≤ 0 keeps all)."""
    if keep <= 0:
        return
    for _, path in checkpoints(run_dir)[:-keep]:
        path.unlink(missing_ok=True)


def check_run_dir(out: Path) -> None:
    """``--out`` must be a folder or a name one can be made at: checked before anything is created."""
    from foleyspace.errors import OutputError
    from foleyspace.stem import file_in_the_way

    blocker = file_in_the_way(out)
    if blocker is not None:
        raise OutputError(f"{out}: cannot hold the run ({'it' if blocker == out else blocker} is a file, not a "
                          "folder); choose another --out")


def check_resume_config(saved: DiffusionConfig, wanted: DiffusionConfig, path: Path) -> None:
    """Raise a one-line error when a checkpoint's config differs from the run's (other than
    :data:`RESUMABLE_CHANGES`)."""
    a, b = saved.to_dict(), wanted.to_dict()
    differ = [k for k in a if k not in RESUMABLE_CHANGES and a[k] != b.get(k)]
    if differ:
        shown = ", ".join(f"{k}={a[k]!r} (asked {b.get(k)!r})" for k in differ[:4])
        raise FoleySpaceError(f"{path}: the checkpoint is from config {saved.name!r}, not this run's "
                              f"{wanted.name!r}: {shown}; resume with the same --config and --batch-size, "
                              "or start a new --out")


def check_data_config(data: DiffusionConfig, wanted: DiffusionConfig, root: Path) -> None:
    """Raise a one-line error when the dataset was built for other signals than ``wanted`` trains on
    (:data:`DATA_FIELDS`: model rate, segment length, trajectory positions)."""
    differ = [k for k in DATA_FIELDS if getattr(data, k) != getattr(wanted, k)]
    if differ:
        shown = ", ".join(f"{k} {getattr(data, k)} (config {wanted.name!r}: {getattr(wanted, k)})" for k in differ)
        raise FoleySpaceError(f"{root}: the dataset was built for config {data.name!r}: {shown}; build it with "
                              f"--config {wanted.name} or train with --config {data.name}")
