"""SQL backend on SQLAlchemy 2 async: PostgreSQL (asyncpg), SQLite (aiosqlite), MySQL and MariaDB (asyncmy).

One table (see :func:`session_table`), and every operation is one statement
run in autocommit mode:

==================  ===========================================================================
operation           statement
==================  ===========================================================================
``create``          ``INSERT``; PostgreSQL and SQLite: ``ON CONFLICT (key) DO UPDATE ... WHERE
                    expires_at <= now`` so an expired row is taken over in the same statement.
                    MySQL/MariaDB: plain ``INSERT``; only on a duplicate key a conditional
                    ``UPDATE ... WHERE key = ? AND expires_at <= now`` takes over an expired row
``read``            ``SELECT ... WHERE key = ? AND expires_at > now``
``update``          ``UPDATE ... SET ..., version = version + 1 WHERE key = ? AND version = ?
                    AND expires_at > now``; only when it matches nothing, a ``SELECT`` tells a
                    conflict from a missing record
``touch``           ``UPDATE ... SET expires_at = ? WHERE key = ? AND expires_at > now``
``delete``          ``DELETE ... WHERE key = ? AND expires_at > now``
``list_by_user``    ``SELECT ... WHERE user_id = ? AND expires_at > now``
``delete_by_user``  ``DELETE ... WHERE user_id = ? AND expires_at > now``
``purge_expired``   batches of ``DELETE`` through the expiry index: PostgreSQL and SQLite
                    ``WHERE key IN (SELECT key ... WHERE expires_at <= now LIMIT n)``,
                    MySQL/MariaDB ``DELETE ... WHERE expires_at <= now LIMIT n``
==================  ===========================================================================

Expired rows left by ``delete`` and ``delete_by_user`` are behaving as absent
already; ``purge_expired()`` removes them physically. Timestamps are integer
microseconds since the Unix epoch (UTC): exact, and compared the same way by
every dialect. Liveness is judged by the ``now`` each call passes (the
manager's clock, the same clock that computed the deadlines), or by
``clock=`` when a call passes none; never by the database server's clock.

Every wait is bounded by default (docs/backends/sql.md, "Timeouts and pool"):
5 s to connect, 5 s per statement, 5 s for a pool connection, each call
within their sum; a connection that timed out is aborted, never reused.

The table is never created behind your back: call :meth:`SQLAlchemyBackend.create_table`,
run ``python -m fastapi_sessions.backends.sqlalchemy create-table URL``, apply
the DDL from ``docs/backends/sql.md``, or pass ``create_table=True`` to
create it (if missing) before the first operation.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import sqlite3
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from sqlalchemy import (
    BigInteger,
    Column,
    Delete,
    Index,
    Insert,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import CreateIndex, CreateTable

from ..core.clock import Clock, utc_now
from ..core.contract import BaseSessionBackend
from ..core.errors import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    SessionConflict,
    SessionExists,
    SessionNotFound,
)
from ..core.records import SessionRecord
from ..core.registry import BackendNotInstalled, mask_url

__all__ = ["DEFAULT_POOL", "DEFAULT_TABLE_NAME", "DEFAULT_TIMEOUTS", "SQLAlchemyBackend", "ddl", "from_url", "main",
           "session_table"]

DEFAULT_TABLE_NAME = "fastapi_sessions"
#: Longest user id MySQL/MariaDB store (bytes of UTF-8); PostgreSQL's index takes about 2,700 bytes.
MAX_USER_ID_BYTES = 2048

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MYSQL = ("mysql", "mariadb")

# Async driver chosen for a URL that names none (``postgresql://`` and friends), and the extra bringing it.
_DEFAULT_DRIVERS = {"postgresql": "asyncpg", "postgres": "asyncpg", "sqlite": "aiosqlite",
                    "mysql": "asyncmy", "mariadb": "asyncmy"}
_EXTRAS = {"postgresql": "postgres", "postgres": "postgres", "sqlite": "sqlite", "mysql": "mysql", "mariadb": "mysql"}

# SQLAlchemy >= 2.0.43 can skip the DBAPI rollback that ends every autocommit checkout (a round
# trip on MySQL, a thread hop on aiosqlite); older versions simply do the rollback.
_SKIP_ROLLBACK = "skip_autocommit_rollback" in inspect.signature(DefaultDialect.__init__).parameters

# MySQL client errors meaning the server is not reachable, and server errors meaning "not now".
_MYSQL_UNAVAILABLE = {1040, 1053, 1205, 2002, 2003, 2005, 2006, 2013, 2055}
# PostgreSQL SQLSTATEs of the same kind: connection exceptions (class 08) come by prefix.
_PG_UNAVAILABLE = {"57P01", "57P02", "57P03", "53300", "57014", "55P03"}
_SQLITE_UNAVAILABLE = ("unable to open", "locked", "busy", "disk i/o")


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICROSECOND


def _datetime(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


class _Utf8Bytes(TypeDecorator[str]):
    """A string stored as UTF-8 bytes (``VARBINARY``): MySQL compares it exactly.

    MySQL's text collations ignore trailing spaces (and the default ones, case),
    so ``"alice "`` would find ``"alice"``'s sessions; bytes compare as bytes.
    """

    impl = mysql.VARBINARY
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> bytes | None:
        return None if value is None else value.encode()

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else bytes(value).decode()


def session_table(name: str = DEFAULT_TABLE_NAME, metadata: MetaData | None = None, *,
                  schema: str | None = None) -> Table:
    """The sessions table: ``key`` primary key, ``user_id`` and ``expires_at`` indexed.

    Pass your own ``metadata`` to have Alembic (or ``metadata.create_all``) manage it.
    """
    table = Table(
        name,
        metadata if metadata is not None else MetaData(),
        # Storage keys are 64 hex characters; ascii_bin keeps MySQL's index small and exact.
        Column("key", String(128).with_variant(mysql.VARCHAR(128, charset="ascii", collation="ascii_bin"), *_MYSQL),
               primary_key=True),
        # MySQL's plain BLOB stops at 64 KiB; sessions may hold more.
        Column("payload", LargeBinary().with_variant(mysql.LONGBLOB(), *_MYSQL), nullable=False),
        Column("user_id", Text().with_variant(_Utf8Bytes(MAX_USER_ID_BYTES), *_MYSQL), nullable=True),
        # Microseconds since the Unix epoch, UTC: exact and ordered the same on every dialect.
        Column("created_at", BigInteger(), nullable=False),
        Column("expires_at", BigInteger(), nullable=False),
        Column("version", Integer(), nullable=False),
        schema=schema,
        mysql_engine="InnoDB",
    )
    # MySQL indexes at most 3072 bytes: a prefix is enough to find a user's few rows.
    Index(f"ix_{name}_user_id", table.c.user_id, mysql_length=255)
    Index(f"ix_{name}_expires_at", table.c.expires_at)
    return table


def ddl(dialect: Dialect, table: Table | None = None) -> list[str]:
    """The ``CREATE TABLE`` and ``CREATE INDEX`` statements for ``dialect``, as text."""
    table = table if table is not None else session_table()
    elements: list[Any] = [CreateTable(table)]
    elements += [CreateIndex(index) for index in sorted(table.indexes, key=lambda i: str(i.name))]
    # Compiled by SQLAlchemy itself; only the layout is tidied (no tabs, no trailing blanks).
    texts = (str(element.compile(dialect=dialect)).strip() for element in elements)
    return ["\n".join(line.rstrip().replace("\t", "    ") for line in text.splitlines()) for text in texts]


def _async_url(url: str | URL) -> URL:
    """``postgresql://`` means asyncpg, ``sqlite://`` aiosqlite, ``mysql://``/``mariadb://`` asyncmy."""
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError:
        # from None: the parser's message may quote the URL, password included.
        raise ConfigurationError(f"cannot parse database URL {mask_url(str(url))!r}") from None
    backend = parsed.get_backend_name()
    if backend == "postgres":
        parsed = parsed.set(drivername="postgresql" + (f"+{parsed.get_driver_name()}" if "+" in parsed.drivername
                                                       else ""))
        backend = "postgresql"
    if backend not in _DEFAULT_DRIVERS:
        raise ConfigurationError(f"not a PostgreSQL, SQLite, MySQL or MariaDB URL: {parsed.drivername}://")
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=f"{backend}+{_DEFAULT_DRIVERS[backend]}")
    return parsed


