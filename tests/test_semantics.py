"""The "Session semantics" and "FastAPI surface" rules of DESIGN.md, each checked through a FastAPI app."""

import asyncio
import base64
import importlib.util
import re
import secrets
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import httpx2
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel

from conftest import SECRET, app_with, client_for, stored_sessions
from fastapi_sessions import (
    BackendUnavailable,
    ManualClock,
    Session,
    SessionManager,
    SessionRecord,
    SupportsReadAndTouch,
)
from fastapi_sessions._core.markers import read_marker
from fastapi_sessions._core.tokens import storage_key
from fastapi_sessions.backends.in_memory import InMemoryBackend
from fastapi_sessions.frontends import HeaderFrontend, SessionFrontend

ROOT = Path(__file__).resolve().parent.parent
BACKEND_METHODS = ("create", "read", "update", "touch", "delete", "list_by_user", "delete_by_user")
WRITE_METHODS = ("create", "update", "touch", "delete", "delete_by_user")


# -- helpers ---------------------------------------------------------------------------------


def demo_app(manager: SessionManager) -> FastAPI:
    """An app whose routes use ``request.session`` the way applications do."""
    app = app_with(manager)

    @app.get("/read")
    async def read(request: Request) -> JSONResponse:
        return JSONResponse({"session": request.session, "user": request.session.user_id})

    @app.get("/noop")
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/write")
    async def write(request: Request, key: str, value: str) -> dict[str, bool]:
        request.session[key] = value
        return {"ok": True}

    @app.post("/clear")
    async def clear(request: Request) -> dict[str, bool]:
        request.session.clear()
        return {"ok": True}

    @app.post("/regenerate")
    async def regenerate(request: Request) -> dict[str, bool]:
        request.session.regenerate()
        return {"ok": True}

    @app.post("/login")
    async def login(request: Request, user: str) -> dict[str, bool]:
        request.session.user_id = user
        return {"ok": True}

    return app


def session_cookies(response: Any) -> list[str]:
    return [h for h in response.headers.get_list("set-cookie") if h.startswith("session=")]


def issued(response: Any) -> str | None:
    """The session cookie value a response sets, or ``None`` if it sets none."""
    cookies = session_cookies(response)
    assert len(cookies) <= 1, cookies
    return cookies[0].split(";")[0].removeprefix("session=") if cookies else None


def max_age(response: Any) -> int | None:
    match = re.search(r"Max-Age=(\d+)", session_cookies(response)[0])
    return int(match.group(1)) if match else None


def send(client: TestClient, method: str, path: str, cookie: str | None = None, **kwargs: Any) -> Any:
    """A request carrying exactly ``cookie`` (or no cookie), whatever the client's jar holds."""
    client.cookies.clear()
    headers = dict(kwargs.pop("headers", {}))
    if cookie is not None:
        headers["cookie"] = f"session={cookie}"
    return client.request(method, path, headers=headers, **kwargs)


def establish(client: TestClient, **data: str) -> str:
    """Store a session holding ``data`` through the app; return its cookie."""
    cookie = None
    for key, value in data.items():
        response = send(client, "POST", "/write", cookie, params={"key": key, "value": value})
        assert response.status_code == 200
        cookie = issued(response) or cookie
    assert cookie is not None
    return cookie


def count_calls(backend: InMemoryBackend) -> Counter[str]:
    """Wrap the backend's methods so every call is counted."""
    calls: Counter[str] = Counter()
    for name in BACKEND_METHODS:
        original = getattr(backend, name)

        def counted(*args: Any, _name: str = name, _original: Any = original, **kwargs: Any) -> Any:
            calls[_name] += 1
            return _original(*args, **kwargs)

        setattr(backend, name, counted)
    return calls


def writes(calls: Counter[str]) -> dict[str, int]:
    return {name: calls[name] for name in WRITE_METHODS if calls[name]}


@pytest.fixture
def frontend() -> SessionFrontend:
    return SessionFrontend(secret_key=SECRET)


@pytest.fixture
def client(manager: SessionManager) -> TestClient:
    return client_for(demo_app(manager))


# -- strict mode -----------------------------------------------------------------------------


def _unknown(client: TestClient, frontend: SessionFrontend, clock: ManualClock) -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return frontend.sign(token), token


def _expired(client: TestClient, frontend: SessionFrontend, clock: ManualClock) -> tuple[str, str]:
    cookie = establish(client, secret="old")
    clock.advance(minutes=31)  # past the default 30-minute idle timeout
    token = frontend.unsign(cookie)
    assert token is not None
    return cookie, token


def _other_key(client: TestClient, frontend: SessionFrontend, clock: ManualClock) -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return SessionFrontend(secret_key="a-different-secret-key").sign(token), token


