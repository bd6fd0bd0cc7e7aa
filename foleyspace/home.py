"""Per-user state: the folder holding the server token, the job database and the address file.

``FOLEYSPACE_HOME`` if set, else ``$XDG_STATE_HOME/foleyspace`` (``~/.local/state/foleyspace``)
on Linux, ``~/Library/Application Support/FoleySpace`` on macOS, ``%LOCALAPPDATA%\\FoleySpace``
on Windows. Standard library and :mod:`.atomic_file` only (the thin client vendors both).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

from .atomic_file import write_text_atomic

TOKEN_FILE = "token"
SERVER_FILE = "server.json"
LOCK_FILE = "server.lock"
#: Files of the state folder: readable by their owner only (job specs name the user's media).
PRIVATE_MODE = 0o600


def state_dir() -> Path:
    """The state folder (not created)."""
    env = os.environ.get("FOLEYSPACE_HOME")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "FoleySpace"
    if os.name == "nt":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "FoleySpace"
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "foleyspace"


def ensure_state_dir(home: Path | None = None) -> Path:
    """Create the state folder (mode 0700) if needed and return it. An existing folder that the
    group or others may enter is tightened to 0700 (when it is ours; otherwise it stays, and
    :func:`check_private` reports it)."""
    home = home or state_dir()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name == "posix":
        st = home.stat()
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.chmod(home, 0o700)
    return home


def check_private(home: Path) -> str | None:
    """Why ``home`` is not private to this user (a message), or ``None``."""
    if os.name != "posix":
        return None
    st = home.stat()
    if st.st_uid != os.getuid():
        return f"{home} belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o077:
        return f"{home} can be read by other users (mode {st.st_mode & 0o777:04o}; it must be 0700)"
    return None


def private_file(path: Path) -> Path:
    """Create ``path`` if missing, and make it readable and writable by its owner only."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_MODE))
    os.chmod(path, PRIVATE_MODE)
    return path


def lock_home(home: Path) -> int | None:
    """Take the state folder's exclusive lock (one server per folder); the open file descriptor,
    which holds it until closed (or the process ends). ``None`` where no other server can run
    (no ``fcntl``). Raises ``BlockingIOError`` when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: not supported here
        return None
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT, PRIVATE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # EWOULDBLOCK: another server holds it
        os.close(fd)
        raise BlockingIOError(f"{home / LOCK_FILE} is locked by another process") from None
    except OSError:  # e.g. ENOLCK on a network file system: no lock, but no reason to refuse
        os.close(fd)
        return None
    return fd


def read_token(home: Path | None = None) -> str | None:
    """The server token, or None if no server has created one yet."""
    path = (home or state_dir()) / TOKEN_FILE
    try:
        return path.read_text(encoding="ascii").strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def ensure_token(home: Path | None = None) -> str:
    """Return the token, creating it (file mode 0600, written atomically) on first use."""
    home = ensure_state_dir(home)
    existing = read_token(home)
    if existing:
        os.chmod(home / TOKEN_FILE, 0o600)
        return existing
    token = secrets.token_urlsafe(32)
    write_text_atomic(home / TOKEN_FILE, token + "\n", encoding="ascii", mode=PRIVATE_MODE)
    return token


def write_server_info(address: str, pid: int, home: Path | None = None) -> None:
    """Record where the running server listens (read by clients with no explicit address)."""
    home = ensure_state_dir(home)
    write_text_atomic(home / SERVER_FILE, json.dumps({"address": address, "pid": pid}), mode=PRIVATE_MODE)


def read_server_info(home: Path | None = None) -> dict:
    """What the last started server recorded (``address``, ``pid``), or ``{}``."""
    try:
        data = json.loads(((home or state_dir()) / SERVER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_server_address(home: Path | None = None) -> str | None:
    """The address the last started server recorded, if any."""
    address = read_server_info(home).get("address")
    return address if isinstance(address, str) and address else None
