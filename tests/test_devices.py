"""The device list ("where am I signed in"), signing out the others, the per-user cap and the router.

Every test named ``..._on_every_backend`` runs on each real backend (the
``lifecycle_backend`` fixture: memory plain and fused, SQLite, PostgreSQL,
MariaDB, Redis, Redis Cluster, the MongoDB stand-in). Each browser is an httpx
client with its own cookie jar, User-Agent and client address; a backend wrapper
counts the store calls a request makes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2 as httpx
import pytest
from fastapi import FastAPI, Request

from conftest import SECRET, BackendFactory
from fastapi_sessions import ManualClock, SessionManager, SessionMiddleware, session_of, sessions_router
from fastapi_sessions.frontends import SessionFrontend

pytestmark = pytest.mark.asyncio

#: The store calls that write (``read_and_touch`` counts as one when it extended the deadline).
WRITES = ("create", "update", "touch", "delete", "delete_by_user", "purge_expired")
COUNTED = (*WRITES, "read", "list_by_user", "read_and_touch")


class CountingBackend:
    """A real backend, with every store call counted; everything else passes through."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name not in COUNTED:
            return attribute

        async def counted(*args: Any, **kwargs: Any) -> Any:
            result = await attribute(*args, **kwargs)
            self.calls[name] += 1
            if name == "read_and_touch" and result[1]:
                self.calls["touch"] += 1
            return result

        return counted

    def writes(self) -> int:
        return sum(self.calls[name] for name in WRITES)


def device_app(manager: SessionManager) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=manager)
    app.include_router(sessions_router(manager))

    @app.post("/login/{user}")
    async def login(user: str, request: Request) -> dict[str, Any]:
        session_of(request).user_id = user
        return {"user": user}

    @app.get("/me")
    async def me(request: Request) -> dict[str, Any]:
        session = session_of(request)
        return {"user": session.user_id, "data": dict(session), "key": session.key}

    @app.post("/data/{key}/{value}")
    async def write(key: str, value: str, request: Request) -> None:
        request.session[key] = value

    return app


@dataclass
class Site:
    manager: SessionManager
    backend: CountingBackend
    clock: ManualClock
    app: FastAPI
    stack: AsyncExitStack

    async def browser(self, user_agent: str | None = "Browser/1.0", ip: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(ip, 50000))
        client = httpx.AsyncClient(transport=transport, base_url="https://testserver")
        if user_agent is None:
            del client.headers["user-agent"]
        else:
            client.headers["user-agent"] = user_agent
        return await self.stack.enter_async_context(client)

    async def signed_in(self, user: str, **browser: Any) -> httpx.AsyncClient:
        client = await self.browser(**browser)
        assert (await client.post(f"/login/{user}")).status_code == 200
        return client


@asynccontextmanager
async def site(factory: BackendFactory, **options: Any) -> AsyncIterator[Site]:
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
    backend = CountingBackend(factory(clock))
    options.setdefault("idle_timeout", timedelta(minutes=30))
    options.setdefault("absolute_timeout", timedelta(hours=8))
    manager = SessionManager(backend, SessionFrontend(secret_key=SECRET), clock=clock, **options)
    async with AsyncExitStack() as stack:
        try:
            yield Site(manager, backend, clock, device_app(manager), stack)
        finally:
            await backend.inner.aclose()


async def who(client: httpx.AsyncClient) -> str | None:
    response = await client.get("/me")
    assert response.status_code == 200
    user: str | None = response.json()["user"]
    return user


async def key_of(client: httpx.AsyncClient) -> str:
    key: str = (await client.get("/me")).json()["key"]
    return key