def _is_sqlite_memory(url: URL) -> bool:
    database = url.database or ""
    return url.get_backend_name() == "sqlite" and (database in ("", ":memory:") or "mode=memory" in database
                                                   or url.query.get("mode") == "memory")


#: Bounds every wait on a server (seconds; see docs/backends/sql.md, "Timeouts and pool").
DEFAULT_TIMEOUTS: dict[str, float] = {"connect_timeout": 5.0, "command_timeout": 5.0, "pool_timeout": 5.0}
#: Connections per process: no overflow, so a busy pool never opens and closes a connection per request.
DEFAULT_POOL: dict[str, int] = {"pool_size": 20, "max_overflow": 0}
# The driver's keyword for each bound, by driver (aiosqlite is local: SQLite's own busy timeout applies).
_DRIVER_TIMEOUTS = {"asyncpg": {"connect_timeout": "timeout", "command_timeout": "command_timeout"},
                    "asyncmy": {"connect_timeout": "connect_timeout", "command_timeout": "read_timeout"}}


def _option(name: str, value: Any, *, integer: bool = False, minimum: int = 0) -> Any:
    """A timeout or pool size from a keyword or a URL query string, checked: ``ConfigurationError`` if bad."""
    if isinstance(value, str):
        try:
            value = int(value) if integer else float(value)
        except ValueError:
            raise ConfigurationError(f"{name} must be {'an integer' if integer else 'a number of seconds'}, "
                                     f"not {value!r}") from None
    if integer:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigurationError(f"{name} must be an integer of at least {minimum}, not {value!r}")
    elif isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ConfigurationError(f"{name} must be a positive number of seconds, not {value!r}")
    return value


