"""Writing the results: the binaural stem WAV and its sidecar JSON, both atomically.

A file is written to a temporary name in the target folder, flushed to disk and renamed over
the target, so a crash or an error never leaves a half-written stem under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Callable, Iterator
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


class _Folder:
    """An output folder held open by a descriptor: every temporary file, rename and link happens
    relative to it, so replacing the folder's path (or a parent) by a symlink after it was opened
    and checked cannot redirect the writes. Temporary files are reached as
    ``/proc/self/fd/<fd>/<name>`` where the system has it (Linux), else by path."""

    def __init__(self, folder: Path) -> None:
        self.path = folder
        if not folder.is_dir():
            raise OutputError(f"{folder}: output folder does not exist")
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            self.fd = os.open(folder, flags)
        except OSError as exc:
            raise OutputError(f"{folder}: cannot open the output folder ({exc.strerror})") from exc
        self._via_fd = os.path.isdir(f"/proc/self/fd/{self.fd}")

    def real_path(self) -> Path:
        """Where the opened folder really is (what a path policy must judge)."""
        if self._via_fd:
            return Path(os.readlink(f"/proc/self/fd/{self.fd}"))
        return Path(os.path.realpath(self.path))

    def at(self, name: str) -> Path:
        """A path to ``name`` inside the opened folder, for libraries that want a path."""
        return Path(f"/proc/self/fd/{self.fd}/{name}") if self._via_fd else self.path / name

    def _kw(self, key: str = "dir_fd") -> dict[str, int]:
        return {key: self.fd} if os.open in os.supports_dir_fd else {}

    def _name(self, name: str) -> str | Path:
        return name if os.open in os.supports_dir_fd else self.path / name

    def create_temp(self, target: str) -> str:
        """A new empty file ``.<target>.<random>.tmp`` with the mode a new file would get."""
        for _ in range(100):
            name = f".{target}.{secrets.token_hex(4)}.tmp"
            try:
                fd = os.open(self._name(name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                             0o666 & ~_umask(), **self._kw())
            except FileExistsError:
                continue
            except OSError as exc:
                raise OutputError(f"{self.path / target}: cannot write here ({exc.strerror})") from exc
            os.close(fd)
            return name
        raise OutputError(f"{self.path}: cannot find a free temporary name")

    def exists(self, name: str) -> bool:
        try:
            os.stat(self._name(name), follow_symlinks=False, **self._kw())
            return True
        except FileNotFoundError:
            return False

    def replace(self, src: str, dst: str) -> None:
        os.replace(self._name(src), self._name(dst), **self._kw("src_dir_fd"), **self._kw("dst_dir_fd"))

    def link(self, src: str, dst: str) -> None:
        os.link(self._name(src), self._name(dst), **self._kw("src_dir_fd"), **self._kw("dst_dir_fd"),
                follow_symlinks=False)

    def unlink(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._name(name), **self._kw())

    def fsync(self, name: str) -> None:
        fd = os.open(self._name(name), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0), **self._kw())
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        os.close(self.fd)


def _backup(folder: _Folder, target: str) -> str | None:
    """A hard link to ``target`` under a temporary name (``None`` if it does not exist), so it can
    be put back if a later rename of the same commit fails."""
    if not folder.exists(target):
        return None
    backup = folder.create_temp(target)  # reserves a fresh name
    folder.unlink(backup)
    try:
        folder.link(target, backup)
    except OSError:  # no hard links here: a copy does the same job
        import shutil

        shutil.copyfile(folder.at(target), folder.at(backup), follow_symlinks=False)
    return backup


#: ``check_folder(real_path)``: raises to refuse writing into a folder (e.g. a server's path policy).
FolderCheck = Callable[[Path], None]


@contextlib.contextmanager
def atomic_outputs(*targets: str | Path, check_folder: FolderCheck | None = None) -> Iterator[list[Path]]:
    """Yield temporary paths for ``targets`` (all in one folder); when the block succeeds they are
    fsynced and renamed over the targets together, after the block. A failure anywhere — in the
    block, a cancel raised inside it, or one of the renames — leaves every target as it was
    (targets already replaced are put back). Temporary files never outlive the call.

    The folder is opened once and ``check_folder`` judges where it really is; all writes then go
    through that open folder, so a symlink swapped in afterwards cannot redirect them.
    """
    finals = [Path(t) for t in targets]
    parent = finals[0].parent if str(finals[0].parent) else Path(".")
    if any(t.parent != finals[0].parent for t in finals):
        raise ValueError("atomic_outputs: all targets must be in one folder")
    folder = _Folder(parent)
    names = [t.name for t in finals]
    temps: list[str] = []
    backups: list[str | None] = []
    done: list[str] = []
    try:
        if check_folder is not None:
            check_folder(folder.real_path())
        for name in names:
            temps.append(folder.create_temp(name))
        yield [folder.at(t) for t in temps]
        for tmp in temps:
            folder.fsync(tmp)
        backups = [_backup(folder, name) for name in names]
        for tmp, name in zip(temps, names):
            folder.replace(tmp, name)
            done.append(name)
    except OSError as exc:
        _roll_back(folder, done, names, backups)
        failed = finals[len(done)] if temps else finals[0]
        raise OutputError(f"{failed}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        _roll_back(folder, done, names, backups)
        raise
    finally:
        for tmp in [*temps, *(b for b in backups if b is not None)]:
            folder.unlink(tmp)
        folder.close()


def _roll_back(folder: _Folder, done: list[str], names: list[str], backups: list[str | None]) -> None:
    """Put back the targets of a failed commit: the old file where there was one, none otherwise."""
    for name in done:
        backup = backups[names.index(name)]
        with contextlib.suppress(OSError):
            if backup is None:
                folder.unlink(name)
            else:
                folder.replace(backup, name)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """One output written atomically (see :func:`atomic_outputs`)."""
    with atomic_outputs(target) as (tmp,):
        yield tmp


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

    try:
        with sf.SoundFile(str(path), "w", sample_rate, stereo.shape[0], subtype, format="WAV") as fh:
            fh.software = STEM_SOFTWARE  # marks the file as ours: a later run may replace it
            fh.write(np.ascontiguousarray(stereo.T))
    except (sf.LibsndfileError, RuntimeError) as exc:  # e.g. a full disk: an output error like any OSError
        raise OSError(f"the stem cannot be written ({exc})") from exc


def encode_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON to ``path`` (a temp path)."""
    Path(path).write_text(json.dumps(data, indent=1, allow_nan=False) + "\n", encoding="utf-8")
