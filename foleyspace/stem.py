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
import soundfile as sf

from foleyspace.errors import OutputError


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is fsynced and renamed to ``target``.

    On any error the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{folder}: output folder does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write here ({exc.strerror})") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write ({exc.strerror or exc})") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


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


def write_wav(target: str | Path, stereo: np.ndarray, rate: int, subtype: str = "PCM_24") -> Path:
    """Write ``stereo`` ``(2, n)`` in [-1, 1] as a WAV at ``rate`` Hz, atomically."""
    with atomic_path(target) as tmp:
        sf.write(str(tmp), np.ascontiguousarray(stereo.T), rate, subtype=subtype, format="WAV")
    return Path(target)


def write_json(target: str | Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    return Path(target)