def _bounds(parsed: URL, given: dict[str, Any], options: dict[str, Any]) -> URL:
    """Our timeout and pool options, from keywords first, then the URL's query (removed from it), then defaults.

    Timeouts go to the driver's connect arguments, ``pool_*`` and ``max_overflow`` to the engine.
    """
    query = dict(parsed.query)
    pool_options = ("pool_size", "max_overflow")
    for name in (*DEFAULT_TIMEOUTS, *pool_options):
        raw = query.pop(name, None)
        if given.get(name, False) is not False:
            continue  # a keyword wins over the URL
        if raw is not None:
            given[name] = raw if isinstance(raw, str) else raw[-1]
    parsed = parsed.set(query=query)
    if not _is_sqlite_memory(parsed) and parsed.get_backend_name() != "sqlite":
        for name, default in DEFAULT_POOL.items():
            value = given.get(name, False)
            options.setdefault(name, _option(name, default if value is False else value, integer=True,
                                             minimum=1 if name == "pool_size" else 0))
        value = given.get("pool_timeout", False)
        if value is not None:
            options.setdefault("pool_timeout", _option("pool_timeout", DEFAULT_TIMEOUTS["pool_timeout"]
                                                       if value is False else value))
    keys = _DRIVER_TIMEOUTS.get(parsed.get_driver_name(), {})
    deadline: float | None = float(options.get("pool_timeout", 0))
    for name in ("connect_timeout", "command_timeout"):
        value = given.get(name, False)
        value = DEFAULT_TIMEOUTS[name] if value is False else value
        if value is None:
            deadline = None  # None: the driver's own behaviour (for a command: no bound at all)
            continue
        value = _option(name, value)
        if deadline is not None:
            deadline += value
        if name in keys:
            options.setdefault("connect_args", {}).setdefault(keys[name], value)
    # One bound over the whole call as well: asyncpg before 0.31 makes a timed-out statement wait for
    # its cancel request, which a silent server never answers.
    given["deadline"] = deadline if keys else None
    return parsed