def _tampered(client: TestClient, frontend: SessionFrontend, clock: ManualClock) -> tuple[str, str]:
    cookie = establish(client, secret="old")
    token, _, signature = cookie.rpartition(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{token}.{flipped}", token


def _unsigned(client: TestClient, frontend: SessionFrontend, clock: ManualClock) -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    return token, token


@pytest.mark.parametrize("make_token", [_unknown, _expired, _other_key, _tampered, _unsigned])
def test_strict_mode_never_adopts_a_token_it_did_not_issue_live(
    make_token: Callable[..., tuple[str, str]],
    client: TestClient,
    frontend: SessionFrontend,
    backend: InMemoryBackend,
    clock: ManualClock,
) -> None:
    sent, token = make_token(client, frontend, clock)
    key = storage_key(token)
    legitimate = backend._records.get(key) if make_token is _tampered else None

    read = send(client, "GET", "/read", sent)
    assert read.status_code == 200
    assert read.json() == {"session": {}, "user": None}
    # A validly signed token whose session is gone is cleared; anything else is not ours to touch.
    assert issued(read) == ('""' if make_token in (_unknown, _expired) else None)

    written = send(client, "POST", "/write", sent, params={"key": "k", "value": "v"})
    assert written.status_code == 200
    new_cookie = issued(written)
    assert new_cookie is not None and new_cookie != sent
    assert frontend.unsign(new_cookie) != token
    stored = backend._records.get(key)
    if make_token in (_unknown, _expired):  # at most a marker that retires the dead token: no data, no user
        assert stored is None or (read_marker(stored.payload) is not None and stored.user_id is None)
    else:
        assert stored == legitimate  # nothing stored under the sent token, nothing changed
    assert send(client, "GET", "/read", new_cookie).json()["session"] == {"k": "v"}


# -- tokens ----------------------------------------------------------------------------------


def test_token_carries_256_bits_and_the_store_holds_only_its_hash(
    client: TestClient, frontend: SessionFrontend, backend: InMemoryBackend
) -> None:
    cookie = establish(client, a="1")
    token = frontend.unsign(cookie)

    assert token is not None
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token)
    assert len(base64.urlsafe_b64decode(token + "=")) == 32
    assert list(backend._records) == [storage_key(token)]
    assert token not in backend._records
    record = backend._records[storage_key(token)]
    assert token.encode() not in record.payload


def test_each_new_session_gets_a_different_token(client: TestClient, frontend: SessionFrontend) -> None:
    tokens = {frontend.unsign(establish(client, a="1")) for _ in range(20)}
    assert len(tokens) == 20


# -- idle and absolute timeouts --------------------------------------------------------------


@pytest.fixture
def timed_client(make_manager: Callable[..., SessionManager]) -> TestClient:
    manager = make_manager(idle_timeout=600, absolute_timeout=1800, idle_refresh_interval=60)
    return client_for(demo_app(manager))


def test_idle_timeout_ends_a_session_left_unused(timed_client: TestClient, clock: ManualClock) -> None:
    cookie = establish(timed_client, a="1")
    clock.advance(seconds=600)

    assert send(timed_client, "GET", "/read", cookie).json()["session"] == {}


def test_idle_timeout_session_is_alive_just_before_the_deadline(timed_client: TestClient, clock: ManualClock) -> None:
    cookie = establish(timed_client, a="1")
    clock.advance(seconds=599)

    assert send(timed_client, "GET", "/read", cookie).json()["session"] == {"a": "1"}


def test_the_first_cookie_lives_until_the_absolute_deadline(timed_client: TestClient) -> None:
    # Idle time is the server's to enforce: the cookie must never lapse before an active session does.
    response = send(timed_client, "POST", "/write", params={"key": "a", "value": "1"})
    assert max_age(response) == 1800


def test_use_extends_the_idle_deadline(timed_client: TestClient, clock: ManualClock) -> None:
    cookie = establish(timed_client, a="1")
    clock.advance(seconds=500)
    assert send(timed_client, "GET", "/read", cookie).json()["session"] == {"a": "1"}
    clock.advance(seconds=500)  # 1000 s after creation: alive only because it was used at 500 s

    assert send(timed_client, "GET", "/read", cookie).json()["session"] == {"a": "1"}
    clock.advance(seconds=600)
    assert send(timed_client, "GET", "/read", cookie).json()["session"] == {}


def test_idle_extension_is_throttled_to_one_touch_per_refresh_interval(
    timed_client: TestClient, clock: ManualClock, backend: InMemoryBackend
) -> None:
    cookie = establish(timed_client, a="1")
    key = storage_key(SessionFrontend(secret_key=SECRET).unsign(cookie) or "")
    created_expiry = backend._records[key].expires_at
    calls = count_calls(backend)

    clock.advance(seconds=30)  # within idle_refresh_interval=60
    early = send(timed_client, "GET", "/read", cookie)
    assert early.json()["session"] == {"a": "1"}
    assert writes(calls) == {}
    assert session_cookies(early) == []
    assert backend._records[key].expires_at == created_expiry

    clock.advance(seconds=40)  # 70 s since the last extension
    late = send(timed_client, "GET", "/read", cookie)
    assert late.json()["session"] == {"a": "1"}
    # One extension: a separate touch, or none when the backend extends while reading.
    assert writes(calls) == ({} if isinstance(backend, SupportsReadAndTouch) else {"touch": 1})
    assert session_cookies(late) == []  # the cookie already outlives the new idle deadline
    assert (backend._records[key].expires_at - clock()).total_seconds() == 600


