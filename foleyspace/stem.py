"""Writing the results: the binaural stem WAV and its sidecar JSON, both atomically.

A file is written to a temporary name in the target folder, flushed to disk and renamed over
the target, so a crash or an error never leaves a half-written stem under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
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


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: Largest sidecar read when deciding whether a file is ours.
_MAX_SIDECAR_BYTES = 64 << 20


def _proc_fd(fd: int) -> Path | None:
    """``/proc/self/fd/<fd>``: a path that reaches exactly the open file (Linux), or ``None``."""
    path = Path(f"/proc/self/fd/{fd}")
    return path if os.path.exists(path) else None


class _Folder:
    """An output folder held open by a descriptor: every temporary file, rename, link and check
    happens relative to it, and temporary files are written through their own descriptors, so
    replacing the folder's path (or a parent, or a temporary name) by a symlink after it was
    opened and checked cannot redirect the writes. Where the system has no ``/proc`` or opens no
    folders (Windows) it falls back to paths, without that protection."""

    def __init__(self, folder: Path) -> None:
        self.path = folder
        if not folder.is_dir():
            raise OutputError(_missing_folder(folder))
        self.fd: int | None = None
        if os.name == "posix" and os.open in os.supports_dir_fd:
            try:
                self.fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
            except OSError as exc:
                raise OutputError(f"{folder}: cannot open the output folder ({exc.strerror})") from exc

    def real_path(self) -> Path:
        """Where the opened folder really is (what a path policy must judge)."""
        via = _proc_fd(self.fd) if self.fd is not None else None
        return Path(os.readlink(via)) if via is not None else Path(os.path.realpath(self.path))

    def _kw(self, key: str = "dir_fd") -> dict[str, int]:
        return {key: self.fd} if self.fd is not None else {}

    def _name(self, name: str) -> str | Path:
        return name if self.fd is not None else self.path / name

    def open_new(self, name: str) -> int:
        """Create ``name`` (it must not exist; never through a link) with a new file's mode."""
        return os.open(self._name(name), os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC,
                       0o666 & ~_umask(), **self._kw())

    def open_existing(self, name: str) -> int | None:
        """A read descriptor of ``name`` if it is a regular file (not a link, pipe or device)."""
        try:
            fd = os.open(self._name(name), os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC, **self._kw())
        except OSError:
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return fd

    def exists(self, name: str) -> bool:
        try:
            os.stat(self._name(name), follow_symlinks=False, **self._kw())
            return True
        except FileNotFoundError:
            return False

    def fresh_name(self, target: str, suffix: str) -> str:
        return f".{target}.{secrets.token_hex(4)}{suffix}"

    def replace(self, src: str, dst: str) -> None:
        os.replace(self._name(src), self._name(dst), **self._kw("src_dir_fd"), **self._kw("dst_dir_fd"))

    def link(self, src: str, dst: str) -> None:
        os.link(self._name(src), self._name(dst), **self._kw("src_dir_fd"), **self._kw("dst_dir_fd"),
                follow_symlinks=False)

    def unlink(self, name: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._name(name), **self._kw())

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


class _Temp:
    """A temporary file created in the folder and kept open: libraries write it through
    ``path`` (``/proc/self/fd/<fd>``, the open file itself, where available)."""

    def __init__(self, folder: _Folder, target: str) -> None:
        for _ in range(100):
            self.name = folder.fresh_name(target, ".tmp")
            try:
                self.fd = folder.open_new(self.name)
                break
            except FileExistsError:
                continue
            except OSError as exc:
                raise OutputError(f"{folder.path / target}: cannot write here ({exc.strerror})") from exc
        else:
            raise OutputError(f"{folder.path}: cannot find a free temporary name")
        self.path = _proc_fd(self.fd) or folder.path / self.name


