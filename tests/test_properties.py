"""Property tests: whatever a client sends as its token, never a 500 and never an adopted session.

An app with ``SessionMiddleware`` on the in-memory backend holds one established
session carrying a secret. Requests carrying anything other than that session's
exact signed id must see an empty session; when they write, they get a brand
new token, and the established session is left untouched.
"""

import asyncio
import string
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SECRET, app_with, client_for
from fastapi_sessions import ManualClock, SessionManager
from fastapi_sessions._core.tokens import TokenSigner, new_token, storage_key
from fastapi_sessions.backends.in_memory import InMemoryBackend
from fastapi_sessions.frontends import BaseFrontend, CookieFrontend, HeaderFrontend, SessionFrontend

MARKER = "established-secret-7f3a"
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the app under test ----------------------------------------------------------------------------


@dataclass
class World:
    app: FastAPI
    manager: SessionManager
    backend: InMemoryBackend
    frontend: BaseFrontend
    signed: str  # the established session's public id
    token: str
    key: str
    seen_keys: set[str] = field(default_factory=set)

    @property
    def response_header(self) -> str:
        if isinstance(self.frontend, HeaderFrontend):
            return self.frontend.response_header.lower()
        return "set-cookie"


def build(frontend: BaseFrontend) -> World:
    clock = ManualClock()
    backend = InMemoryBackend(clock=clock)
    manager = SessionManager(backend=backend, frontend=frontend, clock=clock)
    app = app_with(manager)

    @app.get("/read")
    async def read(request: Request) -> dict[str, Any]:
        return {"data": dict(request.session), "key": request.session.key}

    @app.post("/write")
    async def write(request: Request) -> dict[str, Any]:
        request.session["visits"] = request.session.get("visits", 0) + 1
        return {"data": dict(request.session)}

    signed = asyncio.run(manager.create_session({"secret": MARKER}, user_id="alice"))
    token = frontend.unsign(signed)
    assert token is not None
    return World(app, manager, backend, frontend, signed, token, storage_key(token))


@pytest.fixture(scope="module")
def world() -> World:
    return build(SessionFrontend(secret_key=SECRET))


@pytest.fixture(scope="module")
def header_world() -> World:
    return build(HeaderFrontend(SECRET))


@pytest.fixture(scope="module")
def bearer_world() -> World:
    return build(HeaderFrontend(SECRET, bearer=True))


# -- raw ASGI, for header bytes a client library refuses to send -----------------------------------


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def get_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


def asgi(app: FastAPI, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> Reply:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 443),
    }
    messages: list[dict[str, Any]] = []
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    asyncio.run(app(scope, receive, send))  # an exception here fails the test: it would be a 500
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return Reply(
        start["status"],
        [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in start["headers"]],
        body,
    )


# -- the property --------------------------------------------------------------------------------


def issued_value(world: World, reply: Reply) -> str | None:
    values = reply.get_all(world.response_header)
    if not values:
        return None
    assert len(values) == 1, values
    value = values[0]
    if world.response_header == "set-cookie":
        name, _, rest = value.partition("=")
        assert name == "session"
        value = rest.split(";", 1)[0]
    return value


def assert_not_adopted(world: World, headers: list[tuple[bytes, bytes]]) -> None:
    """Read and write with ``headers``: an empty session, a fresh token, the established one intact."""
    sent = b"\n".join(v for _, v in headers)

    read = asgi(world.app, "GET", "/read", headers)
    assert read.status == 200, read.body
    assert MARKER.encode() not in read.body
    assert read.body == b'{"data":{},"key":null}'
    assert issued_value(world, read) in (None, "")  # a read issues no token

    write = asgi(world.app, "POST", "/write", headers)
    assert write.status == 200, write.body
    assert write.body == b'{"data":{"visits":1}}'
    issued = issued_value(world, write)
    assert issued
    token = world.frontend.unsign(issued)
    assert token is not None
    key = storage_key(token)
    assert key != world.key
    assert key not in world.seen_keys
    world.seen_keys.add(key)
    assert token.encode() not in sent and issued.encode() not in sent

    established = asyncio.run(world.backend.read(world.key))
    assert established is not None
    assert MARKER.encode() in established.payload and established.version == 1


def cookie_headers(*values: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"cookie", b"session=" + value) for value in values]


# -- strategies ------------------------------------------------------------------------------------

