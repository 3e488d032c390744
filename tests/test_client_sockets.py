"""A backend's sockets do not outlive it: after ``aclose()`` none is open and none is left to the garbage collector.

A socket that only the garbage collector closes shows up as a ``ResourceWarning`` in
whatever test happens to run next, so a leak here makes unrelated tests fail at random.
Each server-backed backend is checked against its live server, and MongoDB also
against a server that hangs (its background monitor is the one part that keeps
connecting on its own).
"""

from __future__ import annotations

import asyncio
import gc
import uuid
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from conftest import connections_to, silent_server
from fastapi_sessions import SessionBackend, SessionRecord
from fastapi_sessions._core.tokens import new_token, storage_key
from fastapi_sessions.errors import BackendUnavailable

pytestmark = pytest.mark.skipif(not __import__("os").path.exists("/proc/self/fd"), reason="counts sockets in /proc")


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, "the test server URLs name their port"
    return port


@asynccontextmanager
async def _backend(name: str, url: str) -> AsyncIterator[SessionBackend]:
    if name == "redis":
        from fastapi_sessions.backends.redis import RedisBackend

        async with RedisBackend.from_url(url, prefix=f"sockets-{uuid.uuid4().hex[:8]}:") as redis:
            yield redis
    elif name == "mongodb":
        from fastapi_sessions.backends.mongodb import MongoBackend

        collection = f"sockets_{uuid.uuid4().hex[:8]}"
        async with MongoBackend(url, collection=collection, serverSelectionTimeoutMS=5000) as mongo:
            try:
                yield mongo
            finally:
                await mongo.collection.drop()
    else:
        from fastapi_sessions.backends.sqlalchemy import SQLAlchemyBackend

        table = f"fs_sockets_{uuid.uuid4().hex[:8]}"
        async with SQLAlchemyBackend(url, table_name=table, create_table=True) as sql:
            try:
                yield sql
            finally:
                await sql.drop_table()


async def _exercise(backend: SessionBackend) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    record = SessionRecord(storage_key(new_token()), b"{}", "sockets-user", now, now + timedelta(hours=1), 1)
    await backend.create(record)
    assert await backend.read(record.key) == record
    await backend.update(SessionRecord(record.key, b"[1]", "sockets-user", now, record.expires_at, 1), 1)
    assert await backend.touch(record.key, record.expires_at + timedelta(minutes=1))
    assert [r.key for r in await backend.list_by_user("sockets-user")] == [record.key]
    await backend.purge_expired()
    assert await backend.delete(record.key)


async def _assert_closed(port: int, baseline: int) -> None:
    # A transport closes its socket on the loop's next turn: give it a few, bounded.
    for _ in range(100):
        if connections_to(port) <= baseline:
            break
        await asyncio.sleep(0.01)
    assert connections_to(port) <= baseline, f"sockets to port {port} still open after aclose()"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        gc.collect()
    leaked = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaked == [], f"left for the garbage collector to close: {leaked}"


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["redis", "postgres", "mysql", "mongodb"])
async def test_sockets_close_with_the_backend(name: str, request: pytest.FixtureRequest) -> None:
    url: str = request.getfixturevalue(f"{name}_url")
    port = _port(url)
    gc.collect()  # earlier tests' garbage is theirs, not ours
    baseline = connections_to(port)
    await _use_and_close(name, url, port, baseline)  # returns with the backend unreferenced
    await _assert_closed(port, baseline)


async def _use_and_close(name: str, url: str, port: int, baseline: int) -> None:
    async with _backend(name, url) as backend:
        await _exercise(backend)
        assert connections_to(port) > baseline  # the check can see this backend's sockets


async def _read_during_outage(port: int) -> None:
    from fastapi_sessions.backends.mongodb import MongoBackend

    async with MongoBackend(
        f"mongodb://127.0.0.1:{port}/db", serverSelectionTimeoutMS=200, connectTimeoutMS=10_000
    ) as backend:
        with pytest.raises(BackendUnavailable):
            await backend.read(storage_key(new_token()))
        assert connections_to(port) >= 1  # the monitor is connected, waiting for an answer


@pytest.mark.asyncio
async def test_mongodb_client_closed_during_an_outage_leaves_no_socket() -> None:
    gc.collect()
    with silent_server() as port:
        for _ in range(5):  # returns with the client unreferenced, so a leaked socket is garbage
            await _read_during_outage(port)
        await _assert_closed(port, 0)
