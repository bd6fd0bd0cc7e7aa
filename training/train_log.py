"""The training log: a CSV file (always) and TensorBoard (only when ``torch.utils.tensorboard``
can be imported; never a dependency)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: CSV columns: step (1-based, after the update), mean loss over all processes, gradient norm
#: before clipping, learning rate, examples per second over all processes, seconds since the run
#: first started (summed over resumed runs).
COLUMNS = ("step", "loss", "grad_norm", "lr", "samples_per_s", "elapsed_s")


def read_log(path: Path) -> list[dict[str, float]]:
    """The rows of a CSV log as floats (``step`` as int)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: (int(v) if k == "step" else float(v)) for k, v in row.items()} for row in rows]


class TrainLog:
    """Appends one row per step to ``RUN_DIR/log.csv``; on resume from ``resume_step`` the rows
    after it (written by the stopped run past its last checkpoint) are dropped first, so the file
    reads as one run."""

    def __init__(self, run_dir: Path, resume_step: int = 0, tensorboard: bool = True) -> None:
        self.path = Path(run_dir) / "log.csv"
        kept: list[dict[str, Any]] = []
        if resume_step > 0 and self.path.exists():
            kept = [row for row in read_log(self.path) if row["step"] <= resume_step]
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            for row in kept:
                writer.writerow({k: _fmt(row[k]) for k in COLUMNS})
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, COLUMNS)
        self._board = _summary_writer(Path(run_dir) / "tensorboard") if tensorboard else None

    def write(self, **row: float) -> None:
        """One step's row (keys: :data:`COLUMNS`), flushed at once."""
        self._writer.writerow({k: _fmt(row[k]) for k in COLUMNS})
        self._file.flush()
        if self._board is not None:
            for key in ("loss", "grad_norm", "lr", "samples_per_s"):
                self._board.add_scalar(f"train/{key}", row[key], int(row["step"]))

    def close(self) -> None:
        self._file.close()
        if self._board is not None:
            self._board.close()


def _fmt(value: float) -> str:
    return str(int(value)) if isinstance(value, int) else repr(float(value))


def _summary_writer(folder: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("TensorBoard is not installed: logging to log.csv only")
        return None
    return SummaryWriter(str(folder))
