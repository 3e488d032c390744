"""The SQL session backend: one table, one statement per operation, in autocommit mode (see the package's docs)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Executable
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from ..._core.clock import Clock, utc_now
from ..._core.contract import BaseSessionBackend
from ..._core.records import RecordCounts, SessionRecord
from ...errors import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    SessionConflict,
    SessionExists,
    SessionNotFound,
)
from ._dialects import ops_for
from ._engine import build_engine
from ._errors import BOUNDARY_ERRORS, discard, driver_errors, lost_connection, original
from ._statements import Statements
from ._table import DEFAULT_TABLE_NAME, _datetime, _micros, ddl, session_table

# A deadlock victim's one statement was rolled back whole, so running it again is safe.
_DEADLOCK_RETRIES = 3


class SQLAlchemyBackend(BaseSessionBackend):
    """Sessions in one SQL table through a SQLAlchemy :class:`AsyncEngine`.

    ``engine`` is a URL (``postgresql+asyncpg://...``, ``sqlite+aiosqlite:///sessions.db``,
    ``mysql+asyncmy://...``; without a driver the async one is chosen) or an
    ``AsyncEngine`` the application already has. An engine built here is
    disposed by :meth:`aclose`; one passed in is left to its owner.

    ``create_table=True`` creates the table (if missing) before the first
    operation; otherwise create it explicitly with :meth:`create_table`.
    ``purge_batch_size`` bounds each ``DELETE`` of :meth:`purge_expired`.
    ``clock`` judges liveness for calls that pass no ``now`` (the manager always
    passes its own; tests and scripts may rely on this one).
    Further keyword options go to ``create_async_engine``.
    """

    def __init__(
        self,
        engine: AsyncEngine | str | URL,
        *,
        table_name: str = DEFAULT_TABLE_NAME,
        schema: str | None = None,
        create_table: bool = False,
        purge_batch_size: int = 1000,
        connect_timeout: Any = False,
        command_timeout: Any = False,
        clock: Clock = utc_now,
        **engine_options: Any,
    ) -> None:
        if purge_batch_size < 1:
            raise ConfigurationError("purge_batch_size must be at least 1", setting="purge_batch_size")
        # False: not given (the URL's query or the default decides); None: the driver's own behaviour.
        bounds: dict[str, Any] = {"connect_timeout": connect_timeout, "command_timeout": command_timeout}
        for name in ("pool_timeout", "pool_size", "max_overflow"):
            if name in engine_options:
                bounds[name] = engine_options.pop(name)
        if isinstance(engine, AsyncEngine):
            if engine_options or any(value is not False for value in bounds.values()):
                raise ConfigurationError("engine options apply only when the backend builds its engine from a URL")
            self.engine = engine
            self._owns_engine = False
            # Autocommit on our checkouts only; the application's own use of the engine is untouched.
            self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        else:
            self.engine = self._engine = build_engine(engine, bounds=bounds, **engine_options)
            self._owns_engine = True
        self._deadline: float | None = bounds.get("deadline")
        self.table = session_table(table_name, schema=schema)
        self.purge_batch_size = purge_batch_size
        self._clock = clock
        self._create_on_start = create_table
        self._table_ready = not create_table
        self._table_lock = asyncio.Lock()
        self._closed = False
        self._failures = (*BOUNDARY_ERRORS, *driver_errors(self.engine.dialect))
        # The database family's strategy, chosen once; the statements are built once with it.
        self._ops = ops_for(self.engine.dialect.name)
        self._sql = Statements(self.table, self._ops, purge_batch_size)

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"{type(self).__name__}({url!r}, table_name={self.table.name!r})"

    # -- plumbing ----------------------------------------------------------------------------

    def _now(self, now: datetime | None) -> int:
        return _micros(now or self._clock())

    def _record(self, row: Sequence[Any]) -> SessionRecord:
        key, payload, user_id, created_at, expires_at, version = row
        return SessionRecord(key, bytes(payload), user_id, _datetime(created_at), _datetime(expires_at), version)

    def _error(self, exc: BaseException, what: str) -> BackendError:
        """Map a driver or pool failure to ``BackendUnavailable`` or ``BackendError``, naming its cause."""
        dialect = self.engine.dialect.name
        where = f"{dialect} session store"
        orig = original(exc)
        reason = self._ops.reason(orig, self.engine.url) or type(orig).__name__
        if self._unavailable(exc):
            return BackendUnavailable(f"{where} unavailable during {what}: {reason}", backend=dialect, operation=what)
        message = f"{where} failed during {what}: {reason}"
        suggestion = None
        if self._ops.missing_table(orig):
            suggestion = (f"is the table {self.table.name!r} created? run `python -m "
                          "fastapi_sessions.backends.sqlalchemy create-table URL` or pass create_table=True")
            message += f" ({suggestion})"
        return BackendError(message, backend=dialect, operation=what, suggestion=suggestion)

    def _unavailable(self, exc: BaseException) -> bool:
        """Whether ``exc`` means "cannot reach the store right now" rather than "the store said no"."""
        return lost_connection(exc) or self._ops.unavailable(original(exc))

    async def _ensure_table(self) -> None:
        async with self._table_lock:
            if not self._table_ready:
                await self.create_table()

    async def _run(self, what: str, statement: Executable, params: dict[str, Any]) -> Any:
        """Execute one statement on a pooled autocommit connection; the result comes back buffered."""
        if not self._table_ready:
            await self._ensure_table()
        try:
            async with asyncio.timeout(self._deadline):  # one bound over every attempt
                for attempt in range(_DEADLOCK_RETRIES + 1):
                    try:
                        async with self._engine.connect() as conn:
                            try:
                                return await conn.execute(statement, params)
                            except self._failures as exc:
                                if self._unavailable(exc) and not conn.invalidated:
                                    await discard(conn)
                                raise
                    except self._failures as exc:
                        if attempt == _DEADLOCK_RETRIES or not self._ops.deadlock(original(exc)):
                            raise
        except self._failures as exc:
            raise self._error(exc, what) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # -- table management --------------------------------------------------------------------

    async def create_table(self) -> None:
        """Create the table and its indexes if they do not exist (idempotent)."""
        try:
            async with self._engine.connect() as conn:
                await conn.run_sync(self.table.metadata.create_all, tables=[self.table], checkfirst=True)
        except self._failures as exc:
            raise self._error(exc, "create_table") from exc
        self._table_ready = True

    async def drop_table(self) -> None:
        """Drop the table and every session in it (idempotent)."""
        try:
            async with self._engine.connect() as conn:
                await conn.run_sync(self.table.metadata.drop_all, tables=[self.table], checkfirst=True)
        except self._failures as exc:
            raise self._error(exc, "drop_table") from exc
        self._table_ready = not self._create_on_start

    def ddl(self) -> list[str]:
        """This backend's ``CREATE TABLE`` and ``CREATE INDEX`` statements for its dialect."""
        return ddl(self.engine.dialect, self.table)

    # -- the contract ------------------------------------------------------------------------

    async def create(self, record: SessionRecord, *, now: datetime | None = None) -> None:
        params = {"k": record.key, "payload": record.payload, "user_id": record.user_id,
                  "created_at": _micros(record.created_at), "expires_at": _micros(record.expires_at),
                  "now": self._now(now)}
        if not await self._ops.create(self._run, self._sql, params):
            raise SessionExists(key=record.key, operation="create")

    async def read(self, key: str, *, now: datetime | None = None) -> SessionRecord | None:
        row = (await self._run("read", self._sql.read, {"k": key, "now": self._now(now)})).first()
        return None if row is None else self._record(row)

    async def update(self, record: SessionRecord, expected_version: int, *, now: datetime | None = None) -> int:
        params = {"k": record.key, "expected": expected_version, "payload": record.payload,
                  "user_id": record.user_id, "expires_at": _micros(record.expires_at), "now": self._now(now)}
        if (await self._run("update", self._sql.update, params)).rowcount == 1:
            return expected_version + 1
        # Matched nothing: only now is it worth asking why.
        if (await self._run("update", self._sql.version, params)).first() is None:
            raise SessionNotFound(key=record.key, operation="update")
        raise SessionConflict(key=record.key, operation="update")

    async def touch(self, key: str, expires_at: datetime, *, now: datetime | None = None) -> bool:
        params = {"k": key, "expires_at": _micros(expires_at), "now": self._now(now)}
        return bool((await self._run("touch", self._sql.touch, params)).rowcount == 1)

    async def delete(self, key: str, *, now: datetime | None = None) -> bool:
        return bool((await self._run("delete", self._sql.delete, {"k": key, "now": self._now(now)})).rowcount == 1)

    async def list_by_user(self, user_id: str, *, now: datetime | None = None) -> list[SessionRecord]:
        result = await self._run("list_by_user", self._sql.list_by_user, {"user_id": user_id, "now": self._now(now)})
        return [self._record(row) for row in result]

    async def delete_by_user(self, user_id: str, *, now: datetime | None = None) -> int:
        params = {"user_id": user_id, "now": self._now(now)}
        result = await self._run("delete_by_user", self._sql.delete_by_user, params)
        return int(result.rowcount)

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        """Delete expired rows in batches of ``purge_batch_size``, each its own short transaction."""
        params = {"now": self._now(now)}  # one cut-off for every batch: no chasing the clock
        removed = 0
        while True:
            deleted = int((await self._run("purge_expired", self._sql.purge, params)).rowcount)
            removed += deleted
            if deleted < self.purge_batch_size:
                return removed

    async def purge_expired_batch(self, limit: int, *, now: datetime | None = None) -> int:
        """One ``DELETE`` of at most ``limit`` expired rows, through the expiry index (its own short transaction)."""
        statement = self._sql.purge_of(max(limit, 1))
        return int((await self._run("purge_expired", statement, {"now": self._now(now)})).rowcount)

    async def count_records(self, *, now: datetime | None = None) -> RecordCounts:
        """Live and expired rows at ``now``: two counts through the expiry index, in one statement."""
        live, expired = (await self._run("count_records", self._sql.counts, {"now": self._now(now)})).one()
        return RecordCounts(int(live), int(expired))

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_engine:
            await self.engine.dispose()

    async def __aenter__(self) -> Self:
        # create_table=True: the table is there once ``async with`` has entered (the base's exit closes).
        if not self._table_ready:
            await self._ensure_table()
        return self


def from_url(url: str, *, clock: Clock = utc_now, **options: Any) -> SQLAlchemyBackend:
    """Entry-point factory for ``postgresql``, ``sqlite``, ``mysql`` and ``mariadb`` URLs.

    Keyword options go to :class:`SQLAlchemyBackend` (``table_name``,
    ``create_table``, ``clock``, ...) and from there to ``create_async_engine``.
    """
    return SQLAlchemyBackend(url, clock=clock, **options)


