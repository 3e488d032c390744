"""A fastapi-sessions backend on the standard library's sqlite3, one worker thread at a time.

Every operation is a short transaction run with ``asyncio.to_thread`` under a
lock, so it never blocks the event loop and never interleaves with another.
Times are stored as integer microseconds since the epoch (UTC), which round-trip
exactly and compare correctly. Liveness is judged by the ``now`` each call
passes (the manager's clock), or by the backend's ``clock`` when it passes none.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from fastapi_sessions import (
    BackendError,
    BackendUnavailable,
    BaseSessionBackend,
    Clock,
    ConfigurationError,
    SessionConflict,
    SessionExists,
    SessionNotFound,
    SessionRecord,
    utc_now,
)

__all__ = ["LiteStoreBackend", "from_url"]

T = TypeVar("T")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    key        TEXT PRIMARY KEY,
    payload    BLOB NOT NULL,
    user_id    TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    version    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user_id ON sessions (user_id);
CREATE INDEX IF NOT EXISTS sessions_expires_at ON sessions (expires_at);
"""
_COLUMNS = "key, payload, user_id, created_at, expires_at, version"


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _datetime(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _record(row: tuple[Any, ...]) -> SessionRecord:
    key, payload, user_id, created_at, expires_at, version = row
    return SessionRecord(key, bytes(payload), user_id, _datetime(created_at), _datetime(expires_at), version)


class LiteStoreBackend(BaseSessionBackend):
    """Sessions in one SQLite database file (or in memory with ``":memory:"``)."""

    def __init__(self, path: str = ":memory:", *, clock: Clock = utc_now) -> None:
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            try:
                conn.executescript(_SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    async def _run(self, work: Callable[[sqlite3.Connection, int], T], now: datetime | None) -> T:
        """Run ``work(connection, now_us)`` in a thread, in one transaction; ``now_us`` decides liveness."""
        now_us = _micros(now or self.clock())

        def call() -> T:
            with self._lock:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn, now_us)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result

        try:
            return await asyncio.to_thread(call)
        except sqlite3.OperationalError as exc:  # cannot open, locked, disk I/O: the store is not there
            raise BackendUnavailable(f"SQLite store unavailable: {exc}") from exc
        except sqlite3.Error as exc:
            raise BackendError(f"SQLite store failed: {exc}") from exc

    async def create(self, record: SessionRecord, *, now: datetime | None = None) -> None:
        def work(conn: sqlite3.Connection, now_us: int) -> int:
            # Insert, or take over the key only if its record has expired.
            return conn.execute(
                f"INSERT INTO sessions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, 1) "
                "ON CONFLICT (key) DO UPDATE SET payload = excluded.payload, user_id = excluded.user_id, "
                "created_at = excluded.created_at, expires_at = excluded.expires_at, version = 1 "
                "WHERE sessions.expires_at <= ?",
                (record.key, record.payload, record.user_id, _micros(record.created_at),
                 _micros(record.expires_at), now_us),
            ).rowcount

        if await self._run(work, now) == 0:
            raise SessionExists("a live session already has this key")

    async def read(self, key: str, *, now: datetime | None = None) -> SessionRecord | None:
        def work(conn: sqlite3.Connection, now_us: int) -> SessionRecord | None:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM sessions WHERE key = ? AND expires_at > ?", (key, now_us)
            ).fetchone()
            return _record(row) if row else None

        return await self._run(work, now)

    async def update(self, record: SessionRecord, expected_version: int, *, now: datetime | None = None) -> int:
        def work(conn: sqlite3.Connection, now_us: int) -> int | None:
            changed = conn.execute(
                "UPDATE sessions SET payload = ?, user_id = ?, expires_at = ?, version = version + 1 "
                "WHERE key = ? AND version = ? AND expires_at > ?",
                (record.payload, record.user_id, _micros(record.expires_at), record.key, expected_version, now_us),
            ).rowcount
            if changed:
                return expected_version + 1
            live = conn.execute("SELECT 1 FROM sessions WHERE key = ? AND expires_at > ?", (record.key, now_us))
            return 0 if live.fetchone() else None

        version = await self._run(work, now)
        if version is None:
            raise SessionNotFound("the session is gone or expired")
        if version == 0:
            raise SessionConflict("the session changed since it was read")
        return version

    async def touch(self, key: str, expires_at: datetime, *, now: datetime | None = None) -> bool:
        def work(conn: sqlite3.Connection, now_us: int) -> bool:
            return conn.execute(
                "UPDATE sessions SET expires_at = ? WHERE key = ? AND expires_at > ?",
                (_micros(expires_at), key, now_us),
            ).rowcount == 1

        return await self._run(work, now)

    async def delete(self, key: str, *, now: datetime | None = None) -> bool:
        def work(conn: sqlite3.Connection, now_us: int) -> bool:
            live = conn.execute("DELETE FROM sessions WHERE key = ? AND expires_at > ?", (key, now_us)).rowcount
            conn.execute("DELETE FROM sessions WHERE key = ?", (key,))  # an expired leftover goes too
            return live == 1

        return await self._run(work, now)

    async def list_by_user(self, user_id: str, *, now: datetime | None = None) -> Sequence[SessionRecord]:
        def work(conn: sqlite3.Connection, now_us: int) -> list[SessionRecord]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM sessions WHERE user_id = ? AND expires_at > ?", (user_id, now_us)
            )
            return [_record(row) for row in rows]

        return await self._run(work, now)

    async def delete_by_user(self, user_id: str, *, now: datetime | None = None) -> int:
        def work(conn: sqlite3.Connection, now_us: int) -> int:
            removed = conn.execute(
                "DELETE FROM sessions WHERE user_id = ? AND expires_at > ?", (user_id, now_us)
            ).rowcount
            conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
            return removed

        return await self._run(work, now)

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        def work(conn: sqlite3.Connection, now_us: int) -> int:
            return conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now_us,)).rowcount

        return await self._run(work, now)

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None

        await asyncio.to_thread(close)


def from_url(url: str, **options: Any) -> LiteStoreBackend:
    """``litestore:///absolute/path.db``, ``litestore://relative.db`` or ``litestore://`` (memory).

    ``options`` are the ``backend_options`` an application passes to ``from_url`` or
    ``SessionManager.from_url``; they go to :class:`LiteStoreBackend` (``clock``). An unknown
    one is a ``TypeError``, which ``from_url`` reports as a ``ConfigurationError``.
    """
    parts = urlsplit(url)
    if parts.scheme != "litestore":
        raise ConfigurationError(f"not a litestore:// URL: {parts.scheme}://")
    if parts.query:
        raise ConfigurationError("litestore:// takes no options")
    path = unquote(parts.netloc + parts.path)
    return LiteStoreBackend(path or ":memory:", **options)
