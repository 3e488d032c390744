"""The library's own per-session state (CSRF token, flashes, device metadata) lives beside the data.

It is stored in the same payload, under reserved top-level keys, so it costs no
extra write and merges key by key under concurrent saves; the application's
view of the session (the dict, ``manager.model``) never contains it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2 as httpx
import pytest
from fastapi import Request

from conftest import SECRET, app_with, client_for, stored_sessions
from fastapi_sessions import InMemoryBackend, SessionManager, session_of
from fastapi_sessions._core.session import META_PREFIX
from fastapi_sessions.frontends import CookieFrontend


def _app(manager: SessionManager) -> Any:
    app = app_with(manager)

    @app.post("/meta/{name}/{value}")
    async def set_meta(name: str, value: str, request: Request) -> dict[str, Any]:
        session_of(request).set_meta(name, value)
        return dict(request.session)

    @app.get("/meta/{name}")
    async def get_meta(name: str, request: Request) -> dict[str, Any]:
        return {"value": session_of(request).get_meta(name), "data": dict(request.session)}

    @app.delete("/meta/{name}")
    async def pop_meta(name: str, request: Request) -> dict[str, Any]:
        return {"value": session_of(request).pop_meta(name)}

    @app.post("/data/{key}/{value}")
    async def set_data(key: str, value: str, request: Request) -> dict[str, Any]:
        request.session[key] = value
        return dict(request.session)

    @app.post("/logout")
    async def logout(request: Request) -> None:
        request.session.clear()

    return app


def test_metadata_round_trips_apart_from_the_data(manager: SessionManager, backend: InMemoryBackend) -> None:
    client = client_for(_app(manager))
    assert client.post("/meta/csrf/t0k").json() == {}  # an anonymous session with metadata only is stored
    assert "session" in client.cookies
    assert client.post("/data/cart/1").json() == {"cart": "1"}
    assert client.get("/meta/csrf").json() == {"value": "t0k", "data": {"cart": "1"}}
    (record,) = stored_sessions(backend).values()
    assert manager.serializer.loads(record.payload) == {"cart": "1", META_PREFIX + "csrf": "t0k"}


def test_reading_or_popping_absent_metadata_writes_nothing(manager: SessionManager, backend: InMemoryBackend) -> None:
    client = client_for(_app(manager))
    client.post("/data/a/1")
    (before,) = stored_sessions(backend).values()
    assert client.get("/meta/missing").json()["value"] is None
    assert client.delete("/meta/missing").json() == {"value": None}
    (after,) = stored_sessions(backend).values()
    assert after.version == before.version


def test_popping_the_last_metadata_of_an_empty_session_ends_it(manager: SessionManager,
                                                                backend: InMemoryBackend) -> None:
    client = client_for(_app(manager))
    client.post("/meta/flash/hello")
    assert len(stored_sessions(backend)) == 1
    assert client.delete("/meta/flash").json() == {"value": "hello"}
    assert stored_sessions(backend) == {}


def test_logout_drops_the_metadata_with_the_data(manager: SessionManager, backend: InMemoryBackend) -> None:
    client = client_for(_app(manager))
    client.post("/data/a/1")
    client.post("/meta/csrf/t0k")
    client.post("/logout")
    assert stored_sessions(backend) == {}
    assert client.get("/meta/csrf").json() == {"value": None, "data": {}}


def test_payloads_written_before_metadata_existed_load_unchanged(manager: SessionManager) -> None:
    async def run() -> None:
        session_id = await manager.create_session({"a": 1, "nested": {"META": "x"}})
        session = await manager.get_session(session_id)
        assert session is not None and dict(session) == {"a": 1, "nested": {"META": "x"}}
        assert session.get_meta("csrf") is None

    asyncio.run(run())


@pytest.mark.asyncio
async def test_concurrent_saves_merge_metadata_and_data_key_by_key() -> None:
    backend = InMemoryBackend()
    manager = SessionManager(backend, CookieFrontend(SECRET))
    gate = asyncio.Event()
    app = _app(manager)

    @app.post("/slow/{key}")
    async def slow(key: str, request: Request) -> None:
        await gate.wait()  # loaded before the other tab's save, saved after it
        session_of(request).set_meta(key, "late")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver") as client:
        await client.post("/data/first/1")
        slow = asyncio.create_task(client.post("/slow/csrf"))
        await asyncio.sleep(0.05)
        await client.post("/data/second/2")
        gate.set()
        assert (await slow).status_code == 200
        body = (await client.get("/meta/csrf")).json()
    assert body == {"value": "late", "data": {"first": "1", "second": "2"}}


def test_a_custom_serializer_keeps_metadata_too(make_manager: Any, backend: InMemoryBackend) -> None:
    import json

    class Reversed:
        """A serializer whose bytes do not show the keys: the reserved prefix must be found after decoding."""

        def dumps(self, data: Any) -> bytes:
            return json.dumps(dict(data)).encode()[::-1]

        def loads(self, payload: bytes) -> dict[str, Any]:
            return dict(json.loads(payload[::-1]))

    client = client_for(_app(make_manager(serializer=Reversed())))
    client.post("/meta/csrf/t0k")
    client.post("/data/a/1")
    assert client.get("/meta/csrf").json() == {"value": "t0k", "data": {"a": "1"}}


def test_a_change_of_user_drops_the_login_scoped_metadata(manager: SessionManager) -> None:
    app = _app(manager)

    @app.post("/login/{user}")
    async def login(user: str, request: Request) -> None:
        session_of(request).user_id = user

    client = client_for(app)
    client.post("/meta/csrf/before")
    client.post("/meta/device/laptop")
    client.post("/meta/flash/kept")
    client.post("/login/alice")
    assert client.get("/meta/csrf").json()["value"] is None  # a token seen before the login is no use after it
    assert client.get("/meta/device").json()["value"] == {"user_agent": "testclient"}  # the login's own device
    assert client.get("/meta/flash").json()["value"] == "kept"
