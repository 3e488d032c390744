"""In-process ASGI driver and timer.

Standard library only: this module is imported both by the main benchmark
process and by the subprocess that runs inside the fastapi-sessions 0.3.2
virtualenv, so both sides time requests with exactly the same code.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQUEST: dict[str, Any] = {"type": "http.request", "body": b"", "more_body": False}
_DISCONNECT: dict[str, Any] = {"type": "http.disconnect"}


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header_values(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]


@dataclass
class RunStats:
    """Counters kept while timing; checked afterwards so a broken contender
    (e.g. every request answered 403) cannot pass as a fast one."""

    requests: int = 0
    non_200: int = 0
    set_cookie: int = 0
    first_headers: list[tuple[str, str]] | None = None


@dataclass
class Timing:
    us_per_request: list[float] = field(default_factory=list)  # one per repeat
    stats: RunStats = field(default_factory=RunStats)

    @property
    def median(self) -> float:
        return statistics.median(self.us_per_request)


def build_scope(method: str, path: str, cookie: str | None) -> dict[str, Any]:
    headers = [(b"host", b"bench"), (b"user-agent", b"bench")]
    if cookie:
        headers.append((b"cookie", cookie.encode("latin-1")))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("bench", 80),
    }


def _fresh_scope(template: dict[str, Any]) -> dict[str, Any]:
    # Middlewares write into the scope (session, state, ...), so every request
    # gets its own shallow copy and its own header list.
    scope = dict(template)
    scope["headers"] = list(template["headers"])
    return scope


def _make_receive() -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return _DISCONNECT
        sent = True
        return _REQUEST

    return receive


async def call(app: ASGIApp, method: str, path: str, cookie: str | None = None) -> Response:
    """One full request, collecting status, headers and body (setup/probes)."""
    status = 0
    headers: list[tuple[str, str]] = []
    body = bytearray()

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            headers.extend((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in message["headers"])
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(_fresh_scope(build_scope(method, path, cookie)), _make_receive(), send)
    return Response(status, headers, bytes(body))


def cookie_from_set_cookie(response: Response) -> str:
    """`name=value` of the first Set-Cookie header, ready for a Cookie header."""
    values = response.header_values("set-cookie")
    if not values:
        raise RuntimeError(f"setup request set no cookie (status {response.status}, body {response.body!r})")
    return values[0].split(";", 1)[0].strip()


async def run_requests(app: ASGIApp, template: dict[str, Any], n: int, stats: RunStats | None = None) -> int:
    """Send `n` requests; return elapsed nanoseconds.

    The send callable only looks at the response-start message; the per-request
    cost of the driver itself is the same for every contender and cancels out
    in the overhead over bare FastAPI.
    """
    st = stats if stats is not None else RunStats()

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            st.requests += 1
            if message["status"] != 200:
                st.non_200 += 1
            raw = message["headers"]
            if st.first_headers is None:
                st.first_headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]
            for key, _ in raw:
                if key.lower() == b"set-cookie":
                    st.set_cookie += 1
                    break

    perf = time.perf_counter_ns
    start = perf()
    for _ in range(n):
        await app(_fresh_scope(template), _make_receive(), send)
    return perf() - start


async def timed_repeat(app: ASGIApp, template: dict[str, Any], n: int, timing: Timing) -> None:
    """One timed repeat, with the GC paused as `timeit` does, appended to `timing`."""
    gc.collect()
    gc.disable()
    try:
        elapsed = await run_requests(app, template, n, timing.stats)
    finally:
        gc.enable()
    timing.us_per_request.append(elapsed / n / 1000)
