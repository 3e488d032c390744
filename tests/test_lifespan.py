"""``SessionManager.lifespan``: the backend closed on shutdown, the app's own lifespan run inside, a periodic purge.

The purge runs in a background task; tests wait for it by events the backend
sets (each wait bounded), never by timing. The clock is a ``ManualClock``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from fastapi_sessions import (
    BackendUnavailable,
    ConfigurationError,
    CookieFrontend,
    InMemoryBackend,
    ManualClock,
    SessionLifespan,
    SessionManager,
)

SECRET = "s" * 32
WAIT = 10.0  # the bound on every wait for the background task; reached only when something is broken


class Watched(InMemoryBackend):
    """The in-memory backend, telling when it is purged and closed; ``failures`` purges fail first."""

    def __init__(self, clock: ManualClock, failures: int = 0) -> None:
        super().__init__(clock=clock)
        self.purges = 0
        self.removed: list[int] = []
        self.closed = 0
        self.failures = failures
        self.purged = asyncio.Event()

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        self.purges += 1
        self.purged.set()
        if self.failures:
            self.failures -= 1
            raise BackendUnavailable("memory store unavailable during purge_expired: simulated", backend="memory",
                                     operation="purge_expired")
        removed = await super().purge_expired(now=now)
        self.removed.append(removed)
        return removed

    async def aclose(self) -> None:
        self.closed += 1

    async def next_purge(self) -> None:
        self.purged.clear()
        await asyncio.wait_for(self.purged.wait(), WAIT)


def manager_on(backend: InMemoryBackend, clock: ManualClock) -> SessionManager:
    return SessionManager(backend, CookieFrontend(SECRET), clock=clock)


def purge_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name() == "fastapi-sessions periodic purge"]


def test_fastapi_calls_it_as_it_is_and_the_backend_closes_on_shutdown() -> None:
    clock = ManualClock()
    backend = Watched(clock)
    manager = manager_on(backend, clock)
    app = FastAPI(lifespan=manager.lifespan)

    @app.get("/")
    async def index() -> dict[str, int]:
        return {"closed": backend.closed}

    with TestClient(app) as client:
        assert client.get("/").json() == {"closed": 0}
        assert backend.closed == 0
    assert backend.closed == 1
    assert backend.purges == 0  # no purge_every: no purge


def test_the_apps_own_lifespan_runs_inside_and_its_state_reaches_requests() -> None:
    clock = ManualClock()
    backend = Watched(clock)
    manager = manager_on(backend, clock)
    events: list[str] = []

    @asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[dict[str, str]]:
        events.append("own startup")
        yield {"greeting": "hello"}
        events.append(f"own shutdown (backend closed {backend.closed} times)")

    app = FastAPI(lifespan=manager.lifespan(wraps=own))

    @app.get("/")
    async def index(request: Request) -> dict[str, str]:
        return {"greeting": request.state.greeting}

    with TestClient(app) as client:
        assert client.get("/").json() == {"greeting": "hello"}
    # The app's shutdown still had the backend; it closed after.
    assert events == ["own startup", "own shutdown (backend closed 0 times)"]
    assert backend.closed == 1


def test_the_backend_closes_when_the_apps_own_startup_fails() -> None:
    clock = ManualClock()
    backend = Watched(clock)

    @asynccontextmanager
    async def broken(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("the app's own startup failed")
        yield  # pragma: no cover

    app = FastAPI(lifespan=manager_on(backend, clock).lifespan(wraps=broken))
    with pytest.raises(RuntimeError, match="own startup failed"), TestClient(app):
        pass  # pragma: no cover
    assert backend.closed == 1


@pytest.mark.asyncio
async def test_the_periodic_purge_removes_what_expired_and_stops_on_shutdown() -> None:
    clock = ManualClock()
    backend = Watched(clock)
    manager = manager_on(backend, clock)
    await manager.create_session({"n": 1}, user_id="alice")
    async with manager.lifespan(object(), purge_every=timedelta(milliseconds=1)):
        await backend.next_purge()  # the first one runs at startup
        assert len(purge_tasks()) == 1
        assert len(backend) == 1  # live at the manager's clock: kept
        clock.advance(hours=9)  # past the absolute timeout
        while not any(backend.removed):  # every pass through the loop is one purge, each wait bounded
            await backend.next_purge()
        assert len(backend) == 0
        assert sum(backend.removed) == 1
    assert purge_tasks() == []  # stopped, not left behind
    assert backend.closed == 1


@pytest.mark.asyncio
async def test_a_failing_purge_is_logged_and_tried_again_next_period(caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock()
    backend = Watched(clock, failures=2)
    manager = manager_on(backend, clock)
    caplog.set_level(logging.WARNING, logger="fastapi_sessions")
    async with manager.lifespan(purge_every=0.001)(object()):
        while not backend.removed:  # two failures, then a purge that works
            await backend.next_purge()
        assert backend.purges == 3
        session_id = await manager.create_session({"still": "serving"})
        assert (await manager.get_session(session_id)) is not None
    failures = [r for r in caplog.records if "periodic session purge failed" in r.getMessage()]
    assert len(failures) == 2
    assert "simulated" in failures[0].getMessage()
    assert backend.closed == 1


@pytest.mark.asyncio
async def test_a_purge_stuck_in_a_store_call_is_cancelled_on_shutdown() -> None:
    clock = ManualClock()

    class Stuck(Watched):
        async def purge_expired(self, *, now: datetime | None = None) -> int:
            self.purges += 1
            self.purged.set()
            await asyncio.Event().wait()  # a store that never answers
            raise AssertionError("unreachable")

    backend = Stuck(clock)
    async with SessionLifespan(manager_on(backend, clock), purge_every=timedelta(hours=1))(object()):
        await backend.next_purge()
    assert purge_tasks() == []
    assert backend.closed == 1


def test_purge_every_must_be_a_positive_duration() -> None:
    clock = ManualClock()
    manager = manager_on(Watched(clock), clock)
    for bad in (0, -1, timedelta(0)):
        with pytest.raises(ConfigurationError, match="purge_every"):
            manager.lifespan(purge_every=bad)
    with pytest.raises(ConfigurationError, match="wraps"):
        manager.lifespan(wraps="not a lifespan")  # type: ignore[arg-type]