junk_bytes = st.one_of(
    st.binary(max_size=300),
    st.binary(min_size=2_000, max_size=10_240),
    st.text(max_size=200).map(lambda s: s.encode("utf-8")),
    st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0xFF), min_size=1, max_size=100).map(
        lambda s: s.encode("latin-1")
    ),
    st.text(alphabet=string.ascii_letters + string.digits + "-_.", max_size=200).map(str.encode),
)
specials = st.text(alphabet=' \t"\',;=\\', min_size=1, max_size=4)
key_text = st.text(min_size=1, max_size=24)


@st.composite
def tampered(draw: st.DrawFn, signed: str) -> str:
    """``signed`` with one to three characters replaced, inserted, deleted or truncated."""
    value = list(signed)
    alphabet = string.ascii_letters + string.digits + "-_.=~+/"
    for _ in range(draw(st.integers(1, 3))):
        if not value:
            break
        op = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        i = draw(st.integers(0, len(value) - 1))
        if op == "replace":
            value[i] = draw(st.sampled_from(alphabet).filter(lambda c, old=value[i]: c != old))
        elif op == "insert":
            value.insert(i, draw(st.sampled_from(alphabet)))
        elif op == "delete":
            del value[i]
        else:
            value = value[:i]
    return "".join(value)


# -- cookie ----------------------------------------------------------------------------------------


def test_the_established_value_is_adopted(world: World) -> None:
    """The control for every property below: the exact id (also DQUOTE-wrapped) opens the session."""
    for value in (world.signed, f'"{world.signed}"'):
        reply = asgi(world.app, "GET", "/read", cookie_headers(value.encode()))
        assert reply.status == 200
        assert MARKER.encode() in reply.body


@SETTINGS
@given(value=junk_bytes)
def test_random_malformed_oversized_or_non_ascii_cookies_are_never_adopted(world: World, value: bytes) -> None:
    assert world.signed.encode() not in value
    assert_not_adopted(world, cookie_headers(value))


@SETTINGS
@given(data=st.data())
def test_tampered_signed_cookies_are_never_adopted(world: World, data: st.DataObject) -> None:
    value = data.draw(tampered(world.signed))
    if value != world.signed:
        assert_not_adopted(world, cookie_headers(value.encode()))


@SETTINGS
@given(position=st.integers(min_value=0), junk=specials)
def test_quotes_semicolons_commas_whitespace_inside_the_value_are_rejected(
    world: World, position: int, junk: str
) -> None:
    i = position % (len(world.signed) - 1) + 1  # strictly inside the value
    assert_not_adopted(world, cookie_headers((world.signed[:i] + junk + world.signed[i:]).encode()))


@FEW
@given(prefix=specials, suffix=specials)
def test_values_wrapped_in_junk_are_rejected(world: World, prefix: str, suffix: str) -> None:
    value = prefix + world.signed + suffix
    # What may legitimately carry the id: DQUOTE wrapping, trailing whitespace, a ';' ending the pair.
    if value.split(";")[0].strip(' \t"') == world.signed:
        return
    assert_not_adopted(world, cookie_headers(value.encode()))


@SETTINGS
@given(key=st.text(min_size=1, max_size=64).filter(lambda k: k != SECRET), own_token=st.booleans())
def test_tokens_signed_with_a_foreign_or_retired_key_are_never_adopted(
    world: World, key: str, own_token: bool
) -> None:
    token = world.token if own_token else new_token()  # even the established token itself
    forged = TokenSigner(key, salt="fastapi-sessions.cookie").sign(token)
    assert_not_adopted(world, cookie_headers(forged.encode()))


@FEW
@given(
    values=st.lists(st.one_of(junk_bytes.filter(lambda b: len(b) < 500), st.just(b"")), min_size=2, max_size=4),
    decoys=st.lists(st.sampled_from(["Session", "xsession", "session2", "sessio", "SESSION", "_session"]), max_size=3),
)
def test_multiple_cookie_headers_never_adopt(world: World, values: list[bytes], decoys: list[str]) -> None:
    headers = cookie_headers(*values)
    # The real id under other cookie names must not count either.
    headers += [(b"cookie", f"other=1; {name}={world.signed}".encode()) for name in decoys]
    assert_not_adopted(world, headers)


@FEW
@given(value=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=300))
def test_random_cookie_values_through_testclient(world: World, value: str) -> None:
    client = client_for(world.app)
    read = client.get("/read", headers={"cookie": f"session={value}"})
    assert read.status_code == 200
    assert read.json() == {"data": {}, "key": None}
    write = client.post("/write", headers={"cookie": f"session={value}"})
    assert write.status_code == 200
    assert write.json() == {"data": {"visits": 1}}
    issued = write.cookies.get("session")
    assert issued and issued != value
    token = world.frontend.unsign(issued)
    assert token is not None and storage_key(token) != world.key