def test_absolute_timeout_ends_a_session_despite_constant_use(
    timed_client: TestClient, clock: ManualClock
) -> None:
    cookie = establish(timed_client, n="0")
    for step in range(1, 8):  # a use every 250 s, well inside the 600 s idle timeout, up to 1750 s
        clock.advance(seconds=250)
        if step % 2:
            response = send(timed_client, "POST", "/write", cookie, params={"key": "n", "value": str(step)})
        else:
            response = send(timed_client, "GET", "/read", cookie)
        assert response.status_code == 200
        assert issued(response) is None  # the first cookie (Max-Age 1800) covers the whole session

    assert send(timed_client, "GET", "/read", cookie).json()["session"] == {"n": "7"}
    clock.advance(seconds=50)  # 1800 s after creation
    assert send(timed_client, "GET", "/read", cookie).json()["session"] == {}


# -- lazy creation ---------------------------------------------------------------------------


def test_lazy_a_visitor_who_writes_nothing_gets_no_record_and_no_cookie(
    client: TestClient, backend: InMemoryBackend
) -> None:
    calls = count_calls(backend)
    for path in ("/noop", "/read"):
        response = send(client, "GET", path)
        assert response.status_code == 200
        assert response.headers.get_list("set-cookie") == []
    assert len(backend) == 0
    assert sum(calls.values()) == 0


def test_lazy_a_session_emptied_within_its_first_request_is_never_stored(
    manager: SessionManager, backend: InMemoryBackend
) -> None:
    app = app_with(manager)

    @app.post("/flash")
    async def flash(request: Request) -> dict[str, str]:
        request.session["flash"] = "hello"
        return {"flash": request.session.pop("flash")}

    response = send(client_for(app), "POST", "/flash")
    assert response.json() == {"flash": "hello"}
    assert response.headers.get_list("set-cookie") == []
    assert len(backend) == 0


# -- write only when modified ----------------------------------------------------------------


def test_read_only_request_writes_nothing_and_sends_no_cookie_but_varies_on_cookie(
    client: TestClient, backend: InMemoryBackend
) -> None:
    cookie = establish(client, a="1")
    calls = count_calls(backend)

    response = send(client, "GET", "/read", cookie)

    assert response.json()["session"] == {"a": "1"}
    assert writes(calls) == {}
    assert response.headers.get_list("set-cookie") == []
    assert "Cookie" in response.headers.get("vary", "")


def test_request_that_never_touches_the_session_has_no_vary_cookie(client: TestClient) -> None:
    cookie = establish(client, a="1")
    response = send(client, "GET", "/noop", cookie)
    assert "vary" not in response.headers
    assert response.headers.get_list("set-cookie") == []


def test_a_write_on_an_established_session_is_exactly_one_update(client: TestClient, backend: InMemoryBackend) -> None:
    cookie = establish(client, a="1")
    calls = count_calls(backend)
    send(client, "POST", "/write", cookie, params={"key": "a", "value": "2"})
    assert writes(calls) == {"update": 1}


# -- every mutating method -------------------------------------------------------------------


def _setitem(s: Session) -> None:
    s["c"] = "3"


def _delitem(s: Session) -> None:
    del s["a"]


def _update(s: Session) -> None:
    s.update({"a": "9"}, c="3")


def _ior(s: Session) -> None:
    s |= {"c": "3"}


def _pop(s: Session) -> None:
    assert s.pop("a") == "1"


def _popitem(s: Session) -> None:
    assert s.popitem() == ("b", "2")


def _setdefault(s: Session) -> None:
    assert s.setdefault("c", "3") == "3"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_setitem, {"a": "1", "b": "2", "c": "3"}),
        (_delitem, {"b": "2"}),
        (_update, {"a": "9", "b": "2", "c": "3"}),
        (_ior, {"a": "1", "b": "2", "c": "3"}),
        (_pop, {"b": "2"}),
        (_popitem, {"a": "1"}),
        (_setdefault, {"a": "1", "b": "2", "c": "3"}),
    ],
)
def test_every_mutating_method_marks_modified_and_is_persisted(
    mutate: Callable[[Session], None],
    expected: dict[str, str],
    manager: SessionManager,
    backend: InMemoryBackend,
) -> None:
    app = demo_app(manager)

    @app.post("/mutate")
    async def route(request: Request) -> dict[str, bool]:
        session = request.session
        mutate(session)
        return {"modified": session.modified}

    client = client_for(app)
    cookie = establish(client, a="1", b="2")
    calls = count_calls(backend)

    response = send(client, "POST", "/mutate", cookie)

    assert response.json() == {"modified": True}
    assert writes(calls) == {"update": 1}
    assert send(client, "GET", "/read", issued(response) or cookie).json()["session"] == expected


def test_non_mutating_setdefault_and_pop_of_a_missing_key_do_not_save(
    manager: SessionManager, backend: InMemoryBackend
) -> None:
    app = demo_app(manager)

    @app.post("/lookups")
    async def route(request: Request) -> dict[str, Any]:
        session = request.session
        return {"a": session.setdefault("a", "x"), "z": session.pop("z", None), "modified": session.modified}

    client = client_for(app)
    cookie = establish(client, a="1")
    calls = count_calls(backend)
    response = send(client, "POST", "/lookups", cookie)
    assert response.json() == {"a": "1", "z": None, "modified": False}
    assert writes(calls) == {}


def test_session_serializes_as_a_dict_in_a_json_response(client: TestClient) -> None:
    cookie = establish(client, a="1", b="2")
    assert send(client, "GET", "/read", cookie).json() == {"session": {"a": "1", "b": "2"}, "user": None}


# -- ending a session ------------------------------------------------------------------------


