"""The plugin's whole test suite: the fastapi-sessions conformance kit, in strict mode."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Mapping
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
import pytest_asyncio

from fastapi_sessions import ManualClock, SessionBackend, SessionRecord, utc_now
from fastapi_sessions.backends import from_url
from fastapi_sessions.testing import BackendConformance, Capability

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TestLiteStore(BackendConformance):
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.OUT_OF_BAND_READ,  # stored_record() below reads the file directly
        Capability.IMMEDIATE_PURGE,  # purge_expired() deletes the rows at once
        Capability.EXACT_PURGE_COUNT,  # and counts them
        Capability.UNREACHABLE_SERVER,  # unreachable_backend() below
    })
    # Nothing is missing; a capability the store cannot have would be listed with the reason:
    not_applicable: ClassVar[Mapping[Capability, str]] = {}
    strict = True  # an undeclared, unexplained capability fails instead of skipping

    @pytest.fixture(autouse=True)
    def fresh_clock(self) -> None:
        self.clock = ManualClock(utc_now())  # expiry without sleeping: the kit moves it (advance, below)

    @pytest_asyncio.fixture(loop_scope="function")
    async def backend(self, tmp_path: Path) -> AsyncIterator[SessionBackend]:
        self.path = tmp_path / "sessions.db"
        # Resolved by URL, exactly as an application would: proves the entry point works and
        # that from_url() passes options (here the clock) to the factory.
        backend = from_url(f"litestore://{self.path}", clock=self.clock)
        try:
            yield backend
        finally:
            await backend.aclose()

    @pytest_asyncio.fixture(loop_scope="function")
    async def unreachable_backend(self, tmp_path: Path) -> AsyncIterator[SessionBackend]:
        # A file store's "server" is the file system: a database in a directory that does not exist.
        backend = from_url(f"litestore://{tmp_path / 'missing' / 'sessions.db'}")
        try:
            yield backend
        finally:
            await backend.aclose()

    def now(self) -> datetime:
        return self.clock()

    async def advance(self, backend: SessionBackend, seconds: float) -> None:
        self.clock.advance(seconds=seconds)

    async def stored_record(self, backend: SessionBackend, key: str) -> SessionRecord | None:
        # Straight from the file, by the documented schema, expired rows included. closing(): a
        # sqlite3 connection's own `with` ends a transaction but leaves the connection open.
        with closing(sqlite3.connect(self.path)) as conn:
            row = conn.execute(
                "SELECT key, payload, user_id, created_at, expires_at, version FROM sessions WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        key, payload, user_id, created_us, expires_us, version = row
        created, expires = EPOCH + timedelta(microseconds=created_us), EPOCH + timedelta(microseconds=expires_us)
        return SessionRecord(key, bytes(payload), user_id, created, expires, version)
