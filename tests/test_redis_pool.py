"""A burst beyond the pool waits for a connection: 150 simultaneous requests on default settings all succeed.

redis-py's default pool raises at once when its 100 connections are in use,
which the backend used to report as "store unavailable" (100 x 200 and
50 x 503 for this burst). The backend's pool waits up to ``pool_timeout``.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx2 as httpx
import pytest
from fastapi import FastAPI, Request

from fastapi_sessions import SessionManager, SessionMiddleware
from fastapi_sessions.backends.redis import RedisBackend
from fastapi_sessions.frontends import SessionFrontend

SECRET = "pool-test-secret-0123456789abcdef"
pytestmark = [pytest.mark.asyncio]


async def _burst(backend: RedisBackend, n: int) -> dict[int, int]:
    """``n`` requests that each create a session, released at the same moment."""
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=SessionManager(backend, SessionFrontend(SECRET)))

    @app.post("/inc")
    async def inc(request: Request) -> dict[str, Any]:
        request.session["n"] = request.session.get("n", 0) + 1
        return {}

    transport = httpx.ASGITransport(app=app)
    go = asyncio.Event()

    async def one() -> int:
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            await go.wait()
            return (await client.post("/inc")).status_code

    async with asyncio.timeout(30):
        tasks = [asyncio.create_task(one()) for _ in range(n)]
        await asyncio.sleep(0.05)
        go.set()
        statuses = await asyncio.gather(*tasks)
    return {status: statuses.count(status) for status in set(statuses)}


@pytest.mark.parametrize("kind", ["redis", "redis-cluster"])
async def test_150_simultaneous_requests_on_default_settings_all_succeed(
        kind: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("redis_url" if kind == "redis" else "redis_cluster_url")
    async with RedisBackend.from_url(url, prefix=f"fs-pool-{uuid.uuid4().hex[:8]}:") as backend:
        assert await _burst(backend, 150) == {200: 150}


@pytest.mark.parametrize("kind", ["redis", "redis-cluster"])
async def test_a_pool_of_two_serves_forty_requests_by_waiting(kind: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("redis_url" if kind == "redis" else "redis_cluster_url")
    async with RedisBackend.from_url(url, prefix=f"fs-pool-{uuid.uuid4().hex[:8]}:", max_connections=2) as backend:
        assert await _burst(backend, 40) == {200: 40}
