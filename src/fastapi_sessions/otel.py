"""OpenTelemetry for fastapi-sessions: spans and metrics, switched on with one call.

``instrument(manager)`` wraps the manager's backend in :class:`InstrumentedBackend`
(one ``CLIENT`` span per store operation, ``fastapi_sessions.store.read`` and
so on), traces each session load and save (``fastapi_sessions.load``,
``fastapi_sessions.save``, the store calls nested in them), and counts what
the manager's lifecycle events report. It needs ``opentelemetry-api``
(``pip install "fastapi-sessions[otel]"``); the SDK and its exporters are the
application's choice, as always with OpenTelemetry. Nothing here is imported
by the rest of the package, so an app that never calls ``instrument`` pays
nothing.

Attributes carry the backend and the operation, never a token, a storage key
or a user id (they would be secrets or unbounded metric labels):

================================  =====================================================
``fastapi_sessions.backend``      ``"redis"``, ``"postgresql"``, ``"mongodb"``, ``"memory"``...
``fastapi_sessions.operation``    the storage call: ``"read"``, ``"update"``, ...
``fastapi_sessions.result``       what it found: ``"hit"``/``"miss"``, ``"ok"``/``"conflict"``...
``fastapi_sessions.count``        records listed, deleted or purged
``fastapi_sessions.session``      on a load: ``"found"``, ``"new"``, ``"gone"``, ``"superseded"``
``fastapi_sessions.outcome``      on a save: the :class:`CommitOutcome` value (``"saved"``, ...)
``fastapi_sessions.reason``       on the counters: the event's reason (``"login"``, ``"logout"``...)
``error.type``                    the exception's class, on failed operations (no message)
================================  =====================================================

Metrics: ``fastapi_sessions.sessions.created``, ``fastapi_sessions.sessions.ended``
(by reason: logout, emptied, expired, revoke, revoke_user...),
``fastapi_sessions.sessions.regenerated`` (login, logout, regenerate),
``fastapi_sessions.conflicts`` (merged, raised), ``fastapi_sessions.store.errors``
(by operation and ``error.type``) and the histogram
``fastapi_sessions.store.duration`` (seconds, by operation).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from importlib import metadata
from typing import Any

try:
    from opentelemetry import metrics, trace
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "fastapi_sessions.otel needs opentelemetry-api: pip install \"fastapi-sessions[otel]\"") from exc

from ._core.commit import Commit
from ._core.contract import SessionBackend, SupportsReadAndTouch
from ._core.events import EventKind, SessionEvent
from ._core.manager import SessionManager
from ._core.records import SessionRecord
from ._core.session import Session
from .errors import SessionConflict, SessionExists, SessionNotFound

__all__ = ["InstrumentedBackend", "instrument", "uninstrument"]

SCOPE = "fastapi_sessions"
BACKEND = "fastapi_sessions.backend"
OPERATION = "fastapi_sessions.operation"
RESULT = "fastapi_sessions.result"
COUNT = "fastapi_sessions.count"
REASON = "fastapi_sessions.reason"
#: Store latencies are milliseconds on a good day and seconds on a bad one.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: ``db.system.name`` for the backends whose database OpenTelemetry names.
_DB_SYSTEMS = {"redis": "redis", "postgresql": "postgresql", "mysql": "mysql", "mariadb": "mariadb",
               "sqlite": "sqlite", "mongodb": "mongodb"}
_BUILT_IN = {"fastapi_sessions.backends.redis": "redis", "fastapi_sessions.backends.mongodb": "mongodb",
             "fastapi_sessions.backends.in_memory": "memory"}
_EXPECTED = {SessionConflict: "conflict", SessionNotFound: "not_found", SessionExists: "exists"}


def _version() -> str:
    try:
        return metadata.version("fastapi-sessions")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return ""


def _error_type(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def backend_name(backend: object) -> str:
    """A short, stable name for the store behind ``backend`` (the SQL dialect for the SQLAlchemy one)."""
    dialect = getattr(getattr(getattr(backend, "engine", None), "dialect", None), "name", None)
    if isinstance(dialect, str):
        return dialect
    for cls in type(backend).__mro__:  # a subclass of a built-in backend is still that store
        for module, name in _BUILT_IN.items():
            if cls.__module__.startswith(module):
                return name
    return type(backend).__name__


class _Telemetry:
    """The tracer, the instruments and the attributes every record of one backend carries."""

    def __init__(self, backend: str, tracer_provider: trace.TracerProvider | None,
                 meter_provider: metrics.MeterProvider | None) -> None:
        self.tracer = trace.get_tracer(SCOPE, _version(), tracer_provider=tracer_provider)
        meter = metrics.get_meter(SCOPE, _version(), meter_provider=meter_provider)
        self.base: dict[str, str] = {BACKEND: backend}
        if backend in _DB_SYSTEMS:
            self.base["db.system.name"] = _DB_SYSTEMS[backend]
        self.labels = {BACKEND: backend}  # metrics: the backend only, no db.* duplicates
        self.created = meter.create_counter("fastapi_sessions.sessions.created", "{session}",
                                            "Sessions stored for the first time")
        self.ended = meter.create_counter("fastapi_sessions.sessions.ended", "{session}",
                                          "Sessions ended: logout, emptied, expired (seen on read), revoked")
        self.regenerated = meter.create_counter("fastapi_sessions.sessions.regenerated", "{session}",
                                                "Tokens regenerated: login, logout, regenerate")
        self.conflicts = meter.create_counter("fastapi_sessions.conflicts", "{conflict}",
                                              "Compare-and-set saves that lost a round: merged or raised")
        self.store_errors = meter.create_counter("fastapi_sessions.store.errors", "{error}",
                                                 "Store operations that failed")
        try:
            self.duration = meter.create_histogram("fastapi_sessions.store.duration", "s",
                                                   "Duration of store operations",
                                                   explicit_bucket_boundaries_advisory=_BUCKETS)
        except TypeError:  # an older SDK takes no bucket advice (1.27 does not): its default buckets then
            self.duration = meter.create_histogram("fastapi_sessions.store.duration", "s",
                                                   "Duration of store operations")

    @contextmanager
    def store_span(self, operation: str) -> Iterator[Span]:
        """A span and a duration for one store call; a failure sets ``error.type`` and counts."""
        attributes = {**self.base, OPERATION: operation}
        labels = {**self.labels, OPERATION: operation}
        start = time.perf_counter()
        with self.tracer.start_as_current_span(f"fastapi_sessions.store.{operation}", kind=SpanKind.CLIENT,
                                               attributes=attributes, record_exception=False,
                                               set_status_on_exception=False) as span:
            try:
                yield span
            except (SessionConflict, SessionNotFound, SessionExists) as exc:  # outcomes of the contract
                span.set_attribute(RESULT, _EXPECTED[type(exc)])
                raise
            except Exception as exc:
                error = _error_type(exc)
                span.set_status(Status(StatusCode.ERROR, error))
                span.set_attribute("error.type", error)
                labels["error.type"] = error
                self.store_errors.add(1, labels)
                raise
            finally:
                self.duration.record(time.perf_counter() - start, labels)

    @contextmanager
    def session_span(self, name: str) -> Iterator[Span]:
        with self.tracer.start_as_current_span(name, attributes=self.base, record_exception=False,
                                               set_status_on_exception=False) as span:
            try:
                yield span
            except Exception as exc:
                error = _error_type(exc)
                span.set_status(Status(StatusCode.ERROR, error))
                span.set_attribute("error.type", error)
                raise

    def observe(self, event: SessionEvent) -> None:
        """The manager's events, counted (called inline by the manager: no task, no await)."""
        kind = event.kind
        if kind is EventKind.CREATED:
            self.created.add(1, self.labels)
        elif kind is EventKind.ENDED or kind is EventKind.REVOKED:
            self.ended.add(event.count or 1, {**self.labels, REASON: event.reason or "unknown"})
        elif kind is EventKind.REGENERATED:
            self.regenerated.add(1, {**self.labels, REASON: event.reason or "unknown"})
        elif kind is EventKind.CONFLICT:
            self.conflicts.add(1, {**self.labels, REASON: event.reason or "unknown"})


