"""Benchmark procedure shared by the main process and the 0.3.2 subprocess.

Standard library only (see timing.py). Every contender app exposes the same
three routes:

* ``POST /setup`` creates the session ``{"counter": 0, "user": "bench"}``;
* ``GET /rmw`` reads ``counter``, stores ``counter + 1``, returns ``{"value": n}``;
* ``GET /ro`` reads ``user`` and returns ``{"value": "bench"}``.
"""

from __future__ import annotations

import asyncio
import json
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from timing import ASGIApp, Timing, build_scope, call, cookie_from_set_cookie, run_requests, timed_repeat

SETUP_PATH = "/setup"
WORKLOADS: dict[str, str] = {"read-modify-write": "/rmw", "read-only": "/ro"}
USER_VALUE = "bench"
BARE = "bare FastAPI"


@dataclass
class Contender:
    name: str
    app: ASGIApp
    # Object whose write methods are counted during the read-only run
    # (None: there is no server-side store, e.g. a signed-cookie session).
    store: object | None = None
    write_methods: tuple[str, ...] = ()
    # False when the counter lives in the client cookie, so it cannot advance
    # while the benchmark keeps replaying the setup cookie.
    server_side: bool = True
    # False for the bare baseline, which has no session and sets no cookie.
    uses_cookie: bool = True
    # Server suites: the contender whose time is this one's floor (a bare request plus
    # the same raw driver calls), and a peer library to compare speed with.
    floor: str | None = None
    peer: str | None = None
    cookie: str | None = field(default=None, init=False)


@contextmanager
def count_calls(obj: object | None, names: Sequence[str]) -> Iterator[dict[str, int]]:
    """Count calls to `obj.<name>` by shadowing them with instance attributes.

    The wrapper is a plain function that returns the original awaitable, so it
    adds one Python call (~0.1 µs) and no extra coroutine to a counted call.
    """
    counts: dict[str, int] = {}
    patched: list[tuple[str, bool, Any]] = []
    if obj is not None:
        for name in names:
            original = getattr(obj, name, None)
            if not callable(original):
                continue
            counts[name] = 0

            def wrapper(*args: Any, _orig: Callable[..., Any] = original, _name: str = name, **kwargs: Any) -> Any:
                counts[_name] += 1
                return _orig(*args, **kwargs)

            patched.append((name, name in vars(obj), vars(obj).get(name)))
            setattr(obj, name, wrapper)
    try:
        yield counts
    finally:
        for name, had_own, own in patched:
            if had_own:
                setattr(obj, name, own)
            else:
                delattr(obj, name)


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", "replace")


async def _prepare(c: Contender) -> None:
    """Create the session once and check both routes answer as expected."""
    setup = await call(c.app, "POST", SETUP_PATH)
    if setup.status != 200:
        raise RuntimeError(f"{c.name}: POST {SETUP_PATH} -> {setup.status} {setup.body!r}")
    c.cookie = cookie_from_set_cookie(setup) if c.uses_cookie else None
    ro = await call(c.app, "GET", WORKLOADS["read-only"], c.cookie)
    if ro.status != 200 or _json_body(ro.body) != {"value": USER_VALUE}:
        raise RuntimeError(f"{c.name}: GET /ro -> {ro.status} {ro.body!r}")


async def _counter(c: Contender) -> int:
    r = await call(c.app, "GET", WORKLOADS["read-modify-write"], c.cookie)
    body = _json_body(r.body)
    if r.status != 200 or not isinstance(body, dict) or not isinstance(body.get("value"), int):
        raise RuntimeError(f"{c.name}: GET /rmw -> {r.status} {r.body!r}")
    return int(body["value"])


@dataclass
class Outcome:
    results: list[dict[str, Any]] = field(default_factory=list)
    # contender name -> traceback, for contenders dropped because they raised.
    failures: dict[str, str] = field(default_factory=dict)


async def benchmark(contenders: Sequence[Contender], requests: int, repeats: int, warmup: int) -> Outcome:
    """Time every (contender, workload).

    Repeats are interleaved across contenders so slow drift of the machine hits
    all of them alike. A contender that raises is dropped (with its traceback)
    instead of aborting the whole run.
    """
    out = Outcome()
    active: list[Contender] = []
    start_counter: dict[str, int] = {}
    for c in contenders:
        try:
            await _prepare(c)
            start_counter[c.name] = await _counter(c)
            for path in WORKLOADS.values():
                await run_requests(c.app, build_scope("GET", path, c.cookie), warmup)
        except Exception:
            out.failures[c.name] = traceback.format_exc()
        else:
            active.append(c)

    templates = {(c.name, w): build_scope("GET", path, c.cookie) for c in active for w, path in WORKLOADS.items()}
    timings = {key: Timing() for key in templates}
    writes = dict.fromkeys(templates, 0)
    counted_methods: dict[str, list[str]] = {c.name: [] for c in active}

    for _ in range(repeats):
        for c in list(active):
            try:
                for w in WORKLOADS:
                    key = (c.name, w)
                    # Counting both workloads proves the hooks are live: a
                    # read-modify-write run must show writes when read-only shows 0.
                    with count_calls(c.store, c.write_methods) as counts:
                        await timed_repeat(c.app, templates[key], requests, timings[key])
                    writes[key] += sum(counts.values())
                    counted_methods[c.name] = sorted(counts)
            except Exception:
                out.failures[c.name] = traceback.format_exc()
                active.remove(c)

    # +1: the probe that read start_counter incremented the counter too.
    rmw_sent = warmup + repeats * requests + 1
    for c in active:
        try:
            advance = await _counter(c) - start_counter[c.name]
        except Exception:
            out.failures[c.name] = traceback.format_exc()
            continue
        for w in WORKLOADS:
            t = timings[(c.name, w)]
            s = t.stats
            if s.non_200:
                out.failures[c.name] = f"{w}: {s.non_200} of {s.requests} timed requests were not 200"
            ro = w == "read-only"
            rmw = not ro
            has_store = c.store is not None and bool(counted_methods[c.name])
            out.results.append(
                {
                    "contender": c.name,
                    "workload": w,
                    "us_per_request": t.median,
                    "us_per_request_repeats": t.us_per_request,
                    "timed_requests": s.requests,
                    "set_cookie_responses": s.set_cookie,
                    "first_response_headers": s.first_headers,
                    "store_writes": writes[(c.name, w)] if has_store else None,
                    "store_write_methods": counted_methods[c.name],
                    "counter_advance": advance if rmw else None,
                    "rmw_requests_sent": rmw_sent if rmw else None,
                    "state_persisted": advance == rmw_sent if rmw and c.server_side else None,
                }
            )
    out.results = [r for r in out.results if r["contender"] not in out.failures]
    return out


def run(contenders: Sequence[Contender], requests: int, repeats: int, warmup: int) -> Outcome:
    return asyncio.run(benchmark(contenders, requests, repeats, warmup))