def _create_engine(url: str | URL, *, bounds: dict[str, Any], **options: Any) -> AsyncEngine:
    parsed = _async_url(url)
    options.setdefault("isolation_level", "AUTOCOMMIT")  # one statement per operation: no BEGIN/COMMIT trips
    if _SKIP_ROLLBACK:
        options.setdefault("skip_autocommit_rollback", True)
    if _is_sqlite_memory(parsed):
        # An in-memory database lives in its connection: share exactly one.
        options.setdefault("poolclass", StaticPool)
        options.setdefault("connect_args", {"check_same_thread": False})
    parsed = _bounds(parsed, bounds, options)
    backend = parsed.get_backend_name()
    default = f"{backend}+{_DEFAULT_DRIVERS[backend]}://"
    extra = f'pip install "fastapi-sessions[{_EXTRAS.get(backend, backend)}]"'
    try:
        # The dialect class says whether the driver is async without importing the driver itself.
        dialect = parsed.get_dialect(_is_async=True)
    except sa_exc.NoSuchModuleError:
        raise ConfigurationError(f"SQLAlchemy knows no driver {parsed.drivername}://; use {default}") from None
    if not dialect.is_async:
        # Installing anything would not help: the backend runs on SQLAlchemy's asyncio engine.
        raise ConfigurationError(
            f"{parsed.drivername}:// is a synchronous driver, which the SQL session backend cannot use; "
            f"use the async driver {default} (or {backend}://, which picks it)"
        )
    try:
        return create_async_engine(parsed, **options)
    except ImportError as exc:
        if parsed.get_driver_name() == _DEFAULT_DRIVERS[backend]:
            raise BackendNotInstalled(
                f"the {backend}:// session backend needs its driver ({exc.name or exc}); install it with: {extra}"
            ) from exc
        raise BackendNotInstalled(
            f"the {parsed.drivername}:// driver needs {exc.name or exc}, which no fastapi-sessions extra installs: "
            f"install it, or use {default} ({extra})"
        ) from exc
    except (sa_exc.ArgumentError, sa_exc.InvalidRequestError, TypeError) as exc:
        raise ConfigurationError(f"cannot build an async engine for {mask_url(str(url))}: {exc}") from exc


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
            raise ConfigurationError("purge_batch_size must be at least 1")
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
            self.engine = self._engine = _create_engine(engine, bounds=bounds, **engine_options)
            self._owns_engine = True
        self._deadline: float | None = bounds.get("deadline")
        self.table = session_table(table_name, schema=schema)
        self.purge_batch_size = purge_batch_size
        self._clock = clock
        self._create_on_start = create_table
        self._table_ready = not create_table
        self._table_lock = asyncio.Lock()
        self._closed = False
        self._failures = (*_BOUNDARY_ERRORS, *_driver_errors(self.engine.dialect))
        self._build_statements(self.engine.dialect.name)

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return f"{type(self).__name__}({url!r}, table_name={self.table.name!r})"

    # -- statements, built once so SQLAlchemy's compiled cache serves every call ---------------

    def _build_statements(self, dialect: str) -> None:
        t = self.table
        c = t.c
        now = bindparam("now", type_=BigInteger())
        live = c.expires_at > now
        self._columns = (c.key, c.payload, c.user_id, c.created_at, c.expires_at, c.version)
        self._read = select(*self._columns).where(c.key == bindparam("k"), live)
        self._version = select(c.version).where(c.key == bindparam("k"), live)
        self._update = (
            update(t)
            .where(c.key == bindparam("k"), c.version == bindparam("expected"), live)
            .values(payload=bindparam("payload"), user_id=bindparam("user_id"),
                    expires_at=bindparam("expires_at"), version=c.version + 1)
        )
        self._touch = update(t).where(c.key == bindparam("k"), live).values(expires_at=bindparam("expires_at"))
        self._delete = delete(t).where(c.key == bindparam("k"), live)
        self._list = select(*self._columns).where(c.user_id == bindparam("user_id"), live)
        self._delete_user = delete(t).where(c.user_id == bindparam("user_id"), live)
        values = {"key": bindparam("k"), "payload": bindparam("payload"), "user_id": bindparam("user_id"),
                  "created_at": bindparam("created_at"), "expires_at": bindparam("expires_at"), "version": 1}
        expired = c.expires_at <= now
        # Taking over an expired row, for the dialect without a conditional upsert (MySQL, below).
        self._takeover = update(t).where(c.key == bindparam("k"), expired).values(
            {k: v for k, v in values.items() if k != "key"})
        self._insert: Insert
        self._insert_is_upsert = dialect in ("postgresql", "sqlite")
        if dialect == "postgresql":
            pg = postgresql.insert(t).values(values)
            self._insert = pg.on_conflict_do_update(
                index_elements=[c.key], where=expired,
                set_={k: getattr(pg.excluded, k) for k in values if k != "key"})
        elif dialect == "sqlite":
            lite = sqlite.insert(t).values(values)
            self._insert = lite.on_conflict_do_update(
                index_elements=[c.key], where=expired,
                set_={k: getattr(lite.excluded, k) for k in values if k != "key"})
        else:
            # MySQL's ON DUPLICATE KEY UPDATE reports 1 both for an insert and for a live row left
            # alone (SQLAlchemy always sets CLIENT.FOUND_ROWS), so it cannot say "exists": insert plainly.
            self._insert = insert(t).values(values)
        batch = self.purge_batch_size
        self._purge: Delete
        if dialect in _MYSQL:
            # MySQL rejects LIMIT inside an IN subquery; DELETE ... LIMIT walks the expiry index instead.
            self._purge = delete(t).where(expired).with_dialect_options(mysql_limit=batch, mariadb_limit=batch)
        else:
            victims = select(c.key).where(expired).limit(batch)
            if dialect == "postgresql":
                victims = victims.with_for_update(skip_locked=True)  # concurrent purgers take disjoint rows
            self._purge = delete(t).where(c.key.in_(victims.scalar_subquery()))

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
        reason = _reason(exc, self.engine.url)
        if _unavailable(exc):
            return BackendUnavailable(f"{where} unavailable during {what}: {reason}", backend=dialect, operation=what)
        message = f"{where} failed during {what}: {reason}"
        suggestion = None
        if _missing_table(exc):
            suggestion = (f"is the table {self.table.name!r} created? run `python -m "
                          "fastapi_sessions.backends.sqlalchemy create-table URL` or pass create_table=True")
            message += f" ({suggestion})"
        return BackendError(message, backend=dialect, operation=what, suggestion=suggestion)

    async def _ensure_table(self) -> None:
        async with self._table_lock:
            if not self._table_ready:
                await self.create_table()

    async def _run(self, what: str, statement: Any, params: dict[str, Any]) -> Any:
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
                                if _unavailable(exc) and not conn.invalidated:
                                    await _discard(conn)
                                raise
                    except self._failures as exc:
                        # A deadlock victim's one statement was rolled back whole, so running it again
                        # is safe (InnoDB deadlocks a delete by user against an update of one of its rows).
                        if attempt == _DEADLOCK_RETRIES or not _deadlock(exc):
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
        if self._insert_is_upsert:
            # Inserts, or takes over an expired row; matches nothing only when a live row holds the key.
            if (await self._run("create", self._insert, params)).rowcount == 0:
                raise SessionExists(key=record.key, operation="create")
            return
        for _ in range(3):
            try:
                await self._run("create", self._insert, params)
                return
            except BackendError as exc:
                if not _duplicate_key(exc.__cause__):
                    raise
            # The key is taken: claim it only if its row has expired (never select-then-insert).
            if (await self._run("create", self._takeover, params)).rowcount == 1:
                return
            # Live, or purged between the two statements: insert again only in the second case.
            if (await self._run("create", self._version, params)).first() is not None:
                break
        raise SessionExists(key=record.key, operation="create")

    async def read(self, key: str, *, now: datetime | None = None) -> SessionRecord | None:
        row = (await self._run("read", self._read, {"k": key, "now": self._now(now)})).first()
        return None if row is None else self._record(row)

    async def update(self, record: SessionRecord, expected_version: int, *, now: datetime | None = None) -> int:
        params = {"k": record.key, "expected": expected_version, "payload": record.payload,
                  "user_id": record.user_id, "expires_at": _micros(record.expires_at), "now": self._now(now)}
        if (await self._run("update", self._update, params)).rowcount == 1:
            return expected_version + 1
        # Matched nothing: only now is it worth asking why.
        if (await self._run("update", self._version, params)).first() is None:
            raise SessionNotFound(key=record.key, operation="update")
        raise SessionConflict(key=record.key, operation="update")

    async def touch(self, key: str, expires_at: datetime, *, now: datetime | None = None) -> bool:
        params = {"k": key, "expires_at": _micros(expires_at), "now": self._now(now)}
        return bool((await self._run("touch", self._touch, params)).rowcount == 1)

    async def delete(self, key: str, *, now: datetime | None = None) -> bool:
        return bool((await self._run("delete", self._delete, {"k": key, "now": self._now(now)})).rowcount == 1)

    async def list_by_user(self, user_id: str, *, now: datetime | None = None) -> list[SessionRecord]:
        result = await self._run("list_by_user", self._list, {"user_id": user_id, "now": self._now(now)})
        return [self._record(row) for row in result]

    async def delete_by_user(self, user_id: str, *, now: datetime | None = None) -> int:
        result = await self._run("delete_by_user", self._delete_user, {"user_id": user_id, "now": self._now(now)})
        return int(result.rowcount)

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        """Delete expired rows in batches of ``purge_batch_size``, each its own short transaction."""
        params = {"now": self._now(now)}  # one cut-off for every batch: no chasing the clock
        removed = 0
        while True:
            deleted = int((await self._run("purge_expired", self._purge, params)).rowcount)
            removed += deleted
            if deleted < self.purge_batch_size:
                return removed

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_engine:
            await self.engine.dispose()

    async def __aenter__(self) -> Self:
        if not self._table_ready:
            await self._ensure_table()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