def _backup(folder: _Folder, target: str) -> str | None:
    """A hard link to the existing ``target`` under a fresh ``.bak`` name (``None`` if there is
    none), so it can be put back if a later rename of the same commit fails."""
    if not folder.exists(target):
        return None
    for _ in range(100):
        backup = folder.fresh_name(target, ".bak")
        try:
            folder.link(target, backup)
            return backup
        except FileExistsError:
            continue
        except OSError:  # no hard links here: a copy (through descriptors) does the same job
            source = folder.open_existing(target)
            if source is None:
                return None  # a link or special file: it is replaced, not restored
            try:
                copy = folder.open_new(backup)
                try:
                    while chunk := os.read(source, 1 << 20):
                        os.write(copy, chunk)
                finally:
                    os.close(copy)
            finally:
                os.close(source)
            return backup
    raise OutputError(f"{folder.path}: cannot find a free backup name")


#: ``check_folder(real_path)``: raises to refuse writing into a folder (e.g. a server's path policy).
FolderCheck = Callable[[Path], None]


@contextlib.contextmanager
def atomic_outputs(*targets: str | Path, check_folder: FolderCheck | None = None,
                   overwrite: bool | None = None) -> Iterator[list[Path]]:
    """Yield temporary paths for ``targets`` (all in one folder); when the block succeeds they are
    fsynced and renamed over the targets together, after the block. A failure anywhere — in the
    block, a cancel raised inside it, or one of the renames — leaves every target as it was
    (targets already replaced are put back). Temporary files never outlive the call.

    The folder is opened once and ``check_folder`` judges where it really is; all writes then go
    through that open folder, so a symlink swapped in afterwards cannot redirect them. With
    ``overwrite`` given, an existing target that FoleySpace did not write is refused at the moment
    of the commit unless it is true (see :func:`check_replaceable`).
    """
    finals = [Path(t) for t in targets]
    parent = finals[0].parent if str(finals[0].parent) else Path(".")
    if any(t.parent != finals[0].parent for t in finals):
        raise ValueError("atomic_outputs: all targets must be in one folder")
    folder = _Folder(parent)
    names = [t.name for t in finals]
    temps: list[_Temp] = []
    backups: list[str | None] = []
    done: list[str] = []
    try:
        if check_folder is not None:
            check_folder(folder.real_path())
        for name in names:
            temps.append(_Temp(folder, name))
        yield [t.path for t in temps]
        for tmp in temps:
            os.fsync(tmp.fd)
        if overwrite is False:
            for name, final in zip(names, finals):
                if folder.exists(name) and not _ours(folder, name):
                    raise OutputError(f"{final}: exists and was not written by FoleySpace; choose another name "
                                      "or allow replacing it (--overwrite)")
        for name in names:
            backups.append(_backup(folder, name))
        for tmp, name in zip(temps, names):
            folder.replace(tmp.name, name)
            done.append(name)
    except OSError as exc:
        _roll_back(folder, done, names, backups)
        failed = finals[len(done)] if temps else finals[0]
        raise OutputError(f"{failed}: cannot write ({exc.strerror or exc})") from exc
    except BaseException:
        _roll_back(folder, done, names, backups)
        raise
    finally:
        try:
            for tmp in temps:
                with contextlib.suppress(OSError):
                    os.close(tmp.fd)
                if tmp.name not in done:
                    folder.unlink(tmp.name)
            for backup in backups:
                if backup is not None:
                    folder.unlink(backup)
        finally:
            folder.close()


def _roll_back(folder: _Folder, done: list[str], names: list[str], backups: list[str | None]) -> None:
    """Put back the targets of a failed commit: the old file where there was one, none otherwise."""
    for name in done:
        index = names.index(name)
        backup = backups[index] if index < len(backups) else None
        with contextlib.suppress(OSError):
            if backup is None:
                folder.unlink(name)
            else:
                folder.replace(backup, name)


@contextlib.contextmanager
def atomic_output(target: str | Path) -> Iterator[Path]:
    """One user output written atomically (see :func:`atomic_outputs`; internal files use
    :func:`foleyspace.atomic_file.atomic_path`)."""
    with atomic_outputs(target) as (tmp,):
        yield tmp


