"""The session size cap: a save over ``max_session_size`` stores nothing and fails clearly (413 in the app)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from conftest import app_with, client_for
from fastapi_sessions import (
    ConfigurationError,
    SessionError,
    SessionManager,
    SessionSettings,
    SessionTooLarge,
)
from fastapi_sessions._core.options import DEFAULT_MAX_SESSION_SIZE
from fastapi_sessions.backends.in_memory import InMemoryBackend

LIMIT = 200


def sized(total: int) -> dict[str, str]:
    """Session data that serializes to exactly ``total`` bytes: {"v":"xx…"}."""
    return {"v": "x" * (total - 8)}


def cap_app(manager: SessionManager) -> FastAPI:
    app = app_with(manager)

    @app.post("/put")
    async def put(request: Request, size: int, key: str = "v") -> dict[str, bool]:
        request.session[key] = "x" * size
        return {"ok": True}

    @app.post("/login")
    async def login(request: Request, size: int) -> dict[str, bool]:
        request.session.user_id = "alice"
        request.session["v"] = "x" * size
        return {"ok": True}

    @app.post("/regenerate")
    async def regenerate(request: Request, size: int) -> dict[str, bool]:
        request.session.regenerate()
        request.session["v"] = "x" * size
        return {"ok": True}

    @app.post("/create")
    async def create(size: int) -> dict[str, str]:
        return {"id": await manager.create_session({"v": "x" * size})}

    @app.get("/read")
    async def read(request: Request) -> dict[str, Any]:
        return dict(request.session)

    return app


@pytest.fixture
def capped(make_manager: Callable[..., SessionManager]) -> SessionManager:
    return make_manager(max_session_size=LIMIT)


def assert_refused(response: Any) -> None:
    assert response.status_code == 413
    assert response.json() == {"detail": f"The session data is too large (limit: {LIMIT} bytes); nothing was saved."}
    assert "set-cookie" not in response.headers


def test_the_default_cap_is_64_kib_and_documented_in_the_error_tree() -> None:
    assert DEFAULT_MAX_SESSION_SIZE == 64 * 1024
    assert SessionSettings().max_session_size == 64 * 1024
    assert issubclass(SessionTooLarge, SessionError)
    from fastapi_sessions import errors

    assert "SessionTooLarge" in (errors.__doc__ or "")


def test_a_new_session_over_the_cap_stores_nothing(
    capped: SessionManager, backend: InMemoryBackend, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(cap_app(capped))
    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        assert_refused(client.post("/put", params={"size": LIMIT}))
    assert len(backend) == 0
    [logged] = caplog.records
    assert "over max_session_size=200" in logged.getMessage()
    assert "xxxx" not in logged.getMessage() and logged.exc_info is None


def test_exactly_at_the_cap_is_stored_one_byte_more_is_not(capped: SessionManager, backend: InMemoryBackend) -> None:
    client = client_for(cap_app(capped))
    assert client.post("/put", params={"size": LIMIT - 8}).status_code == 200
    assert [len(r.payload) for r in backend._records.values()] == [LIMIT]
    before = backend._records
    assert_refused(client.post("/put", params={"size": LIMIT - 7}))
    assert backend._records == before


def test_an_existing_session_over_the_cap_keeps_its_stored_data(
    capped: SessionManager, backend: InMemoryBackend, caplog: pytest.LogCaptureFixture
) -> None:
    client = client_for(cap_app(capped))
    client.post("/put", params={"size": 10})
    before = backend._records
    cookie = client.cookies["session"]
    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        assert_refused(client.post("/put", params={"size": LIMIT, "key": "w"}))
    assert backend._records == before
    [logged] = caplog.records
    assert cookie not in logged.getMessage()
    assert client.get("/read").json() == {"v": "x" * 10}


@pytest.mark.parametrize("route", ["/login", "/regenerate"])
def test_a_login_or_regeneration_over_the_cap_changes_nothing(
    capped: SessionManager, backend: InMemoryBackend, route: str
) -> None:
    client = client_for(cap_app(capped))
    client.post("/put", params={"size": 10})
    before = backend._records
    assert_refused(client.post(route, params={"size": LIMIT}))
    assert backend._records == before
    assert client.get("/read").json() == {"v": "x" * 10}
    assert asyncio.run(capped.list_sessions("alice")) == []


def test_a_dead_token_over_the_cap_leaves_no_marker(capped: SessionManager, backend: InMemoryBackend) -> None:
    client = client_for(cap_app(capped))
    client.post("/put", params={"size": 10})
    asyncio.run(backend.delete(next(iter(backend._records))))
    assert_refused(client.post("/put", params={"size": LIMIT}))
    assert len(backend) == 0
    # The dead cookie is still cleared by the next small save, as without the refusal.
    response = client.post("/put", params={"size": 10})
    assert response.status_code == 200 and "set-cookie" in response.headers


def test_create_session_over_the_cap_raises_and_is_a_413_in_a_route(
    capped: SessionManager, backend: InMemoryBackend
) -> None:
    with pytest.raises(SessionTooLarge) as caught:
        asyncio.run(capped.create_session(sized(LIMIT + 1)))
    assert (caught.value.size, caught.value.limit) == (LIMIT + 1, LIMIT)
    assert len(backend) == 0
    assert_refused(client_for(cap_app(capped)).post("/create", params={"size": LIMIT}))
    assert len(backend) == 0


def test_a_merge_that_grows_over_the_cap_keeps_the_winner(capped: SessionManager, backend: InMemoryBackend) -> None:
    """Two requests each under the cap, together over it: the later save fails, the earlier stays."""
    async def scenario() -> None:
        token = capped.frontend.unsign(await capped.create_session({"a": "1"})) or ""
        first, second = await capped.load(token), await capped.load(token)
        first["b"] = "x" * 120
        second["c"] = "y" * 120
        await capped.commit(first)
        stored = backend._records
        with pytest.raises(SessionTooLarge):
            await capped.commit(second)
        assert backend._records == stored

    asyncio.run(scenario())


def test_a_regeneration_that_merges_over_the_cap_removes_its_new_record(
    capped: SessionManager, backend: InMemoryBackend
) -> None:
    async def scenario() -> None:
        token = capped.frontend.unsign(await capped.create_session({"a": "1"})) or ""
        first, second = await capped.load(token), await capped.load(token)
        first["b"] = "x" * 120
        await capped.commit(first)
        stored = backend._records
        second.regenerate()
        second["c"] = "y" * 120
        with pytest.raises(SessionTooLarge):
            await capped.commit(second)
        assert backend._records == stored
        assert second.key == first.key and second.modified  # the session object is as before the attempt

    asyncio.run(scenario())


def test_none_turns_the_cap_off(make_manager: Callable[..., SessionManager], backend: InMemoryBackend) -> None:
    client = client_for(cap_app(make_manager(max_session_size=None)))
    assert client.post("/put", params={"size": DEFAULT_MAX_SESSION_SIZE + 1}).status_code == 200
    assert_default = client_for(cap_app(make_manager()))
    response = assert_default.post("/put", params={"size": DEFAULT_MAX_SESSION_SIZE})
    assert response.status_code == 413


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "1000"])
def test_a_bad_cap_is_a_configuration_error(make_manager: Callable[..., SessionManager], bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_session_size"):
        make_manager(max_session_size=bad)


@pytest.mark.parametrize(("raw", "expected"), [("1000", 1000), ("none", None), ("OFF", None)])
def test_the_cap_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, raw: str, expected: int | None) -> None:
    monkeypatch.setenv("FASTAPI_SESSIONS_MAX_SESSION_SIZE", raw)
    assert SessionManager.from_settings(SessionSettings()).max_session_size == expected


@pytest.mark.parametrize("raw", ["0", "-5", "lots", ""])
def test_a_bad_cap_in_the_environment_is_a_validation_error(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("FASTAPI_SESSIONS_MAX_SESSION_SIZE", raw)
    with pytest.raises(ValidationError):
        SessionSettings()


def test_a_refused_save_is_not_a_server_error_even_without_the_client_raising(capped: SessionManager) -> None:
    client = TestClient(cap_app(capped), base_url="https://testserver", raise_server_exceptions=False)
    assert_refused(client.post("/put", params={"size": 10 * LIMIT}))
