"""Black holes on every server backend: 503s within the bound, never a 500, no hang, and recovery.

A :class:`faultproxy.FaultProxy` sits between the backend and the real server
(one per node for Redis Cluster, through ``address_remap``). Each test
black-holes the path twice (the second cut is where pools used to stay stuck),
with short timeouts so the bound is tight: every request during the hole must
answer 503 within ``LIMIT`` seconds, and after the path is back the same app,
with the same pool, serves every user again within ``RECOVERY`` seconds,
with no acknowledged write lost. The defaults themselves are checked in
``test_bounds.py``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx2 as httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from fastapi_sessions import SessionManager, SessionMiddleware
from fastapi_sessions._core.contract import SessionBackend
from fastapi_sessions.frontends import SessionFrontend
from faultproxy import FaultProxy

SECRET = "fault-test-secret-0123456789abcdef"
#: Every timeout of the backends under test: connect, reply and pool wait.
SHORT = 0.4
#: The most a request may take during a black hole: the documented worst case for SHORT, plus slack for a busy CI.
LIMIT = 3 * SHORT + 1.5
#: How soon after the path is back every user must be served again.
RECOVERY = 5.0
USERS = 8
pytestmark = [pytest.mark.asyncio]


def _host_port(url: str, default: int) -> tuple[str, int]:
    parts = urlsplit(url.replace("+asyncpg", "").replace("+asyncmy", ""))
    return parts.hostname or "127.0.0.1", parts.port or default


@asynccontextmanager
async def _through_proxy(kind: str, request: pytest.FixtureRequest) -> AsyncIterator[
        tuple[SessionBackend, list[FaultProxy], Callable[[], Any]]]:
    """A backend of ``kind`` whose every connection goes through proxies; and a cleanup of its data."""
    tag = uuid.uuid4().hex[:10]
    async with AsyncExitStack() as stack:
        if kind in ("postgres", "mysql"):
            from sqlalchemy.engine import make_url

            from fastapi_sessions.backends.sqlalchemy import SQLAlchemyBackend

            url = request.getfixturevalue(f"{kind}_url")
            proxy = await stack.enter_async_context(FaultProxy(*_host_port(url, 5432 if kind == "postgres" else 3306)))
            proxied = make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
            sql = SQLAlchemyBackend(proxied, table_name=f"fs_fault_{tag}", create_table=True, connect_timeout=SHORT,
                                    command_timeout=SHORT, pool_timeout=SHORT)
            stack.push_async_callback(sql.aclose)

            async def drop() -> None:
                async with SQLAlchemyBackend(url, table_name=f"fs_fault_{tag}") as direct:
                    await direct.drop_table()

            yield sql, [proxy], drop
        elif kind == "redis":
            from fastapi_sessions.backends.redis import RedisBackend

            url = request.getfixturevalue("redis_url")
            proxy = await stack.enter_async_context(FaultProxy(*_host_port(url, 6379)))
            parts = urlsplit(url)
            proxied = parts._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
            redis = RedisBackend.from_url(proxied, prefix=f"fs-fault-{tag}:", socket_timeout=SHORT,
                                          socket_connect_timeout=SHORT, pool_timeout=SHORT)
            stack.push_async_callback(redis.aclose)
            yield redis, [proxy], _nothing
        elif kind == "redis-cluster":
            from redis.asyncio import RedisCluster

            from fastapi_sessions.backends.redis import RedisBackend

            url = request.getfixturevalue("redis_cluster_url")
            seed = _host_port(url, 7000)
            probe = RedisCluster(host=seed[0], port=seed[1])
            await probe.initialize()
            nodes = [(node.host, node.port) for node in probe.get_nodes()]
            await probe.aclose()
            proxies = {port: await stack.enter_async_context(FaultProxy(host, port)) for host, port in nodes}

            def remap(address: tuple[str, int]) -> tuple[str, int]:
                proxy = proxies.get(address[1])
                return ("127.0.0.1", proxy.port) if proxy is not None else address

            cluster = RedisBackend.from_url(
                f"redis+cluster://127.0.0.1:{proxies[seed[1]].port}", prefix=f"fs-fault-{tag}:",
                address_remap=remap, socket_timeout=SHORT, socket_connect_timeout=SHORT, pool_timeout=SHORT)
            _remap_redirects(cluster.client)
            stack.push_async_callback(cluster.aclose)
            yield cluster, list(proxies.values()), _nothing
        else:
            from fastapi_sessions.backends.mongodb import MongoBackend

            url = request.getfixturevalue("mongodb_url")
            proxy = await stack.enter_async_context(FaultProxy(*_host_port(url, 27017)))
            ms = int(SHORT * 1000)
            mongo = MongoBackend(f"mongodb://127.0.0.1:{proxy.port}/fastapi_sessions_test?directConnection=true",
                                 collection=f"fault_{tag}", timeoutMS=ms, connectTimeoutMS=ms,
                                 serverSelectionTimeoutMS=ms)
            stack.push_async_callback(mongo.aclose)

            async def drop_collection() -> None:
                async with MongoBackend(url, collection=f"fault_{tag}") as direct:
                    await direct.collection.drop()

            yield mongo, [proxy], drop_collection


def _remap_redirects(client: Any) -> None:
    """Make redis-py follow a MOVED reply through ``address_remap`` too.

    redis-py's async cluster client remaps the addresses of ``CLUSTER SLOTS`` but not
    those of a MOVED reply (``NodesManager.move_slot``, redis-py 6 to 8.1). After a
    timeout it asks a random node, which answers MOVED with the owner's real address:
    the client then talks to the real node, past the proxy, and the black hole would
    leak. Real deployments without ``address_remap`` are not affected.
    """
    from redis.asyncio.cluster import NodesManager

    if not hasattr(NodesManager, "move_slot"):
        return  # redis-py 5 routes MOVED differently

    class RemappingNodesManager(NodesManager):
        __slots__ = ()

        async def move_slot(self, e: Any) -> None:
            e.host, e.port = self.remap_host_port(e.host, e.port)
            await super().move_slot(e)

    client.nodes_manager.__class__ = RemappingNodesManager


async def _nothing() -> None:
    return None  # Redis keys expire with their sessions


def _app(backend: SessionBackend) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=SessionManager(backend, SessionFrontend(SECRET)))

    @app.post("/inc")
    async def inc(request: Request) -> JSONResponse:
        request.session["n"] = request.session.get("n", 0) + 1
        return JSONResponse({"n": request.session["n"]})

    return app


async def _timed(client: httpx.AsyncClient, path: str) -> tuple[int, float, Any]:
    """Status, seconds taken and body of one POST; a request that hangs fails the test."""
    start = time.monotonic()
    try:
        async with asyncio.timeout(LIMIT + 5):
            response = await client.post(path)
    except TimeoutError:
        pytest.fail(f"{path} hung for {LIMIT + 5} s during a black hole")
    body = response.json() if response.headers.get("content-type") == "application/json" else response.text
    return response.status_code, time.monotonic() - start, body


@pytest.mark.parametrize("kind", ["postgres", "mysql", "redis", "redis-cluster", "mongodb"])
async def test_black_hole_twice_gives_503s_within_the_bound_then_recovers(
        kind: str, request: pytest.FixtureRequest) -> None:
    async with _through_proxy(kind, request) as (backend, proxies, cleanup):
        transport = httpx.ASGITransport(app=_app(backend))
        async with AsyncExitStack() as clients:
            users = [await clients.enter_async_context(httpx.AsyncClient(transport=transport,
                                                                         base_url="https://testserver"))
                     for _ in range(USERS)]
            counts = [0] * USERS  # the last value each user was answered with
            unsure = [0] * USERS  # 503s since then: a write may have landed without its answer

            async def serve(i: int) -> None:
                """Serve user ``i`` again within RECOVERY: 503s are allowed on the way, nothing else."""
                deadline = time.monotonic() + RECOVERY
                while True:
                    status, _, body = await _timed(users[i], "/inc")
                    assert status in (200, 503), (kind, i, status, body)
                    if status == 200:
                        # nothing acknowledged was lost; a write answered 503 may have landed
                        assert counts[i] + 1 <= body["n"] <= counts[i] + 1 + unsure[i], (kind, i, counts[i], body)
                        counts[i], unsure[i] = body["n"], 0
                        return
                    unsure[i] += 1
                    assert time.monotonic() < deadline, (kind, i, "not served again", body)
                    await asyncio.sleep(0.05)

            async def all_users_served() -> None:
                await asyncio.gather(*(serve(i) for i in range(USERS)))

            await all_users_served()
            for cut in (1, 2):
                for proxy in proxies:
                    proxy.black_hole()
                stranger = await clients.enter_async_context(
                    httpx.AsyncClient(transport=transport, base_url="https://testserver"))
                results = await asyncio.gather(*(_timed(user, "/inc") for user in [*users, stranger]))
                for status, took, body in results:
                    assert status == 503, (kind, cut, status, body)  # never a 500, never a success
                    assert took <= LIMIT, (kind, cut, f"a 503 after {took:.2f} s")
                for proxy in proxies:
                    await proxy.restore()
                # Each user is served again within RECOVERY. (On CPython 3.12+ a command timed out in the hole
                # left redis-py's cluster client writing to a lost connection, and asyncio's writelines()
                # raised a bare TypeError, gh-136234: a 500 until the Redis backend mapped it.)
                # A driver may still see the hole
                # after the path is back: PyMongo's monitor, whose socket went silent, times out
                # late and resets the pool, cancelling operations in flight; those answer 503.
                await all_users_served()
        await cleanup()


@pytest.mark.parametrize("kind", ["postgres", "mysql", "redis", "redis-cluster", "mongodb"])
async def test_connections_reset_under_the_pool_give_503s_at_worst_then_recover(
        kind: str, request: pytest.FixtureRequest) -> None:
    """A server restart or a failover resets every pooled connection (RST), which the pool notices only
    when it uses one: the next requests may answer 503, never 500, and every user is served again."""
    async with _through_proxy(kind, request) as (backend, proxies, cleanup):
        transport = httpx.ASGITransport(app=_app(backend))
        async with AsyncExitStack() as clients:
            users = [await clients.enter_async_context(httpx.AsyncClient(transport=transport,
                                                                         base_url="https://testserver"))
                     for _ in range(USERS)]
            for user in users:
                assert (await _timed(user, "/inc"))[0] == 200
            for proxy in proxies:
                await proxy.cut()
                await proxy.restore()
            await asyncio.sleep(0.05)  # the resets reach the pooled connections
            for status, _, body in await asyncio.gather(*(_timed(user, "/inc") for user in users)):
                assert status in (200, 503), (kind, status, body)
            deadline = time.monotonic() + RECOVERY
            for user in users:
                while (status := (await _timed(user, "/inc"))[0]) != 200:
                    assert status == 503, (kind, status)
                    assert time.monotonic() < deadline, (kind, "not served again")
                    await asyncio.sleep(0.05)
        await cleanup()
