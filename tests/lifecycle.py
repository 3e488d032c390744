"""A browser for lifecycle tests: a cookie jar on a test clock, and requests that can be interleaved.

``Browser.start`` sends a request through the ASGI app and runs it until the route
has loaded and changed the session, then parks it at a gate; ``Pending.finish``
lets it commit and deliver its response, at whatever time the clock shows then.
So a test decides exactly which request loads and which commits first, as tabs
racing each other would, with no sleeping and no threads.

The jar honours ``Max-Age`` and ``Expires`` against the test clock, as a browser
does, so a cookie that would lapse in a real browser lapses here.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from fastapi_sessions import SessionManager, SessionMiddleware

_ids = itertools.count()


class Gates:
    """Where each gated request parks between changing its session and committing it."""

    def __init__(self) -> None:
        self.reached: dict[str, asyncio.Event] = {}
        self.release: dict[str, asyncio.Event] = {}

    def open(self, request_id: str) -> None:
        self.reached[request_id] = asyncio.Event()
        self.release[request_id] = asyncio.Event()

    async def pause(self, request: Request) -> None:
        request_id = request.headers.get("x-test-request", "")
        if request_id in self.release:
            self.reached[request_id].set()
            await self.release[request_id].wait()


def lifecycle_app(manager: SessionManager) -> tuple[FastAPI, Gates]:
    """Routes that each do one session operation, then wait at their gate before responding."""
    gates = Gates()
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=manager)

    def answer(request: Request, **extra: Any) -> JSONResponse:
        session = request.session
        return JSONResponse({"data": dict(session), "user": session.user_id, **extra})  # type: ignore[attr-defined]

    @app.get("/read")
    async def read(request: Request) -> JSONResponse:
        response = answer(request)  # what the request saw when it loaded
        await gates.pause(request)
        return response

    @app.post("/write/{key}/{value}")
    async def write(request: Request, key: str, value: str) -> JSONResponse:
        request.session[key] = value
        await gates.pause(request)
        return answer(request)

    @app.post("/incr/{key}")
    async def incr(request: Request, key: str) -> JSONResponse:
        request.session[key] = int(request.session.get(key, 0)) + 1
        await gates.pause(request)
        return answer(request)

    @app.post("/pop/{key}")
    async def pop(request: Request, key: str) -> JSONResponse:
        request.session.pop(key, None)
        await gates.pause(request)
        return answer(request)

    @app.post("/login/{user}")
    async def login(request: Request, user: str) -> JSONResponse:
        request.session.user_id = user  # type: ignore[attr-defined]
        await gates.pause(request)
        return answer(request)

    @app.post("/regenerate")
    async def regenerate(request: Request) -> JSONResponse:
        request.session.regenerate()  # type: ignore[attr-defined]
        await gates.pause(request)
        return answer(request)

    @app.post("/logout")
    async def logout(request: Request) -> JSONResponse:
        request.session.clear()
        await gates.pause(request)
        return answer(request)

    return app, gates


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    error: BaseException | None = None

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)

    @property
    def set_cookies(self) -> list[str]:
        return [value for key, value in self.headers if key == "set-cookie"]


@dataclass
class Cookie:
    value: str
    expires: datetime | None  # None: a browser-session cookie


@dataclass
class Jar:
    """One cookie name's worth of a browser's jar, on the test clock."""

    name: str
    clock: Callable[[], datetime]
    cookie: Cookie | None = None

    def value(self) -> str | None:
        if self.cookie is not None and self.cookie.expires is not None and self.cookie.expires <= self.clock():
            self.cookie = None  # lapsed, as a browser drops it
        return None if self.cookie is None else self.cookie.value

    def apply(self, set_cookie: str) -> None:
        parts = [part.strip() for part in set_cookie.split(";")]
        name, _, value = parts[0].partition("=")
        if name != self.name:
            return
        attributes = {key.lower(): val for key, _, val in (part.partition("=") for part in parts[1:])}
        now = self.clock()
        expires: datetime | None = None
        if "max-age" in attributes:  # Max-Age wins over Expires (RFC 6265 5.3)
            expires = now + timedelta(seconds=int(attributes["max-age"]))
        elif "expires" in attributes:
            expires = parsedate_to_datetime(attributes["expires"])
        if expires is not None and expires <= now:
            self.cookie = None
        else:
            self.cookie = Cookie(value.strip('"'), expires)


@dataclass
class Pending:
    """A request parked at its gate (or already done, if it failed before reaching it)."""

    browser: Browser
    request_id: str
    cookie: str | None
    task: asyncio.Task[Response]
    response: Response | None = None

    async def finish(self) -> Response:
        """Let the request commit and respond now; its Set-Cookie reaches the jar now."""
        self.browser.gates.release[self.request_id].set()
        response = await self.task
        self.response = response
        if self.browser.keeps_cookies:
            for set_cookie in response.set_cookies:
                self.browser.jar.apply(set_cookie)
        return response


@dataclass
class Browser:
    """Tabs sharing one cookie jar; each request may be parked and finished later."""

    app: FastAPI
    gates: Gates
    clock: Callable[[], datetime]
    cookie_name: str = "session"
    keeps_cookies: bool = True
    jar: Jar = field(init=False)

    def __post_init__(self) -> None:
        self.jar = Jar(self.cookie_name, self.clock)

    async def start(self, method: str, path: str, *, cookie: str | bool | None = True) -> Pending:
        """Send a request (with the jar's cookie, or the one given) and run it up to its gate."""
        value = self.jar.value() if cookie is True else (cookie or None)
        request_id = f"r{next(_ids)}"
        self.gates.open(request_id)
        headers = [(b"host", b"testserver"), (b"x-test-request", request_id.encode())]
        if value is not None:
            headers.append((b"cookie", f"{self.cookie_name}={value}".encode("latin-1")))
        task = asyncio.ensure_future(_call(self.app, method, path, headers))
        reached = asyncio.ensure_future(self.gates.reached[request_id].wait())
        await asyncio.wait({task, reached}, return_when=asyncio.FIRST_COMPLETED)
        reached.cancel()
        return Pending(self, request_id, value, task)

    async def request(self, method: str, path: str, *, cookie: str | bool | None = True) -> Response:
        """Send a request and let it run to the end."""
        pending = await self.start(method, path, cookie=cookie)
        return await pending.finish()


async def _call(app: FastAPI, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> Response:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "https",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 50000), "server": ("testserver", 443),
    }
    received = False
    start: dict[str, Any] = {}
    body = bytearray()

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # no disconnect while the app runs
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    try:
        await app(scope, receive, send)
    except Exception as exc:  # a 500: the server would log it and answer 500
        return Response(500, [], bytes(body), exc)
    headers_out = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in start.get("headers", [])]
    return Response(int(start.get("status", 500)), headers_out, bytes(body))
