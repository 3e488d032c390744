"""The load generator of ``load.py``: N clients, each with its own session and its own keep-alive connection.

Standard library only for the default client (``raw``): HTTP/1.1 written and
parsed by hand over asyncio streams, so the generator costs little CPU next to
the server it shares the machine with. ``httpx`` (httpx2, from the test extra)
is the alternative, for comparing what a general-purpose client costs.

Each client is closed-loop: one request in flight at a time, on one session,
like a user in one browser tab. It keeps a cookie jar, counts the
read-modify-write requests the server acknowledged with 200, and at the end
reads its stored counter back, so a write that was acknowledged and then lost
shows up as a missing increment.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

SETUP = ("POST", "/setup")
COUNTER = ("GET", "/counter")
# Mix name -> (method, path) of the route every timed request calls.
MIXES: dict[str, tuple[str, str]] = {"rmw": ("GET", "/rmw"), "ro": ("GET", "/ro")}
MIX_TITLES = {"rmw": "read-modify-write", "ro": "read-only"}
RMW_PATH = MIXES["rmw"][1]
# After a connection error: the pause before the next attempt, so a dead server is not spun on.
ERROR_PAUSE = 0.05
# Warm-up: how many clients set up at once (a burst of 200 first requests is not what is measured),
# and how often a failed warm-up request is tried before the client is left out.
WARMUP_CONCURRENCY = 25
WARMUP_ATTEMPTS = 5
WARMUP_PAUSE = 0.1


class HTTP(Protocol):
    """One keep-alive connection; ``request`` returns (status, Set-Cookie values, body)."""

    errors: tuple[type[BaseException], ...]

    async def request(self, method: str, path: str, cookie: str) -> tuple[int, list[bytes], bytes]: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


class RawHTTP:
    """HTTP/1.1 over asyncio streams: prebuilt request bytes, a minimal response parser."""

    errors: tuple[type[BaseException], ...] = (OSError, EOFError, asyncio.LimitOverrunError, ValueError)

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._heads: dict[tuple[str, str, str], bytes] = {}
        self._reused = False  # an answer has come back on the current connection
        self._answered = False  # the current exchange has its status line and headers
        self.resent = 0  # requests resent after the server had closed an idle keep-alive connection

    def _head(self, method: str, path: str, cookie: str) -> bytes:
        key = (method, path, cookie)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) > 16:  # the cookie changed a few times: forget the old heads
                self._heads.clear()
            lines = [f"{method} {path} HTTP/1.1", f"host: {self.host}:{self.port}", "user-agent: fs-load"]
            if cookie:
                lines.append(f"cookie: {cookie}")
            if method == "POST":
                lines.append("content-length: 0")
            head = self._heads[key] = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head

    async def request(self, method: str, path: str, cookie: str) -> tuple[int, list[bytes], bytes]:
        head = self._head(method, path, cookie)
        reused = self._writer is not None and self._reused
        try:
            return await self._exchange(head)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            # A reused keep-alive connection the server had closed (uvicorn does after a 500, without saying
            # so): nothing of an answer arrived, so the server never took the request. Resent once on a fresh
            # connection, as HTTP clients do (RFC 9112, 9.3.1); a second failure is a connection error.
            if not reused or self._answered or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                raise
            self.close()
            self.resent += 1
            return await self._exchange(head)

    async def _exchange(self, request: bytes) -> tuple[int, list[bytes], bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
            self._reused = False
        reader, writer = self._reader, self._writer
        assert reader is not None
        self._answered = False
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        self._answered = self._reused = True
        lines = head[:-4].split(b"\r\n")
        status = int(lines[0][9:12])
        length: int | None = None
        chunked = close = False
        cookies: list[bytes] = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"set-cookie":
                cookies.append(value.strip())
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            body = await self._read_chunked(reader)
        elif length is not None:
            body = await reader.readexactly(length)
        else:
            body, close = await reader.read(), True
        if close:
            self.close()
        return status, cookies, body

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any
                    pass
                return b"".join(parts)
            parts.append((await reader.readexactly(size + 2))[:-2])

    def close(self) -> None:
        # abort(): a request cut by a timeout may still be answered; that answer must not reach the next request.
        if self._writer is not None:
            self._writer.transport.abort()
        self._reader = self._writer = None

    async def aclose(self) -> None:
        self.close()


class HttpxHTTP:
    """The same through an httpx2 ``AsyncClient`` holding one connection (its cookie jar unused)."""

    errors: tuple[type[BaseException], ...]

    def __init__(self, host: str, port: int) -> None:
        import httpx2

        self.errors = (httpx2.TransportError,)
        self._client = httpx2.AsyncClient(
            base_url=f"http://{host}:{port}",
            limits=httpx2.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=None,  # the generator's own timeout bounds every request
        )

    async def request(self, method: str, path: str, cookie: str) -> tuple[int, list[bytes], bytes]:
        response = await self._client.request(method, path, headers={"cookie": cookie} if cookie else None)
        self._client.cookies.clear()  # the generator's jar decides what is sent, as with RawHTTP
        cookies = [value.encode("latin-1") for value in response.headers.get_list("set-cookie")]
        return response.status_code, cookies, response.content

    def close(self) -> None:
        pass  # httpx2 discards a connection whose request was cancelled

    async def aclose(self) -> None:
        await self._client.aclose()


CLIENTS: dict[str, Callable[[str, int], HTTP]] = {"raw": RawHTTP, "httpx": HttpxHTTP}


class Jar:
    """Name -> value of the cookies the server set; a cleared or expired one is dropped."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}
        self.header = ""

    def update(self, set_cookies: list[bytes]) -> None:
        for raw in set_cookies:
            first, _, attributes = raw.partition(b";")
            name, _, value = first.strip().partition(b"=")
            flat = attributes.lower().replace(b" ", b"")
            if not value or b"max-age=0" in flat or b"max-age=-" in flat:
                self.cookies.pop(name.decode("latin-1"), None)
            else:
                self.cookies[name.decode("latin-1")] = value.decode("latin-1")
        self.header = "; ".join(f"{k}={v}" for k, v in self.cookies.items())


