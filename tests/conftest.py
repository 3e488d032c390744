"""Shared fixtures for the test suite."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_sessions import ManualClock, SessionManager, SessionMiddleware, SessionRecord
from fastapi_sessions.backends.in_memory import InMemoryBackend
from fastapi_sessions.frontends import SessionFrontend
from fastapi_sessions.testing import server_url

SECRET = "test-secret-key-0123456789abcdef"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


class ReadAndTouchBackend(InMemoryBackend):
    """The in-memory backend plus the optional fused ``read_and_touch``.

    A reference implementation of ``SupportsReadAndTouch``: the manager takes
    its fused path with it, so every test on the ``backend`` fixture runs on both
    paths, and the conformance kit checks it like any backend.
    """

    async def read_and_touch(
        self,
        key: str,
        *,
        now: datetime,
        idle_timeout: timedelta,
        absolute_timeout: timedelta,
        refresh_interval: timedelta,
    ) -> tuple[SessionRecord | None, bool]:
        record = self._live(key, now)
        if record is None or now + (idle_timeout - refresh_interval) < record.expires_at:
            return record, False  # not due: the common case costs one comparison
        target = min(record.created_at + absolute_timeout, now + idle_timeout)
        if target - record.expires_at < refresh_interval:
            return record, False
        record = SessionRecord(key, record.payload, record.user_id, record.created_at, target, record.version)
        self._store(record)
        return record, True


@pytest.fixture(params=["read", "read_and_touch"])
def backend(request: pytest.FixtureRequest, clock: ManualClock) -> InMemoryBackend:
    """The in-memory backend, plain and with the fused read the manager prefers when offered."""
    if request.param == "read":
        return InMemoryBackend(clock=clock)
    return ReadAndTouchBackend(clock=clock)


@pytest.fixture
def make_manager(backend: InMemoryBackend, clock: ManualClock) -> Callable[..., SessionManager]:
    """A manager on the in-memory backend and the test clock; keyword options pass through."""

    def make(**options: Any) -> SessionManager:
        frontend = options.pop("frontend", None) or SessionFrontend(secret_key=SECRET)
        return SessionManager(backend=backend, frontend=frontend, clock=clock, **options)

    return make


@pytest.fixture
def manager(make_manager: Callable[..., SessionManager]) -> SessionManager:
    return make_manager()


def free_port() -> int:
    """A loopback port where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client_for(app: FastAPI) -> TestClient:
    """A client on https, since the session cookie is Secure by default."""
    return TestClient(app, base_url="https://testserver")


def app_with(manager: SessionManager) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=manager)
    return app


# -- real servers (see fastapi_sessions.testing.servers for how each is found) ----------------

@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with server_url("redis", "FASTAPI_SESSIONS_TEST_REDIS_URL") as url:
        yield url


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    with server_url("redis-cluster", "FASTAPI_SESSIONS_TEST_REDIS_CLUSTER_URL", container=None) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with server_url("postgres", "FASTAPI_SESSIONS_TEST_POSTGRES_URL") as url:
        yield url


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    with server_url("mysql", "FASTAPI_SESSIONS_TEST_MYSQL_URL") as url:
        yield url


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    with server_url("mongodb", "FASTAPI_SESSIONS_TEST_MONGODB_URL") as url:
        yield url
