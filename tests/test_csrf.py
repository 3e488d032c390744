"""CSRFMiddleware and csrf_token: every rule, through the ASGI app (the browser tests are test_csrf_browser.py)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, Form, Request, UploadFile
from fastapi.testclient import TestClient
from starlette.types import Message

from conftest import SECRET, client_for, stored_sessions
from fastapi_sessions import (
    ConfigurationError,
    CSRFMiddleware,
    HeaderFrontend,
    InMemoryBackend,
    SessionManager,
    SessionMiddleware,
    csrf_token,
    session_of,
)
from fastapi_sessions import _csrf as csrf_module

ORIGIN = "https://testserver"
UNSAFE = ["POST", "PUT", "PATCH", "DELETE"]


def protected_app(manager: SessionManager, **options: Any) -> FastAPI:
    app = FastAPI()
    app.add_middleware(CSRFMiddleware, manager=manager, **options)  # inside: added first
    app.add_middleware(SessionMiddleware, manager=manager)

    @app.get("/form")
    async def form(request: Request) -> dict[str, str]:
        return {"token": csrf_token(request)}

    @app.api_route("/act", methods=["GET", "HEAD", "OPTIONS", "TRACE", *UNSAFE])
    async def act(request: Request) -> dict[str, Any]:
        body = await request.body()
        return {"ok": True, "body": body.decode("latin-1")}

    @app.post("/login/{user}")
    async def login(request: Request, user: str) -> dict[str, str]:
        session_of(request).user_id = user
        return {"token": csrf_token(request)}

    @app.post("/webhook")
    async def webhook() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/hooks/{name}")
    async def hooks(name: str) -> dict[str, str]:
        return {"hook": name}

    return app


@pytest.fixture
def client(manager: SessionManager) -> TestClient:
    return client_for(protected_app(manager))


def token_of(client: TestClient) -> str:
    token: str = client.get("/form").json()["token"]
    return token


def reason(response: Any) -> str:
    assert response.status_code == 403, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail", "reason"} and body["detail"].startswith("CSRF check failed")
    return str(body["reason"])


# -- methods -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "TRACE"])
def test_safe_methods_pass_without_a_token_even_cross_site(client: TestClient, method: str) -> None:
    response = client.request(method, "/act", headers={"sec-fetch-site": "cross-site", "origin": "https://evil.test"})
    assert response.status_code == 200


@pytest.mark.parametrize("method", UNSAFE)
def test_unsafe_methods_need_the_token(client: TestClient, method: str) -> None:
    token = token_of(client)
    assert reason(client.request(method, "/act")) == "token_missing"
    assert reason(client.request(method, "/act", headers={"x-csrf-token": "not-it"})) == "token_mismatch"
    assert client.request(method, "/act", headers={"x-csrf-token": token}).status_code == 200


# -- Fetch Metadata, Origin, Referer ------------------------------------------------------------


@pytest.mark.parametrize(("site", "expected"), [("cross-site", "cross_site"), ("same-site", "cross_site"),
                                                ("same-origin", None), ("none", None)])
def test_fetch_metadata_decides_first(client: TestClient, site: str, expected: str | None) -> None:
    token = token_of(client)
    # An Origin that would pass on its own: Fetch Metadata wins.
    response = client.post("/act", headers={"x-csrf-token": token, "sec-fetch-site": site, "origin": ORIGIN})
    if expected is None:
        assert response.status_code == 200
    else:
        assert reason(response) == expected


def test_a_same_origin_request_still_needs_the_token(client: TestClient) -> None:
    token_of(client)
    assert reason(client.post("/act", headers={"sec-fetch-site": "same-origin"})) == "token_missing"


def test_same_site_passes_when_allowed(manager: SessionManager) -> None:
    client = client_for(protected_app(manager, allow_same_site=True))
    token = token_of(client)
    headers = {"x-csrf-token": token, "sec-fetch-site": "same-site", "origin": "https://app.testserver"}
    assert client.post("/act", headers=headers).status_code == 200
    assert reason(client.post("/act", headers={**headers, "sec-fetch-site": "cross-site"})) == "cross_site"


def test_trusted_origins_may_post_cross_site_with_the_token(manager: SessionManager) -> None:
    client = client_for(protected_app(manager, trusted_origins=["https://partner.test", "https://*.example.com"]))
    token = token_of(client)
    for origin in ("https://partner.test", "https://a.example.com", "https://b.c.example.com:443"):
        headers = {"x-csrf-token": token, "sec-fetch-site": "cross-site", "origin": origin}
        assert client.post("/act", headers=headers).status_code == 200, origin
        assert client.post("/act", headers={"x-csrf-token": token, "origin": origin}).status_code == 200, origin
    for origin in ("https://evil.test", "http://partner.test", "https://example.com", "https://evilexample.com",
                   "https://partner.test:8443"):
        headers = {"x-csrf-token": token, "sec-fetch-site": "cross-site", "origin": origin}
        assert reason(client.post("/act", headers=headers)) == "cross_site", origin
        assert reason(client.post("/act", headers={"x-csrf-token": token, "origin": origin})) == "origin_mismatch"
    assert reason(client.post("/act", headers={"origin": "https://partner.test"})) == "token_missing"


@pytest.mark.parametrize(("origin", "passes"), [
    (ORIGIN, True),
    ("https://TestServer:443", True),  # case and default port do not matter
    ("http://testserver", False),  # another scheme is another origin
    ("https://testserver:8443", False),
    ("https://evil.test", False),
    ("null", False),  # a sandboxed frame or a privacy redirect: unknown, so not this site
    ("https://[::1", False),  # junk: a 403, never a 500
    ("", False),
])
def test_without_fetch_metadata_the_origin_must_be_this_site(client: TestClient, origin: str, passes: bool) -> None:
    token = token_of(client)
    response = client.post("/act", headers={"x-csrf-token": token, "origin": origin})
    if passes:
        assert response.status_code == 200
    else:
        assert reason(response) == "origin_mismatch"


@pytest.mark.parametrize(("referer", "passes"), [
    (f"{ORIGIN}/some/page?q=1", True),
    ("https://evil.test/page", False),
    ("not a url", False),
])
def test_without_origin_the_referer_must_be_this_site(client: TestClient, referer: str, passes: bool) -> None:
    token = token_of(client)
    response = client.post("/act", headers={"x-csrf-token": token, "referer": referer})
    if passes:
        assert response.status_code == 200
    else:
        assert reason(response) == "referer_mismatch"


def test_the_own_origin_follows_the_host_header_and_scheme(manager: SessionManager) -> None:
    client = TestClient(protected_app(manager), base_url="https://shop.example:8443")
    token = token_of(client)
    own = {"x-csrf-token": token, "origin": "https://shop.example:8443"}
    assert client.post("/act", headers=own).status_code == 200
    assert reason(client.post("/act", headers={"x-csrf-token": token, "origin": ORIGIN})) == "origin_mismatch"


# -- where the token travels ------------------------------------------------------------------


def test_the_token_in_an_urlencoded_form_field(client: TestClient) -> None:
    token = token_of(client)
    response = client.post("/act", data={"amount": "10", "csrf_token": token})
    assert response.status_code == 200
    assert response.json()["body"] == f"amount=10&csrf_token={token}"  # the app got the body unchanged
    assert reason(client.post("/act", data={"amount": "10", "csrf_token": "x" + token})) == "token_mismatch"
    assert reason(client.post("/act", data={"amount": "10"})) == "token_missing"


def test_the_token_in_a_multipart_form_field_with_a_file(client: TestClient) -> None:
    token = token_of(client)
    files = {"upload": ("notes.txt", b"line one\r\n--not-a-boundary\r\n", "text/plain")}
    response = client.post("/act", data={"csrf_token": token, "title": "t"}, files=files)
    assert response.status_code == 200
    body = response.json()["body"]
    assert f'name="csrf_token"\r\n\r\n{token}\r\n' in body and "line one\r\n--not-a-boundary" in body
    # A file part that happens to be called csrf_token is not the field.
    forged = {"csrf_token": ("csrf_token", token.encode(), "text/plain")}
    assert reason(client.post("/act", files=forged)) == "token_missing"


def test_fastapi_form_and_upload_parsing_work_behind_the_middleware(manager: SessionManager) -> None:
    app = protected_app(manager)

    @app.post("/upload")
    async def upload(title: Annotated[str, Form()], csrf_token: Annotated[str, Form()],
                     file: UploadFile) -> dict[str, Any]:
        return {"title": title, "token_seen": bool(csrf_token), "file": (await file.read()).decode()}

    @app.post("/signup")
    async def signup(name: Annotated[str, Form()]) -> dict[str, str]:
        return {"name": name}

    client = client_for(app)
    token = token_of(client)
    data = {"title": "Ünïcode & more", "csrf_token": token}
    response = client.post("/upload", data=data, files={"file": ("a.bin", b"\x00\x01binary\r\n--", "x/y")})
    assert response.json() == {"title": "Ünïcode & more", "token_seen": True, "file": "\x00\x01binary\r\n--"}
    assert client.post("/signup", data={"name": "é", "csrf_token": token}).json() == {"name": "é"}
    assert reason(client.post("/signup", data={"name": "é"})) == "token_missing"


def test_a_multipart_body_without_a_boundary_is_a_403(client: TestClient) -> None:
    token_of(client)
    response = client.post("/act", content=b"csrf_token=x", headers={"content-type": "multipart/form-data"})
    assert reason(response) == "token_missing"


def test_other_bodies_need_the_header(client: TestClient) -> None:
    token = token_of(client)
    assert reason(client.post("/act", json={"csrf_token": token})) == "token_missing"
    assert client.post("/act", json={"a": 1}, headers={"x-csrf-token": token}).status_code == 200


def test_the_header_and_field_names_are_configurable(manager: SessionManager) -> None:
    client = client_for(protected_app(manager, header_name="X-XSRF", field_name="_token"))
    token = token_of(client)
    assert client.post("/act", headers={"x-xsrf": token}).status_code == 200
    assert client.post("/act", data={"_token": token}).status_code == 200
    assert reason(client.post("/act", headers={"x-csrf-token": token})) == "token_missing"


# -- the body: replayed, bounded ---------------------------------------------------------------


def asgi_call(app: Any, headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, bytes, int]:
    """POST /act with the body in ``chunks``, straight through ASGI: (status, body, receive calls)."""
    received = 0
    messages: list[Message] = []

    async def receive() -> Message:
        nonlocal received
        received += 1
        if received <= len(chunks):
            return {"type": "http.request", "body": chunks[received - 1], "more_body": received < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        messages.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "https",
             "path": "/act", "raw_path": b"/act", "root_path": "", "query_string": b"", "server": ("testserver", 443),
             "client": ("127.0.0.1", 1234), "headers": [(b"host", b"testserver"), *headers]}
    asyncio.run(app(scope, receive, send))
    status = next((m["status"] for m in messages if m["type"] == "http.response.start"), 0)
    return status, b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body"), received


def signed_in(client: TestClient) -> tuple[bytes, str]:
    """The cookie header and CSRF token of a session created through ``client``."""
    token = token_of(client)
    return f"session={client.cookies['session']}".encode(), token


def test_a_body_in_many_chunks_is_buffered_and_replayed_whole(manager: SessionManager) -> None:
    app = protected_app(manager)
    cookie, token = signed_in(client_for(app))
    body = f"a=1&csrf_token={token}&b=".encode() + b"x" * 5000
    chunks = [body[i:i + 700] for i in range(0, len(body), 700)]
    form = (b"content-type", b"application/x-www-form-urlencoded")
    status, response, _ = asgi_call(app, [(b"cookie", cookie), form], chunks)
    assert status == 200
    assert response.decode().endswith('"body":"' + body.decode() + '"}')


def test_a_declared_body_over_the_bound_is_a_413_before_reading_it(manager: SessionManager) -> None:
    app = protected_app(manager, max_body_size=1000)
    cookie, _ = signed_in(client_for(app))
    headers = [(b"cookie", cookie), (b"content-type", b"application/x-www-form-urlencoded"),
               (b"content-length", b"1001")]
    status, body, received = asgi_call(app, headers, [b"x" * 1001])
    assert (status, received) == (413, 0)
    assert b'"reason": "body_too_large"' in body and b"1000 bytes" in body


def test_a_streamed_body_over_the_bound_is_a_413_as_soon_as_it_passes(manager: SessionManager) -> None:
    app = protected_app(manager, max_body_size=1000)
    cookie, _ = signed_in(client_for(app))
    chunks = [b"x" * 400] * 10  # no content-length (chunked): 4000 bytes, the bound is passed at the third
    status, _, received = asgi_call(app, [(b"cookie", cookie), (b"content-type", b"multipart/form-data; boundary=b")],
                                    chunks)
    assert (status, received) == (413, 3)


def test_a_form_of_exactly_the_bound_is_read(manager: SessionManager) -> None:
    app = protected_app(manager, max_body_size=1000)
    client = client_for(app)
    token = token_of(client)
    body = f"csrf_token={token}&pad=".encode()
    body += b"p" * (1000 - len(body))
    response = client.post("/act", content=body, headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200


def test_a_client_that_leaves_mid_body_gets_no_response_and_the_app_never_runs(manager: SessionManager) -> None:
    app = protected_app(manager)
    cookie, _ = signed_in(client_for(app))

    async def run() -> tuple[list[Message], int]:
        calls = 0
        sent: list[Message] = []

        async def receive() -> Message:
            nonlocal calls
            calls += 1
            return {"type": "http.request", "body": b"a=1", "more_body": True} if calls == 1 else {
                "type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "scheme": "https", "path": "/act", "root_path": "",
                 "query_string": b"", "headers": [(b"host", b"testserver"), (b"cookie", cookie),
                                                  (b"content-type", b"application/x-www-form-urlencoded")]}
        await app(scope, receive, send)
        return sent, calls

    sent, calls = asyncio.run(run())
    assert calls == 2 and [m for m in sent if m["type"] == "http.response.start"] == []


def test_a_bad_content_length_is_not_a_500(client: TestClient) -> None:
    token = token_of(client)
    app = client.app
    cookie = f"session={client.cookies['session']}".encode()
    headers = [(b"cookie", cookie), (b"content-type", b"application/x-www-form-urlencoded"),
               (b"content-length", b"lots")]
    status, _, _ = asgi_call(app, headers, [f"csrf_token={token}".encode()])
    assert status == 200


# -- what passes unchecked ---------------------------------------------------------------------


def test_exempt_paths_exact_or_by_pattern(manager: SessionManager) -> None:
    client = client_for(protected_app(manager, exempt_paths=["/webhook", re.compile(r"/hooks/[a-z]+")]))
    cross = {"sec-fetch-site": "cross-site"}
    assert client.post("/webhook", headers=cross).status_code == 200
    assert client.post("/hooks/github", headers=cross).json() == {"hook": "github"}
    assert reason(client.post("/hooks/github2", headers=cross)) == "cross_site"  # a pattern matches the whole path
    assert reason(client.post("/webhook/", headers=cross)) == "cross_site"  # a str is one exact path
    assert reason(client.post("/act", headers=cross)) == "cross_site"


def test_a_header_transport_is_not_checked(backend: InMemoryBackend) -> None:
    manager = SessionManager(backend, HeaderFrontend(SECRET))
    app = protected_app(manager)
    client = client_for(app)
    created = client.post("/login/alice")  # no token, cross-site: the browser attaches nothing by itself
    assert created.status_code == 200
    session_token = created.headers["x-session-token"]
    response = client.post("/act", headers={"x-session-token": session_token, "sec-fetch-site": "cross-site"},
                           data={"a": "1"})
    assert response.status_code == 200 and response.json()["body"] == "a=1"


def test_a_request_without_a_session_cookie_is_rejected_so_a_login_form_is_protected(
    client: TestClient, backend: InMemoryBackend
) -> None:
    # Login CSRF: a cookie-less browser posting someone else's credentials must not get logged in.
    assert reason(client.post("/login/mallory")) == "no_session_token"
    assert stored_sessions(backend) == {}
    token = token_of(client)  # the login page: an anonymous session gets a token
    assert len(stored_sessions(backend)) == 1
    assert client.post("/login/alice", data={"csrf_token": token}).status_code == 200


def test_without_session_middleware_the_error_says_which_order(manager: SessionManager) -> None:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=manager)
    app.add_middleware(CSRFMiddleware, manager=manager)  # wrong: outside the session middleware

    @app.post("/act")
    async def act() -> None:
        return None

    with pytest.raises(RuntimeError, match=r"CSRFMiddleware.*before SessionMiddleware"):
        client_for(app).post("/act")


# -- the token ---------------------------------------------------------------------------------


def test_the_first_token_writes_the_session_once_and_later_reads_write_nothing(
    client: TestClient, backend: InMemoryBackend
) -> None:
    first = client.get("/form")
    assert "session=" in first.headers["set-cookie"]
    token = first.json()["token"]
    assert len(token) >= 43 and re.fullmatch(r"[A-Za-z0-9_-]+", token)  # 256 bits, urlsafe base64
    ((key, record),) = stored_sessions(backend).items()
    for _ in range(3):
        again = client.get("/form")
        assert again.json()["token"] == token and "set-cookie" not in again.headers
    assert stored_sessions(backend)[key].version == record.version


def test_tokens_differ_between_sessions(manager: SessionManager) -> None:
    app = protected_app(manager)
    assert token_of(client_for(app)) != token_of(client_for(app))


def test_the_token_rotates_on_login_and_the_old_one_stops_working(client: TestClient) -> None:
    before = token_of(client)
    after = client.post("/login/alice", headers={"x-csrf-token": before}).json()["token"]
    assert after != before
    assert reason(client.post("/act", headers={"x-csrf-token": before})) == "token_mismatch"
    assert client.post("/act", headers={"x-csrf-token": after}).status_code == 200
    assert token_of(client) == after


def test_tokens_are_compared_in_constant_time(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    token = token_of(client)
    calls: list[tuple[bytes, bytes]] = []

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return hmac.compare_digest(a, b)

    monkeypatch.setattr(csrf_module, "compare_digest", spy)
    assert reason(client.post("/act", headers={"x-csrf-token": "wrong"})) == "token_mismatch"
    assert client.post("/act", data={"csrf_token": token}).status_code == 200
    assert calls == [(b"wrong", token.encode()), (token.encode(), token.encode())]


def test_a_failure_is_logged_without_any_token(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    token = token_of(client)
    sent = token[::-1]
    with caplog.at_level(logging.DEBUG, "fastapi_sessions"):
        response = client.post("/act", headers={"x-csrf-token": sent})
        client.post("/act", data={"csrf_token": sent}, headers={"origin": "https://evil.test"})
    assert reason(response) == "token_mismatch"
    messages = [r.getMessage() for r in caplog.records if r.name == "fastapi_sessions.csrf"]
    assert messages == ["CSRF check failed: POST '/act' (token_mismatch)",
                        "CSRF check failed: POST '/act' (origin_mismatch)"]
    session_cookie = client.cookies["session"]
    for secret in (token, sent, session_cookie):
        assert secret not in caplog.text and secret not in response.text


@pytest.mark.parametrize(("options", "setting"), [
    ({"trusted_origins": ["partner.test"]}, "trusted_origins"),
    ({"trusted_origins": ["https://partner.test/path"]}, "trusted_origins"),
    ({"trusted_origins": ["ftp://partner.test"]}, "trusted_origins"),
    ({"header_name": "X CSRF"}, "header_name"),
    ({"field_name": ""}, "field_name"),
    ({"max_body_size": 0}, "max_body_size"),
])
def test_bad_options_are_configuration_errors(manager: SessionManager, options: dict[str, Any],
                                              setting: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        CSRFMiddleware(FastAPI(), manager=manager, **options)
    assert caught.value.setting == setting


def test_csrf_token_needs_the_session_middleware() -> None:
    app = FastAPI()

    @app.get("/")
    async def page(request: Request) -> str:
        return csrf_token(request)

    with pytest.raises(RuntimeError, match="SessionMiddleware"):
        TestClient(app).get("/")