def _assert_cookie_removed(response: Any) -> None:
    cookies = session_cookies(response)
    assert len(cookies) == 1
    assert "Max-Age=0" in cookies[0]


def test_clear_ends_the_session_deletes_the_record_and_removes_the_cookie(
    client: TestClient, backend: InMemoryBackend
) -> None:
    cookie = establish(client, a="1")
    response = send(client, "POST", "/clear", cookie)
    _assert_cookie_removed(response)
    assert stored_sessions(backend) == {}  # at most a marker saying the token was retired
    assert send(client, "GET", "/read", cookie).json()["session"] == {}


def test_clear_ends_the_session_immediately_even_with_a_regenerate_grace(
    make_manager: Callable[..., SessionManager], backend: InMemoryBackend
) -> None:
    manager = make_manager(regenerate_grace=30)
    client = client_for(demo_app(manager))
    cookie = issued(send(client, "POST", "/login", params={"user": "alice"}))

    response = send(client, "POST", "/clear", cookie)

    _assert_cookie_removed(response)
    assert stored_sessions(backend) == {}
    assert asyncio.run(manager.list_sessions("alice")) == []
    assert send(client, "GET", "/read", cookie).json() == {"session": {}, "user": None}


def test_logout_by_unsetting_the_user_leaves_no_grace_for_the_logged_in_token(
    grace_client: TestClient,
) -> None:
    alice = establish(grace_client, cart="1")
    alice = issued(send(grace_client, "POST", "/login", alice, params={"user": "alice"}))
    app = grace_client.app
    assert isinstance(app, FastAPI)

    @app.post("/logout")
    async def logout(request: Request) -> dict[str, bool]:
        request.session.user_id = None
        return {"ok": True}

    anonymous = issued(send(grace_client, "POST", "/logout", alice))

    assert anonymous is not None and anonymous != alice
    assert send(grace_client, "GET", "/read", alice).json() == {"session": {}, "user": None}
    assert send(grace_client, "GET", "/read", anonymous).json() == {"session": {"cart": "1"}, "user": None}


def test_popping_the_last_key_ends_the_session(manager: SessionManager, backend: InMemoryBackend) -> None:
    app = demo_app(manager)

    @app.post("/pop")
    async def pop(request: Request, key: str) -> dict[str, bool]:
        request.session.pop(key)
        return {"ok": True}

    client = client_for(app)
    cookie = establish(client, a="1")
    response = send(client, "POST", "/pop", cookie, params={"key": "a"})
    _assert_cookie_removed(response)
    assert stored_sessions(backend) == {}


@pytest.mark.parametrize(
    "value",
    ["", "garbage", "a.b.c", '"quoted"', "x" * 5000, "..", "%00%ff", "session=session"],
)
def test_a_bogus_cookie_gives_an_empty_session_never_an_error(client: TestClient, value: str) -> None:
    response = send(client, "GET", "/read", value)
    assert response.status_code == 200
    assert response.json()["session"] == {}


def test_a_non_ascii_cookie_gives_an_empty_session(client: TestClient) -> None:
    client.cookies.clear()
    response = client.get("/read", headers={"cookie": "session=\xe9t\xe9".encode("latin-1")})
    assert response.status_code == 200
    assert response.json()["session"] == {}


# -- regeneration ----------------------------------------------------------------------------


def test_regenerate_keeps_the_data_issues_a_new_token_and_deletes_the_old_key(
    client: TestClient, frontend: SessionFrontend, backend: InMemoryBackend
) -> None:
    old = establish(client, a="1")
    response = send(client, "POST", "/regenerate", old)
    new = issued(response)

    assert new is not None and new != old
    assert storage_key(frontend.unsign(old) or "") not in stored_sessions(backend)
    assert storage_key(frontend.unsign(new) or "") in stored_sessions(backend)
    assert send(client, "GET", "/read", new).json()["session"] == {"a": "1"}
    assert send(client, "GET", "/read", old).json()["session"] == {}


@pytest.fixture
def grace_client(make_manager: Callable[..., SessionManager]) -> TestClient:
    return client_for(demo_app(make_manager(regenerate_grace=30)))


def test_regenerate_grace_keeps_the_old_token_working_for_the_window_only(
    grace_client: TestClient, clock: ManualClock
) -> None:
    old = establish(grace_client, a="1")
    new = issued(send(grace_client, "POST", "/regenerate", old))
    assert new is not None and new != old

    clock.advance(seconds=29)
    assert send(grace_client, "GET", "/read", old).json()["session"] == {"a": "1"}
    clock.advance(seconds=1)
    assert send(grace_client, "GET", "/read", old).json()["session"] == {}
    assert send(grace_client, "GET", "/read", new).json()["session"] == {"a": "1"}


def test_regenerate_grace_is_not_extended_by_using_the_old_token(
    grace_client: TestClient, clock: ManualClock
) -> None:
    old = establish(grace_client, a="1")
    issued(send(grace_client, "POST", "/regenerate", old))

    clock.advance(seconds=10)
    in_flight = send(grace_client, "GET", "/read", old)
    assert in_flight.json()["session"] == {"a": "1"}
    clock.advance(seconds=25)  # 35 s after the regeneration

    assert send(grace_client, "GET", "/read", old).json()["session"] == {}