@dataclass
class Stats:
    """What one phase saw, over all clients. Latencies are of answered requests, in seconds."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    timeouts: int = 0
    connection_errors: int = 0


class Client:
    def __init__(self, http: HTTP, timeout: float) -> None:
        self.http = http
        self.timeout = timeout
        self.jar = Jar()
        self.acknowledged = 0  # read-modify-write requests answered 200, warm-up included
        self.ready = False

    async def send(self, method: str, path: str, stats: Stats) -> tuple[int, bytes] | None:
        """One request; None when it timed out or the connection failed (both counted in ``stats``)."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                status, cookies, body = await self.http.request(method, path, self.jar.header)
        except TimeoutError:  # before self.http.errors: TimeoutError is an OSError
            stats.timeouts += 1
            self.http.close()
            return None
        except self.http.errors:
            stats.connection_errors += 1
            self.http.close()
            await asyncio.sleep(ERROR_PAUSE)
            return None
        stats.latencies.append(time.perf_counter() - started)
        stats.statuses[status] += 1
        if cookies:
            self.jar.update(cookies)
        if status == 200 and path == RMW_PATH:
            self.acknowledged += 1
        return status, body

    async def _until_ok(self, method: str, path: str, stats: Stats) -> bool:
        for attempt in range(WARMUP_ATTEMPTS):
            if attempt:
                await asyncio.sleep(WARMUP_PAUSE)
            reply = await self.send(method, path, stats)
            if reply is not None and reply[0] == 200:
                return True
        return False

    async def setup(self, mix: str, warmup: int, stats: Stats) -> None:
        """Create this client's session, then ``warmup`` requests of the mix; ready only if all went well.

        A step that fails (a 503 from a pool that is full right now, say) is
        retried a few times: warm-up is there to create the sessions, errors
        are measured in the timed phase.
        """
        ok = await self._until_ok(*SETUP, stats) and bool(self.jar.cookies)
        for _ in range(warmup if ok else 0):
            ok = ok and await self._until_ok(*MIXES[mix], stats)
        self.ready = ok

    async def run(self, mix: str, more: Callable[[], bool], stats: Stats) -> None:
        method, path = MIXES[mix]
        while more():
            await self.send(method, path, stats)

    async def stored_counter(self, stats: Stats) -> tuple[bool, int | None]:
        """(answered, counter): the counter the store holds for this session, through the read-only route.

        ``(True, None)``: the server answered 200 without a counter, so the
        session is gone. ``(False, None)``: no 200 after a few attempts (the
        store is failing), so nothing can be said about this session.
        """
        for attempt in range(WARMUP_ATTEMPTS):
            if attempt:
                await asyncio.sleep(WARMUP_PAUSE)
            reply = await self.send(*COUNTER, stats)
            if reply is not None and reply[0] == 200:
                value: Any = json.loads(reply[1]).get("value")
                return True, value if isinstance(value, int) else None
        return False, None


