"""The conformance kit against the SQL backend: real PostgreSQL, real MariaDB/MySQL, a SQLite file, SQLite in memory.

Each test session works in its own randomly named table on the shared servers,
emptied before every test and dropped at the end, so parallel runs never meet.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import pytest
import pytest_asyncio
from sqlalchemy import delete, select

from conftest import free_port
from fastapi_sessions import ManualClock, SessionBackend, SessionRecord, utc_now
from fastapi_sessions.backends.sqlalchemy import SQLAlchemyBackend
from fastapi_sessions.testing import BackendConformance, Capability

TABLE = f"fs_test_{uuid.uuid4().hex[:10]}"
SQL_CAPABILITIES = frozenset(
    {Capability.OUT_OF_BAND_READ, Capability.IMMEDIATE_PURGE, Capability.EXACT_PURGE_COUNT,
     Capability.UNREACHABLE_SERVER}
)


async def _drop(url: str) -> None:
    async with SQLAlchemyBackend(url, table_name=TABLE) as backend:
        await backend.drop_table()


@pytest.fixture(scope="module")
def postgres_table(postgres_url: str) -> Iterator[str]:
    yield postgres_url
    asyncio.run(_drop(postgres_url))


@pytest.fixture(scope="module")
def mysql_table(mysql_url: str) -> Iterator[str]:
    yield mysql_url
    asyncio.run(_drop(mysql_url))


class SQLConformance(BackendConformance):
    """Shared setup: a fresh, empty table and a manual clock, so expiry needs no sleeping."""

    capabilities: ClassVar[frozenset[Capability]] = SQL_CAPABILITIES
    strict = True
    manual_clock: ClassVar[bool] = True

    @pytest.fixture(autouse=True)
    def _fresh_clock(self) -> None:
        self.clock = ManualClock(utc_now())

    async def open_backend(self, url: str) -> AsyncIterator[SQLAlchemyBackend]:
        clock = self.clock if self.manual_clock else utc_now
        async with SQLAlchemyBackend(url, table_name=TABLE, create_table=True, clock=clock) as backend:
            async with backend.engine.connect() as conn:  # leftovers of earlier tests would skew purge counts
                await conn.execute(delete(backend.table))
                await conn.commit()
            yield backend

    def now(self) -> datetime:
        return self.clock() if self.manual_clock else utc_now()

    async def advance(self, backend: SessionBackend, seconds: float) -> None:
        if self.manual_clock:
            self.clock.advance(seconds=seconds)
        else:
            await asyncio.sleep(seconds)

    async def stored_record(self, backend: SessionBackend, key: str) -> SessionRecord | None:
        # Straight from the table with Core, bypassing the backend's own statements (expired rows included).
        assert isinstance(backend, SQLAlchemyBackend)
        table = backend.table
        async with backend.engine.connect() as conn:
            row = (await conn.execute(select(*table.c).where(table.c.key == key))).first()
        if row is None:
            return None
        return SessionRecord(
            row.key, bytes(row.payload), row.user_id, _dt(row.created_at), _dt(row.expires_at), row.version
        )


def _dt(micros: int) -> datetime:
    from fastapi_sessions.backends.sqlalchemy._table import _datetime

    return _datetime(micros)


class TestPostgresConformance(SQLConformance):
    @pytest_asyncio.fixture(loop_scope="function")
    async def backend(self, postgres_table: str) -> AsyncIterator[SessionBackend]:
        async for backend in self.open_backend(postgres_table):
            yield backend

    @pytest_asyncio.fixture(loop_scope="function")
    async def unreachable_backend(self) -> AsyncIterator[SessionBackend]:
        async with SQLAlchemyBackend(f"postgresql://postgres@127.0.0.1:{free_port()}/test", table_name=TABLE) as b:
            yield b


class TestPostgresRealClockConformance(TestPostgresConformance):
    """Once on the system clock with real sleeps, as production runs."""

    manual_clock = False


class TestMySQLConformance(SQLConformance):
    @pytest_asyncio.fixture(loop_scope="function")
    async def backend(self, mysql_table: str) -> AsyncIterator[SessionBackend]:
        async for backend in self.open_backend(mysql_table):
            yield backend

    @pytest_asyncio.fixture(loop_scope="function")
    async def unreachable_backend(self) -> AsyncIterator[SessionBackend]:
        async with SQLAlchemyBackend(f"mysql://root@127.0.0.1:{free_port()}/test", table_name=TABLE) as b:
            yield b


class TestSQLiteFileConformance(SQLConformance):
    # SQLite has one writer at a time: concurrent writers wait in its busy handler, which sleeps.
    race_keys = 2
    race_rounds = 1
    @pytest_asyncio.fixture(loop_scope="function")
    async def backend(self, tmp_path: Path) -> AsyncIterator[SessionBackend]:
        async for backend in self.open_backend(f"sqlite:///{tmp_path / 'sessions.db'}"):
            yield backend

    @pytest_asyncio.fixture(loop_scope="function")
    async def unreachable_backend(self, tmp_path: Path) -> AsyncIterator[SessionBackend]:
        # SQLite's "server" is the file system: a database in a directory that does not exist.
        async with SQLAlchemyBackend(f"sqlite:///{tmp_path / 'missing' / 'sessions.db'}", table_name=TABLE) as b:
            yield b
        # aiosqlite answers a failed connect by queueing a stop whose future nobody awaits; let its
        # worker threads settle it while this test's loop is still open (else "Event loop is closed").
        await asyncio.sleep(0.2)


class TestSQLiteMemoryConformance(SQLConformance):
    race_keys = 2
    race_rounds = 1
    capabilities = SQL_CAPABILITIES - {Capability.UNREACHABLE_SERVER}
    not_applicable: ClassVar[Mapping[Capability, str]] = {
        Capability.UNREACHABLE_SERVER: "an in-memory database has nothing to lose contact with",
    }

    @pytest_asyncio.fixture(loop_scope="function")
    async def backend(self) -> AsyncIterator[SessionBackend]:
        async for backend in self.open_backend("sqlite+aiosqlite://"):
            yield backend
