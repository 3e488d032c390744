"""Shared fixtures for the test suite."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fastapi_sessions import ManualClock, SessionManager, SessionMiddleware, SessionRecord
from fastapi_sessions._core.records import deadline
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
        target = deadline(record.created_at, now, idle_timeout=idle_timeout, absolute_timeout=absolute_timeout)
        if target - record.expires_at < refresh_interval:
            return record, False
        record = replace(record, expires_at=target)
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


def stored_sessions(backend: InMemoryBackend) -> dict[str, SessionRecord]:
    """The in-memory backend's session records, without the markers that retired tokens leave behind."""
    from fastapi_sessions._core.markers import read_marker

    return {key: r for key, r in backend._records.items() if read_marker(r.payload) is None}


def free_port() -> int:
    """A loopback port where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers: a server that hangs.

    Tests of an unreachable MongoDB use this rather than a closed port. Against a
    closed port, PyMongo's background monitor spends its time connecting, and a
    client closed mid-connect leaks that socket (PyMongo does not close it on
    cancellation); here the monitor's connection is established and closes with
    the client.
    """
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:  # the listener was closed: done
                return

    thread = threading.Thread(target=accept, name="silent-server", daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)
        for sock in accepted:
            sock.close()


def connections_to(port: int) -> int:
    """How many of this process's TCP sockets are connected to loopback ``port`` (Linux ``/proc``)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed while we looked
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as rows:
                next(rows)
                for row in rows:
                    fields = row.split()
                    remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                    if remote_port == port and fields[9] in inodes:
                        count += 1
        except FileNotFoundError:
            continue
    return count


def client_for(app: FastAPI) -> TestClient:
    """A client on https, since the session cookie is Secure by default."""
    return TestClient(app, base_url="https://testserver")


def app_with(manager: SessionManager) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=manager)
    return app


# -- real servers (see fastapi_sessions.testing.servers for how each is found) ----------------

#: Each server the suite uses and the variable that names it.
SERVER_VARIABLES = {
    "redis": "FASTAPI_SESSIONS_TEST_REDIS_URL",
    "redis-cluster": "FASTAPI_SESSIONS_TEST_REDIS_CLUSTER_URL",
    "valkey": "FASTAPI_SESSIONS_TEST_VALKEY_URL",
    "valkey-cluster": "FASTAPI_SESSIONS_TEST_VALKEY_CLUSTER_URL",
    "postgres": "FASTAPI_SESSIONS_TEST_POSTGRES_URL",
    "mysql": "FASTAPI_SESSIONS_TEST_MYSQL_URL",
    "mongodb": "FASTAPI_SESSIONS_TEST_MONGODB_URL",
}
_server_outcomes: dict[str, str] = {}


def _server(name: str, **options: Any) -> Iterator[str]:
    """Resolve ``name``'s server and remember the outcome for the summary line."""
    try:
        with server_url(name, SERVER_VARIABLES[name], **options) as url:
            _server_outcomes[name] = "ran"
            yield url
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        verb = "skipped" if isinstance(exc, pytest.skip.Exception) else "FAILED"
        _server_outcomes[name] = f"{verb} (no server: set {SERVER_VARIABLES[name]})"
        raise


#: Why a test may skip, by a phrase its reason contains; anything else is listed as "other".
SKIP_KINDS = {
    "does not declare capability": "for a capability its backend does not declare",
    "is not applicable:": "for a capability its backend declares not applicable",
    "has no read_and_touch()": "for the optional read_and_touch() its backend does not have",
    "an optional maintenance method": "for an optional maintenance method its backend does not have",
    "needs a real MongoDB": "that need a real MongoDB (the server is the nx-27017 stand-in)",
    "server: set FASTAPI_SESSIONS_TEST_": "for a missing server",
}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any) -> Iterator[None]:
    """One line after pytest's own summary: which server backends ran, and why tests skipped."""
    yield
    if not _server_outcomes:
        return
    ran = [name for name, outcome in _server_outcomes.items() if outcome == "ran"]
    parts = [f"server backends: {', '.join(ran) or 'none'} ran"]
    parts += [f"{name} {outcome}" for name, outcome in _server_outcomes.items() if outcome != "ran"]
    kinds: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
        kind = next((label for phrase, label in SKIP_KINDS.items() if phrase in reason), "for another reason")
        kinds[kind] = kinds.get(kind, 0) + 1
    if kinds:
        parts.append("skipped " + ", ".join(f"{count} {kind}" for kind, count in kinds.items()))
    terminalreporter.write_line("; ".join(parts))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    yield from _server("redis")


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    yield from _server("redis-cluster", container=None)


