"""Writing one file atomically: a temporary file beside the target, fsynced, renamed over it.

:func:`atomic_path` is the one way FoleySpace writes a single file that must never be seen
half-written (the server token, a checkpoint, a training shard, a fetched HRTF set, ...).
It guarantees:

* the target is either the complete new file or untouched: the new content goes to a temporary
  file in the target's folder (so the rename cannot cross file systems), is flushed to disk with
  ``fsync`` and only then renamed over the target with :func:`os.replace` (atomic on POSIX and
  Windows);
* on any failure — an exception in the block, ``KeyboardInterrupt``, a failed fsync or rename —
  the old target (if there was one) stays as it was, the temporary file is removed and the
  exception propagates unchanged;
* the temporary file is created private (mode 0600, less the umask) and exclusively, under a
  unique hidden name ``.<target name>.<random><suffix>``, so nothing else reads it while it is
  written and two writers never share it.

The stem/sidecar/preview outputs use :func:`foleyspace.stem.atomic_outputs` instead (several
files committed together through an opened folder, with roll-back and an overwrite check).
Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "write_text_atomic"]


def _fsync(path: Path) -> None:
    """Flush ``path``'s data to disk (opened for writing: Windows flushes only such handles)."""
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, mode: int | None = None, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield the path of a new, empty temporary file beside ``target``; write it in the block.

    When the block ends normally the file is fsynced, given ``mode`` (``os.chmod``; ``None``
    keeps the temporary file's 0600) and renamed over ``target``. When it raises, the temporary
    file is removed, ``target`` is left as it was and the exception propagates.

    The temporary name ends with ``suffix``: pass the target's suffix where a library insists on
    one (``np.savez`` given a path appends ``.npz`` unless the name ends with it).

    Raises:
        OSError: the temporary file cannot be created (a missing or unwritable folder), or the
            fsync, chmod or rename fails; the target is then unchanged.
    """
    target = Path(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_text_atomic(target: str | os.PathLike[str], text: str, *, encoding: str = "utf-8",
                      newline: str | None = None, mode: int | None = None, suffix: str = ".tmp") -> Path:
    """Write ``text`` to ``target`` atomically (see :func:`atomic_path`); ``encoding`` and
    ``newline`` as for :func:`open`. Returns ``target`` as a :class:`~pathlib.Path`."""
    target = Path(target)
    with atomic_path(target, mode=mode, suffix=suffix) as tmp, \
            open(tmp, "w", encoding=encoding, newline=newline) as fh:
        fh.write(text)
    return target
