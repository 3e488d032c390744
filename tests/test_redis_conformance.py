"""The conformance kit against real Redis: standalone and Cluster, RESP3 (redis-py's default) and RESP2;
and against Valkey, standalone and cluster, through the ``valkey://`` and ``valkey+cluster://`` schemes.

Each test gets its own key prefix, so tests sharing a server never see each
other's keys, indexes or purge queues; the prefix's keys are removed afterwards,
and each must have had a TTL.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
import pytest_asyncio
from redis.asyncio import Redis, RedisCluster

from conftest import free_port, redis_py_url
from fastapi_sessions import SessionBackend, SessionRecord
from fastapi_sessions.backends.redis import RedisBackend
from fastapi_sessions.testing import BackendConformance, Capability


def raw_client(url: str) -> Redis | RedisCluster:
    """A second client, independent of the backend's, for out-of-band reads and cleanup."""
    if "+cluster://" in url:
        return RedisCluster.from_url(redis_py_url(url))
    return Redis.from_url(redis_py_url(url))


async def stored(client: Redis | RedisCluster, prefix: str, key: str) -> SessionRecord | None:
    """What Redis physically holds for ``key``, decoded by the documented layout (docs/backends/redis.md)."""
    raw = await client.get(f"{prefix}s:{key}")
    assert raw is None or isinstance(raw, bytes)
    if raw is None:
        return None
    created, expires, version, flag, length = raw[0:16], raw[16:32], raw[32:48], raw[48:49], int(raw[49:59])
    user = raw[59:59 + length].decode() if flag == b"u" else None
    return SessionRecord(key, raw[59 + length:], user, _at(created), _at(expires), int(version))


def _at(us: bytes) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(us))


class RedisKit(BackendConformance):
    capabilities = frozenset(
        {Capability.OUT_OF_BAND_READ, Capability.IMMEDIATE_PURGE, Capability.UNREACHABLE_SERVER}
    )
    not_applicable: ClassVar[Mapping[Capability, str]] = {
        Capability.EXACT_PURGE_COUNT: "Redis expires records on its own; purge_expired() counts the index "
        "entries it cleaned up, not the records",
    }
    strict = True
    # Redis expires keys to the millisecond: shorter waits than the kit's defaults.
    expiry_delay: ClassVar[float] = 0.3
    expiry_margin: ClassVar[float] = 0.1
    url_fixture: ClassVar[str] = "redis_url"
    options: ClassVar[dict[str, Any]] = {}

    @pytest_asyncio.fixture(loop_scope="function")
    async def backend(self, request: pytest.FixtureRequest) -> AsyncIterator[SessionBackend]:  # type: ignore[override]
        url: str = request.getfixturevalue(self.url_fixture)
        self.prefix = f"fs-test-{uuid.uuid4().hex}:"
        self.raw = raw_client(url)
        backend = RedisBackend.from_url(url, prefix=self.prefix, **self.options)
        try:
            # Connect (a cluster client also maps its slots) before the test: its short-lived
            # records live 0.3 s, and a first command slowed by that set-up would eat into them.
            await backend.read(f"{self.prefix}warm-up")
            yield backend
        finally:
            await backend.aclose()
            keys = [key async for key in self.raw.scan_iter(match=f"{self.prefix}*", count=1000)]
            without_ttl = [key for key in keys if await self.raw.pttl(key) == -1]
            for key in keys:  # one by one: on a cluster the keys are in different slots
                await self.raw.delete(key)
            await self.raw.aclose()
            # Sessions, indexes and purge queues all expire: nothing a test wrote may stay forever.
            assert without_ttl == [], without_ttl

    @pytest_asyncio.fixture(loop_scope="function")
    async def unreachable_backend(self) -> AsyncIterator[SessionBackend]:
        scheme = self.url_fixture.removesuffix("_url").replace("_", "+")  # redis, redis+cluster, valkey, ...
        backend = RedisBackend.from_url(f"{scheme}://127.0.0.1:{free_port()}/0", **self.options)
        try:
            yield backend
        finally:
            await backend.aclose()

    async def stored_record(self, backend: SessionBackend, key: str) -> SessionRecord | None:
        return await stored(self.raw, self.prefix, key)


class TestRedisStandalone(RedisKit):
    """redis-py's default protocol, RESP3."""


class TestRedisStandaloneResp2(RedisKit):
    options: ClassVar[dict[str, Any]] = {"protocol": 2}


class TestRedisCluster(RedisKit):
    url_fixture = "redis_cluster_url"


class TestRedisClusterResp2(RedisKit):
    url_fixture = "redis_cluster_url"
    options: ClassVar[dict[str, Any]] = {"protocol": 2}


class TestValkeyStandalone(RedisKit):
    """Valkey through ``valkey://``; the protocol is redis-py's, so RESP2 is covered by the Redis classes."""

    url_fixture = "valkey_url"


class TestValkeyCluster(RedisKit):
    url_fixture = "valkey_cluster_url"
