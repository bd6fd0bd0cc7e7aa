"""Persistent job table (SQLite): a job survives a crash or restart of the server.

States: queued → running → done | failed | cancelled. Only the server's main thread touches the
store. Progress is kept in memory by the server; the table holds what must survive.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foleyspace.errors import FoleySpaceError
from foleyspace.protocol import TERMINAL_STATES

#: Seconds a store call waits for a lock another process holds before it gives up (the server's
#: event loop must keep answering).
LOCK_TIMEOUT_S = 0.5


class StoreError(FoleySpaceError):
    """The job database cannot be read or written now (disk full, locked by another process,
    damaged). Requests get ``unavailable`` and may be retried; nothing is lost."""

    code = "unavailable"


def _guarded(method):
    """Turn SQLite errors of a store method into :class:`StoreError`."""

    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise StoreError(f"the job database cannot be used now ({exc}); try again later") from exc

    wrapper.__doc__, wrapper.__name__ = method.__doc__, method.__name__
    return wrapper

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    state TEXT NOT NULL,
    spec TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    result TEXT,
    error_code TEXT,
    error_message TEXT,
    submit_key TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, seq);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_submit_key ON jobs (submit_key) WHERE submit_key IS NOT NULL;
"""


@dataclass(frozen=True)
class JobRecord:
    """One row of the job table."""

    id: str
    state: str
    spec: dict[str, Any]
    attempts: int
    created: float
    updated: float
    result: dict[str, Any] | None
    error_code: str | None
    error_message: str | None

    def public(self) -> dict[str, Any]:
        """The job as a client sees it."""
        out: dict[str, Any] = {"job": self.id, "state": self.state, "created": self.created,
                               "updated": self.updated, "attempts": self.attempts,
                               "video": self.spec.get("video")}
        if self.result is not None:
            out["result"] = self.result
        if self.error_code is not None:
            out["error"] = {"code": self.error_code, "message": self.error_message}
        return out


class JobStore:
    """The job table in ``path`` (created if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, timeout=LOCK_TIMEOUT_S)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: the job database cannot be opened ({exc})") from exc

    @_guarded
    def close(self) -> None:
        self._db.close()

    def _row(self, row: tuple | None) -> JobRecord | None:
        if row is None:
            return None
        jid, state, spec, attempts, created, updated, result, code, message = row
        return JobRecord(jid, state, json.loads(spec), attempts, created, updated,
                         json.loads(result) if result else None, code, message)

    _COLUMNS = "id, state, spec, attempts, created, updated, result, error_code, error_message"

    @_guarded
    def by_key(self, submit_key: str) -> JobRecord | None:
        """The job queued with ``submit_key`` (a client resending a submit whose reply it missed
        gets that job, not a second one), or ``None``."""
        row = self._db.execute("SELECT id FROM jobs WHERE submit_key = ?", (submit_key,)).fetchone()
        return None if row is None else self.get(row[0])

    @_guarded
    def add(self, spec: dict[str, Any], submit_key: str | None = None) -> JobRecord:
        """Queue a new job and return it (``submit_key`` must not be taken: see :meth:`by_key`)."""
        now = time.time()
        jid = secrets.token_hex(6)
        seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
        self._db.execute("INSERT INTO jobs (id, seq, state, spec, created, updated, submit_key) "
                         "VALUES (?, ?, 'queued', ?, ?, ?, ?)", (jid, seq, json.dumps(spec), now, now, submit_key))
        record = self.get(jid)
        assert record is not None
        return record

    @_guarded
    def get(self, jid: str) -> JobRecord | None:
        return self._row(self._db.execute(f"SELECT {self._COLUMNS} FROM jobs WHERE id = ?", (jid,)).fetchone())

    @_guarded
    def list(self, limit: int = 100) -> list[JobRecord]:
        """The newest ``limit`` jobs, newest first."""
        rows = self._db.execute(f"SELECT {self._COLUMNS} FROM jobs ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
        return [r for r in map(self._row, rows) if r is not None]

    @_guarded
    def queued(self) -> list[str]:
        """Queued job ids in submission order."""
        return [r[0] for r in self._db.execute("SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq")]

    @_guarded
    def count(self, state: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (state,)).fetchone()[0])

    @_guarded
    def start(self, jid: str) -> bool:
        """queued → running (one more attempt); False if the job was not queued."""
        cur = self._db.execute("UPDATE jobs SET state = 'running', attempts = attempts + 1, updated = ? "
                               "WHERE id = ? AND state = 'queued'", (time.time(), jid))
        return cur.rowcount == 1

    @_guarded
    def finish(self, jid: str, state: str, result: dict[str, Any] | None = None,
               error: tuple[str, str] | None = None) -> bool:
        """Move a queued or running job to a terminal state, once; False if it already ended."""
        if state not in TERMINAL_STATES:
            raise ValueError(f"{state!r} is not a terminal state")
        code, message = error if error else (None, None)
        cur = self._db.execute(
            "UPDATE jobs SET state = ?, result = ?, error_code = ?, error_message = ?, updated = ? "
            "WHERE id = ? AND state IN ('queued', 'running')",
            (state, json.dumps(result) if result is not None else None, code, message, time.time(), jid))
        return cur.rowcount == 1

    @_guarded
    def requeue(self, jid: str) -> None:
        """running → queued on a graceful shutdown; the interrupted attempt does not count."""
        self._db.execute("UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0), updated = ? "
                         "WHERE id = ? AND state = 'running'", (time.time(), jid))

    @_guarded
    def recover(self, max_attempts: int) -> tuple[list[JobRecord], list[JobRecord]]:
        """After a crash: jobs left ``running`` are re-queued, or failed once they used
        ``max_attempts``. Returns ``(requeued, failed)``."""
        rows = self._db.execute(f"SELECT {self._COLUMNS} FROM jobs WHERE state = 'running'").fetchall()
        requeued, failed = [], []
        for record in map(self._row, rows):
            assert record is not None
            if record.attempts >= max_attempts:
                self.finish(record.id, "failed", error=(
                    "interrupted", f"the server stopped while running this job ({record.attempts} attempts)"))
                failed.append(record)
            else:
                self._db.execute("UPDATE jobs SET state = 'queued', updated = ? WHERE id = ?", (time.time(), record.id))
                requeued.append(record)
        return requeued, failed