#: What a statement or a checkout may raise: SQLAlchemy's errors, and the socket's.
_BOUNDARY_ERRORS: tuple[type[Exception], ...] = (sa_exc.SQLAlchemyError, OSError, TimeoutError, sqlite3.Error)


def _driver_errors(dialect: Dialect) -> tuple[type[Exception], ...]:
    """The driver's own base exceptions, for what SQLAlchemy does not wrap.

    SQLAlchemy before 2.1 lets some of asyncpg's connect-time errors (an unknown
    database or role) through as asyncpg's own classes; they are still the store's
    answer and must not escape the backend.
    """
    driver = dialect.driver
    if driver == "asyncpg":
        import asyncpg  # type: ignore[import-untyped]

        return (asyncpg.PostgresError, asyncpg.InterfaceError)
    if driver == "asyncmy":
        from asyncmy import errors

        return (errors.Error,)
    return ()


async def _discard(conn: AsyncConnection) -> None:
    """Drop a connection that timed out or broke, at once: it goes back to no pool.

    After a timeout asyncpg keeps the connection and sends a cancel request over a
    new one, and SQLAlchemy's invalidation first tries a graceful close (up to 2 s);
    on a silent server both wait. Aborting the socket first makes both immediate.
    """
    driver = conn.sync_connection.connection.driver_connection if conn.sync_connection else None
    terminate = getattr(driver, "terminate", None)  # asyncpg: abort the socket, no goodbye
    if callable(terminate):
        terminate()
    await conn.invalidate()