# -- login, logout, revoke -------------------------------------------------------------------


def test_login_regenerates_the_token_and_indexes_the_session(
    client: TestClient, frontend: SessionFrontend, backend: InMemoryBackend, manager: SessionManager
) -> None:
    anonymous = establish(client, cart="3 items")
    response = send(client, "POST", "/login", anonymous, params={"user": "alice"})
    logged_in = issued(response)

    assert logged_in is not None and logged_in != anonymous
    assert storage_key(frontend.unsign(anonymous) or "") not in stored_sessions(backend)
    assert send(client, "GET", "/read", logged_in).json() == {"session": {"cart": "3 items"}, "user": "alice"}
    assert send(client, "GET", "/read", anonymous).json() == {"session": {}, "user": None}
    sessions = asyncio.run(manager.list_sessions("alice"))
    assert [info.key for info in sessions] == [storage_key(frontend.unsign(logged_in) or "")]
    assert sessions[0].user_id == "alice"


def test_login_on_a_fresh_visit_stores_a_session_with_only_a_user(
    client: TestClient, manager: SessionManager
) -> None:
    response = send(client, "POST", "/login", params={"user": "alice"})
    cookie = issued(response)
    assert cookie is not None
    assert send(client, "GET", "/read", cookie).json() == {"session": {}, "user": "alice"}
    assert len(asyncio.run(manager.list_sessions("alice"))) == 1


def test_logout_by_clear_removes_the_session_from_the_user_index(
    client: TestClient, manager: SessionManager
) -> None:
    cookie = issued(send(client, "POST", "/login", params={"user": "alice"}))
    assert len(asyncio.run(manager.list_sessions("alice"))) == 1

    _assert_cookie_removed(send(client, "POST", "/clear", cookie))

    assert asyncio.run(manager.list_sessions("alice")) == []
    assert send(client, "GET", "/read", cookie).json() == {"session": {}, "user": None}


def test_revoke_user_ends_every_session_of_that_user_only(manager: SessionManager) -> None:
    app = demo_app(manager)

    @app.post("/logout-everywhere")
    async def logout_everywhere(request: Request) -> dict[str, int]:
        return {"revoked": await manager.revoke_user(request.session.user_id or "")}

    client = client_for(app)
    alice_laptop = issued(send(client, "POST", "/login", params={"user": "alice"}))
    alice_phone = issued(send(client, "POST", "/login", params={"user": "alice"}))
    bob = issued(send(client, "POST", "/login", params={"user": "bob"}))
    assert len({alice_laptop, alice_phone, bob}) == 3

    response = send(client, "POST", "/logout-everywhere", alice_phone)

    assert response.json() == {"revoked": 2}
    assert send(client, "GET", "/read", alice_laptop).json()["user"] is None
    assert send(client, "GET", "/read", alice_phone).json()["user"] is None
    assert send(client, "GET", "/read", bob).json()["user"] == "bob"
    assert asyncio.run(manager.list_sessions("alice")) == []
    assert len(asyncio.run(manager.list_sessions("bob"))) == 1


# -- concurrency -----------------------------------------------------------------------------


def concurrent_app(manager: SessionManager, expected: int) -> FastAPI:
    """Routes that wait until ``expected`` requests have all loaded the session, then write."""
    app = demo_app(manager)
    arrived = 0
    everyone_in = asyncio.Event()

    async def rendezvous(request: Request) -> Session:
        nonlocal arrived
        session = request.session
        dict(session)  # read before the others write
        arrived += 1
        if arrived == expected:
            everyone_in.set()
        async with asyncio.timeout(5):
            await everyone_in.wait()
        await asyncio.sleep(0)
        return session

    @app.post("/set")
    async def set_key(request: Request, key: str, value: str) -> dict[str, bool]:
        (await rendezvous(request))[key] = value
        return {"ok": True}

    @app.post("/delete")
    async def delete_key(request: Request, key: str) -> dict[str, bool]:
        del (await rendezvous(request))[key]
        return {"ok": True}

    return app


def count_conflicts(backend: InMemoryBackend) -> list[int]:
    conflicts = [0]
    original = backend.update

    async def update(record: SessionRecord, expected_version: int, **kwargs: Any) -> int:
        try:
            return await original(record, expected_version, **kwargs)
        except Exception:
            conflicts[0] += 1
            raise

    backend.update = update  # type: ignore[method-assign]
    return conflicts


def async_client(app: FastAPI, cookie: str) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="https://testserver", headers={"cookie": f"session={cookie}"}
    )


async def stored(manager: SessionManager, cookie: str) -> dict[str, Any]:
    session = await manager.get_session(cookie)
    assert session is not None
    return dict(session)


@pytest.mark.asyncio
async def test_fifty_concurrent_requests_each_setting_a_key_all_land(
    manager: SessionManager, backend: InMemoryBackend
) -> None:
    cookie = await manager.create_session({"seed": "0"})
    conflicts = count_conflicts(backend)
    app = concurrent_app(manager, 50)

    async with async_client(app, cookie) as client:
        responses = await asyncio.gather(
            *(client.post("/set", params={"key": f"k{i}", "value": str(i)}) for i in range(50))
        )

    assert [r.status_code for r in responses] == [200] * 50
    assert conflicts[0] > 0  # the compare-and-set really lost and merged
    assert await stored(manager, cookie) == {"seed": "0", **{f"k{i}": str(i) for i in range(50)}}


