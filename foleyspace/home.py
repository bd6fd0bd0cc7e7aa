"""Per-user state: the folder holding the server token, the job database and the address file.

``FOLEYSPACE_HOME`` if set, else ``$XDG_STATE_HOME/foleyspace`` (``~/.local/state/foleyspace``)
on Linux, ``~/Library/Application Support/FoleySpace`` on macOS, ``%LOCALAPPDATA%\\FoleySpace``
on Windows. Standard library only (the thin client uses it).
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

TOKEN_FILE = "token"
SERVER_FILE = "server.json"


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
    """Create the state folder (mode 0700) if needed and return it."""
    home = home or state_dir()
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


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
    tmp = home / f".{TOKEN_FILE}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token + "\n")
    os.replace(tmp, home / TOKEN_FILE)
    return token


def write_server_info(address: str, pid: int, home: Path | None = None) -> None:
    """Record where the running server listens (read by clients with no explicit address)."""
    home = ensure_state_dir(home)
    tmp = home / f".{SERVER_FILE}.{pid}.tmp"
    tmp.write_text(json.dumps({"address": address, "pid": pid}), encoding="utf-8")
    os.replace(tmp, home / SERVER_FILE)


def read_server_address(home: Path | None = None) -> str | None:
    """The address the last started server recorded, if any."""
    try:
        data = json.loads(((home or state_dir()) / SERVER_FILE).read_text(encoding="utf-8"))
        address = data["address"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return address if isinstance(address, str) and address else None
