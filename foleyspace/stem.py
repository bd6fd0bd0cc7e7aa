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

from foleyspace import __version__
from foleyspace.errors import OutputError

#: The WAV ``software`` tag (RIFF INFO ISFT) that marks a stem as ours.
STEM_SOFTWARE = f"FoleySpace {__version__}"
#: The sidecar's format string.
SIDECAR_FORMAT = "foleyspace-sidecar/1"


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


def _backup(target: Path) -> Path | None:
    """A hard link to ``target`` under a temporary name (``None`` if it does not exist), so it can
    be put back if a later rename of the same commit fails."""
    if not target.exists():
        return None
    backup = _temp_beside(target)
    backup.unlink()
    try:
        os.link(target, backup)
    except OSError:  # no hard links here: a copy does the same job
        import shutil

        shutil.copy2(target, backup)
    return backup


@contextlib.contextmanager
def atomic_outputs(*targets: str | Path) -> Iterator[list[Path]]:
    """Yield temporary paths beside ``targets``; when the block succeeds they are fsynced and
    renamed over the targets together, after the block. A failure anywhere — in the block, a
    cancel raised inside it, or one of the renames — leaves every target as it was (targets
    already replaced are put back). Temporary files never outlive the call."""
    finals = [Path(t) for t in targets]
    temps: list[Path] = []
    backups: list[Path | None] = []
    done: list[Path] = []
    try:
        for target in finals:
            temps.append(_temp_beside(target))
        yield temps
        for tmp in temps:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        backups = [_backup(target) for target in finals]
        for tmp, target in zip(temps, finals):
            os.replace(tmp, target)
            done.append(target)
    except OSError as exc:
        _roll_back(done, finals, backups)
        failed = finals[len(done)] if done or temps else finals[0]
        raise OutputError(f"{failed}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        _roll_back(done, finals, backups)
        raise
    finally:
        for tmp in [*temps, *(b for b in backups if b is not None)]:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _roll_back(done: list[Path], finals: list[Path], backups: list[Path | None]) -> None:
    """Put back the targets of a failed commit: the old file where there was one, none otherwise."""
    for target in done:
        backup = backups[finals.index(target)]
        with contextlib.suppress(OSError):
            if backup is None:
                target.unlink()
            else:
                os.replace(backup, target)


def written_by_foleyspace(target: Path) -> bool:
    """Whether the existing file ``target`` is a stem or sidecar FoleySpace wrote: a sidecar by its
    ``format``; a stem by its WAV software tag, or by the sidecar beside it naming it."""
    target = Path(target)
    if target.suffix.lower() == ".json":
        try:
            return str(json.loads(target.read_text(encoding="utf-8")).get("format", "")).startswith("foleyspace-sidecar/")
        except (OSError, ValueError, AttributeError):
            return False
    import soundfile as sf

    try:
        with sf.SoundFile(str(target)) as fh:
            if str(fh.software or "").startswith("FoleySpace"):
                return True
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError):
        return False
    sidecar = target.with_suffix(".json")
    if not written_by_foleyspace(sidecar):
        return False
    try:
        return json.loads(sidecar.read_text(encoding="utf-8"))["stem"]["path"] == str(target.resolve())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def check_replaceable(target: str | Path, overwrite: bool = False) -> None:
    """Refuse to replace a file FoleySpace did not write (a recording, a project file) unless
    ``overwrite``; our own earlier stems and sidecars are replaced freely."""
    target = Path(target)
    if not overwrite and target.is_file() and not written_by_foleyspace(target):
        raise OutputError(f"{target}: exists and was not written by FoleySpace; choose another name "
                          "or allow replacing it (--overwrite)")


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

    with sf.SoundFile(str(path), "w", sample_rate, stereo.shape[0], subtype, format="WAV") as fh:
        fh.software = STEM_SOFTWARE  # marks the file as ours: a later run may replace it
        fh.write(np.ascontiguousarray(stereo.T))


def encode_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON to ``path`` (a temp path)."""
    Path(path).write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")
