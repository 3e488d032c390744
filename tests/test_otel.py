"""OpenTelemetry (fastapi_sessions.otel), read back through the SDK's in-memory span exporter and metric reader.

Spans and attributes are checked on every backend the lifecycle tests use (the
real servers among them), an error span on a real driver facing a closed port,
and the counters on the manager's events. No attribute, event or status may
carry a token, a storage key (or its prefix) or a user id.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from conftest import SECRET, BackendFactory, ReadAndTouchBackend, app_with, free_port
from fastapi_sessions import ManualClock, SessionBackend, SessionConflict, SessionManager, session_of
from fastapi_sessions._core.tokens import storage_key
from fastapi_sessions.backends.in_memory import InMemoryBackend
from fastapi_sessions.frontends import SessionFrontend
from fastapi_sessions.otel import InstrumentedBackend, instrument, uninstrument

USER = "alice-the-user"
PASSWORD = "s3cr3t-pw"


class Telemetry:
    """An SDK tracer provider and meter provider that keep everything in memory."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def instrument(self, manager: SessionManager) -> None:
        instrument(manager, tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)

    def finished(self) -> list[ReadableSpan]:
        spans = list(self.spans.get_finished_spans())
        self.spans.clear()
        return spans

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """The data points of metric ``name``: (attributes, the point)."""
        found = []
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found += [(dict(point.attributes or {}), point) for point in metric.data.data_points]
        return found

    def total(self, name: str, **attributes: str) -> int:
        """The sum of a counter over its points whose attributes match (``error_type``: ``error.type``)."""
        wanted = {"error.type" if key == "error_type" else f"fastapi_sessions.{key}": value
                  for key, value in attributes.items()}
        return sum(point.value for labels, point in self.points(name)
                   if all(labels.get(key) == value for key, value in wanted.items()))


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    telemetry = Telemetry()
    yield telemetry
    telemetry.tracer_provider.shutdown()
    telemetry.meter_provider.shutdown()


def session_app(manager: SessionManager) -> FastAPI:
    app = app_with(manager)

    @app.post("/set/{value}")
    async def set_value(value: str, request: Request) -> None:
        request.session["value"] = value

    @app.post("/login")
    async def login(request: Request) -> None:
        session_of(request).user_id = USER

    @app.post("/logout")
    async def logout(request: Request) -> None:
        session_of(request).invalidate()

    @app.get("/read")
    async def read(request: Request) -> dict[str, Any]:
        return dict(request.session)

    return app


def client_of(manager: SessionManager) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=session_app(manager)), base_url="https://testserver")


def assert_nothing_secret(spans: list[ReadableSpan], telemetry: Telemetry, forbidden: list[str]) -> None:
    values: list[str] = []
    for span in spans:
        values += [span.name, str(span.status.description or "")]
        values += [str(v) for v in (span.attributes or {}).values()]
        for event in span.events:
            values += [str(v) for v in (event.attributes or {}).values()]
    data = telemetry.reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    values += [str(v) for v in (point.attributes or {}).values()]
    assert values
    leaks = [(secret, value) for value in values for secret in forbidden if secret and secret in value]
    assert not leaks


def secrets_of(manager: SessionManager, cookies: list[str]) -> list[str]:
    tokens = [manager.frontend.unsign(cookie) or "" for cookie in cookies]
    keys = [storage_key(token) for token in tokens]
    return [*cookies, *tokens, *keys, *(key[:8] for key in keys), USER, PASSWORD, SECRET]


EXPECTED_BACKEND = {"memory": {"memory"}, "memory-fused": {"memory"}, "sqlite": {"sqlite"}, "redis": {"redis"},
                    "redis-cluster": {"redis"}, "postgres": {"postgresql"}, "mysql": {"mysql", "mariadb"},
                    "mongodb": {"mongodb"}}


@pytest_asyncio.fixture
async def lifecycle_manager(lifecycle_backend: BackendFactory) -> AsyncIterator[SessionManager]:
    clock = ManualClock()
    manager = SessionManager(lifecycle_backend(clock), SessionFrontend(secret_key=SECRET), clock=clock)
    yield manager
    await manager.aclose()


