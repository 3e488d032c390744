"""Round trips per request, counted by the server itself (``INFO commandstats`` deltas).

A private redis-server serves these tests, so nothing else moves its counters.
Commands a Lua script runs are counted by Redis too; they are listed apart
from the script call and cost no round trip.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request
from redis.asyncio import Redis

from fastapi_sessions import SessionManager, SessionMiddleware
from fastapi_sessions.backends.redis import RedisBackend
from fastapi_sessions.backends.redis._scripts import READ_AND_TOUCH
from fastapi_sessions.frontends import SessionFrontend
from test_redis_outage import SECRET, RedisProcess


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    server = RedisProcess(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def command_counts(client: Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    changed = {name: calls - before.get(name, 0) for name, calls in after.items()}
    changed.pop("info", None)  # our own probe
    return {name: calls for name, calls in changed.items() if calls}


class Counted:
    """An app on its own backend, plus a second client that reads the server's counters."""

    def __init__(self, url: str, protocol: int, **manager_options: Any) -> None:
        self.backend = RedisBackend.from_url(url, protocol=protocol)
        self.manager = SessionManager(self.backend, SessionFrontend(secret_key=SECRET), **manager_options)
        app = FastAPI()
        app.add_middleware(SessionMiddleware, manager=self.manager)

        @app.post("/login")
        async def login(request: Request) -> dict[str, Any]:
            request.session["n"] = 0
            return {}

        @app.get("/read")
        async def read(request: Request) -> dict[str, Any]:
            return {"n": request.session["n"]}

        @app.post("/bump")
        async def bump(request: Request) -> dict[str, Any]:
            request.session["n"] += 1
            return {"n": request.session["n"]}

        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver")
        self.probe = Redis.from_url(url)

    async def count(self, method: str, path: str) -> tuple[httpx.Response, dict[str, int]]:
        before = await command_counts(self.probe)
        response = await self.http.request(method, path)
        return response, delta(before, await command_counts(self.probe))

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.probe.aclose()
        await self.backend.aclose()


@pytest_asyncio.fixture(params=[3, 2], ids=["resp3", "resp2"])
async def counted(request: pytest.FixtureRequest, private_redis: RedisProcess) -> AsyncIterator[Counted]:
    app = Counted(private_redis.url, request.param)
    assert (await app.http.post("/login")).status_code == 200
    # Warm up: a pooled connection, and every script the requests use cached on the server.
    assert (await app.http.get("/read")).status_code == 200
    assert (await app.http.post("/bump")).json() == {"n": 1}
    try:
        yield app
    finally:
        await app.aclose()


@pytest.mark.asyncio
async def test_a_read_only_request_is_one_command(counted: Counted) -> None:
    response, commands = await counted.count("GET", "/read")
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    # One plain GET: this process knows the session's expiry, so no extension can be due.
    assert commands == {"get": 1}


@pytest.mark.asyncio
async def test_a_modifying_request_is_the_read_plus_one_compare_and_set(counted: Counted) -> None:
    response, commands = await counted.count("POST", "/bump")
    assert (response.status_code, response.json()) == (200, {"n": 2})
    # The read (a GET), then one EVALSHA: the CAS script, whose GETRANGE and SET run inside it.
    assert commands == {"get": 1, "evalsha": 1, "getrange": 1, "set": 1}


@pytest.mark.asyncio
async def test_a_read_only_request_in_a_fresh_process_is_one_script_call(
    counted: Counted, private_redis: RedisProcess
) -> None:
    cookie = counted.http.cookies
    fresh = Counted(private_redis.url, 3)  # another worker: it has never seen this session
    try:
        fresh.http.cookies = cookie
        await fresh.backend.client.ping()  # its connection's handshake is not the request's
        await fresh.probe.script_load(READ_AND_TOUCH.source)  # as any earlier worker would have
        response, commands = await fresh.count("GET", "/read")
        assert (response.status_code, response.json()) == (200, {"n": 1})
        assert commands == {"evalsha": 1, "get": 1}  # the fused read-and-touch; its GET runs inside
        response, commands = await fresh.count("GET", "/read")
        assert commands == {"get": 1}
    finally:
        await fresh.aclose()


@pytest.mark.asyncio
async def test_an_idle_extension_rides_on_the_read(private_redis: RedisProcess) -> None:
    # With a refresh interval this short, every read is due for an idle extension.
    app = Counted(private_redis.url, 3, idle_timeout=timedelta(minutes=30),
                  idle_refresh_interval=timedelta(microseconds=1))
    try:
        await app.http.post("/login")
        await app.http.get("/read")
        response, commands = await app.count("GET", "/read")
        assert response.status_code == 200
        assert "set-cookie" not in response.headers  # the cookie already lives to the absolute deadline
        assert commands == {"evalsha": 1, "get": 1, "setrange": 1, "pexpire": 1}
    finally:
        await app.aclose()


@pytest.mark.asyncio
async def test_scripts_are_reloaded_after_the_server_forgets_them(counted: Counted) -> None:
    await counted.probe.script_flush()
    response, commands = await counted.count("POST", "/bump")
    assert response.status_code == 200
    # The CAS script: EVALSHA answered NOSCRIPT, then EVAL ran it (and cached it again).
    assert (commands["evalsha"], commands["eval"]) == (1, 1)
    response, commands = await counted.count("POST", "/bump")
    assert (response.json(), commands["evalsha"], commands.get("eval", 0)) == ({"n": 3}, 1, 0)


@pytest.mark.asyncio
async def test_the_connection_speaks_the_requested_protocol(counted: Counted, request: pytest.FixtureRequest) -> None:
    expected = 3 if "resp3" in request.node.callspec.id else 2
    info = await counted.backend.client.execute_command("CLIENT", "INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    assert f"resp={expected}" in text
