"""Model-based lifecycle test: one browser, several tabs, a test clock, every backend.

Hypothesis drives a browser (a cookie jar that honours Max-Age and Expires) against
an app on a real backend. Requests are started (the route loads and changes the
session, then waits) and finished (the save and the response happen then) in any
order, so tabs race each other the way they do in production: a write during a
login, a read whose idle extension lands after a logout, a save after the idle
deadline passed mid-request. Between steps the clock jumps: a little, to the last
second a session is surely alive, or past its end. The session is revoked from
the server at random, and an attacker replays retired tokens.

The model predicts what the server must do and the test checks, on every step:

- no response is a 500;
- a response sets or clears the cookie only for a change its own request made,
  and never removes or replaces a live token that a later request issued;
- every acknowledged write of a distinct key is there afterwards, across logins and
  regenerations; nothing written by a request whose session ended reappears;
- under ``conflict_policy="raise"`` no acknowledged increment is lost: a same-key
  race is a 409, never two 200s for one increment;
- a user active within every idle window stays logged in until the absolute
  deadline: the cookie never lapses before the server session;
- a retired token reaches its session only within the grace window, and only
  after a plain regeneration (never after a login).

Concurrency is limited where no cookie library can do better: a request that
carries no live token starts a new session, and two of those racing each other
would each get their own, so such requests run alone.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule, run_state_machine_as_test

from conftest import SECRET, BackendFactory
from fastapi_sessions import ManualClock, SessionManager
from fastapi_sessions.frontends import SessionFrontend
from lifecycle import Browser, Pending, Response, lifecycle_app

IDLE = timedelta(minutes=30)
REFRESH = timedelta(minutes=1)
ABSOLUTE = timedelta(hours=2)
#: How long after a change of cookie a tab may still send the old one (a request already on its way).
STALE = timedelta(seconds=20)
#: How long the server recognizes a retired token as retired (the in-flight window), at least.
RETIRED = timedelta(seconds=60)
MISSING: Any = object()

LIVE, FOLLOW, SUPERSEDED, DEAD, NONE = "live", "follow", "superseded", "dead", "none"


@dataclass
class Lineage:
    """One browser session across its regenerations and logins, as the model expects it."""

    id: int
    user: str | None
    tokens: list[str]
    created_at: datetime
    lower: datetime  # the stored expiry is at least this (the session is surely alive before it)
    upper: datetime  # and at most this (surely dead from it on)
    data: dict[str, Any] = field(default_factory=dict)
    ended: bool = False

    @property
    def token(self) -> str:
        return self.tokens[-1]

    def cap(self, at: datetime) -> datetime:
        return min(at, self.created_at + ABSOLUTE)


@dataclass
class Retired:
    """A token that a regeneration, a logout or a fresh session replaced."""

    lineage: Lineage
    at: datetime
    followable: bool  # a plain regeneration with a grace window: loads may still reach the session


@dataclass
class Flight:
    """A started request and what the model knew when it loaded."""

    kind: str
    path: str
    key: str | None
    pending: Pending
    seq: int
    started: datetime
    state: str
    lineage: Lineage | None
    token_at_load: str | None  # the lineage's current token when this request loaded
    snapshot: dict[str, Any]
    user_at_load: str | None
    mutates: bool


class LifecycleMachine(RuleBasedStateMachine):
    factory: ClassVar[BackendFactory]

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.backend: Any = None
        self.flights: list[Flight] = []
        self.lineages: list[Lineage] = []
        self.retired: dict[str, Retired] = {}
        self.restarted: dict[str, datetime] = {}  # dead token -> when a fresh session replaced it
        self.issued_by: dict[str, int] = {}  # token -> seq of the request that issued it
        self.seq = itertools.count()
        self.keys = itertools.count()
        self.previous: tuple[str | None, datetime] | None = None  # the jar's value before its last change
        self.consistent = True

    # -- setup -------------------------------------------------------------------------------

    @initialize(policy=st.sampled_from(["last_writer_wins", "raise"]), grace=st.sampled_from([0, 10]))
    def setup(self, policy: str, grace: int) -> None:
        self.policy, self.grace = policy, timedelta(seconds=grace)
        self.clock = ManualClock(datetime.now(UTC).replace(microsecond=0))
        self.epoch = self.clock()
        self.backend = self.factory(self.clock)
        self.manager = SessionManager(
            self.backend, SessionFrontend(secret_key=SECRET), idle_timeout=IDLE, absolute_timeout=ABSOLUTE,
            idle_refresh_interval=REFRESH, regenerate_grace=self.grace, conflict_policy=policy,  # type: ignore[arg-type]
            clock=self.clock,
        )
        app, gates = lifecycle_app(self.manager)
        self.browser = Browser(app, gates, self.clock)
        self.attacker = Browser(app, gates, self.clock, keeps_cookies=False)
        self.user = f"user-{id(self)}-{datetime.now(UTC).timestamp()}"

    def teardown(self) -> None:
        try:
            # After a failed check the model is half-updated: only clean up then.
            while self.flights and self.consistent:
                self._finish(0)
            if self.backend is not None and self.consistent:
                self._observe()
        finally:
            if self.backend is not None:
                self.runner.run(self.backend.aclose())
            self.runner.close()

    def _t(self) -> int:
        return int((self.clock() - self.epoch).total_seconds())

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    # -- the model's view of time ------------------------------------------------------------

    @property
    def lineage(self) -> Lineage | None:
        return self.lineages[-1] if self.lineages and not self.lineages[-1].ended else None

    def _dead_from(self, lineage: Lineage) -> datetime:
        """From when the session is surely gone, counting idle extensions pending reads may have made."""
        upper = lineage.upper
        for flight in self.flights:  # a fused read extends at load time, whatever the request then does
            if flight.lineage is lineage:
                upper = max(upper, lineage.cap(flight.started + IDLE))
        return min(upper, lineage.created_at + ABSOLUTE)

    def _settle(self) -> None:
        """End the current lineage if the clock has passed its surely-dead point."""
        lineage = self.lineage
        if lineage is not None and self.clock() >= self._dead_from(lineage):
            lineage.ended = True

    def _alive(self, lineage: Lineage | None) -> bool:
        if lineage is None or lineage.ended:
            return False
        now = self.clock()
        assert now < lineage.lower or now >= self._dead_from(lineage), "the model let the clock land in doubt"
        return now < lineage.lower

    # -- requests ----------------------------------------------------------------------------

    def _classify(self, token: str | None) -> tuple[str, Lineage | None]:
        if token is None:
            return NONE, None
        lineage = self.lineage
        if lineage is not None and token == lineage.token and self._alive(lineage):
            return LIVE, lineage
        retired = self.retired.get(token)
        now = self.clock()
        if retired is not None and now < retired.at + RETIRED:
            target = retired.lineage
            later = target.tokens[target.tokens.index(token):-1]  # this one and each retired after it
            if self._alive(target) and all(
                self.retired[t].followable and now < self.retired[t].at + self.grace for t in later
            ):
                return FOLLOW, target
            return SUPERSEDED, None
        if token in self.restarted and now < self.restarted[token] + RETIRED:
            return SUPERSEDED, None  # a fresh session replaced this dead token a moment ago
        return DEAD, None

    def _route(self, kind: str, lineage: Lineage | None) -> tuple[str, str, str | None]:
        if kind == "write":
            key = f"k{next(self.keys)}"
            return "POST", f"/write/{key}/v", key
        if kind == "incr":
            return "POST", "/incr/n", "n"
        if kind == "pop":
            keys = sorted(lineage.data) if lineage is not None else []
            key = keys[0] if keys else "absent"
            return "POST", f"/pop/{key}", key
        if kind == "login":
            return "POST", f"/login/{self.user}", None
        if kind in ("logout", "regenerate"):
            return "POST", f"/{kind}", None
        return "GET", "/read", None

    def _start(self, kind: str, cookie: str | None, *, browser: Browser | None = None) -> Flight:
        self._settle()
        state, lineage = self._classify(cookie)
        method, path, key = self._route(kind, lineage)
        snapshot = dict(lineage.data) if lineage is not None else {}
        user = lineage.user if lineage is not None else None
        mutates = (
            kind in ("write", "incr", "regenerate", "logout")
            or (kind == "pop" and key in snapshot)
            or (kind == "login" and user != self.user)
        )
        pending = self.run((browser or self.browser).start(method, path, cookie=cookie or False))
        _note(f"t={self._t()} start #{pending.request_id} {kind} {path} as {state} with {_short(cookie)}")
        flight = Flight(kind, path, key, pending, next(self.seq), self.clock(), state, lineage,
                        lineage.token if lineage is not None else None, snapshot, user, mutates)
        return flight

    @precondition(lambda self: len(self.flights) < 3)
    @rule(kind=st.sampled_from(["read", "write", "write", "incr", "pop", "login", "logout", "regenerate"]),
          stale=st.booleans())
    def start(self, kind: str, stale: bool) -> None:
        """A tab sends a request; it runs up to its save and waits there (unless it starts a session)."""
        self._settle()
        cookie = self.browser.jar.value()
        if stale and self.previous is not None and self.previous[0] is not None and (
            self.clock() < self.previous[1] + STALE
        ):
            cookie = self.previous[0]  # sent just before the jar changed
        flight = self._start(kind, cookie)
        self.flights.append(flight)
        if flight.state in (DEAD, NONE):
            self._finish(len(self.flights) - 1)  # a request that starts a session runs alone

    @precondition(lambda self: bool(self.flights))
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        """One of the waiting requests saves and its response reaches the browser."""
        self._finish(data.draw(st.integers(0, len(self.flights) - 1), label="which"))

    def _finish(self, index: int) -> None:
        flight = self.flights.pop(index)
        self._settle()
        jar_before = self.browser.jar.value()
        self.consistent = False
        expected = self._expect(flight)  # decided before the response, from the model alone
        response = self.run(flight.pending.finish())
        _note(f"t={self._t()} finish #{flight.pending.request_id} -> {response.status} "
             f"{[_short(c) for c in response.set_cookies]}; expected {expected.get('status')} {expected['cookie']}")
        self._check(flight, response, expected, jar_before)
        self.consistent = True

    # -- what the server must do -------------------------------------------------------------

    def _expect(self, flight: Flight) -> dict[str, Any]:
        """The status and cookie the model requires, applying the request's effect to the model."""
        now = self.clock()
        lineage = flight.lineage
        kind, key = flight.kind, flight.key
        if flight.state in (SUPERSEDED,):
            return {"status": 409 if flight.mutates and kind != "logout" else 200, "cookie": "none"}
        if flight.state in (DEAD, NONE):
            if kind in ("write", "incr", "login"):
                value: Any = "v" if kind == "write" else 1
                new = Lineage(len(self.lineages), self.user if kind == "login" else None, [], now,
                              now + IDLE, now + IDLE, {} if kind == "login" else {key: value})  # type: ignore[dict-item]
                self.lineages.append(new)
                return {"status": 200, "cookie": "set", "lineage": new, "restart": flight.pending.cookie}
            return {"status": 200, "cookie": "clear" if flight.state == DEAD else "none"}
        # LIVE or FOLLOW: the request loaded a live session of `lineage`.
        assert lineage is not None
        alive = self._alive(lineage)
        if alive:  # whatever happens next, a fused read may have extended the session at load time
            lineage.upper = max(lineage.upper, lineage.cap(flight.started + IDLE))
        if not alive:
            return {"status": 200, "cookie": "none", "gone": True}  # ended meanwhile: changes dropped
        retired = self.retired.get(flight.token_at_load or "")
        if flight.token_at_load != lineage.token and retired is not None and now >= retired.at + RETIRED:
            # Retired longer ago than the in-flight window: its marker is gone, so is the way to the session.
            return {"status": 200, "cookie": "none", "gone": True}
        if not flight.mutates:
            # An idle extension due at load is made at load (fused read) or at save (a touch
            # counting from now): at least from the start, at most from now.
            lineage.lower = max(lineage.lower, lineage.cap(flight.started + IDLE) - REFRESH)
            lineage.upper = max(lineage.upper, lineage.cap(now + IDLE))
            return {"status": 200, "cookie": "none"}
        if kind in ("login", "regenerate"):
            if lineage.token != flight.token_at_load:
                return {"status": 409, "cookie": "none"}  # a concurrent regeneration won
            if kind == "login":
                lineage.user, lineage.created_at = self.user, now
            lineage.lower = lineage.upper = lineage.cap(now + IDLE)
            return {"status": 200, "cookie": "set", "lineage": lineage, "retire": lineage.token,
                    "followable": kind == "regenerate" and self.grace > timedelta(0)}
        if kind == "logout":
            lineage.ended = True
            return {"status": 200, "cookie": "clear", "retire": lineage.token, "followable": False,
                    "ends": lineage}
        assert key is not None
        before = flight.snapshot.get(key, MISSING)
        current = lineage.data.get(key, MISSING)
        if self.policy == "raise" and current != before:
            return {"status": 409, "cookie": "none"}
        if kind == "pop":
            lineage.data.pop(key, None)
        else:
            lineage.data[key] = "v" if kind == "write" else (0 if before is MISSING else before) + 1
        if not lineage.data and lineage.user is None:
            lineage.ended = True  # everything popped: the session ends, as with Starlette's
            return {"status": 200, "cookie": "clear", "retire": lineage.token, "followable": False, "ends": lineage}
        lineage.lower = lineage.upper = lineage.cap(now + IDLE)
        return {"status": 200, "cookie": "none"}

    def _check(self, flight: Flight, response: Response, expected: dict[str, Any], jar_before: str | None) -> None:
        where = f"{flight.kind} {flight.path} ({flight.state}, policy {self.policy}, grace {self.grace})"
        assert response.error is None and response.status < 500, f"{where}: {response.status} {response.error!r}"
        assert response.status == expected["status"], f"{where}: status {response.status}, expected {expected}"
        cookies = [c for c in response.set_cookies if c.startswith("session=")]
        assert len(cookies) <= 1, f"{where}: several session cookies {cookies}"
        if expected["cookie"] == "none":
            assert not cookies, f"{where}: no cookie was due, got {cookies}"
        else:
            assert cookies, f"{where}: a cookie {expected['cookie']} was due, none sent"
            value = cookies[0].split(";")[0].split("=", 1)[1].strip('"')
            cleared = "Max-Age=0" in cookies[0]
            assert cleared == (expected["cookie"] == "clear"), f"{where}: {cookies[0]}"
        # Never remove or replace a live token that a later request issued.
        lineage = self.lineage
        live = lineage.token if lineage is not None and lineage.tokens else None
        if cookies and jar_before is not None and jar_before == live:
            assert self.issued_by.get(jar_before, -1) < flight.seq or expected.get("ends") is lineage, (
                f"{where}: replaced a newer live token")
        if expected["cookie"] == "set":
            target: Lineage = expected["lineage"]
            target.tokens.append(value)
            self.issued_by[value] = flight.seq
        if expected.get("restart"):
            self.restarted[expected["restart"]] = self.clock()
        if expected.get("retire"):
            token = expected["retire"]
            owner = expected.get("lineage") or expected.get("ends")
            if owner is not None:
                self.retired[token] = Retired(owner, self.clock(), expected["followable"])
        if jar_before != self.browser.jar.value():
            self.previous = (jar_before, self.clock())
        if response.status == 200 and flight.kind == "read" and flight.state in (LIVE, FOLLOW):
            body = response.json()
            assert body["data"] == flight.snapshot, f"{where}: saw {body['data']}, expected {flight.snapshot}"
            assert body["user"] == flight.user_at_load, f"{where}: user {body['user']}"

    # -- the clock, the server, the attacker -------------------------------------------------

    @rule(kind=st.sampled_from(["tiny", "minutes", "edge", "edge", "kill"]))
    def advance(self, kind: str) -> None:
        """Time passes: a little, to the last second the session is surely alive, or past its end."""
        self._settle()
        now = self.clock()
        lineage = self.lineage
        if lineage is None:
            self.clock.advance(timedelta(minutes=10) if kind != "tiny" else timedelta(seconds=50))
            return
        dead = self._dead_from(lineage)
        if kind == "kill":
            target = dead + timedelta(seconds=1)
        elif kind == "edge":
            target = lineage.lower - timedelta(seconds=1)
        else:
            target = now + (timedelta(seconds=50) if kind == "tiny" else timedelta(minutes=10))
            if target >= lineage.lower:
                return  # would land where the model cannot tell alive from dead
        if target > now:
            self.clock.advance(target - now)
        self._settle()
        _note(f"t={self._t()} (advanced {kind}; lineage lower={int((lineage.lower - self.epoch).total_seconds())})")

    @rule()
    def revoke(self) -> None:
        """The server ends every session of the user ("log out everywhere")."""
        self._settle()
        _note(f"t={self._t()} revoke_user: {self.run(self.manager.revoke_user(self.user))} ended")
        lineage = self.lineage
        if lineage is not None and lineage.user == self.user and self._alive(lineage):
            lineage.ended = True

    @precondition(lambda self: bool(self.retired))
    @rule(data=st.data(), kind=st.sampled_from(["read", "write"]))
    def replay(self, data: st.DataObject, kind: str) -> None:
        """An attacker holding a retired token uses it."""
        token = data.draw(st.sampled_from(sorted(self.retired)), label="token")
        flight = self._start(kind, token, browser=self.attacker)
        expected_state = flight.state
        response = self.run(flight.pending.finish())
        _note(f"t={self._t()} replay finish -> {response.status} {[_short(c) for c in response.set_cookies]}")
        where = f"replay {kind} ({expected_state})"
        assert response.error is None and response.status < 500, f"{where}: {response.status} {response.error!r}"
        body = response.json() if response.status == 200 else None
        cookies = [c for c in response.set_cookies if c.startswith("session=")]
        if expected_state in (FOLLOW, SUPERSEDED):
            assert not cookies, f"{where}: {cookies}"  # nothing of the session's own changes hands
        if expected_state == FOLLOW:
            assert flight.lineage is not None
            assert response.status == 200, where
            if kind == "read":
                assert body is not None and body["data"] == flight.snapshot, f"{where}: {body}"
            else:
                assert flight.key is not None
                flight.lineage.data[flight.key] = "v"
                flight.lineage.lower = flight.lineage.upper = flight.lineage.cap(self.clock() + IDLE)
            return
        # A retired token past its grace window reaches nothing: no data, no user.
        if kind == "read":
            assert response.status == 200 and body is not None, where
            assert body["data"] == {} and body["user"] is None, f"{where}: {body}"
        elif expected_state == SUPERSEDED:
            assert response.status == 409, f"{where}: {response.status}"
        else:
            assert response.status == 200, f"{where}: {response.status}"  # a session of the attacker's own
            self.restarted[token] = self.clock()  # which the dead token now stands for, for a minute

    @precondition(lambda self: not self.flights)
    @rule()
    def observe(self) -> None:
        """With no request in flight, a read shows exactly what the model expects."""
        self._observe()

    def _observe(self) -> None:
        self._settle()
        self.consistent = False
        flight = self._start("read", self.browser.jar.value())
        lineage = flight.lineage if flight.state == LIVE else None
        expected = self._expect(flight)
        jar_before = self.browser.jar.value()
        response = self.run(flight.pending.finish())
        self._check(flight, response, expected, jar_before)
        body = response.json()
        want = (lineage.data, lineage.user) if lineage is not None else ({}, None)
        assert (body["data"], body["user"]) == want, f"observe: saw {body}, expected {want} ({flight.state})"
        self.consistent = True


