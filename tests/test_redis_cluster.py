"""RedisBackend on the real three-node Redis Cluster, and on a Valkey one: a user's sessions spread over nodes,
one index."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx2 as httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request
from redis.asyncio import RedisCluster

from fastapi_sessions import SessionManager, SessionMiddleware, SessionRecord
from fastapi_sessions._core.tokens import new_token, storage_key
from fastapi_sessions.backends.redis import RedisBackend
from fastapi_sessions.frontends import SessionFrontend


def record(user: str | None, ttl: float = 3600) -> SessionRecord:
    now = datetime.now(UTC)
    return SessionRecord(storage_key(new_token()), b'{"x":1}', user, now, now + timedelta(seconds=ttl))


@pytest.fixture(params=["redis_cluster_url", "valkey_cluster_url"], ids=["redis", "valkey"])
def redis_cluster_url(request: pytest.FixtureRequest) -> str:
    """This module's cluster: Redis (conftest's ``redis_cluster_url``, overridden here) or Valkey."""
    return str(request.getfixturevalue(request.param))


@pytest_asyncio.fixture
async def backend(redis_cluster_url: str) -> AsyncIterator[RedisBackend]:
    prefix = f"fs-test-{uuid.uuid4().hex}:"
    backend = RedisBackend.from_url(redis_cluster_url, prefix=prefix)
    try:
        yield backend
    finally:
        client = backend.client
        assert isinstance(client, RedisCluster)
        for key in [k async for k in client.scan_iter(match=f"{prefix}*")]:
            await client.delete(key)
        await backend.aclose()


def node_of(backend: RedisBackend, key: str) -> str:
    client = backend.client
    assert isinstance(client, RedisCluster)
    node = client.get_node_from_key(key)
    assert node is not None
    return str(node.name)


@pytest.mark.asyncio
async def test_one_users_sessions_on_every_node_are_listed_and_revoked_together(backend: RedisBackend) -> None:
    alice = f"alice-{uuid.uuid4().hex}"
    mine = [record(alice) for _ in range(24)]
    for r in [*mine, record(None), record(f"bob-{uuid.uuid4().hex}")]:
        await backend.create(r)
    nodes = {node_of(backend, backend.session_key(r.key)) for r in mine}
    assert len(nodes) == 3  # the sessions really are spread over the cluster
    assert sorted(r.key for r in await backend.list_by_user(alice)) == sorted(r.key for r in mine)
    assert await backend.delete_by_user(alice) == 24
    assert await backend.list_by_user(alice) == []
    for r in mine:
        assert await backend.read(r.key) is None


@pytest.mark.asyncio
async def test_moving_a_session_between_users_in_other_slots(backend: RedisBackend) -> None:
    alice, bob = f"alice-{uuid.uuid4().hex}", f"bob-{uuid.uuid4().hex}"
    r = record(alice)
    await backend.create(r)
    moved = SessionRecord(r.key, b"{}", bob, r.created_at, r.expires_at, 1)
    assert await backend.update(moved, 1) == 2
    assert await backend.list_by_user(alice) == []
    assert [x.key for x in await backend.list_by_user(bob)] == [r.key]
    assert await backend.delete_by_user(bob) == 1


@pytest.mark.asyncio
async def test_purge_visits_every_bucket_on_every_node(backend: RedisBackend) -> None:
    users = [f"user-{n}-{uuid.uuid4().hex}" for n in range(40)]
    for user in users:
        await backend.create(record(user, ttl=0.3))
    buckets = {backend._queue_key(backend.index_key(u)) for u in users}
    assert len({node_of(backend, q) for q in buckets}) == 3
    await asyncio.sleep(0.5)
    assert await backend.purge_expired() == 40
    client = backend.client
    for user in users:
        assert await client.exists(backend.index_key(user)) == 0
    for queue in buckets:
        assert await client.zcard(queue) == 0


@pytest.mark.asyncio
async def test_requests_through_the_middleware_on_the_cluster(backend: RedisBackend) -> None:
    manager = SessionManager(backend, SessionFrontend(secret_key="k" * 32))
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=manager)

    @app.post("/bump")
    async def bump(request: Request) -> dict[str, int]:
        request.session["n"] = request.session.get("n", 0) + 1
        return {"n": request.session["n"]}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver") as client:
        for n in range(1, 6):
            assert (await client.post("/bump")).json() == {"n": n}
