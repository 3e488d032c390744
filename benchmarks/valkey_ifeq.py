"""Does Valkey's native compare-and-set (``SET key value IFEQ old``, 8.1+) beat the Redis backend's Lua ``update``?

    python benchmarks/valkey_ifeq.py valkey://127.0.0.1:6390/0 [--rounds 21] [--ops 400]

One session is updated again and again, on one connection, one call at a time
(the request path waits for each), in four ways, interleaved round by round so
the machine's noise hits all alike; each way's time per call is divided by the
Lua script's in the same round, and the medians and ranges of those ratios are
printed, per payload size:

* ``lua``: ``RedisBackend.update()``, the backend's own path: one ``EVALSHA`` of
  the UPDATE script, which checks liveness at the caller's ``now``, the version,
  whether the user's index must be written first, and keeps the creation time.
* ``lua-raw``: the same ``EVALSHA`` sent by hand, without the backend's Python.
* ``get+ifeq``: what an IFEQ update must do to keep those guarantees when it is
  given a version, as the storage contract gives it, not the stored bytes: a
  ``GET``, the same checks in Python, then ``SET new IFEQ old PX ttl``.
* ``ifeq-known``: the lower bound, ``SET new IFEQ old PX ttl GET`` with the old
  bytes already at hand (what a per-key cache of the last read would allow;
  ``GET`` returns the current value, which says why a refused write was refused).

Not part of the test suite; the numbers are in docs/backends/redis.md ("Valkey").
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from fastapi_sessions import SessionRecord
from fastapi_sessions._core.tokens import new_token, storage_key
from fastapi_sessions.backends.redis import RedisBackend
from fastapi_sessions.backends.redis import _layout as layout
from fastapi_sessions.backends.redis import _scripts as scripts

Call = Callable[[], Awaitable[None]]


class Bench:
    """One stored session and the four ways to update it; each call moves it one version on."""

    def __init__(self, backend: RedisBackend, size: int) -> None:
        self.backend = backend
        now = datetime.now(UTC)
        self.record = SessionRecord(storage_key(new_token()), b"x" * size, "alice", now, now + timedelta(hours=1))
        self.key = backend.session_key(self.record.key)
        self.version = 1
        self.stored = b""

    async def setup(self) -> None:
        await self.backend.create(self.record)
        await self.backend.update(self.record, 1)  # the index is written: no call below needs it first
        self.version = 2
        stored = await self.backend.client.get(self.key)
        assert isinstance(stored, bytes)
        self.stored = stored

    def _next(self) -> tuple[int, int, bytes]:
        now_us = layout.as_us(datetime.now(UTC))
        expires = layout.as_us(self.record.expires_at)
        return now_us, expires, layout.encode(self.record, self.version + 1, expires)

    async def lua(self) -> None:
        self.version = await self.backend.update(self.record, self.version)

    async def lua_raw(self) -> None:
        now_us, expires, value = self._next()
        control = layout.cas_control(self.version, now_us, expires, False)
        result = await self.backend.client.execute_command(
            "EVALSHA", scripts.UPDATE.sha, 1, self.key, control, value)
        assert result == self.version + 1, result
        self.version = result

    async def get_ifeq(self) -> None:
        now_us, expires, value = self._next()
        client = self.backend.client
        old = await client.get(self.key)
        assert isinstance(old, bytes)
        # The UPDATE script's checks, client-side: live at the caller's now, the version, the same
        # user and index day (else the index first), the stored creation time kept.
        expires_at, user_at = layout.EXPIRES.at(), slice(layout.HASUSER.offset, layout.HEADER_SIZE + len(b"alice"))
        assert int(old[expires_at]) > now_us
        assert int(old[layout.VERSION.at()]) == self.version
        assert old[user_at] == value[user_at]
        assert int(value[expires_at]) // scripts.INDEX_STEP <= int(old[expires_at]) // scripts.INDEX_STEP
        value = old[layout.CREATED.at()] + value[layout.CREATED.end:]
        ok = await client.set(self.key, value, px=layout.ttl_ms(expires, now_us), ifeq=old)
        assert ok is True, "lost a race nobody runs"
        self.version += 1

    async def ifeq_known(self) -> None:
        now_us, expires, value = self._next()
        current = await self.backend.client.set(self.key, value, px=layout.ttl_ms(expires, now_us), ifeq=self.stored,
                                                get=True)
        assert current == self.stored, "lost a race nobody runs"
        self.stored = value
        self.version += 1

    async def resync(self) -> None:
        """After the ways that do not track the stored bytes: fetch them for ``ifeq_known``."""
        stored = await self.backend.client.get(self.key)
        assert isinstance(stored, bytes)
        self.stored = stored


async def timed(call: Call, ops: int) -> float:
    started = time.perf_counter()
    for _ in range(ops):
        await call()
    return (time.perf_counter() - started) / ops


async def measure(url: str, size: int, rounds: int, ops: int) -> None:
    prefix = f"fs-bench-{uuid.uuid4().hex}:"
    async with RedisBackend.from_url(url, prefix=prefix, max_connections=1) as backend:
        bench = Bench(backend, size)
        await bench.setup()
        ways: dict[str, Call] = {"lua": bench.lua, "lua-raw": bench.lua_raw, "get+ifeq": bench.get_ifeq,
                                 "ifeq-known": bench.ifeq_known}
        for call in ways.values():  # warm-up: the script cached, the connection made
            await timed(call, 50)
            await bench.resync()
        times: dict[str, list[float]] = {name: [] for name in ways}
        names = list(ways)
        for index in range(rounds):
            order = names[index % len(names):] + names[:index % len(names)]  # rotate who goes first
            for name in order:
                times[name].append(await timed(ways[name], ops))
                await bench.resync()
        keys = [key async for key in backend.client.scan_iter(match=f"{prefix}*")]
        if keys:
            for key in keys:
                await backend.client.delete(key)
    base = times["lua-raw"]
    print(f"payload {size} B ({rounds} rounds x {ops} calls):")
    for name in names:
        ratios = sorted(t / b for t, b in zip(times[name], base, strict=True))
        print(f"  {name:<11} {statistics.median(times[name]) * 1e6:7.1f} us/call   "
              f"vs lua-raw {statistics.median(ratios):.2f}x ({ratios[0]:.2f} to {ratios[-1]:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("url", help="a Valkey 8.1+ URL, e.g. valkey://127.0.0.1:6390/0")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--ops", type=int, default=400)
    parser.add_argument("--sizes", default="100,2000,16000", help="payload sizes in bytes, comma-separated")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message=".*experimental usage of input argument.*'ifeq'")  # redis-py 8.1
    for size in (int(s) for s in args.sizes.split(",")):
        asyncio.run(measure(args.url, size, args.rounds, args.ops))


if __name__ == "__main__":
    main()