def _orig(exc: BaseException) -> BaseException:
    return exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc


def _sqlstate(orig: BaseException) -> str | None:
    """PostgreSQL's SQLSTATE of a driver error (asyncpg's own exception is the adapter error's cause)."""
    for candidate in (orig, orig.__cause__):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def _mysql_error(orig: BaseException) -> tuple[int, str] | None:
    """MySQL's error code and message: asyncmy (like PyMySQL) raises with ``args == (code, message)``."""
    if isinstance(orig, OSError):
        return None  # (errno, strerror), not a server's answer
    args: tuple[Any, ...] = getattr(orig, "args", ())
    if len(args) >= 1 and isinstance(args[0], int) and not isinstance(args[0], bool):
        return args[0], str(args[1]) if len(args) > 1 else ""
    return None


def _scrub(text: str, url: URL, limit: int = 200) -> str:
    """A server's message, short, with the URL's password masked should a server ever echo it."""
    if url.password:
        text = text.replace(str(url.password), "***")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _reason(exc: BaseException, url: URL) -> str:
    """What went wrong, for a message: the cause and, where it is a setting, the fix; never the password."""
    orig = _orig(exc)
    # MySQL first: its drivers carry a SQLSTATE as well, but the error code is what its docs index.
    mysql_error = _mysql_error(orig)
    if mysql_error is not None:
        code, text = mysql_error
        label = "MariaDB" if url.get_backend_name() == "mariadb" else "MySQL"
        reason = f"{label} error {code}: {_scrub(text, url)}"
        if code == 1049:
            return f"{reason}; create the database or correct its name in the URL"
        if code in (1044, 1045, 1698):
            return f"{reason}; check the user name and password in the URL and the user's grants"
        return reason
    state = _sqlstate(orig)
    if state is not None:
        # asyncpg's own exception (InvalidCatalogNameError, ...) names the cause better than the adapter's.
        pg = orig.__cause__ if getattr(orig.__cause__, "sqlstate", None) else orig
        name = f"{type(pg).__name__}, SQLSTATE {state}"
        if state == "3D000":
            return (f"database {url.database!r} does not exist ({name}); create it or correct the database "
                    "name in the URL")
        if state.startswith("28"):  # 28000 no such role or no pg_hba.conf entry, 28P01 wrong password
            user = f"user {url.username!r}" if url.username else "the connecting user"
            return (f"authentication failed for {user}: {_scrub(str(pg), url)} ({name}); check the user name "
                    "and password in the URL")
        if state == "3F000":
            return f"{_scrub(str(pg), url)} ({name}); create the schema or correct schema="
        return name
    if isinstance(orig, sqlite3.Error):
        reason = f"{type(orig).__name__}: {_scrub(str(orig), url)}"
        path = url.database or ""
        if "unable to open" in str(orig) and path and not path.startswith("file:") and path != ":memory:":
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                return (f"{reason}: the directory {directory} does not exist; create it or correct the path in "
                        "the URL")
        return reason
    return type(orig).__name__