@pytest.mark.asyncio
async def test_a_request_that_loads_and_saves_is_one_load_and_one_save_span(
    request: pytest.FixtureRequest, lifecycle_manager: SessionManager, telemetry: Telemetry
) -> None:
    manager = lifecycle_manager
    fused = manager._read_and_touch is not None
    telemetry.instrument(manager)
    async with client_of(manager) as client:
        assert (await client.post("/set/1")).status_code == 200
        first = telemetry.finished()
        assert (await client.post("/set/2")).status_code == 200
        spans = telemetry.finished()
        cookie = client.cookies["session"]
        assert (await client.get("/read")).json() == {"value": "2"}
    names = {span.name: span for span in first}
    assert set(names) == {"fastapi_sessions.save", "fastapi_sessions.store.create"}  # no token: no load span
    assert (names["fastapi_sessions.save"].attributes or {})["fastapi_sessions.outcome"] == "created"

    read = "fastapi_sessions.store.read_and_touch" if fused else "fastapi_sessions.store.read"
    by_name = {span.name: span for span in spans}
    assert [span.name for span in spans] == [read, "fastapi_sessions.load", "fastapi_sessions.store.update",
                                            "fastapi_sessions.save"]  # in the order they ended
    load, save = by_name["fastapi_sessions.load"], by_name["fastapi_sessions.save"]
    store_read, update = by_name[read], by_name["fastapi_sessions.store.update"]
    assert store_read.parent is not None and update.parent is not None
    assert load.context is not None and save.context is not None
    assert store_read.parent.span_id == load.context.span_id  # the store call is the load's child
    assert update.parent.span_id == save.context.span_id
    assert store_read.kind is SpanKind.CLIENT and load.kind is SpanKind.INTERNAL
    backend = store_read.attributes and store_read.attributes["fastapi_sessions.backend"]
    assert backend in EXPECTED_BACKEND[request.node.callspec.params["lifecycle_backend"]]
    assert dict(store_read.attributes or {}) == {
        "fastapi_sessions.backend": backend, "fastapi_sessions.operation": read.rsplit(".", 1)[1],
        "fastapi_sessions.result": "hit", **({"db.system.name": backend} if backend != "memory" else {}),
        **({"fastapi_sessions.touched": False} if fused else {})}
    assert (update.attributes or {})["fastapi_sessions.result"] == "ok"
    assert (load.attributes or {})["fastapi_sessions.session"] == "found"
    assert (save.attributes or {})["fastapi_sessions.outcome"] == "saved"
    assert all(span.status.status_code is StatusCode.UNSET for span in [*first, *spans])
    durations = {labels["fastapi_sessions.operation"]: point.count
                 for labels, point in telemetry.points("fastapi_sessions.store.duration")}
    assert durations == {"create": 1, "update": 1, read.rsplit(".", 1)[1]: 2}
    assert_nothing_secret([*first, *spans, *telemetry.finished()], telemetry, secrets_of(manager, [cookie]))