@pytest.fixture(scope="session")
def valkey_url() -> Iterator[str]:
    """A standalone Valkey (scripts/test-servers.sh starts one on 6390); no container fallback."""
    yield from _server("valkey", container=None)


@pytest.fixture(scope="session")
def valkey_cluster_url() -> Iterator[str]:
    yield from _server("valkey-cluster", container=None)


def redis_py_url(url: str) -> str:
    """``url`` as redis-py's own ``from_url`` takes it: no ``+cluster`` (nor database), ``valkey`` spelled ``redis``."""
    scheme, rest = url.split("://", 1)
    family = scheme.removesuffix("+cluster")
    if family != scheme:
        rest = rest.split("/", 1)[0]
    spelled = {"valkey": "redis", "valkeys": "rediss"}.get(family, family)
    return f"{spelled}://{rest}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    yield from _server("postgres")


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    yield from _server("mysql")


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    yield from _server("mongodb")


# -- every backend, for lifecycle tests ------------------------------------------------------

#: The backends lifecycle tests run on; each name maps to how its server is found.
LIFECYCLE_BACKENDS = ["memory", "memory-fused", "sqlite", "redis", "redis-cluster", "postgres", "mysql", "mongodb"]
BackendFactory = Callable[[Callable[[], datetime]], Any]


def _with_clock(factory: Callable[..., Any], clock: Callable[[], datetime], *args: Any, **kwargs: Any) -> Any:
    """Build a backend, giving it the test clock where it takes one (it judges direct calls by it)."""
    import inspect

    if "clock" in inspect.signature(factory).parameters:
        kwargs["clock"] = clock
    return factory(*args, **kwargs)


@pytest.fixture(params=LIFECYCLE_BACKENDS)
def lifecycle_backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[BackendFactory]:
    """A factory of fresh, isolated backends of one kind: ``factory(clock)`` returns a backend.

    Each backend gets a table, collection or key prefix of its own, removed afterwards.
    """
    import asyncio
    import uuid

    name: str = request.param
    tag = uuid.uuid4().hex[:10]
    cleanup: list[Callable[[], Any]] = []
    if name == "memory":
        yield lambda clock: InMemoryBackend(clock=clock)
    elif name == "memory-fused":
        yield lambda clock: ReadAndTouchBackend(clock=clock)
    elif name in ("sqlite", "postgres", "mysql"):
        from fastapi_sessions.backends.sqlalchemy import SQLAlchemyBackend

        url = f"sqlite+aiosqlite:///{tmp_path}/lifecycle.db" if name == "sqlite" else request.getfixturevalue(
            f"{name}_url")
        table = f"fs_life_{tag}"
        yield lambda clock: _with_clock(SQLAlchemyBackend, clock, url, table_name=table, create_table=True)

        async def drop() -> None:
            async with SQLAlchemyBackend(url, table_name=table) as backend:
                await backend.drop_table()

        cleanup.append(lambda: asyncio.run(drop()))
    elif name in ("redis", "redis-cluster"):
        from fastapi_sessions.backends.redis import RedisBackend

        url = request.getfixturevalue("redis_url" if name == "redis" else "redis_cluster_url")
        prefix = f"fs-life-{tag}:"
        yield lambda clock: _with_clock(RedisBackend.from_url, clock, url, prefix=prefix)

        async def delete_keys() -> None:
            from redis.asyncio import Redis, RedisCluster

            raw: Redis | RedisCluster = (RedisCluster.from_url(url.replace("+cluster", "").rsplit("/", 1)[0])
                                         if "+cluster" in url else Redis.from_url(url))
            async for key in raw.scan_iter(match=f"{prefix}*", count=1000):
                await raw.delete(key)  # one by one: on a cluster the keys are in different slots
            await raw.aclose()

        cleanup.append(lambda: asyncio.run(delete_keys()))
    else:
        from fastapi_sessions.backends.mongodb import MongoBackend

        url = request.getfixturevalue("mongodb_url")
        collection = f"life_{tag}"
        yield lambda clock: _with_clock(MongoBackend, clock, url, collection=collection,
                                        serverSelectionTimeoutMS=5000)

        async def drop_collection() -> None:
            async with MongoBackend(url, collection=collection) as backend:
                await backend.collection.drop()

        cleanup.append(lambda: asyncio.run(drop_collection()))
    for step in cleanup:
        step()