_DEADLOCK_RETRIES = 3


def _deadlock(exc: BaseException) -> bool:
    """Whether the server chose this statement as a deadlock's victim (MySQL 1213, PostgreSQL 40P01)."""
    orig = _orig(exc)
    mysql_error = _mysql_error(orig)
    return (mysql_error is not None and mysql_error[0] == 1213) or _sqlstate(orig) == "40P01"


def _unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means "cannot reach the store right now" rather than "the store said no"."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True  # SQLAlchemy recognised a disconnect and dropped the pool's connections
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True  # pool checkout timed out
    orig = _orig(exc)
    for cause in (orig, orig.__cause__, getattr(orig, "__context__", None)):
        if isinstance(cause, OSError | TimeoutError | ConnectionError):
            return True
    sqlstate = _sqlstate(orig)
    if sqlstate is not None and (sqlstate.startswith("08") or sqlstate in _PG_UNAVAILABLE):
        return True
    mysql_error = _mysql_error(orig)
    if mysql_error is not None and mysql_error[0] in _MYSQL_UNAVAILABLE:
        return True
    if isinstance(orig, sqlite3.OperationalError):
        return any(marker in str(orig).lower() for marker in _SQLITE_UNAVAILABLE)
    message = str(orig).lower()
    return "connection is closed" in message or "not connected" in message


def _duplicate_key(exc: BaseException | None) -> bool:
    """MySQL's ER_DUP_ENTRY (1062): the primary key is taken."""
    if not isinstance(exc, sa_exc.IntegrityError):
        return False
    args: tuple[Any, ...] = getattr(exc.orig, "args", ())
    return len(args) > 0 and args[0] == 1062


def _missing_table(exc: BaseException) -> bool:
    """Only a missing table: a missing database, role or schema "does not exist" too, and create-table won't help."""
    orig = _orig(exc)
    mysql_error = _mysql_error(orig)
    if mysql_error is not None:
        return mysql_error[0] == 1146  # ER_NO_SUCH_TABLE
    state = _sqlstate(orig)
    if state is not None:
        return state == "42P01"  # undefined_table
    return isinstance(orig, sqlite3.Error) and "no such table" in str(orig).lower()


def from_url(url: str, *, clock: Clock = utc_now, **options: Any) -> SQLAlchemyBackend:
    """Entry-point factory for ``postgresql``, ``sqlite``, ``mysql`` and ``mariadb`` URLs.

    Keyword options go to :class:`SQLAlchemyBackend` (``table_name``,
    ``create_table``, ``clock``, ...) and from there to ``create_async_engine``.
    """
    return SQLAlchemyBackend(url, clock=clock, **options)


# -- command line ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fastapi_sessions.backends.sqlalchemy create-table|drop-table|ddl URL [--table NAME]``."""
    parser = argparse.ArgumentParser(
        prog="python -m fastapi_sessions.backends.sqlalchemy",
        description="Manage the fastapi-sessions SQL table.",
    )
    parser.add_argument("command", choices=["create-table", "drop-table", "ddl"],
                        help="create the table and indexes if missing, drop them, or print the DDL")
    parser.add_argument("url", help="database URL, e.g. postgresql://user@host/db or sqlite:///sessions.db")
    parser.add_argument("--table", default=DEFAULT_TABLE_NAME, help=f"table name (default {DEFAULT_TABLE_NAME})")
    parser.add_argument("--schema", default=None, help="schema (PostgreSQL) or database (MySQL) of the table")
    args = parser.parse_args(argv)

    async def run() -> None:
        async with SQLAlchemyBackend(args.url, table_name=args.table, schema=args.schema) as backend:
            if args.command == "ddl":
                print(";\n\n".join(backend.ddl()) + ";")
            elif args.command == "create-table":
                await backend.create_table()
                print(f"table {backend.table.fullname!r} ready on {mask_url(args.url)}")
            else:
                await backend.drop_table()
                print(f"table {backend.table.fullname!r} dropped on {mask_url(args.url)}")

    try:
        asyncio.run(run())
    except (ConfigurationError, BackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