@pytest.mark.asyncio
@pytest.mark.parametrize("store", ["redis", "postgresql"])
async def test_an_unreachable_store_gives_error_spans_and_counts_the_errors(store: str, telemetry: Telemetry) -> None:
    port = free_port()  # nothing listens there
    backend: SessionBackend
    if store == "redis":
        from fastapi_sessions.backends.redis import RedisBackend

        backend = RedisBackend.from_url(f"redis://:{PASSWORD}@127.0.0.1:{port}/0")
    else:
        from fastapi_sessions.backends.sqlalchemy import SQLAlchemyBackend

        backend = SQLAlchemyBackend(f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:{port}/test")
    manager = SessionManager(backend, SessionFrontend(secret_key=SECRET))
    telemetry.instrument(manager)
    async with manager, client_of(manager) as client:
        response = await client.post("/set/1")
    assert response.status_code == 503
    spans = {span.name: span for span in telemetry.finished()}
    assert set(spans) == {"fastapi_sessions.save", "fastapi_sessions.store.create"}
    error = "fastapi_sessions.errors.BackendUnavailable"
    for span in spans.values():
        assert span.status.status_code is StatusCode.ERROR and span.status.description == error
        assert (span.attributes or {})["error.type"] == error
    assert (spans["fastapi_sessions.store.create"].attributes or {})["fastapi_sessions.operation"] == "create"
    assert telemetry.total("fastapi_sessions.store.errors", operation="create", error_type=error) == 1
    [(labels, point)] = telemetry.points("fastapi_sessions.store.duration")
    assert labels["error.type"] == error and point.count == 1
    assert_nothing_secret(list(spans.values()), telemetry, [PASSWORD, SECRET, str(port) + "/"])


@pytest.mark.asyncio
async def test_counters_follow_logins_logouts_and_conflicts(
    make_manager: Callable[..., SessionManager], telemetry: Telemetry
) -> None:
    manager = make_manager()
    telemetry.instrument(manager)
    async with client_of(manager) as client:
        await client.post("/set/1")
        await client.post("/login")
        cookie = client.cookies["session"]
        await client.post("/logout")
        await client.post("/set/2")  # a second session
        await client.get("/read")
    session_id = await manager.create_session({"a": 0}, user_id=USER)
    mine, theirs = await manager.get_session(session_id), await manager.get_session(session_id)
    assert mine is not None and theirs is not None
    theirs["b"] = 1
    await manager.save_session(theirs)
    mine["a"] = 1
    await manager.save_session(mine)
    strict = make_manager(conflict_policy="raise")
    telemetry.instrument(strict)
    mine, theirs = await strict.get_session(session_id), await strict.get_session(session_id)
    assert mine is not None and theirs is not None
    theirs["a"], mine["a"] = 2, 3
    await strict.save_session(theirs)
    with pytest.raises(SessionConflict):
        await strict.save_session(mine)
    assert await manager.revoke_user(USER) == 1

    assert telemetry.total("fastapi_sessions.sessions.created") == 3
    assert telemetry.total("fastapi_sessions.sessions.regenerated", reason="login") == 1
    assert telemetry.total("fastapi_sessions.sessions.ended", reason="logout") == 1
    assert telemetry.total("fastapi_sessions.sessions.ended", reason="revoke_user") == 1
    assert telemetry.total("fastapi_sessions.conflicts", reason="merged") == 1
    assert telemetry.total("fastapi_sessions.conflicts", reason="raised") == 1
    assert telemetry.total("fastapi_sessions.store.errors") == 0
    assert_nothing_secret(telemetry.finished(), telemetry, secrets_of(manager, [cookie, session_id]))


@pytest.mark.asyncio
async def test_the_proxy_keeps_the_backend_s_shape(telemetry: Telemetry) -> None:
    for original in (InMemoryBackend(), ReadAndTouchBackend()):
        manager = SessionManager(original, SessionFrontend(secret_key=SECRET))
        had_fused = manager._read_and_touch is not None
        assert had_fused is isinstance(original, ReadAndTouchBackend)
        telemetry.instrument(manager)
        telemetry.instrument(manager)  # a second call changes nothing
        proxy = manager.backend
        assert isinstance(proxy, InstrumentedBackend) and proxy.wrapped is original
        assert isinstance(proxy, SessionBackend)
        assert hasattr(proxy, "read_and_touch") is had_fused
        assert (manager._read_and_touch is not None) is had_fused
        assert proxy._data is original._data and proxy.max_entries is None  # the rest passes through
        session_id = await manager.create_session({"a": 1})
        assert await manager.get_session(session_id) is not None
        read = "read_and_touch" if had_fused else "read"
        assert [s.name for s in telemetry.finished()] == [
            "fastapi_sessions.store.create", f"fastapi_sessions.store.{read}", "fastapi_sessions.load"]
        uninstrument(manager)
        assert manager.backend is original and "load" not in vars(manager)
        assert (manager._read_and_touch is not None) is had_fused
        await manager.create_session({"a": 1})
        assert telemetry.finished() == []
        assert not manager._events.on  # the counters' observer is gone too


def test_only_the_otel_module_imports_opentelemetry() -> None:
    package = Path(__file__).resolve().parent.parent / "src" / "fastapi_sessions"
    importing = sorted(str(path.relative_to(package)) for path in package.rglob("*.py")
                       if re.search(r"^\s*(from|import) opentelemetry", path.read_text(), re.M))
    assert importing == ["otel.py"]


def test_an_app_that_does_not_instrument_never_loads_the_otel_module(tmp_path: Any) -> None:
    script = (
        "import sys\n"
        "from fastapi import FastAPI\n"
        "from fastapi.testclient import TestClient\n"
        "from fastapi_sessions import SessionManager, SessionMiddleware\n"
        "manager = SessionManager.from_url('memory://')\n"
        "app = FastAPI()\n"
        "app.add_middleware(SessionMiddleware, manager=manager)\n"
        "@app.get('/')\n"
        "async def index(request: __import__('starlette.requests').requests.Request) -> dict:\n"
        "    request.session['a'] = 1\n"
        "    return {}\n"
        "assert TestClient(app, base_url='https://testserver').get('/').status_code == 200\n"
        "print(type(manager.backend).__name__, 'fastapi_sessions.otel' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "InMemoryBackend False"