async def devices(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/sessions")
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()
    return listed


# -- the list: metadata recorded at login, the current session marked ---------------------------


async def test_the_device_list_shows_each_login_and_marks_the_current_one_on_every_backend(
    lifecycle_backend: BackendFactory,
) -> None:
    async with site(lifecycle_backend, record_ip=True) as s:
        phone = await s.signed_in("alice", user_agent="Phone/2.0", ip="203.0.113.7")
        s.clock.advance(minutes=5)
        laptop = await s.signed_in("alice", user_agent="Laptop/3.1", ip="198.51.100.2")
        bob = await s.signed_in("bob", user_agent="Other/1.0")
        listed = await devices(laptop)
        assert [(d["user_agent"], d["ip"], d["current"]) for d in listed] == [
            ("Phone/2.0", "203.0.113.7", False), ("Laptop/3.1", "198.51.100.2", True)]  # oldest first
        assert [d["id"] for d in listed] == [await key_of(phone), await key_of(laptop)]
        assert [d["current"] for d in await devices(phone)] == [True, False]
        assert [d["user_agent"] for d in await devices(bob)] == ["Other/1.0"]
        # The API gives the same, and the metadata never shows in the session's data.
        infos = await s.manager.list_sessions("alice")
        assert [(i.user_agent, i.ip, i.current) for i in infos] == [
            ("Phone/2.0", "203.0.113.7", False), ("Laptop/3.1", "198.51.100.2", False)]
        assert infos[0].created_at == s.clock() - timedelta(minutes=5)
        assert (await laptop.get("/me")).json()["data"] == {}


async def test_a_change_of_user_drops_the_device_of_the_previous_login_on_every_backend(
    lifecycle_backend: BackendFactory,
) -> None:
    async with site(lifecycle_backend) as s:
        client = await s.signed_in("alice", user_agent="Shared/1.0")
        assert (await client.post("/data/cart/1")).status_code == 200
        del client.headers["user-agent"]  # the same browser, now sending no User-Agent, logs in as bob
        assert (await client.post("/login/bob")).status_code == 200
        assert await who(client) == "bob"
        (info,) = await s.manager.list_sessions("bob")
        assert info.user_agent is None  # alice's device did not come along with the data
        assert await s.manager.list_sessions("alice") == []  # her session was replaced by the login


async def test_last_seen_follows_use_to_the_refresh_interval_without_a_write_of_its_own_on_every_backend(
    lifecycle_backend: BackendFactory,
) -> None:
    async with site(lifecycle_backend, idle_refresh_interval=60) as s:
        client = await s.signed_in("alice")
        login = s.clock()
        assert (await devices(client))[0]["last_seen"] == _iso(login)
        s.clock.advance(minutes=10)
        await who(client)  # the idle extension is due: the one write it always costs, nothing more
        seen = s.clock()
        writes = s.backend.writes()
        s.clock.advance(seconds=30)
        await who(client)  # within the refresh interval: no write, and last_seen lags by up to it
        assert s.backend.writes() == writes
        (info,) = await s.manager.list_sessions("alice")
        assert info.last_seen == seen and info.created_at == login


async def test_read_only_requests_write_nothing_with_the_device_recorded_on_every_backend(
    lifecycle_backend: BackendFactory,
) -> None:
    async with site(lifecycle_backend, record_ip=True, max_sessions_per_user=5) as s:
        client = await s.signed_in("alice")
        s.backend.calls.clear()
        assert await who(client) == "alice"
        assert len(await devices(client)) == 1
        assert s.backend.writes() == 0
        # The page itself: the load's read and one listing, whose records carry the device.
        reads = s.backend.calls["read"] + s.backend.calls["read_and_touch"]
        assert (reads, s.backend.calls["list_by_user"]) == (2, 1)


async def test_recording_the_device_adds_no_write_to_the_login() -> None:
    """A login writes the same with the User-Agent and IP recorded as without: they ride on its save."""
    from fastapi_sessions.backends.in_memory import InMemoryBackend

    counts = []
    for options in ({"record_user_agent": False}, {"record_ip": True}):
        async with site(lambda clock: InMemoryBackend(clock=clock), **options) as s:
            client = await s.browser()
            await client.post("/data/a/1")
            s.backend.calls.clear()
            await client.post("/login/alice")
            counts.append(dict(s.backend.calls))
    assert counts[0] == counts[1]


# -- revocation: the others, one of mine, never someone else's ---------------------------------


async def test_revoke_others_ends_every_other_session_and_spares_the_caller_on_every_backend(
    lifecycle_backend: BackendFactory,
) -> None:
    async with site(lifecycle_backend) as s:
        first, second, third = [await s.signed_in("alice", user_agent=f"B/{n}") for n in range(3)]
        bob = await s.signed_in("bob")
        response = await second.post("/sessions/revoke-others")
        assert response.status_code == 200 and response.json() == {"revoked": 2}
        assert [await who(c) for c in (first, second, third, bob)] == [None, "alice", None, "bob"]
        assert [d["current"] for d in await devices(second)] == [True]
        assert (await second.post("/sessions/revoke-others")).json() == {"revoked": 0}
        # The API: the same rule, and nothing for a session without a user.
        fourth = await s.signed_in("alice")
        (current,) = [i for i in await s.manager.list_sessions("alice") if i.key == await key_of(fourth)]
        session = await s.manager.get_session(fourth.cookies["session"])
        assert session is not None
        assert await s.manager.revoke_others(session) == 1
        assert [i.key for i in await s.manager.list_sessions("alice")] == [current.key]
        anonymous = await s.manager.get_session(await s.manager.create_session({"a": 1}))
        assert anonymous is not None and await s.manager.revoke_others(anonymous) == 0


async def test_alice_cannot_revoke_bobs_session_through_the_router_or_the_api_on_every_backend(
    lifecycle_backend: BackendFactory,
) -> None:
    async with site(lifecycle_backend) as s:
        alice, alice_phone = await s.signed_in("alice"), await s.signed_in("alice")
        bob = await s.signed_in("bob")
        bobs = await key_of(bob)
        strangers = await alice.delete(f"/sessions/{bobs}")
        unknown = await alice.delete(f"/sessions/{'0' * 64}")
        malformed = await alice.delete("/sessions/not-a-key")
        assert [r.status_code for r in (strangers, unknown, malformed)] == [404, 404, 404]
        assert strangers.json() == unknown.json() == malformed.json() == {"detail": "No such session"}
        assert await s.manager.revoke(bobs, user_id="alice") is False
        assert await s.manager.revoke("0" * 64, user_id="alice") is False
        assert await who(bob) == "bob"
        # One of her own: 204, and that device is signed out; bob's is still there for bob.
        response = await alice.delete(f"/sessions/{await key_of(alice_phone)}")
        assert response.status_code == 204 and response.content == b""
        assert await who(alice_phone) is None and await who(alice) == "alice"
        assert await s.manager.revoke(bobs, user_id="bob") is True
        assert await who(bob) is None


async def test_deleting_the_current_session_signs_it_out_and_clears_the_cookie_on_every_backend(
    lifecycle_backend: BackendFactory,
) -> None:
    async with site(lifecycle_backend) as s:
        client = await s.signed_in("alice")
        response = await client.delete(f"/sessions/{await key_of(client)}")
        assert response.status_code == 204
        assert "session=" in response.headers["set-cookie"] and "max-age=0" in response.headers["set-cookie"].lower()
        assert await who(client) is None
        assert await s.manager.list_sessions("alice") == []


# -- the cap ------------------------------------------------------------------------------------


async def test_the_cap_ends_the_oldest_sessions_at_login_on_every_backend(lifecycle_backend: BackendFactory) -> None:
    async with site(lifecycle_backend, max_sessions_per_user=2) as s:
        browsers = []
        for n in range(3):
            browsers.append(await s.signed_in("alice", user_agent=f"B/{n}"))
            s.clock.advance(seconds=1)
        bob = await s.signed_in("bob")
        assert [await who(c) for c in browsers] == [None, "alice", "alice"]
        assert [d["user_agent"] for d in await devices(browsers[2])] == ["B/1", "B/2"]
        assert await who(bob) == "bob"
        # The direct API's logins count too.
        s.clock.advance(seconds=1)
        await s.manager.create_session(user_id="alice")
        assert [await who(c) for c in browsers] == [None, None, "alice"]
        assert len(await s.manager.list_sessions("alice")) == 2
        s.clock.advance(seconds=1)
        session = await s.manager.get_session(await s.manager.create_session({"a": 1}))
        assert session is not None
        session.user_id = "alice"
        assert await s.manager.save_session(session) is not None
        assert [await who(c) for c in browsers] == [None, None, None]
        assert [i.key for i in await s.manager.list_sessions("alice")][-1] == session.key


async def test_racing_logins_agree_on_which_sessions_the_cap_ends() -> None:
    """Each login spares itself and keeps the newest ones, so two racing logins end the same older ones."""
    from fastapi_sessions._core.devices import end_over_cap
    from fastapi_sessions.backends.in_memory import InMemoryBackend

    async with site(lambda clock: InMemoryBackend(clock=clock), max_sessions_per_user=1) as s:
        ids = []
        for _ in range(3):
            ids.append(await s.manager.create_session())  # anonymous: no cap yet
            s.clock.advance(seconds=1)
        sessions = [await s.manager.get_session(i) for i in ids]
        keys = []
        for session in sessions:
            assert session is not None
            session.user_id = "alice"
            await s.manager.commit(session)  # a login with the cap off for now: all three stay
            assert session.key is not None
            keys.append(session.key)
            s.clock.advance(seconds=1)
        # The second login's cap runs after the third's login was saved: it ends the first only.
        assert await end_over_cap(s.manager, "alice", keep=keys[1]) == 1
        assert await end_over_cap(s.manager, "alice", keep=keys[2]) == 1
        assert [i.key for i in await s.manager.list_sessions("alice")] == [keys[2]]


# -- the router's contract ------------------------------------------------------------------------


async def test_the_router_answers_401_without_a_user_and_is_in_the_openapi_document() -> None:
    from fastapi_sessions.backends.in_memory import InMemoryBackend

    async with site(lambda clock: InMemoryBackend(clock=clock)) as s:
        client = await s.browser()
        await client.post("/data/a/1")  # a session, but nobody signed in
        for method, path in (("GET", "/sessions"), ("DELETE", f"/sessions/{'0' * 64}"),
                             ("POST", "/sessions/revoke-others")):
            response = await client.request(method, path)
            assert response.status_code == 401, (method, path)
        schema = (await client.get("/openapi.json")).json()
        assert set(schema["paths"]) >= {"/sessions", "/sessions/{session_id}", "/sessions/revoke-others"}
        listed = schema["paths"]["/sessions"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert listed["items"]["$ref"].endswith("/DeviceSession")
        fields = schema["components"]["schemas"]["DeviceSession"]["properties"]
        assert set(fields) == {"id", "current", "created_at", "last_seen", "expires_at", "user_agent", "ip"}
        assert "404" in schema["paths"]["/sessions/{session_id}"]["delete"]["responses"]
        signed_in = await s.signed_in("alice")
        assert (await signed_in.get("/sessions")).headers["cache-control"] == "no-store"


async def test_the_user_agent_is_truncated_the_ip_off_by_default_and_both_can_be_turned_off() -> None:
    from fastapi_sessions.backends.in_memory import InMemoryBackend

    def memory(clock: Callable[[], datetime]) -> InMemoryBackend:
        return InMemoryBackend(clock=clock)

    async with site(memory) as s:
        client = await s.signed_in("alice", user_agent="x" * 1000, ip="192.0.2.1")
        (device,) = await devices(client)
        assert device["user_agent"] == "x" * 256 and device["ip"] is None
    async with site(memory, record_user_agent=False, record_ip=True) as s:
        (device,) = await devices(await s.signed_in("alice", ip="192.0.2.1"))
        assert device["user_agent"] is None and device["ip"] == "192.0.2.1"


@pytest.mark.parametrize("cap", [0, -1, 1.5, True, "2"])
async def test_max_sessions_per_user_must_be_a_positive_count(cap: Any) -> None:
    from fastapi_sessions import ConfigurationError
    from fastapi_sessions.backends.in_memory import InMemoryBackend

    with pytest.raises(ConfigurationError, match="max_sessions_per_user"):
        SessionManager(InMemoryBackend(), SessionFrontend(secret_key=SECRET), max_sessions_per_user=cap)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_the_device_options_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi_sessions import SessionSettings

    defaults = SessionManager.from_settings(SessionSettings())
    assert (defaults.max_sessions_per_user, defaults.record_user_agent, defaults.record_ip) == (None, True, False)
    monkeypatch.setenv("FASTAPI_SESSIONS_MAX_SESSIONS_PER_USER", "3")
    monkeypatch.setenv("FASTAPI_SESSIONS_RECORD_USER_AGENT", "false")
    monkeypatch.setenv("FASTAPI_SESSIONS_RECORD_IP", "true")
    manager = SessionManager.from_settings()
    assert (manager.max_sessions_per_user, manager.record_user_agent, manager.record_ip) == (3, False, True)
    monkeypatch.setenv("FASTAPI_SESSIONS_MAX_SESSIONS_PER_USER", "none")
    assert SessionManager.from_settings().max_sessions_per_user is None
