"""Flash messages: shown once, kept in session metadata, no write for a page that has none to show."""

from __future__ import annotations

from typing import Any

import httpx2 as httpx
import pytest
from fastapi import FastAPI, Request

from conftest import SECRET, BackendFactory, app_with, client_for, stored_sessions
from fastapi_sessions import (
    InMemoryBackend,
    SessionManager,
    flash,
    get_flashed_messages,
    session_of,
    utc_now,
)
from fastapi_sessions.frontends import SessionFrontend


def flash_app(manager: SessionManager) -> FastAPI:
    app = app_with(manager)

    @app.post("/flash/{category}/{message}")
    async def add(request: Request, category: str, message: str) -> None:
        flash(request, message, category)

    @app.get("/page")
    async def page(request: Request, only: str | None = None) -> dict[str, Any]:
        categories = () if only is None else only.split(",")
        return {"messages": get_flashed_messages(request, with_categories=True, category_filter=categories)}

    @app.get("/twice")
    async def twice(request: Request) -> list[list[str]]:
        return [get_flashed_messages(request), get_flashed_messages(request)]

    @app.get("/plain")
    async def plain(request: Request) -> dict[str, Any]:
        return {"messages": get_flashed_messages(request), "data": dict(request.session)}

    @app.post("/data/{key}/{value}")
    async def data(request: Request, key: str, value: str) -> None:
        request.session[key] = value

    @app.post("/login/{user}")
    async def login(request: Request, user: str) -> None:
        session_of(request).user_id = user
        flash(request, f"Welcome, {user}")

    @app.post("/logout")
    async def logout(request: Request) -> None:
        request.session.clear()
        flash(request, "You have been signed out", "success")

    @app.post("/logout-and-login/{user}")
    async def relogin(request: Request, user: str) -> None:
        request.session.clear()
        session_of(request).user_id = user

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        return {"user": session_of(request).user_id, "data": dict(request.session)}

    return app


@pytest.fixture
def client(manager: SessionManager) -> Any:
    return client_for(flash_app(manager))


def test_a_flash_is_shown_once_on_the_next_page(client: Any) -> None:
    client.post("/flash/info/Saved")
    client.post("/flash/error/Card declined")
    assert client.get("/page").json() == {"messages": [["info", "Saved"], ["error", "Card declined"]]}
    assert client.get("/page").json() == {"messages": []}


def test_messages_without_categories_and_kept_apart_from_the_data(client: Any) -> None:
    client.post("/data/cart/3")
    client.post("/flash/info/Added")
    assert client.get("/plain").json() == {"messages": ["Added"], "data": {"cart": "3"}}


def test_a_filter_takes_only_its_categories_and_leaves_the_others(client: Any) -> None:
    for category, message in [("info", "a"), ("error", "b"), ("warning", "c"), ("error", "d")]:
        client.post(f"/flash/{category}/{message}")
    assert client.get("/page", params={"only": "error"}).json() == {"messages": [["error", "b"], ["error", "d"]]}
    assert client.get("/page", params={"only": "error"}).json() == {"messages": []}
    assert client.get("/page").json() == {"messages": [["info", "a"], ["warning", "c"]]}


def test_two_reads_in_one_request_see_the_same_messages(client: Any) -> None:
    client.post("/flash/info/once")
    assert client.get("/twice").json() == [["once"], ["once"]]
    assert client.get("/twice").json() == [[], []]


def test_reading_with_nothing_to_show_writes_nothing(client: Any, backend: InMemoryBackend) -> None:
    first = client.get("/page")  # anonymous, no session at all: none is created
    assert first.json() == {"messages": []} and "set-cookie" not in first.headers
    assert stored_sessions(backend) == {}
    client.post("/data/a/1")
    ((key, record),) = stored_sessions(backend).items()
    for _ in range(3):
        assert client.get("/page").json() == {"messages": []}
    assert stored_sessions(backend)[key].version == record.version
    client.post("/flash/info/x")
    version = stored_sessions(backend)[key].version
    client.get("/page", params={"only": "error"})  # nothing of that category: nothing consumed, nothing written
    assert stored_sessions(backend)[key].version == version
    client.get("/page")  # a message consumed: one write
    assert stored_sessions(backend)[key].version == version + 1


def test_a_flash_only_session_ends_once_its_messages_are_read(client: Any, backend: InMemoryBackend) -> None:
    client.post("/flash/info/hello")
    assert len(stored_sessions(backend)) == 1
    assert client.get("/page").json() == {"messages": [["info", "hello"]]}
    assert stored_sessions(backend) == {}


def test_a_flash_survives_a_login(client: Any) -> None:
    client.post("/flash/info/before")
    client.post("/login/alice")
    assert client.get("/page").json() == {"messages": [["info", "before"], ["info", "Welcome, alice"]]}


def test_messages_must_be_strings(manager: SessionManager) -> None:
    app = app_with(manager)

    @app.post("/bad")
    async def bad(request: Request) -> None:
        flash(request, {"not": "a string"})  # type: ignore[arg-type]

    with pytest.raises(TypeError, match="must be str"):
        client_for(app).post("/bad")


def test_a_write_after_logout_without_flash_starts_a_fresh_session(client: Any, backend: InMemoryBackend) -> None:
    client.post("/data/secret/1")
    client.post("/login/alice")
    old_cookie = client.cookies["session"]
    response = client.post("/logout-and-login/bob")
    assert response.status_code == 200 and client.cookies["session"] != old_cookie
    assert client.get("/whoami").json() == {"user": "bob", "data": {}}
    ((record),) = stored_sessions(backend).values()
    assert record.user_id == "bob"


@pytest.mark.asyncio
async def test_a_flash_after_logout_reaches_the_next_page_on_every_backend(lifecycle_backend: BackendFactory) -> None:
    backend = lifecycle_backend(utc_now)
    manager = SessionManager(backend, SessionFrontend(secret_key=SECRET))
    app = flash_app(manager)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver") as client:
            await client.post("/data/secret/s3")
            await client.post("/login/alice")
            assert (await client.get("/page")).json()["messages"] == [["info", "Welcome, alice"]]
            signed_in = client.cookies["session"]

            response = await client.post("/logout")
            assert response.status_code == 200
            assert client.cookies["session"] != signed_in  # a new anonymous session, not the old one cleared
            assert (await client.get("/whoami")).json() == {"user": None, "data": {}}
            assert (await client.get("/page")).json() == {"messages": [["success", "You have been signed out"]]}
            assert (await client.get("/page")).json() == {"messages": []}
            assert await manager.list_sessions("alice") == []

            assert await manager.get_session(signed_in) is None  # the logout ended that session
    finally:
        await backend.aclose()