@pytest.mark.asyncio
async def test_conflict_policy_raise_gives_409_to_the_loser_of_a_same_key_race(
    make_manager: Callable[..., SessionManager],
) -> None:
    manager = make_manager(conflict_policy="raise")
    cookie = await manager.create_session({"x": "0"})

    async with async_client(concurrent_app(manager, 2), cookie) as client:
        first, second = await asyncio.gather(
            client.post("/set", params={"key": "x", "value": "A"}),
            client.post("/set", params={"key": "x", "value": "B"}),
        )

    assert sorted([first.status_code, second.status_code]) == [200, 409]
    winner, loser = ("A", second) if first.status_code == 200 else ("B", first)
    assert loser.json()["detail"]
    assert loser.headers.get_list("set-cookie") == []
    assert await stored(manager, cookie) == {"x": winner}


@pytest.mark.asyncio
async def test_last_writer_wins_by_default_on_a_same_key_race(manager: SessionManager) -> None:
    cookie = await manager.create_session({"x": "0"})

    async with async_client(concurrent_app(manager, 2), cookie) as client:
        responses = await asyncio.gather(
            client.post("/set", params={"key": "x", "value": "A"}),
            client.post("/set", params={"key": "x", "value": "B"}),
        )

    assert [r.status_code for r in responses] == [200, 200]
    assert (await stored(manager, cookie))["x"] in ("A", "B")


@pytest.mark.asyncio
@pytest.mark.parametrize("policy", ["last_writer_wins", "raise"])
async def test_compare_and_set_merges_a_change_and_a_delete_of_different_keys(
    policy: str, make_manager: Callable[..., SessionManager], backend: InMemoryBackend
) -> None:
    manager = make_manager(conflict_policy=policy)
    cookie = await manager.create_session({"x": "0", "y": "1", "z": "2"})
    conflicts = count_conflicts(backend)

    async with async_client(concurrent_app(manager, 2), cookie) as client:
        changed, deleted = await asyncio.gather(
            client.post("/set", params={"key": "x", "value": "changed"}),
            client.post("/delete", params={"key": "y"}),
        )

    assert (changed.status_code, deleted.status_code) == (200, 200)
    assert conflicts[0] == 1
    assert await stored(manager, cookie) == {"x": "changed", "z": "2"}


# -- save before the headers leave -----------------------------------------------------------


def test_a_route_returning_its_own_redirect_still_saves_and_sets_the_cookie(
    manager: SessionManager, backend: InMemoryBackend
) -> None:
    app = demo_app(manager)

    @app.post("/login-form")
    async def login_form(request: Request) -> RedirectResponse:
        request.session["flash"] = "welcome"
        return RedirectResponse("/read", status_code=303)

    client = client_for(app)
    client.follow_redirects = False
    response = send(client, "POST", "/login-form")

    assert response.status_code == 303
    cookie = issued(response)
    assert cookie is not None
    assert len(backend) == 1
    assert send(client, "GET", "/read", cookie).json()["session"] == {"flash": "welcome"}


# -- store outage ----------------------------------------------------------------------------


