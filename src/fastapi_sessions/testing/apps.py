"""Helpers for testing applications that use sessions: a logged-in client, a clock you move.

``login`` stores a session through the manager (no login route needed) and
gives the client its signed token the way the manager's frontend carries it: a
cookie for ``CookieFrontend``, a header for ``HeaderFrontend``. It works with an
``httpx.AsyncClient`` and with Starlette's ``TestClient`` (both keep
``cookies`` and ``headers``)::

    async def test_profile(client: httpx.AsyncClient) -> None:
        await login(client, manager, user_id="alice", data={"theme": "dark"})
        assert (await client.get("/profile")).json()["user"] == "alice"

``controlled_clock`` (or the pytest fixture ``clock_fixture`` makes of it)
makes the manager judge every deadline by a
:class:`~fastapi_sessions.ManualClock` for a while, so a test can cross the
idle or absolute timeout without sleeping. Every backend judges liveness by
the time the manager passes it, so moving this clock is enough, Redis and
MongoDB included.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, Protocol

import pytest

from .._core.clock import ManualClock
from .._core.manager import SessionManager
from ..errors import ConfigurationError
from ..frontends import CookieFrontend, HeaderFrontend

__all__ = ["clock_fixture", "controlled_clock", "login"]


class _Cookies(Protocol):
    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None: ...


class _Client(Protocol):
    """What ``login`` needs of a client: httpx's ``AsyncClient``/``Client`` and Starlette's ``TestClient``."""

    @property
    def cookies(self) -> _Cookies: ...

    @property
    def headers(self) -> MutableMapping[str, str]: ...


async def login(client: _Client, manager: SessionManager, *, user_id: str,
                data: Mapping[str, Any] | None = None) -> str:
    """Log ``client`` in as ``user_id``: a new stored session, its token set on the client.

    Returns the public session id (the signed token). The session is a real
    one: it is indexed for ``user_id``, so ``manager.revoke_user`` ends it, and
    it lives by the manager's timeouts and clock.
    """
    if not isinstance(user_id, str) or not user_id:
        raise ConfigurationError("login() needs a non-empty user_id", setting="user_id")
    frontend = manager.frontend
    if not isinstance(frontend, CookieFrontend | HeaderFrontend):
        raise ConfigurationError(
            f"login() knows how CookieFrontend and HeaderFrontend carry a token, not {type(frontend).__name__}; "
            "create the session with manager.create_session() and set it on the client yourself",
            setting="frontend",
        )
    session_id = await manager.create_session(dict(data or {}), user_id=user_id)
    if isinstance(frontend, CookieFrontend):
        # Set without Secure: test clients talk plain http to "testserver", and a jar keeps Secure cookies from it.
        client.cookies.set(frontend.cookie_name, session_id, domain=frontend.domain or "", path=frontend.path)
    else:
        client.headers[frontend.header_name] = f"Bearer {session_id}" if frontend.bearer else session_id
    return session_id


@contextmanager
def controlled_clock(manager: SessionManager, start: ManualClock | None = None) -> Iterator[ManualClock]:
    """Judge ``manager``'s sessions by a manual clock inside the block; the previous clock comes back after.

    The clock starts at the manager's current time (or is ``start``), so
    sessions created before the block keep their meaning; ``clock.advance(minutes=31)``
    then crosses a 30-minute idle timeout at once.
    """
    clock = start if start is not None else ManualClock(manager.clock())
    previous = manager.clock
    manager.clock = clock
    try:
        yield clock
    finally:
        manager.clock = previous


def clock_fixture(manager: SessionManager, *, name: str = "session_clock") -> Any:
    """A pytest fixture named ``name``: a :class:`ManualClock` that ``manager`` runs on during each test.

    Put it in a ``conftest.py`` (or a test module)::

        session_clock = clock_fixture(manager)

        def test_idle_logout(session_clock: ManualClock) -> None:
            ...
            session_clock.advance(minutes=31)
    """

    @pytest.fixture(name=name)
    def fixture() -> Iterator[ManualClock]:
        with controlled_clock(manager) as clock:
            yield clock

    return fixture
