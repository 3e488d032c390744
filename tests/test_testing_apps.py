"""App-test helpers: ``testing.login`` logs a client in through any real backend; ``controlled_clock`` moves time.

No ``from __future__ import annotations``: FastAPI must see the routes' real ``Depends(manager.user)``.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

import httpx2 as httpx
import pytest
import pytest_asyncio
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from conftest import SECRET
from fastapi_sessions import (
    ConfigurationError,
    CookieFrontend,
    HeaderFrontend,
    InMemoryBackend,
    ManualClock,
    Session,
    SessionManager,
    SessionMiddleware,
)
from fastapi_sessions.testing import clock_fixture, controlled_clock, login


def _app(manager: SessionManager) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=manager)

    @app.get("/me")
    async def me(user: Annotated[str, Depends(manager.user)],
                 session: Annotated[Session, Depends(manager.session)]) -> dict[str, object]:
        return {"user": user, "data": dict(session)}

    return app


def test_login_sets_the_cookie_of_a_starlette_test_client() -> None:
    manager = SessionManager(InMemoryBackend(), CookieFrontend(SECRET))
    client = TestClient(_app(manager))
    assert client.get("/me").status_code == 401
    session_id = asyncio.run(login(client, manager, user_id="alice", data={"theme": "dark"}))
    assert client.cookies["session"] == session_id
    assert client.get("/me").json() == {"user": "alice", "data": {"theme": "dark"}}


@pytest.mark.asyncio
@pytest.mark.parametrize("bearer", [False, True])
async def test_login_sets_the_header_of_the_header_frontend(bearer: bool) -> None:
    manager = SessionManager(InMemoryBackend(), HeaderFrontend(SECRET, bearer=bearer))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(manager)), base_url="http://t") as client:
        await login(client, manager, user_id="bob")
        assert (await client.get("/me")).json()["user"] == "bob"
        assert not client.cookies


@pytest_asyncio.fixture
async def redis_manager(redis_url: str) -> AsyncIterator[SessionManager]:
    manager = SessionManager.from_url(redis_url, secret_key=SECRET, backend_options={"prefix": "fs-apps:"})
    async with manager:
        yield manager


@pytest.mark.asyncio
async def test_login_makes_a_real_indexed_session_on_a_server_backend(redis_manager: SessionManager) -> None:
    app = _app(redis_manager)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://t") as client:
        await login(client, redis_manager, user_id="carol-apps")
        assert (await client.get("/me")).status_code == 200
        assert await redis_manager.revoke_user("carol-apps") == 1  # it is in the user's index
        assert (await client.get("/me")).status_code == 401


@pytest.mark.asyncio
async def test_controlled_clock_crosses_the_idle_timeout_and_restores_the_clock() -> None:
    manager = SessionManager(InMemoryBackend(), CookieFrontend(SECRET), idle_timeout=timedelta(minutes=30))
    system = manager.clock
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(manager)), base_url="https://t") as client:
        with controlled_clock(manager) as clock:
            await login(client, manager, user_id="dave")
            clock.advance(minutes=29)
            assert (await client.get("/me")).status_code == 200  # used: the idle deadline moves on
            clock.advance(minutes=29)
            assert (await client.get("/me")).status_code == 200
            clock.advance(minutes=31)
            assert (await client.get("/me")).status_code == 401
    assert manager.clock is system


@pytest.mark.asyncio
async def test_login_refuses_what_it_cannot_do() -> None:
    manager = SessionManager(InMemoryBackend(), CookieFrontend(SECRET))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(manager)), base_url="https://t") as client:
        with pytest.raises(ConfigurationError) as caught:
            await login(client, manager, user_id="")
        assert caught.value.setting == "user_id"


CLOCKED = SessionManager(InMemoryBackend(), CookieFrontend(SECRET), absolute_timeout=timedelta(hours=8))
session_clock = clock_fixture(CLOCKED)


@pytest.mark.asyncio
async def test_the_clock_fixture_runs_the_manager_on_a_manual_clock(session_clock: ManualClock) -> None:
    assert CLOCKED.clock is session_clock
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(CLOCKED)), base_url="https://t") as client:
        await login(client, CLOCKED, user_id="erin")
        session_clock.advance(hours=7, minutes=59)
        assert (await client.get("/me")).status_code == 401  # idle: 30 minutes by default
        await login(client, CLOCKED, user_id="erin")
        for _ in range(16):
            session_clock.advance(minutes=29)
            assert (await client.get("/me")).status_code == 200
        session_clock.advance(minutes=29)
        assert (await client.get("/me")).status_code == 401  # 8 h 13 min after login: past the absolute limit


def test_the_clock_fixture_gives_the_manager_its_clock_back() -> None:
    assert not isinstance(CLOCKED.clock, ManualClock)
