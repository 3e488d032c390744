"""One deterministic lifecycle test per defect the model-based test was built to find, on every backend.

Each runs a browser (tests/lifecycle.py: a cookie jar honouring Max-Age on a test
clock, requests parked between loading and saving) against an app on a real
backend, and states the behaviour a user relies on.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response as PlainResponse

from conftest import SECRET, BackendFactory
from fastapi_sessions import ConfigurationError, ManualClock, SessionManager, SessionMiddleware
from fastapi_sessions.backends.in_memory import InMemoryBackend
from fastapi_sessions.frontends import SessionFrontend
from lifecycle import Browser, Response, lifecycle_app

pytestmark = pytest.mark.asyncio

IDLE = timedelta(minutes=30)


@asynccontextmanager
async def site(factory: BackendFactory, *, offset: timedelta = timedelta(0), **options: Any) -> AsyncIterator[
    tuple[Browser, SessionManager, ManualClock]
]:
    """A browser on an app on a fresh backend; the manager's clock starts ``offset`` from the system's."""
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0) + offset)
    backend = factory(clock)
    options.setdefault("idle_timeout", IDLE)
    options.setdefault("absolute_timeout", timedelta(hours=2))
    manager = SessionManager(backend, SessionFrontend(secret_key=SECRET), clock=clock, **options)
    app, gates = lifecycle_app(manager)
    try:
        yield Browser(app, gates, clock), manager, clock
    finally:
        await backend.aclose()


def session_cookie(response: Response) -> str | None:
    cookies = [c for c in response.set_cookies if c.startswith("session=")]
    assert len(cookies) <= 1, cookies
    return cookies[0] if cookies else None


async def read(browser: Browser) -> dict[str, Any]:
    response = await browser.request("GET", "/read")
    assert response.status == 200
    body: dict[str, Any] = response.json()
    return body


# -- 1. an active user is never logged out before the absolute deadline ------------------------


async def test_a_user_writing_every_50_seconds_stays_logged_in_until_the_absolute_deadline(
    lifecycle_backend: BackendFactory,
) -> None:
    async with site(lifecycle_backend) as (browser, _, clock):
        login = await browser.request("POST", "/login/alice")
        assert login.status == 200 and session_cookie(login) is not None
        start = clock()
        step = 0
        while clock() + timedelta(seconds=50) < start + timedelta(hours=2):
            clock.advance(seconds=50)  # under the refresh interval: each write moves the expiry a little
            step += 1
            response = await browser.request("POST", f"/write/n/{step}")
            assert response.status == 200
            assert response.json()["user"] == "alice", f"logged out after {step * 50} s"
        assert (await read(browser))["user"] == "alice"
        clock.advance(seconds=60)  # past the absolute deadline: over, however active
        assert await read(browser) == {"data": {}, "user": None}


async def test_a_read_finishing_after_a_concurrent_write_never_pulls_the_idle_deadline_back(
    lifecycle_backend: BackendFactory,
) -> None:
    """A read whose idle extension was due at load touches from its save time, not its load time."""
    async with site(lifecycle_backend) as (browser, _, clock):
        assert (await browser.request("POST", "/write/a/1")).status == 200
        clock.advance(minutes=10)  # the idle extension is due for the next requests
        writer = await browser.start("POST", "/write/b/2")
        reader = await browser.start("GET", "/read")
        clock.advance(seconds=50)  # both requests take a while
        assert (await writer.finish()).status == 200  # idle deadline: now + 30 min
        assert (await reader.finish()).status == 200  # its touch must not move that back 50 s
        clock.advance(IDLE - timedelta(seconds=1))
        assert (await read(browser))["data"] == {"a": "1", "b": "2"}


# -- 2. a session that ends during a request is never a 500 ------------------------------------


@pytest.mark.parametrize("ender", ["logout", "revoke_user", "pop_last_key", "idle_deadline"])
async def test_a_session_ending_during_a_write_drops_the_write_without_an_error(
    lifecycle_backend: BackendFactory, ender: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with site(lifecycle_backend) as (browser, manager, clock):
        await browser.request("POST", "/write/a/1")
        if ender != "pop_last_key":
            await browser.request("POST", "/login/alice")
        writer = await browser.start("POST", "/write/b/2")
        if ender == "logout":
            assert session_cookie(await browser.request("POST", "/logout")) is not None
        elif ender == "revoke_user":
            assert await manager.revoke_user("alice") == 1
        elif ender == "pop_last_key":
            await browser.request("POST", "/pop/a")
        else:
            clock.advance(IDLE + timedelta(seconds=1))
        with caplog.at_level(logging.INFO, "fastapi_sessions"):
            response = await writer.finish()
        assert response.status == 200
        assert session_cookie(response) is None  # whatever the browser holds now is not this request's
        assert "ended during the request" in caplog.text
        assert (await read(browser))["data"] == {}  # not resurrected


# -- 3. a response that started before a login never undoes it ---------------------------------


@pytest.mark.parametrize("kind", ["read", "write"])
async def test_a_request_finishing_after_a_login_leaves_the_login_cookie_alone(
    lifecycle_backend: BackendFactory, kind: str
) -> None:
    async with site(lifecycle_backend, idle_refresh_interval=timedelta(seconds=1)) as (browser, _, clock):
        await browser.request("POST", "/write/cart/1")
        clock.advance(seconds=30)  # so the early request's idle extension is due
        early = await (browser.start("GET", "/read") if kind == "read" else browser.start("POST", "/write/x/1"))
        login = await browser.request("POST", "/login/alice")
        logged_in = browser.jar.value()
        assert login.status == 200 and logged_in is not None
        response = await early.finish()
        assert response.status == 200
        assert session_cookie(response) is None
        assert browser.jar.value() == logged_in
        expected = {"cart": "1", "x": "1"} if kind == "write" else {"cart": "1"}
        assert await read(browser) == {"data": expected, "user": "alice"}


async def test_a_retired_token_dies_with_its_grace_window_whatever_was_in_flight(
    lifecycle_backend: BackendFactory,
) -> None:
    async with site(lifecycle_backend, regenerate_grace=10, idle_refresh_interval=timedelta(seconds=1)) as (
        browser, _, clock
    ):
        await browser.request("POST", "/write/a/1")
        old = browser.jar.value()
        clock.advance(seconds=30)  # the next read's idle extension is due
        in_flight = await browser.start("GET", "/read")  # loaded before the regeneration, saves after it
        await browser.request("POST", "/regenerate")
        assert session_cookie(await in_flight.finish()) is None
        clock.advance(seconds=5)
        tab = await browser.request("GET", "/read", cookie=old)  # a tab that still had the old cookie
        assert tab.json() == {"data": {"a": "1"}, "user": None} and session_cookie(tab) is None
        clock.advance(seconds=6)  # the grace window is over: neither use extended the old token's life
        assert (await browser.request("GET", "/read", cookie=old)).json() == {"data": {}, "user": None}
        assert await read(browser) == {"data": {"a": "1"}, "user": None}


# -- 4. login and regenerate() lose no concurrent write -----------------------------------------


@pytest.mark.parametrize(("change", "policy", "grace"), [
    ("login", "last_writer_wins", 0), ("login", "raise", 0), ("login", "last_writer_wins", 10),
    ("regenerate", "last_writer_wins", 0), ("regenerate", "raise", 10),
])
async def test_a_write_racing_a_regeneration_lands_in_the_new_session(
    lifecycle_backend: BackendFactory, change: str, policy: str, grace: int
) -> None:
    async with site(lifecycle_backend, conflict_policy=policy, regenerate_grace=grace) as (browser, _, _clock):
        await browser.request("POST", "/write/cart/1")
        path = "/login/alice" if change == "login" else "/regenerate"
        # The write loads first and saves after the regeneration; then the other way round.
        writer = await browser.start("POST", "/write/item/added-during")
        assert (await browser.request("POST", path)).status == 200
        assert (await writer.finish()).status == 200
        regenerating = await browser.start("POST", "/regenerate")
        assert (await browser.request("POST", "/write/late/1")).status == 200
        assert (await regenerating.finish()).status == 200
        user = "alice" if change == "login" else None
        assert await read(browser) == {
            "data": {"cart": "1", "item": "added-during", "late": "1"}, "user": user
        }


async def test_two_logins_racing_leave_one_login_and_a_409(lifecycle_backend: BackendFactory) -> None:
    async with site(lifecycle_backend) as (browser, _, _clock):
        await browser.request("POST", "/write/cart/1")
        first = await browser.start("POST", "/login/alice")
        second = await browser.start("POST", "/login/alice")
        won = await first.finish()
        lost = await second.finish()
        assert (won.status, lost.status) == (200, 409)
        assert session_cookie(lost) is None
        assert await read(browser) == {"data": {"cart": "1"}, "user": "alice"}


# -- 5. the grace window has no gap and versions never go back -----------------------------------


async def test_the_grace_window_serves_the_old_token_at_every_moment_and_writes_reach_the_new_session(
    lifecycle_backend: BackendFactory,
) -> None:
    async with site(lifecycle_backend, regenerate_grace=10) as (browser, _, clock):
        await browser.request("POST", "/write/a/1")
        old = browser.jar.value()
        regenerating = await browser.start("POST", "/regenerate")
        during = await browser.start("GET", "/read", cookie=old)  # loads while the regeneration is under way
        await regenerating.finish()
        assert (await during.finish()).json()["data"] == {"a": "1"}
        for second in range(9):
            written = await browser.request("POST", f"/write/s{second}/v", cookie=old)
            assert written.status == 200 and session_cookie(written) is None
            clock.advance(seconds=1)
        data = (await read(browser))["data"]
        assert data == {"a": "1", **{f"s{second}": "v" for second in range(9)}}


# -- 6. conflict_policy="raise" means raise ------------------------------------------------------


async def test_raise_turns_a_lost_increment_into_a_409(lifecycle_backend: BackendFactory) -> None:
    async with site(lifecycle_backend, conflict_policy="raise") as (browser, _, _clock):
        await browser.request("POST", "/incr/n")
        first = await browser.start("POST", "/incr/n")
        second = await browser.start("POST", "/incr/n")
        statuses = [(await first.finish()).status, (await second.finish()).status]
        assert statuses == [200, 409]  # both saw 1 and wrote 2: only one increment may be acknowledged
        assert (await read(browser))["data"] == {"n": 2}


# -- 7. one clock ---------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [timedelta(hours=-1), timedelta(hours=3)])
async def test_sessions_follow_the_manager_clock_whatever_the_system_clock(
    lifecycle_backend: BackendFactory, offset: timedelta
) -> None:
    async with site(lifecycle_backend, offset=offset) as (browser, _, clock):
        await browser.request("POST", "/write/a/1")
        clock.advance(IDLE - timedelta(seconds=1))
        assert (await read(browser))["data"] == {"a": "1"}
        clock.advance(IDLE + timedelta(seconds=1))
        assert (await read(browser))["data"] == {}


async def test_a_naive_clock_is_refused_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="aware"):
        SessionManager(InMemoryBackend(), SessionFrontend(secret_key=SECRET),
                       clock=datetime.now)  # naive: no tzinfo, so every comparison would raise later


async def test_from_url_gives_the_clock_to_the_backend_too() -> None:
    clock = ManualClock()
    manager = SessionManager.from_url("memory://", clock=clock)
    assert manager.backend._clock is clock  # type: ignore[attr-defined]


# -- 8. protocol details ----------------------------------------------------------------------------


def _protocol_app(manager: SessionManager) -> Any:
    async def raw_app(scope: Any, receive: Any, send: Any) -> None:
        """A bare ASGI app whose response start carries no ``headers`` key at all (ASGI allows it)."""
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})

    app = FastAPI()

    @app.get("/vary")
    async def vary(request: Request) -> PlainResponse:
        request.session.get("x")
        return PlainResponse("ok", headers={"vary": "X-Cookie-Consent"})

    @app.post("/cached")
    async def cached(request: Request) -> PlainResponse:
        request.session["a"] = 1
        return PlainResponse("ok", headers={"cache-control": "public, max-age=600, s-maxage=600"})

    app.mount("/raw", raw_app)
    return SessionMiddleware(app, manager=manager)


async def test_vary_is_merged_token_by_token() -> None:
    clock = ManualClock()
    manager = SessionManager(InMemoryBackend(clock=clock), SessionFrontend(secret_key=SECRET), clock=clock)
    browser = Browser(_protocol_app(manager), lifecycle_app(manager)[1], clock)
    response = await browser.request("GET", "/vary")
    # "Cookie" is inside "X-Cookie-Consent" as a substring, not as a token: it must still be added.
    assert response.header("vary") == "X-Cookie-Consent, Cookie"


async def test_a_response_start_without_headers_still_gets_its_cookie() -> None:
    clock = ManualClock()
    manager = SessionManager(InMemoryBackend(clock=clock), SessionFrontend(secret_key=SECRET), clock=clock)
    browser = Browser(_protocol_app(manager), lifecycle_app(manager)[1], clock)
    dead = SessionFrontend(secret_key=SECRET).sign("a-token-whose-session-is-gone")
    response = await browser.request("GET", "/raw/", cookie=dead)  # its clearing cookie is due
    assert response.status == 200 and "Max-Age=0" in (session_cookie(response) or "")


async def test_a_response_that_issues_a_token_is_never_stored_by_a_shared_cache() -> None:
    clock = ManualClock()
    manager = SessionManager(InMemoryBackend(clock=clock), SessionFrontend(secret_key=SECRET), clock=clock)
    browser = Browser(_protocol_app(manager), lifecycle_app(manager)[1], clock)
    response = await browser.request("POST", "/cached")
    assert session_cookie(response) is not None
    assert response.header("cache-control") == "private, max-age=600"
    app, gates = lifecycle_app(manager)
    issued = await Browser(app, gates, clock).request("POST", "/write/a/1")
    assert issued.header("cache-control") == "private, no-store"
    plain = await Browser(app, gates, clock).request("GET", "/read")
    assert plain.header("cache-control") is None  # nothing issued, nothing imposed


async def test_of_two_cookies_with_the_session_name_the_first_that_verifies_wins(
    lifecycle_backend: BackendFactory,
) -> None:
    async with site(lifecycle_backend) as (browser, _, _clock):
        await browser.request("POST", "/write/a/1")
        valid = browser.jar.value()
        assert valid is not None
        for header in (f"stale; session={valid}", f"{valid}; session=stale"):
            response = await browser.request("GET", "/read", cookie=header)
            assert response.json()["data"] == {"a": "1"}
            assert session_cookie(response) is None


async def test_a_cookie_whose_session_is_gone_is_cleared_once(lifecycle_backend: BackendFactory) -> None:
    async with site(lifecycle_backend) as (browser, manager, _clock):
        await browser.request("POST", "/login/alice")
        await manager.revoke_user("alice")
        first = await browser.request("GET", "/read")
        cleared = session_cookie(first)
        assert cleared is not None and "Max-Age=0" in cleared
        assert browser.jar.value() is None
        assert session_cookie(await browser.request("GET", "/read")) is None  # nothing left to clear
