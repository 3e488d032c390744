"""Lifecycle events: what the manager and the middleware report to ``manager.add_listener`` listeners.

Events are the manager's, so the in-memory backend (plain and fused) stands in
for every store here; what a real server adds is in tests/test_otel.py. Each
test reads the events after ``drain_events()``: delivery happens in tasks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import httpx2 as httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request

from conftest import SECRET, app_with
from fastapi_sessions import (
    BackendUnavailable,
    ConfigurationError,
    ManualClock,
    SessionConflict,
    SessionEvent,
    SessionManager,
    session_of,
)
from fastapi_sessions._core import events as events_module
from fastapi_sessions._core.tokens import storage_key
from fastapi_sessions.backends.in_memory import InMemoryBackend
from fastapi_sessions.frontends import SessionFrontend

pytestmark = pytest.mark.asyncio


class Recorder:
    """A listener object with an async ``__call__``: keeps every event it is given."""

    def __init__(self) -> None:
        self.events: list[SessionEvent] = []

    async def __call__(self, event: SessionEvent) -> None:
        await asyncio.sleep(0)  # a listener that awaits: order must hold anyway
        self.events.append(event)

    def kinds(self) -> list[tuple[str, str | None]]:
        return [(e.kind.value, e.reason) for e in self.events]


def events_app(manager: SessionManager) -> FastAPI:
    app = app_with(manager)

    @app.post("/set/{key}/{value}")
    async def set_value(key: str, value: str, request: Request) -> None:
        request.session[key] = value

    @app.post("/pop/{key}")
    async def pop(key: str, request: Request) -> None:
        request.session.pop(key, None)

    @app.post("/login/{user}")
    async def login(user: str, request: Request) -> None:
        session_of(request).user_id = user

    @app.post("/switch-off")  # logout that keeps the data (a cart, say): the token is regenerated
    async def switch_off(request: Request) -> None:
        session_of(request).user_id = None

    @app.post("/regenerate")
    async def regenerate(request: Request) -> None:
        session_of(request).regenerate()

    @app.post("/logout")
    async def logout(request: Request) -> None:
        session_of(request).invalidate()

    @app.get("/read")
    async def read(request: Request) -> dict[str, Any]:
        return dict(request.session)

    return app


@pytest_asyncio.fixture
async def client(manager: SessionManager) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=events_app(manager))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as http:
        yield http


async def delivered(manager: SessionManager, recorder: Recorder) -> list[tuple[str, str | None]]:
    assert await manager.drain_events() == 0
    return recorder.kinds()


def prefix(cookie: str, manager: SessionManager) -> str:
    token = manager.frontend.unsign(cookie)
    assert token is not None
    return storage_key(token)[:8]


async def test_a_session_lifecycle_fires_one_event_per_step(
    manager: SessionManager, client: httpx.AsyncClient
) -> None:
    recorder = Recorder()
    manager.add_listener(recorder)
    await client.post("/set/cart/1")
    first = client.cookies["session"]
    await client.post("/set/cart/2")
    await client.get("/read")  # a read fires nothing (loaded is off by default)
    await client.post("/login/alice")
    second = client.cookies["session"]
    await client.post("/regenerate")
    await client.post("/switch-off")
    third = client.cookies["session"]
    await client.post("/logout")
    assert await delivered(manager, recorder) == [
        ("created", None), ("saved", None), ("regenerated", "login"), ("regenerated", "regenerate"),
        ("regenerated", "logout"), ("ended", "logout"),
    ]
    created, saved, login, regenerate, switch_off, ended = recorder.events
    assert created.key_prefix == saved.key_prefix == prefix(first, manager) and created.user_id is None
    assert login.previous_key_prefix == prefix(first, manager) and login.key_prefix == prefix(second, manager)
    assert login.user_id == regenerate.user_id == "alice"
    assert switch_off.user_id == "alice"  # the user who logged out
    assert ended.key_prefix == prefix(third, manager) and ended.user_id is None
    assert all(e.timestamp == manager.clock() for e in recorder.events)
    tokens = [manager.frontend.unsign(cookie) or "" for cookie in (first, second, third)]
    forbidden = [first, second, third, *tokens, *(storage_key(token) for token in tokens)]
    for event in recorder.events:  # no cookie, no token, no whole storage key in any field
        for value in (event.key_prefix, event.previous_key_prefix, event.user_id, event.reason):
            assert value is None or not any(secret in value for secret in forbidden)


async def test_a_session_emptied_key_by_key_ends(manager: SessionManager, client: httpx.AsyncClient) -> None:
    recorder = Recorder()
    manager.add_listener(recorder)
    await client.post("/set/a/1")
    await client.post("/pop/a")
    assert await delivered(manager, recorder) == [("created", None), ("ended", "emptied")]


async def test_an_expiry_is_seen_when_the_token_comes_back(
    manager: SessionManager, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    recorder = Recorder()
    await client.post("/set/a/1")
    cookie = client.cookies["session"]
    manager.add_listener(recorder)
    clock.advance(manager.idle_timeout + timedelta(seconds=1))
    assert (await client.get("/read")).json() == {}
    assert await delivered(manager, recorder) == [("ended", "expired")]
    assert recorder.events[0].key_prefix == prefix(cookie, manager)


async def test_revocations_say_what_and_how_many(manager: SessionManager) -> None:
    recorder = Recorder()
    manager.add_listener(recorder)
    ids = [await manager.create_session({"n": n}, user_id="bob") for n in range(3)]
    [info, *_] = await manager.list_sessions("bob")
    assert await manager.revoke(info.key)
    assert not await manager.revoke(info.key)  # nothing ended: no event
    assert await manager.revoke_user("bob") == 2
    assert await manager.revoke_user("bob") == 0
    assert await manager.delete_session(ids[0]) is False  # already revoked
    assert await delivered(manager, recorder) == [("created", None)] * 3 + [
        ("revoked", "revoke"), ("revoked", "revoke_user")]
    revoke, everywhere = recorder.events[3:]
    assert revoke.key_prefix == info.key[:8] and revoke.count == 1
    assert everywhere.user_id == "bob" and everywhere.count == 2 and everywhere.key_prefix is None


async def test_the_direct_api_fires_created_saved_and_ended(manager: SessionManager) -> None:
    recorder = Recorder()
    manager.add_listener(recorder)
    session_id = await manager.create_session({"a": 1}, user_id="carol")
    session = await manager.get_session(session_id)
    assert session is not None
    session["b"] = 2
    await manager.save_session(session)
    assert await manager.delete_session(session_id)
    assert await delivered(manager, recorder) == [("created", None), ("saved", None), ("ended", "logout")]
    assert recorder.events[0].user_id == recorder.events[1].user_id == "carol"


async def test_a_merged_conflict_and_a_raised_one(make_manager: Callable[..., SessionManager]) -> None:
    recorder = Recorder()
    merging = make_manager()
    merging.add_listener(recorder)
    session_id = await merging.create_session({"a": 0})
    mine, theirs = await merging.get_session(session_id), await merging.get_session(session_id)
    assert mine is not None and theirs is not None
    theirs["b"] = 1
    await merging.save_session(theirs)
    mine["a"] = 1
    await merging.save_session(mine)  # lost a compare-and-set: merged key by key
    assert await delivered(merging, recorder) == [("created", None), ("saved", None), ("conflict", "merged"),
                                                  ("saved", None)]
    assert dict(mine) == {"a": 1, "b": 1}

    strict_recorder = Recorder()
    strict = make_manager(conflict_policy="raise")
    strict.add_listener(strict_recorder)
    mine, theirs = await strict.get_session(session_id), await strict.get_session(session_id)
    assert mine is not None and theirs is not None
    theirs["a"] = 2
    await strict.save_session(theirs)
    mine["a"] = 3
    with pytest.raises(SessionConflict):
        await strict.save_session(mine)
    assert await delivered(strict, strict_recorder) == [("saved", None), ("conflict", "raised")]
    assert strict_recorder.events[1].key_prefix == storage_key(strict.frontend.unsign(session_id) or "")[:8]


async def test_a_conflict_answered_with_409_is_reported(make_manager: Callable[..., SessionManager]) -> None:
    manager = make_manager(conflict_policy="raise")
    app = events_app(manager)
    recorder = Recorder()

    @app.post("/race")
    async def race(request: Request) -> None:
        session = session_of(request)
        session["a"] = "mine"
        session_id = manager.frontend.sign(session._token or "")
        other = await manager.get_session(session_id)  # another tab, saving first
        assert other is not None
        other["a"] = "theirs"
        await manager.save_session(other)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver") as client:
        await client.post("/set/a/0")
        manager.add_listener(recorder)
        assert (await client.post("/race")).status_code == 409
    assert await delivered(manager, recorder) == [("saved", None), ("conflict", "raised")]


async def test_an_outage_fires_unavailable_once_and_recovered_with_the_count(
    client: httpx.AsyncClient, manager: SessionManager, backend: InMemoryBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    manager.add_listener(recorder)
    await client.post("/set/a/1")

    async def down(*args: Any, **kwargs: Any) -> Any:
        raise BackendUnavailable("the store is down", backend="memory", operation="read")

    monkeypatch.setattr(backend, "read", down)
    if manager._read_and_touch is not None:  # the fused read, as the manager holds it
        monkeypatch.setattr(manager, "_read_and_touch", down)
    for _ in range(3):
        assert (await client.get("/read")).status_code == 503
    monkeypatch.undo()
    assert (await client.get("/read")).status_code == 200
    assert await delivered(manager, recorder) == [("created", None), ("store_unavailable", "load"),
                                                  ("store_recovered", None)]
    assert recorder.events[-1].count == 3


async def test_loads_are_off_by_default_and_sampled_when_asked(
    manager: SessionManager, client: httpx.AsyncClient
) -> None:
    await client.post("/set/a/1")
    everything, default = Recorder(), Recorder()
    manager.add_listener(everything, sample_loaded=1.0)
    manager.add_listener(default)
    for _ in range(5):
        await client.get("/read")
    assert await delivered(manager, everything) == [("loaded", None)] * 5
    assert default.events == []


async def test_a_failing_or_hanging_listener_never_touches_the_request(
    manager: SessionManager, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    gate = asyncio.Event()
    calls: list[str] = []

    async def failing(event: SessionEvent) -> None:
        raise RuntimeError("the audit sink is broken")

    async def hanging(event: SessionEvent) -> None:
        calls.append(event.kind.value)
        await gate.wait()  # never set

    after = Recorder()
    manager.add_listener(failing)
    manager.add_listener(hanging, timeout=0.05)
    manager.add_listener(after)
    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        response = await client.post("/set/a/1")
        assert response.status_code == 200 and "session" in response.cookies  # answered while a listener hangs
        assert await manager.drain_events() == 0
    assert calls == ["created"] and after.kinds() == [("created", None)]
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("session event listener") and "failing" in m and "failed on a created event" in m
               for m in messages)
    assert any("hanging" in m and "did not finish a created event within 0.05 s" in m for m in messages)


async def test_close_delivers_what_is_pending_and_a_backlog_is_bounded(
    manager: SessionManager, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gate = asyncio.Event()
    seen: list[int] = []

    async def slow(event: SessionEvent) -> None:
        await gate.wait()
        seen.append(event.count or 0)

    monkeypatch.setattr(events_module, "MAX_PENDING", 3)
    manager.add_listener(slow)
    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        for n in range(1, 6):
            manager._events.revoked("revoke_user", user_id="u", count=n)
    assert any("listeners are behind (3 events waiting): 1 events dropped" in r.getMessage() for r in caplog.records)
    gate.set()
    await manager.aclose()  # drains before closing the backend
    assert seen == [1, 2, 3]


async def test_close_gives_up_on_a_listener_after_the_grace(manager: SessionManager) -> None:
    async def stuck(event: SessionEvent) -> None:
        await asyncio.Event().wait()

    manager.add_listener(stuck, timeout=60)
    manager._events.revoked("revoke", key="k" * 64)
    assert await manager.drain_events(grace=0.01) == 1
    assert not manager._events._pending


async def test_without_listeners_no_event_is_built(
    manager: SessionManager, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Any] = []
    real = events_module.SessionEvent

    def counting(*args: Any) -> SessionEvent:
        built.append(args)
        return real(*args)

    monkeypatch.setattr(events_module, "SessionEvent", counting)
    for path in ("/set/a/1", "/set/a/2", "/login/x", "/regenerate", "/logout"):
        assert (await client.post(path)).status_code == 200
    assert (await client.get("/read")).status_code == 200
    await manager.revoke_user("x")
    assert built == []
    recorder = Recorder()
    manager.add_listener(recorder)
    await client.post("/set/a/1")
    manager.remove_listener(recorder)
    await client.post("/set/a/2")
    assert await delivered(manager, recorder) == [("created", None)]
    assert len(built) == 1


async def test_listeners_are_checked_when_added(manager: SessionManager) -> None:
    def sync_listener(event: SessionEvent) -> None: ...

    async def listener(event: SessionEvent) -> None: ...

    with pytest.raises(ConfigurationError, match="async function"):
        manager.add_listener(sync_listener)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="sample_loaded"):
        manager.add_listener(listener, sample_loaded=2)
    with pytest.raises(ConfigurationError, match="timeout"):
        manager.add_listener(listener, timeout=0)
    manager.remove_listener(listener)  # never added: nothing to do
    assert not manager._events.on


async def test_events_are_delivered_in_firing_order_across_requests() -> None:
    manager = SessionManager(InMemoryBackend(), SessionFrontend(secret_key=SECRET))
    order: list[int] = []

    async def unsteady(event: SessionEvent) -> None:
        for _ in range((event.count or 0) % 4):  # later events finish their work sooner
            await asyncio.sleep(0)
        order.append(event.count or 0)

    manager.add_listener(unsteady)
    for n in range(1, 41):
        manager._events.revoked("revoke_user", user_id="u", count=n)
    await manager.drain_events()
    assert order == list(range(1, 41))


async def test_a_write_after_logout_ends_one_session_and_creates_the_next(manager: SessionManager) -> None:
    app = events_app(manager)

    @app.post("/logout-and-say-so")
    async def logout_and_say_so(request: Request) -> None:
        session_of(request).invalidate()
        request.session["note"] = "signed out"

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver") as client:
        await client.post("/login/alice")
        recorder = Recorder()
        manager.add_listener(recorder)
        await client.post("/logout-and-say-so")
        assert (await client.get("/read")).json() == {"note": "signed out"}
    assert await delivered(manager, recorder) == [("ended", "logout"), ("created", None)]