class FlakyBackend(InMemoryBackend):
    """The in-memory backend, with a switch that makes every call fail as an unreachable store."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise BackendUnavailable("connection refused")

    async def create(self, record: SessionRecord, **kwargs: Any) -> None:
        self._check()
        await super().create(record, **kwargs)

    async def read(self, key: str, **kwargs: Any) -> SessionRecord | None:
        self._check()
        return await super().read(key, **kwargs)

    async def update(self, record: SessionRecord, expected_version: int, **kwargs: Any) -> int:
        self._check()
        return await super().update(record, expected_version, **kwargs)

    async def touch(self, key: str, expires_at: Any, **kwargs: Any) -> bool:
        self._check()
        return await super().touch(key, expires_at, **kwargs)

    async def delete(self, key: str, **kwargs: Any) -> bool:
        self._check()
        return await super().delete(key, **kwargs)

    async def list_by_user(self, user_id: str, **kwargs: Any) -> list[SessionRecord]:
        self._check()
        return await super().list_by_user(user_id, **kwargs)

    async def delete_by_user(self, user_id: str, **kwargs: Any) -> int:
        self._check()
        return await super().delete_by_user(user_id, **kwargs)


@pytest.fixture
def flaky(clock: ManualClock) -> FlakyBackend:
    return FlakyBackend(clock=clock)


@pytest.fixture
def flaky_client(flaky: FlakyBackend, clock: ManualClock) -> TestClient:
    manager = SessionManager(backend=flaky, frontend=SessionFrontend(secret_key=SECRET), clock=clock)
    app = demo_app(manager)

    @app.post("/write-then-outage")
    async def write_then_outage(request: Request, key: str, value: str) -> dict[str, bool]:
        request.session[key] = value
        flaky.down = True  # the store goes away between the route and the save
        return {"saved": True}

    @app.get("/sessions-of")
    async def sessions_of(user: str) -> dict[str, int]:
        return {"count": len(await manager.list_sessions(user))}

    return client_for(app)


def _assert_503(response: Any) -> None:
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert "unavailable" in response.json()["detail"]
    assert response.headers.get_list("set-cookie") == []


def test_outage_while_loading_gives_503_with_a_json_body(flaky_client: TestClient, flaky: FlakyBackend) -> None:
    cookie = establish(flaky_client, a="1")
    flaky.down = True
    _assert_503(send(flaky_client, "GET", "/read", cookie))

    flaky.down = False
    assert send(flaky_client, "GET", "/read", cookie).json()["session"] == {"a": "1"}


def test_outage_while_saving_gives_503_and_the_value_is_not_stored(
    flaky_client: TestClient, flaky: FlakyBackend
) -> None:
    cookie = establish(flaky_client, a="1")

    response = send(flaky_client, "POST", "/write-then-outage", cookie, params={"key": "a", "value": "lost"})

    _assert_503(response)
    flaky.down = False
    assert send(flaky_client, "GET", "/read", cookie).json()["session"] == {"a": "1"}


def test_outage_while_creating_gives_503_and_nothing_is_stored(
    flaky_client: TestClient, flaky: FlakyBackend
) -> None:
    response = send(flaky_client, "POST", "/write-then-outage", params={"key": "a", "value": "lost"})
    _assert_503(response)
    flaky.down = False
    assert len(flaky) == 0


def test_outage_hit_by_a_manager_call_in_a_route_gives_503(flaky_client: TestClient, flaky: FlakyBackend) -> None:
    flaky.down = True
    _assert_503(send(flaky_client, "GET", "/sessions-of", params={"user": "alice"}))

    flaky.down = False
    response = send(flaky_client, "GET", "/sessions-of", params={"user": "alice"})
    assert response.status_code == 200
    assert response.json() == {"count": 0}


def test_after_an_outage_the_app_serves_and_saves_normally(flaky_client: TestClient, flaky: FlakyBackend) -> None:
    cookie = establish(flaky_client, a="1")
    flaky.down = True
    _assert_503(send(flaky_client, "POST", "/write", cookie, params={"key": "a", "value": "2"}))
    flaky.down = False

    assert send(flaky_client, "POST", "/write", cookie, params={"key": "a", "value": "3"}).status_code == 200
    assert send(flaky_client, "GET", "/read", cookie).json()["session"] == {"a": "3"}


# -- dependencies ----------------------------------------------------------------------------


class Profile(BaseModel):
    name: str
    age: int


def dependency_app(manager: SessionManager) -> FastAPI:
    app = demo_app(manager)

    @app.post("/dep/session")
    async def with_session(
        request: Request, session: Annotated[Session, Depends(manager.session)]
    ) -> dict[str, Any]:
        session["via"] = "dependency"
        return {"same": session is request.session, "data": dict(session)}

    @app.get("/dep/user")
    async def with_user(user: Annotated[str, Depends(manager.user)]) -> dict[str, str]:
        return {"user": user}

    @app.get("/dep/optional-user")
    async def with_optional_user(user: Annotated[str | None, Depends(manager.optional_user)]) -> dict[str, Any]:
        return {"user": user}

    @app.get("/dep/profile")
    async def with_profile(profile: Annotated[Profile, Depends(manager.model(Profile))]) -> dict[str, Any]:
        return {"profile": profile.model_dump()}

    return app


@pytest.fixture
def dep_client(manager: SessionManager) -> TestClient:
    return client_for(dependency_app(manager))


def test_session_dependency_returns_the_request_session_and_saves_it(dep_client: TestClient) -> None:
    response = send(dep_client, "POST", "/dep/session")
    assert response.json() == {"same": True, "data": {"via": "dependency"}}
    assert "Cookie" in response.headers["vary"]
    assert send(dep_client, "GET", "/read", issued(response)).json()["session"] == {"via": "dependency"}


def test_user_dependency_is_401_when_not_logged_in_and_the_id_when_logged_in(dep_client: TestClient) -> None:
    anonymous = establish(dep_client, a="1")
    assert send(dep_client, "GET", "/dep/user").status_code == 401
    assert send(dep_client, "GET", "/dep/user", anonymous).status_code == 401
    assert send(dep_client, "GET", "/dep/optional-user", anonymous).json() == {"user": None}

    alice = issued(send(dep_client, "POST", "/login", anonymous, params={"user": "alice"}))
    assert send(dep_client, "GET", "/dep/user", alice).json() == {"user": "alice"}
    assert send(dep_client, "GET", "/dep/optional-user", alice).json() == {"user": "alice"}


def test_model_dependency_validates_the_session_data(dep_client: TestClient) -> None:
    cookie = establish(dep_client, name="alice", age="42")
    assert send(dep_client, "GET", "/dep/profile", cookie).json() == {"profile": {"name": "alice", "age": 42}}


@pytest.mark.parametrize("data", [{"name": "alice", "age": "old"}, {"name": "alice"}, {}])
def test_model_dependency_mismatch_is_a_422_not_a_500(dep_client: TestClient, data: dict[str, str]) -> None:
    cookie = establish(dep_client, **data) if data else None
    response = send(dep_client, "GET", "/dep/profile", cookie)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "Profile" in detail["message"]
    assert detail["errors"]


def test_dependencies_publish_the_frontend_security_scheme_in_openapi(manager: SessionManager) -> None:
    schema = dependency_app(manager).openapi()

    assert schema["components"]["securitySchemes"] == {
        "SessionFrontend": {"type": "apiKey", "in": "cookie", "name": "session"}
    }
    for path, method in [("/dep/session", "post"), ("/dep/user", "get"), ("/dep/optional-user", "get"),
                         ("/dep/profile", "get")]:
        assert schema["paths"][path][method]["security"] == [{"SessionFrontend": []}], path
    assert "security" not in schema["paths"]["/read"]["get"]


# -- the direct API --------------------------------------------------------------------------


@pytest.fixture
def quickstart() -> Any:
    spec = importlib.util.spec_from_file_location("quickstart_example", ROOT / "examples" / "quickstart.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quickstart_login_returns_a_session_id_that_me_accepts(quickstart: Any) -> None:
    client = TestClient(quickstart.app)
    response = client.post("/login", params={"username": "alice"})
    assert response.status_code == 200
    session_id = response.json()["session_id"]

    me = client.get("/me", params={"session_id": session_id})
    assert me.status_code == 200
    assert me.json() == {"user": "alice"}


@pytest.mark.parametrize("kind", ["unknown", "forged", "garbage", "tampered"])
def test_quickstart_unknown_or_forged_session_id_is_401(quickstart: Any, kind: str) -> None:
    client = TestClient(quickstart.app)
    real = client.post("/login", params={"username": "alice"}).json()["session_id"]
    session_id = {
        "unknown": quickstart.frontend.sign(secrets.token_urlsafe(32)),
        "forged": SessionFrontend(secret_key="not-the-key").sign(quickstart.frontend.unsign(real)),
        "garbage": "garbage",
        "tampered": real[:-2] + ("AA" if not real.endswith("AA") else "BB"),
    }[kind]
    response = client.get("/me", params={"session_id": session_id})
    assert response.status_code == 401


def direct_app(manager: SessionManager) -> FastAPI:
    app = FastAPI()

    @app.post("/sessions")
    async def create() -> dict[str, str]:
        return {"session_id": await manager.create_session({"a": 1})}

    @app.post("/sessions/{session_id}/add")
    async def add(session_id: str, key: str, value: str) -> dict[str, Any]:
        session = await manager.get_session(session_id)
        if session is None:
            return {"found": False}
        session[key] = value
        return {"found": True, "session_id": await manager.save_session(session)}

    @app.get("/sessions/{session_id}")
    async def show(session_id: str) -> dict[str, Any]:
        session = await manager.get_session(session_id)
        return {"data": None if session is None else dict(session)}

    @app.delete("/sessions/{session_id}")
    async def delete(session_id: str) -> dict[str, bool]:
        return {"deleted": await manager.delete_session(session_id)}

    return app


def test_direct_save_session_persists_changes_and_keeps_the_id(manager: SessionManager) -> None:
    client = client_for(direct_app(manager))
    session_id = client.post("/sessions").json()["session_id"]

    assert client.post(f"/sessions/{session_id}/add", params={"key": "b", "value": "2"}).json() == {
        "found": True, "session_id": session_id
    }
    assert client.get(f"/sessions/{session_id}").json() == {"data": {"a": 1, "b": "2"}}


def test_direct_delete_session_is_idempotent(manager: SessionManager, backend: InMemoryBackend) -> None:
    client = client_for(direct_app(manager))
    session_id = client.post("/sessions").json()["session_id"]

    assert client.delete(f"/sessions/{session_id}").json() == {"deleted": True}
    assert client.delete(f"/sessions/{session_id}").json() == {"deleted": False}
    assert client.delete("/sessions/garbage").json() == {"deleted": False}
    assert client.get(f"/sessions/{session_id}").json() == {"data": None}
    assert len(backend) == 0


# -- header frontend -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frontend_options", "request_header", "prefix"),
    [
        ({"header_name": "X-Session-Token"}, "X-Session-Token", ""),
        ({"bearer": True}, "Authorization", "Bearer "),
    ],
)
def test_header_frontend_end_to_end(
    make_manager: Callable[..., SessionManager],
    backend: InMemoryBackend,
    frontend_options: dict[str, Any],
    request_header: str,
    prefix: str,
) -> None:
    frontend = HeaderFrontend(secret_key=SECRET, **frontend_options)
    client = client_for(demo_app(make_manager(frontend=frontend)))

    created = client.post("/write", params={"key": "a", "value": "1"})
    session_id = created.headers["X-Session-Token"]
    assert frontend.unsign(session_id) is not None
    assert created.headers.get_list("set-cookie") == []
    auth = {request_header: prefix + session_id}

    read = client.get("/read", headers=auth)
    assert read.json()["session"] == {"a": "1"}
    assert "X-Session-Token" not in read.headers  # nothing new to hand out
    assert request_header in read.headers["vary"]

    client.post("/write", params={"key": "b", "value": "2"}, headers=auth)
    assert client.get("/read", headers=auth).json()["session"] == {"a": "1", "b": "2"}
    assert client.get("/read").json()["session"] == {}

    regenerated = client.post("/regenerate", headers=auth).headers["X-Session-Token"]
    assert regenerated != session_id
    assert client.get("/read", headers=auth).json()["session"] == {}
    auth = {request_header: prefix + regenerated}
    assert client.get("/read", headers=auth).json()["session"] == {"a": "1", "b": "2"}

    assert client.post("/clear", headers=auth).headers["X-Session-Token"] == ""
    assert stored_sessions(backend) == {}