def _read_json(folder: _Folder, name: str) -> Any:
    fd = folder.open_existing(name)
    if fd is None:
        return None
    try:
        if os.fstat(fd).st_size > _MAX_SIDECAR_BYTES:
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def _ours(folder: _Folder, name: str) -> bool:
    """Whether the regular file ``name`` in ``folder`` is a stem, sidecar or preview FoleySpace wrote
    (read without following links and without blocking on a pipe): a sidecar by its ``format``; a
    preview (``.mp4``) by its comment tag; a stem by its WAV software tag, or by the sidecar beside
    it naming it."""
    if name.lower().endswith(".json"):
        data = _read_json(folder, name)
        return isinstance(data, dict) and str(data.get("format", "")).startswith("foleyspace-sidecar/")
    if name.lower().endswith(".mp4"):  # a preview: by its MP4 comment tag (foleyspace.preview)
        fd = folder.open_existing(name)
        if fd is None:
            return False
        try:
            from foleyspace.preview import is_preview_fd

            return is_preview_fd(fd)
        finally:
            os.close(fd)
    fd = folder.open_existing(name)
    if fd is None:
        return False
    import soundfile as sf

    try:
        with os.fdopen(fd, "rb", closefd=False) as fh, sf.SoundFile(fh) as wav:
            if str(wav.software or "").startswith("FoleySpace"):
                return True
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError):
        return False
    finally:
        os.close(fd)
    sidecar = _read_json(folder, str(Path(name).with_suffix(".json")))
    if not (isinstance(sidecar, dict) and str(sidecar.get("format", "")).startswith("foleyspace-sidecar/")):
        return False
    try:
        return Path(sidecar["stem"]["path"]).name == name
    except (KeyError, TypeError):
        return False


def written_by_foleyspace(target: Path) -> bool:
    """Whether the existing file ``target`` is a stem or sidecar FoleySpace wrote (see :func:`_ours`)."""
    target = Path(target)
    folder = _Folder(target.parent if str(target.parent) else Path("."))
    try:
        return _ours(folder, target.name)
    finally:
        folder.close()


def check_replaceable(target: str | Path, overwrite: bool = False) -> None:
    """Refuse to replace a file FoleySpace did not write (a recording, a project file) unless
    ``overwrite``; our own earlier stems and sidecars are replaced freely. (Checked before the
    work starts, and again by :func:`atomic_outputs` at the commit.)"""
    target = Path(target)
    if not overwrite and os.path.lexists(target) and not written_by_foleyspace(target):
        raise OutputError(f"{target}: exists and was not written by FoleySpace; choose another name "
                          "or allow replacing it (--overwrite)")


def file_in_the_way(path: Path) -> Path | None:
    """The first of ``path`` and its parents that exists and is not a folder (so no folder can be
    made at ``path``), or None."""
    return next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)


def _missing_folder(folder: Path) -> str:
    """Why ``folder`` (not a folder) cannot hold an output: a file there, or it does not exist."""
    blocker = file_in_the_way(folder)
    if blocker is None:
        return f"{folder}: output folder does not exist"
    return f"{folder}: not an output folder ({'it' if blocker == folder else blocker} is a file)"


def check_writable(target: str | Path) -> None:
    """Fail early (before long work) if ``target`` cannot be created."""
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise OutputError(f"{target}: is a directory")
    if not folder.is_dir():
        raise OutputError(_missing_folder(folder))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: output folder is not writable")
    if target.exists() and not os.access(target, os.W_OK):
        raise OutputError(f"{target}: exists and is not writable")


def peak_gain(peak: float, peak_dbfs: float) -> tuple[float, float]:
    """``(scale, gain_db)`` that bring a signal whose absolute peak is ``peak`` to at most
    ``peak_dbfs``: ``(1.0, 0.0)`` when it is already there."""
    ceiling = 10 ** (peak_dbfs / 20)
    if peak <= ceiling or peak == 0:
        return 1.0, 0.0
    return ceiling / peak, 20 * np.log10(ceiling / peak)