# -- header and bearer -----------------------------------------------------------------------------


def test_header_control_values_are_adopted(header_world: World, bearer_world: World) -> None:
    plain = asgi(header_world.app, "GET", "/read", [(b"x-session-token", header_world.signed.encode())])
    assert MARKER.encode() in plain.body
    bearer = asgi(bearer_world.app, "GET", "/read", [(b"authorization", b"Bearer " + bearer_world.signed.encode())])
    assert MARKER.encode() in bearer.body


@SETTINGS
@given(value=junk_bytes)
def test_random_header_values_are_never_adopted(header_world: World, value: bytes) -> None:
    assert_not_adopted(header_world, [(b"x-session-token", value)])


@SETTINGS
@given(data=st.data())
def test_tampered_header_values_are_never_adopted(header_world: World, data: st.DataObject) -> None:
    value = data.draw(tampered(header_world.signed))
    if value != header_world.signed:
        assert_not_adopted(header_world, [(b"x-session-token", value.encode())])


@SETTINGS
@given(scheme=st.sampled_from(["Bearer", "bearer", "Basic", "Token", "", "Bearer\t"]), value=junk_bytes)
def test_random_bearer_values_are_never_adopted(bearer_world: World, scheme: str, value: bytes) -> None:
    assert_not_adopted(bearer_world, [(b"authorization", scheme.encode() + b" " + value)])


@FEW
@given(data=st.data(), key=st.text(min_size=1, max_size=32).filter(lambda k: k != SECRET))
def test_tampered_or_foreign_bearer_tokens_are_never_adopted(
    bearer_world: World, data: st.DataObject, key: str
) -> None:
    foreign = TokenSigner(key, salt="fastapi-sessions.header").sign(bearer_world.token)
    value = data.draw(st.one_of(tampered(bearer_world.signed), st.just(foreign)))
    if value != bearer_world.signed:
        assert_not_adopted(bearer_world, [(b"authorization", b"Bearer " + value.encode())])


def test_cookie_signed_id_in_the_header_is_not_adopted(header_world: World) -> None:
    """The established token signed for the cookie transport: the salts differ, so it is foreign."""
    assert_not_adopted(header_world, [(b"x-session-token", CookieFrontend(SECRET).sign(header_world.token).encode())])


# -- rotation --------------------------------------------------------------------------------------


@FEW
@given(keys=st.lists(key_text, min_size=1, max_size=4, unique=True), new=key_text, pick=st.integers(min_value=0))
def test_rotated_keys_keep_old_cookies_valid(keys: list[str], new: str, pick: int) -> None:
    if new in keys:
        return
    signing_key = keys[pick % len(keys)]
    token = new_token()
    issued = CookieFrontend(signing_key).sign(token)
    rotated = CookieFrontend([new, *keys])
    assert rotated.unsign(issued) == token
    assert CookieFrontend(new).unsign(rotated.sign(token)) == token  # the first key signs
    remaining = [k for k in keys if k != signing_key]
    assert CookieFrontend([new, *remaining]).unsign(issued) is None  # its key retired: rejected


@FEW
@given(olds=st.lists(key_text, min_size=1, max_size=3, unique=True), new=key_text)
def test_rotation_through_the_app_keeps_sessions_until_the_key_retires(olds: list[str], new: str) -> None:
    if new in olds:
        return
    clock = ManualClock()
    backend = InMemoryBackend(clock=clock)
    before = SessionManager(backend=backend, frontend=SessionFrontend(secret_key=olds[-1]), clock=clock)
    signed = asyncio.run(before.create_session({"secret": MARKER}))
    after = SessionManager(backend=backend, frontend=SessionFrontend(secret_key=[new, *olds]), clock=clock)
    reply = asgi(read_app(after), "GET", "/read", cookie_headers(signed.encode()))
    assert reply.status == 200 and MARKER.encode() in reply.body
    retired = SessionManager(backend=backend, frontend=SessionFrontend(secret_key=[new]), clock=clock)
    reply = asgi(read_app(retired), "GET", "/read", cookie_headers(signed.encode()))
    assert reply.status == 200 and MARKER.encode() not in reply.body


def read_app(manager: SessionManager) -> FastAPI:
    app = app_with(manager)

    @app.get("/read")
    async def read(request: Request) -> dict[str, Any]:
        return {"data": dict(request.session)}

    return app