class InstrumentedBackend:
    """A :class:`SessionBackend` that traces and times every call to ``wrapped``.

    Anything else the wrapped backend offers (``create_table``, ``prefix``...)
    is reached through it unchanged. It has ``read_and_touch`` only when the
    wrapped backend does (:func:`instrument` picks the right class), so the
    manager takes the same path with it as without.
    """

    def __init__(self, wrapped: SessionBackend, telemetry: _Telemetry) -> None:
        self.wrapped = wrapped
        self._telemetry = telemetry

    def __getattr__(self, name: str) -> Any:
        if name in ("wrapped", "_telemetry"):  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.wrapped, name)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self.wrapped!r}>"

    async def __aenter__(self) -> InstrumentedBackend:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def create(self, record: SessionRecord, *, now: datetime | None = None) -> None:
        with self._telemetry.store_span("create") as span:
            await self.wrapped.create(record, now=now)
            span.set_attribute(RESULT, "ok")

    async def read(self, key: str, *, now: datetime | None = None) -> SessionRecord | None:
        with self._telemetry.store_span("read") as span:
            record = await self.wrapped.read(key, now=now)
            span.set_attribute(RESULT, "miss" if record is None else "hit")
            return record

    async def update(self, record: SessionRecord, expected_version: int, *, now: datetime | None = None) -> int:
        with self._telemetry.store_span("update") as span:
            version = await self.wrapped.update(record, expected_version, now=now)
            span.set_attribute(RESULT, "ok")
            return version

    async def touch(self, key: str, expires_at: datetime, *, now: datetime | None = None) -> bool:
        with self._telemetry.store_span("touch") as span:
            touched = await self.wrapped.touch(key, expires_at, now=now)
            span.set_attribute(RESULT, "ok" if touched else "miss")
            return touched

    async def delete(self, key: str, *, now: datetime | None = None) -> bool:
        with self._telemetry.store_span("delete") as span:
            deleted = await self.wrapped.delete(key, now=now)
            span.set_attribute(RESULT, "ok" if deleted else "miss")
            return deleted

    async def list_by_user(self, user_id: str, *, now: datetime | None = None) -> Sequence[SessionRecord]:
        with self._telemetry.store_span("list_by_user") as span:
            records = await self.wrapped.list_by_user(user_id, now=now)
            span.set_attribute(COUNT, len(records))
            return records

    async def delete_by_user(self, user_id: str, *, now: datetime | None = None) -> int:
        with self._telemetry.store_span("delete_by_user") as span:
            count = await self.wrapped.delete_by_user(user_id, now=now)
            span.set_attribute(COUNT, count)
            return count

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        with self._telemetry.store_span("purge_expired") as span:
            count = await self.wrapped.purge_expired(now=now)
            span.set_attribute(COUNT, count)
            return count

    async def aclose(self) -> None:
        await self.wrapped.aclose()