def _note(text: str) -> None:
    """Part of a failing example's report (printed when the machine is driven by hand)."""
    try:
        note(text)
    except InvalidArgument:
        print(text)


def _short(cookie: str | None) -> str:
    """A cookie or Set-Cookie value, shortened for the notes of a failing example."""
    if cookie is None:
        return "-"
    value = cookie.split(";")[0].removeprefix("session=")
    return ("clear" if "Max-Age=0" in cookie else value[:6]) if value else "clear"


def _machine(factory: BackendFactory) -> type[LifecycleMachine]:
    return type("Lifecycle", (LifecycleMachine,), {"factory": staticmethod(factory)})


#: Examples per backend, each up to 40 steps. FASTAPI_SESSIONS_TEST_EXAMPLE_SCALE scales them (CI runs
#: the full count once, on the oldest Python, and a quarter on the other interpreter and version sets).
EXAMPLES = {"memory": 300, "memory-fused": 300}
SCALE = float(os.environ.get("FASTAPI_SESSIONS_TEST_EXAMPLE_SCALE", "1"))


def test_lifecycle_model(lifecycle_backend: BackendFactory, request: pytest.FixtureRequest) -> None:
    name = request.node.callspec.params["lifecycle_backend"]
    run_state_machine_as_test(
        _machine(lifecycle_backend),
        settings=settings(
            max_examples=max(1, round(EXAMPLES.get(name, 60) * SCALE)), stateful_step_count=40, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
