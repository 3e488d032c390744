"""Every backend's waits are bounded by default, with the documented values, and the options are checked.

The values here are the ones docs/backends/*.md state; ``test_faults.py`` shows
what the bounds do when a server stops answering.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import ConnectionPool

from conftest import silent_server
from fastapi_sessions import ConfigurationError
from fastapi_sessions.backends.mongodb import MongoBackend
from fastapi_sessions.backends.redis import RedisBackend
from fastapi_sessions.backends.sqlalchemy import SQLAlchemyBackend

pytestmark = [pytest.mark.asyncio]


async def test_redis_defaults_are_5_s_to_connect_to_reply_and_to_get_a_connection() -> None:
    backend = RedisBackend.from_url("redis://127.0.0.1:1/0")
    pool = backend.client.connection_pool
    assert isinstance(pool, ConnectionPool) and pool.max_connections == 100
    assert backend._gate is not None and backend._gate._value == 100  # calls beyond it wait for a connection
    assert (backend._pool_timeout, backend._deadline) == (5.0, None)
    kwargs = pool.connection_kwargs
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"], kwargs["socket_keepalive"]) == (5.0, 5.0, True)
    await backend.aclose()


async def test_redis_cluster_defaults_cap_calls_and_bound_each_one() -> None:
    backend = RedisBackend.from_url("redis+cluster://127.0.0.1:1")
    kwargs = backend.client.get_connection_kwargs()
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (5.0, 5.0)
    assert backend._gate is not None and backend._gate._value == 100
    assert (backend._pool_timeout, backend._deadline) == (5.0, 15.0)
    await backend.aclose()


async def test_redis_options_come_from_the_url_or_keywords() -> None:
    backend = RedisBackend.from_url("redis://127.0.0.1:1/0?socket_timeout=0.5&pool_timeout=2&max_connections=7",
                                    socket_connect_timeout=1.5)
    pool = backend.client.connection_pool
    assert pool.max_connections == 7
    assert backend._gate is not None and (backend._gate._value, backend._pool_timeout) == (7, 2.0)
    assert (pool.connection_kwargs["socket_timeout"], pool.connection_kwargs["socket_connect_timeout"]) == (0.5, 1.5)
    await backend.aclose()


@pytest.mark.parametrize(("url", "options"), [
    ("redis://u:s3cret@127.0.0.1/0?pool_timeout=soon", {}),
    ("redis://u:s3cret@127.0.0.1/0?socket_timeout=0", {}),
    ("redis://u:s3cret@127.0.0.1/0", {"socket_timeout": None}),
    ("redis://u:s3cret@127.0.0.1/0", {"pool_timeout": -1}),
    ("redis://u:s3cret@127.0.0.1/0?max_connections=0", {}),
    ("redis+cluster://u:s3cret@127.0.0.1", {"socket_connect_timeout": float("inf")}),
])
async def test_redis_rejects_unbounded_or_bad_waits(url: str, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        RedisBackend.from_url(url, **options)
    assert "s3cret" not in str(caught.value)


async def _driver_connection(backend: SQLAlchemyBackend) -> Any:
    async with backend.engine.connect() as conn:
        raw = await conn.get_raw_connection()
        return raw.driver_connection


async def test_postgres_defaults(postgres_url: str) -> None:
    async with SQLAlchemyBackend(postgres_url) as backend:
        pool: Any = backend.engine.pool
        assert (pool.size(), pool._max_overflow, pool.timeout()) == (20, 0, 5.0)
        driver = await _driver_connection(backend)
        assert driver._config.command_timeout == 5.0


async def test_mysql_defaults(mysql_url: str) -> None:
    async with SQLAlchemyBackend(mysql_url) as backend:
        pool: Any = backend.engine.pool
        assert (pool.size(), pool._max_overflow, pool.timeout()) == (20, 0, 5.0)
        driver = await _driver_connection(backend)
        assert (driver._read_timeout, driver._connect_timeout) == (5.0, 5.0)


async def test_sql_options_come_from_the_url_or_keywords(postgres_url: str) -> None:
    url = f"{postgres_url}?command_timeout=2.5&pool_size=3&pool_timeout=1"
    async with SQLAlchemyBackend(url, max_overflow=2) as backend:
        pool: Any = backend.engine.pool
        assert (pool.size(), pool._max_overflow, pool.timeout()) == (3, 2, 1.0)
        assert "command_timeout" not in str(backend.engine.url)  # ours, not the driver's URL
        assert (await _driver_connection(backend))._config.command_timeout == 2.5
    async with SQLAlchemyBackend(url, command_timeout=None) as backend:  # None: the driver's own (no bound)
        assert (await _driver_connection(backend))._config.command_timeout is None


@pytest.mark.parametrize("options", [
    {"command_timeout": 0}, {"connect_timeout": "soon"}, {"pool_timeout": -1}, {"pool_size": 0},
    {"max_overflow": -1}, {"pool_size": 2.5},
])
async def test_sql_rejects_bad_waits_and_sizes(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        SQLAlchemyBackend("postgresql://u:s3cret@127.0.0.1/db", **options)
    with pytest.raises(ConfigurationError):
        SQLAlchemyBackend("postgresql://u:s3cret@127.0.0.1/db?command_timeout=x")


async def test_sqlite_needs_no_pool_bounds(tmp_path: Any) -> None:
    async with SQLAlchemyBackend(f"sqlite+aiosqlite:///{tmp_path}/s.db", create_table=True) as backend:
        assert await backend.read("k") is None


async def test_mongodb_defaults_bound_every_operation_by_5_s() -> None:
    with silent_server() as port:  # not a closed port: see silent_server
        backend = MongoBackend(f"mongodb://127.0.0.1:{port}/db")
        options = backend.client.options
        assert (options.timeout, options.server_selection_timeout,
                options.pool_options.connect_timeout) == (5.0, 5.0, 5.0)
        await backend.aclose()


async def test_mongodb_url_and_keywords_win_over_the_defaults() -> None:
    with silent_server() as port:
        backend = MongoBackend(f"mongodb://127.0.0.1:{port}/db?timeoutms=1500", connectTimeoutMS=700)
        options = backend.client.options
        assert (options.timeout, options.pool_options.connect_timeout) == (1.5, 0.7)
        await backend.aclose()


async def test_mongodb_per_step_timeouts_get_the_other_steps_bounded() -> None:
    with silent_server() as port:
        backend = MongoBackend(f"mongodb://127.0.0.1:{port}/db", serverSelectionTimeoutMS=300)
        options = backend.client.options
        assert options.timeout is None  # timeoutMS would override the application's choice
        assert (options.server_selection_timeout, options.pool_options.connect_timeout,
                options.pool_options.socket_timeout) == (0.3, 5.0, 5.0)
        await backend.aclose()