def apply_gain(stereo: np.ndarray, scale: float) -> np.ndarray:
    """``stereo`` times ``scale`` (the same array when ``scale`` is 1)."""
    return stereo if scale == 1.0 else stereo * scale


def limit_peak(stereo: np.ndarray, peak_dbfs: float) -> tuple[np.ndarray, float]:
    """Scale ``stereo`` down so its peak is at most ``peak_dbfs``; returns ``(signal, gain_db)``."""
    scale, gain_db = peak_gain(float(np.max(np.abs(stereo))) if stereo.size else 0.0, peak_dbfs)
    return apply_gain(stereo, scale), gain_db


class StemSpool:
    """The rendered stem held on disk while it is made: ``(2, k)`` float64 blocks appended to an
    unnamed temporary file in ``folder`` (beside the output; the system removes it when it is
    closed, or when the process dies) while the absolute peak is tracked, then read back in
    blocks — so the peak limiter sees the whole stem without it being in memory. Float64 keeps
    the samples exactly as rendered."""

    def __init__(self, target: str | Path, channels: int = 2) -> None:
        """``target``: the output the stem is for (the spool lies in its folder; errors name it)."""
        self.target = Path(target)
        self.channels = channels
        self.samples = 0
        self.peak = 0.0
        try:
            self._fh = tempfile.TemporaryFile(dir=str(self.target.parent) or ".", prefix=".foleyspace-render-")
        except OSError as exc:
            raise self._error(exc) from exc

    def _error(self, exc: OSError) -> OutputError:
        return OutputError(f"{self.target}: the render cannot be held on disk in its folder "
                           f"({exc.strerror or exc})")

    def append(self, block: np.ndarray) -> None:
        """Add ``(channels, k)`` samples at the end."""
        if block.size:
            self.peak = max(self.peak, float(np.max(np.abs(block))))
        try:
            self._fh.write(np.ascontiguousarray(block.T, dtype="<f8").tobytes())
        except OSError as exc:
            raise self._error(exc) from exc
        self.samples += block.shape[1]

    def blocks(self, block_samples: int) -> Iterator[np.ndarray]:
        """The samples again, ``(channels, ≤ block_samples)`` blocks from the start."""
        try:
            self._fh.flush()  # a full disk may show only now
            self._fh.seek(0)
        except OSError as exc:
            raise self._error(exc) from exc
        frame = 8 * self.channels
        while data := self._fh.read(block_samples * frame):
            yield np.frombuffer(data, "<f8").reshape(-1, self.channels).T

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> StemSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def encode_wav(path: str | Path, stereo: np.ndarray, sample_rate: int, subtype: str = "PCM_24") -> None:
    """Write ``stereo`` ``(2, n)`` in [-1, 1] as a WAV at ``sample_rate`` Hz to ``path`` (a temp path)."""
    encode_wav_blocks(path, [stereo], sample_rate, subtype, channels=stereo.shape[0])


def encode_wav_blocks(path: str | Path, blocks: Iterable[np.ndarray], sample_rate: int, subtype: str = "PCM_24",
                      channels: int = 2) -> None:
    """Write ``(channels, k)`` blocks in [-1, 1] one after another as a WAV at ``sample_rate`` Hz to
    ``path`` (a temp path); the file equals writing their concatenation at once."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path), "w", sample_rate, channels, subtype, format="WAV") as fh:
            fh.software = STEM_SOFTWARE  # marks the file as ours: a later run may replace it
            for block in blocks:
                fh.write(np.ascontiguousarray(block.T))
    except (sf.LibsndfileError, RuntimeError) as exc:  # e.g. a full disk: an output error like any OSError
        raise OSError(f"the stem cannot be written ({exc})") from exc


def encode_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON to ``path`` (a temp path), streamed: a long clip's sidecar
    (one entry per frame) is never held as one string."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, allow_nan=False)
        fh.write("\n")