@dataclass
class LoadResult:
    clients: int
    ready_clients: int
    elapsed: float
    timed: Stats
    untimed: Stats
    generator_cpu: float  # seconds of this process's CPU during the timed phase
    server_cpu: float | None  # seconds of the server's CPU during the timed phase, where it can be read
    acknowledged: int
    lost_writes: int  # acknowledged increments missing from the stored counters
    unacknowledged_writes: int  # increments stored without a 200 (a timeout after the save, say)
    sessions_lost: int  # clients whose session was gone at read-back
    unreadable: int  # clients whose read-back never got a 200: their writes are unverified
    resent: int  # requests resent once because the server had closed the idle keep-alive connection


def _no_cpu() -> float | None:
    return None


async def generate(host: str, port: int, *, clients: int, mix: str, duration: float | None, requests: int | None,
                   request_timeout: float, warmup: int, client: str = "raw",
                   server_cpu: Callable[[], float | None] = _no_cpu) -> LoadResult:
    """Warm every client up, run the timed phase (``duration`` seconds or ``requests`` in all), read back.

    ``server_cpu`` returns the server's CPU seconds so far; it is sampled at
    both ends of the timed phase.
    """
    make = CLIENTS[client]
    pool = [Client(make(host, port), request_timeout) for _ in range(clients)]
    untimed, timed = Stats(), Stats()
    try:
        gate = asyncio.Semaphore(WARMUP_CONCURRENCY)

        async def warm(c: Client) -> None:
            async with gate:
                await c.setup(mix, warmup, untimed)

        await asyncio.gather(*(warm(c) for c in pool))
        ready = [c for c in pool if c.ready]
        server_start, cpu, started = server_cpu(), time.process_time(), time.perf_counter()
        if requests is not None:
            budget = [requests]

            def more() -> bool:
                budget[0] -= 1
                return budget[0] >= 0
        else:
            deadline = started + (duration or 0.0)

            def more() -> bool:
                return time.perf_counter() < deadline

        await asyncio.gather(*(c.run(mix, more, timed) for c in ready))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        server_end = server_cpu()
        async def read_back(c: Client) -> tuple[bool, int | None]:
            async with gate:  # a burst of 200 reads would measure the pool again, not the data
                return await c.stored_counter(untimed)

        stored = await asyncio.gather(*(read_back(c) for c in ready))
    finally:
        await asyncio.gather(*(c.http.aclose() for c in pool), return_exceptions=True)
    lost = extra = gone = unreadable = 0
    for c, (answered, value) in zip(ready, stored, strict=True):
        if not answered:
            unreadable += 1
        elif value is None:
            gone += 1
            lost += c.acknowledged
        else:
            lost += max(0, c.acknowledged - value)
            extra += max(0, value - c.acknowledged)
    server = server_end - server_start if server_start is not None and server_end is not None else None
    return LoadResult(clients, len(ready), elapsed, timed, untimed, cpu, server,
                      sum(c.acknowledged for c in ready), lost, extra, gone, unreadable,
                      sum(getattr(c.http, "resent", 0) for c in pool))
