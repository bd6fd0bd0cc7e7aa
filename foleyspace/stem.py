"""Writing the results: the binaural stem WAV and its sidecar JSON, both atomically.

A file is written to a temporary name in the target folder, flushed to disk and renamed over
the target, so a crash or an error never leaves a half-written stem under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from foleyspace.errors import OutputError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_beside(target: Path) -> Path:
    """An empty temporary file in ``target``'s folder, with the mode a new file would get."""
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{folder}: output folder does not exist")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write here ({exc.strerror})") from exc
    os.close(fd)
    os.chmod(name, 0o666 & ~_umask())  # mkstemp makes 0600; stems are shared with editors
    return Path(name)


@contextlib.contextmanager
def atomic_outputs(*targets: str | Path) -> Iterator[list[Path]]:
    """Yield temporary paths beside ``targets``; when the block succeeds they are fsynced and
    renamed over the targets, all after the block, so a failure (or a cancel raised inside the
    block) leaves every target as it was. Temporary files never outlive the call."""
    finals = [Path(t) for t in targets]
    temps: list[Path] = []
    try:
        for target in finals:
            temps.append(_temp_beside(target))
        yield temps
        for tmp in temps:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        for tmp, target in zip(temps, finals):
            os.replace(tmp, target)
    except OSError as exc:
        raise OutputError(f"{finals[len(temps) - 1] if temps else finals[0]}: cannot write "
                          f"({exc.strerror or exc})") from exc
    finally:
        for tmp in temps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """One output written atomically (see :func:`atomic_outputs`)."""
    with atomic_outputs(target) as (tmp,):
        yield tmp


def check_writable(target: str | Path) -> None:
    """Fail early (before long work) if ``target`` cannot be created."""
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise OutputError(f"{target}: is a directory")
    if not folder.is_dir():
        raise OutputError(f"{folder}: output folder does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: output folder is not writable")
    if target.exists() and not os.access(target, os.W_OK):
        raise OutputError(f"{target}: exists and is not writable")


def limit_peak(stereo: np.ndarray, peak_dbfs: float) -> tuple[np.ndarray, float]:
    """Scale ``stereo`` down so its peak is at most ``peak_dbfs``; returns ``(signal, gain_db)``."""
    ceiling = 10 ** (peak_dbfs / 20)
    peak = float(np.max(np.abs(stereo))) if stereo.size else 0.0
    if peak <= ceiling or peak == 0:
        return stereo, 0.0
    return stereo * (ceiling / peak), 20 * np.log10(ceiling / peak)


def encode_wav(path: str | Path, stereo: np.ndarray, sample_rate: int, subtype: str = "PCM_24") -> None:
    """Write ``stereo`` ``(2, n)`` in [-1, 1] as a WAV at ``sample_rate`` Hz to ``path`` (a temp path)."""
    import soundfile as sf

    sf.write(str(path), np.ascontiguousarray(stereo.T), sample_rate, subtype=subtype, format="WAV")


def encode_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON to ``path`` (a temp path)."""
    Path(path).write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")