class _InstrumentedFusedBackend(InstrumentedBackend):
    """The proxy for a backend with the optional fused ``read_and_touch``."""

    wrapped: Any  # a SessionBackend that is also SupportsReadAndTouch

    async def read_and_touch(
        self,
        key: str,
        *,
        now: datetime,
        idle_timeout: timedelta,
        absolute_timeout: timedelta,
        refresh_interval: timedelta,
    ) -> tuple[SessionRecord | None, bool]:
        with self._telemetry.store_span("read_and_touch") as span:
            record, touched = await self.wrapped.read_and_touch(
                key, now=now, idle_timeout=idle_timeout, absolute_timeout=absolute_timeout,
                refresh_interval=refresh_interval)
            span.set_attribute(RESULT, "miss" if record is None else "hit")
            span.set_attribute("fastapi_sessions.touched", touched)
            return record, touched


def _load_state(session: Session) -> str:
    if not session.is_new:
        return "found"
    if session._superseded:
        return "superseded"
    return "gone" if session._dead_key is not None else "new"


def instrument(
    manager: SessionManager,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    backend: str | None = None,
) -> None:
    """Trace and measure ``manager``: its store calls, its loads and saves, its lifecycle events.

    The providers default to OpenTelemetry's global ones; ``backend`` overrides
    the name the ``fastapi_sessions.backend`` attribute gives the store. Call it
    once, before serving (a second call does nothing); :func:`uninstrument` undoes it.
    """
    if isinstance(manager.backend, InstrumentedBackend):
        return
    telemetry = _Telemetry(backend or backend_name(manager.backend), tracer_provider, meter_provider)
    wrapped = manager.backend
    proxy_class = _InstrumentedFusedBackend if isinstance(wrapped, SupportsReadAndTouch) else InstrumentedBackend
    proxy = proxy_class(wrapped, telemetry)
    manager.backend = proxy
    # The manager picks its read path once, at construction: pick it again, through the proxy.
    manager._read_and_touch = proxy.read_and_touch if isinstance(proxy, _InstrumentedFusedBackend) else None
    load, commit = manager.load, manager.commit

    async def traced_load(token: str | None) -> Session:
        if token is None:  # nothing to load: no store call, no span
            return await load(token)
        with telemetry.session_span("fastapi_sessions.load") as span:
            session = await load(token)
            span.set_attribute("fastapi_sessions.session", _load_state(session))
            return session

    async def traced_commit(session: Session) -> Commit:
        if not (session.modified or session._touch_to is not None):  # nothing to write: no span
            return await commit(session)
        with telemetry.session_span("fastapi_sessions.save") as span:
            result = await commit(session)
            span.set_attribute("fastapi_sessions.outcome", result.outcome.value)
            return result

    # Instance attributes shadow the methods: the middleware and the direct API call these.
    vars(manager).update(load=traced_load, commit=traced_commit, _otel=(wrapped, telemetry))
    manager._events.observe(telemetry.observe)


def uninstrument(manager: SessionManager) -> None:
    """Undo :func:`instrument`: the manager uses its backend directly again."""
    state = vars(manager).pop("_otel", None)
    if state is None:
        return
    wrapped, telemetry = state
    vars(manager).pop("load", None)
    vars(manager).pop("commit", None)
    manager._events.unobserve(telemetry.observe)
    manager.backend = wrapped
    manager._read_and_touch = wrapped.read_and_touch if isinstance(wrapped, SupportsReadAndTouch) else None
