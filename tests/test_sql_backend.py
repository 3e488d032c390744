"""The SQL backend beyond the kit: statement counts, outage and recovery, bulk purge, URLs, table management.

Every database here is real: PostgreSQL and MariaDB from the environment, SQLite
files and in-memory databases. The outage test puts a TCP proxy it controls in
front of the real PostgreSQL and cuts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import delete, event, func, insert, inspect, select
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.asyncio import create_async_engine

from conftest import SECRET, free_port
from fastapi_sessions import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    ManualClock,
    SessionConflict,
    SessionExists,
    SessionManager,
    SessionMiddleware,
    SessionNotFound,
    SessionRecord,
    utc_now,
)
from fastapi_sessions._core.tokens import new_token, storage_key
from fastapi_sessions.backends import from_url as registry_from_url
from fastapi_sessions.backends.sqlalchemy import (
    SQLAlchemyBackend,
    ddl,
    main,
    session_table,
)
from fastapi_sessions.backends.sqlalchemy._table import _micros
from fastapi_sessions.frontends import SessionFrontend
from faultproxy import FaultProxy

TABLE = f"fs_test_{uuid.uuid4().hex[:10]}"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "backends" / "sql.md"
DIALECTS = ["postgres", "mysql", "sqlite-file", "sqlite-memory"]


async def _drop(url: str) -> None:
    async with SQLAlchemyBackend(url, table_name=TABLE) as backend:
        await backend.drop_table()


@pytest.fixture(scope="module")
def pg(postgres_url: str) -> Iterator[str]:
    yield postgres_url
    asyncio.run(_drop(postgres_url))


@pytest.fixture(scope="module")
def my(mysql_url: str) -> Iterator[str]:
    yield mysql_url
    asyncio.run(_drop(mysql_url))


@pytest.fixture(params=DIALECTS)
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for each dialect the backend supports."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg"))
    if request.param == "mysql":
        return str(request.getfixturevalue("my"))
    if request.param == "sqlite-file":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    return "sqlite://"


@contextlib.asynccontextmanager
async def opened(url: str, **options: Any) -> AsyncIterator[SQLAlchemyBackend]:
    """A backend on this module's table, created if needed and emptied."""
    async with SQLAlchemyBackend(url, table_name=TABLE, create_table=True, **options) as backend:
        async with backend.engine.connect() as conn:
            await conn.execute(delete(backend.table))
            await conn.commit()
        yield backend


class StatementLog:
    """Every statement SQLAlchemy sends to the driver, with the rows it touched (``before/after_cursor_execute``)."""

    def __init__(self, backend: SQLAlchemyBackend) -> None:
        self.statements: list[str] = []
        self.rowcounts: list[int] = []
        self._engine = backend.engine.sync_engine
        event.listen(self._engine, "before_cursor_execute", self._before)
        event.listen(self._engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement.split(None, 1)[0].upper())

    def _after(self, conn: Any, cursor: Any, *args: Any) -> None:
        self.rowcounts.append(cursor.rowcount)

    def take(self) -> list[str]:
        taken, self.statements = self.statements, []
        self.rowcounts = []
        return taken

    def close(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._before)
        event.remove(self._engine, "after_cursor_execute", self._after)


def record(clock: ManualClock | None = None, *, user_id: str | None = None, ttl: float = 3600,
           key: str | None = None) -> SessionRecord:
    now = (clock or utc_now)()
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    return SessionRecord(key or storage_key(new_token()), b'{"n":1}', user_id, now, now + timedelta(seconds=ttl), 1)


def session_app(manager: SessionManager) -> FastAPI:
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=manager)

    @app.post("/login")
    async def login(request: Request) -> JSONResponse:
        request.session["n"] = 0
        return JSONResponse({"n": 0})

    @app.get("/read")
    async def read(request: Request) -> JSONResponse:
        return JSONResponse({"n": request.session.get("n")})

    @app.post("/inc")
    async def inc(request: Request) -> JSONResponse:
        request.session["n"] += 1
        return JSONResponse({"n": request.session["n"]})

    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver")


# -- statement counts -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_statement_counts_through_the_middleware(sql_url: str) -> None:
    clock = ManualClock(utc_now())
    async with opened(sql_url, clock=clock) as backend:
        manager = SessionManager(backend, SessionFrontend(SECRET), clock=clock, idle_timeout=timedelta(minutes=30))
        log = StatementLog(backend)
        try:
            async with client(session_app(manager)) as http:
                assert (await http.post("/login")).status_code == 200
                assert log.take() == ["INSERT"]

                response = await http.get("/read")
                assert response.json() == {"n": 0} and "set-cookie" not in response.headers
                assert log.take() == ["SELECT"]  # a read-only request: one statement, no write

                response = await http.post("/inc")
                assert response.json() == {"n": 1}
                assert log.take() == ["SELECT", "UPDATE"]  # a modifying request: the read plus one UPDATE

                # Once per refresh interval a read-only request also extends the idle deadline.
                clock.advance(minutes=2)
                assert (await http.get("/read")).json() == {"n": 1}
                assert log.take() == ["SELECT", "UPDATE"]
                assert (await http.get("/read")).json() == {"n": 1}
                assert log.take() == ["SELECT"]
        finally:
            log.close()


@pytest.mark.asyncio
async def test_every_operation_is_one_statement(sql_url: str) -> None:
    clock = ManualClock(utc_now())
    async with opened(sql_url, clock=clock) as backend:
        log = StatementLog(backend)
        try:
            user = f"user-{uuid.uuid4().hex}"
            rec = record(clock, user_id=user)
            await backend.create(rec)
            assert log.take() == ["INSERT"]
            assert await backend.read(rec.key) == rec
            assert log.take() == ["SELECT"]
            changed = SessionRecord(rec.key, b"{}", user, rec.created_at, rec.expires_at, 1)
            assert await backend.update(changed, 1) == 2
            assert log.take() == ["UPDATE"]
            assert await backend.touch(rec.key, rec.expires_at + timedelta(minutes=1)) is True
            assert log.take() == ["UPDATE"]
            assert [r.key for r in await backend.list_by_user(user)] == [rec.key]
            assert log.take() == ["SELECT"]
            assert await backend.delete(rec.key) is True
            assert log.take() == ["DELETE"]
            await backend.create(record(clock, user_id=user))
            log.take()
            assert await backend.delete_by_user(user) == 1
            assert log.take() == ["DELETE"]

            # The failure paths: a lost compare-and-set asks once more, to tell conflict from gone.
            rec = record(clock)
            await backend.create(rec)
            log.take()
            with pytest.raises(SessionConflict):
                await backend.update(rec, 7)
            assert log.take() == ["UPDATE", "SELECT"]
            with pytest.raises(SessionNotFound):
                await backend.update(record(clock), 1)
            assert log.take() == ["UPDATE", "SELECT"]
        finally:
            log.close()


@pytest.mark.asyncio
async def test_create_over_a_live_or_expired_key(sql_url: str) -> None:
    """PostgreSQL and SQLite: one upsert either way. MySQL: INSERT, then a takeover UPDATE only on a duplicate."""
    clock = ManualClock(utc_now())
    async with opened(sql_url, clock=clock) as backend:
        log = StatementLog(backend)
        try:
            mysql_family = backend.engine.dialect.name in ("mysql", "mariadb")
            old = record(clock, ttl=1)
            await backend.create(old)
            log.take()
            with pytest.raises(SessionExists):
                await backend.create(record(clock, key=old.key))
            assert log.take() == (["INSERT", "UPDATE", "SELECT"] if mysql_family else ["INSERT"])
            clock.advance(seconds=2)
            fresh = record(clock, key=old.key)
            await backend.create(fresh)
            assert log.take() == (["INSERT", "UPDATE"] if mysql_family else ["INSERT"])
            assert await backend.read(old.key) == fresh
        finally:
            log.close()


@pytest.mark.asyncio
async def test_concurrent_creates_of_one_key_have_exactly_one_winner(sql_url: str) -> None:
    async with opened(sql_url) as backend:
        key = storage_key(new_token())
        attempts = [SessionRecord(key, f'{{"i":{i}}}'.encode(), None, utc_now(),
                                  utc_now() + timedelta(hours=1), 1) for i in range(20)]
        results = await asyncio.gather(*(backend.create(a) for a in attempts), return_exceptions=True)
        assert sum(r is None for r in results) == 1, results
        assert sum(isinstance(r, SessionExists) for r in results) == 19, results
        stored = await backend.read(key)
        assert stored is not None and stored.payload == attempts[results.index(None)].payload


@pytest.mark.asyncio
async def test_user_ids_compare_exactly(sql_url: str) -> None:
    """MySQL's text collations ignore case and trailing spaces; user ids are stored as bytes there."""
    async with opened(sql_url) as backend:
        base = f"alice-{uuid.uuid4().hex}"
        ids = [base, base + " ", base.upper(), base + "\t", "ß" + base, "ss" + base]
        for user in ids:
            await backend.create(record(user_id=user))
        for user in ids:
            listed = await backend.list_by_user(user)
            assert [r.user_id for r in listed] == [user]
        assert await backend.delete_by_user(base) == 1
        assert await backend.list_by_user(base + " ") != []


# -- purge ------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("dialect", ["postgres", "mysql", "sqlite-file"])
async def test_purge_of_100000_expired_rows_among_live_ones(
    dialect: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = {"postgres": lambda: request.getfixturevalue("pg"), "mysql": lambda: request.getfixturevalue("my"),
           "sqlite-file": lambda: f"sqlite:///{tmp_path / 'purge.db'}"}[dialect]()
    clock = ManualClock(utc_now())
    now = _micros(clock())
    async with opened(url, clock=clock, purge_batch_size=1000) as backend:
        table = backend.table
        expired = [{"key": f"e{i:063d}", "payload": b"x", "user_id": f"u{i % 500}", "created_at": now - 10**9,
                    "expires_at": now - 1 - i, "version": 1} for i in range(100_000)]
        live = [{"key": f"l{i:063d}", "payload": b"y", "user_id": f"u{i % 500}", "created_at": now,
                 "expires_at": now + 1 + i, "version": 1} for i in range(5_000)]
        # Bulk, with Core, in one transaction (the backend's own engine autocommits every row).
        bulk = create_async_engine(backend.engine.url)
        try:
            async with bulk.begin() as conn:
                for rows in (expired, live):
                    for start in range(0, len(rows), 10_000):
                        await conn.execute(insert(table), rows[start:start + 10_000])
        finally:
            await bulk.dispose()

        log = StatementLog(backend)
        try:
            assert await backend.purge_expired() == 100_000
            statements, rowcounts = log.statements, log.rowcounts
        finally:
            log.close()
        # Bounded batches: 100 full DELETEs of 1,000 rows and one that finds nothing left.
        assert statements == ["DELETE"] * 101
        assert max(rowcounts) == 1000
        async with backend.engine.connect() as conn:
            keys = set((await conn.execute(select(table.c.key))).scalars())
        assert keys == {row["key"] for row in live}
        assert await backend.purge_expired() == 0


@pytest.mark.asyncio
async def test_purge_batches_and_keeps_what_expires_later(sql_url: str) -> None:
    clock = ManualClock(utc_now())
    async with opened(sql_url, clock=clock, purge_batch_size=7) as backend:
        short = [record(clock, ttl=1) for _ in range(20)]
        long = [record(clock, ttl=3600) for _ in range(3)]
        for r in (*short, *long):
            await backend.create(r)
        clock.advance(seconds=2)
        log = StatementLog(backend)
        try:
            assert await backend.purge_expired() == 20
            assert log.take() == ["DELETE"] * 3  # 7 + 7 + 6: the short batch says there is no more
        finally:
            log.close()
        for r in long:
            assert await backend.read(r.key) == r


# -- outage -----------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("server", ["pg", "my"], ids=["postgres", "mysql"])
async def test_outage_gives_503_and_recovers_without_a_restart(server: str, request: pytest.FixtureRequest) -> None:
    from sqlalchemy.engine import make_url

    target = make_url(request.getfixturevalue(server))
    proxy = FaultProxy(target.host or "127.0.0.1", target.port or (5432 if server == "pg" else 3306))
    await proxy.start()
    url = target.set(port=proxy.port).render_as_string(hide_password=False)
    try:
        async with opened(url) as backend:
            manager = SessionManager(backend, SessionFrontend(SECRET))
            app = session_app(manager)

            @app.post("/inc-then-outage")
            async def inc_then_outage(request: Request) -> JSONResponse:
                request.session["n"] += 1
                await proxy.cut()  # the store goes away after the read, before the save
                return JSONResponse({"n": request.session["n"]})

            async with client(app) as http:
                assert (await http.post("/login")).status_code == 200
                assert (await http.post("/inc")).json() == {"n": 1}

                await proxy.cut()
                for method, path in [("GET", "/read"), ("GET", "/read"), ("POST", "/inc"), ("POST", "/login")]:
                    response = await http.request(method, path)
                    assert response.status_code == 503, (method, path, response.text)
                    assert "unavailable" in response.json()["detail"]
                    assert response.headers["retry-after"] == "1"

                await proxy.restore()  # same app, same engine, same pool: no restart
                assert (await http.get("/read")).json() == {"n": 1}  # nothing committed was lost
                assert (await http.post("/inc")).json() == {"n": 2}

                # A save that fails is never reported as a success.
                response = await http.post("/inc-then-outage")
                assert response.status_code == 503
                await proxy.restore()
                assert (await http.get("/read")).json() == {"n": 2}
    finally:
        await proxy.aclose()


@pytest.mark.asyncio
async def test_errors_never_show_the_password() -> None:
    url = f"postgresql://postgres:s3cr3t-pw@127.0.0.1:{free_port()}/test"
    async with SQLAlchemyBackend(url, table_name=TABLE) as backend:
        assert "s3cr3t" not in repr(backend)
        with pytest.raises(BackendUnavailable) as caught:
            await backend.read("k")
        assert "s3cr3t" not in str(caught.value)
        assert isinstance(caught.value.__cause__, Exception)  # the driver's error stays chained
    with pytest.raises(ConfigurationError) as bad:
        SQLAlchemyBackend("oracle://scott:s3cr3t-pw@db/x")
    assert "s3cr3t" not in str(bad.value)


# -- URLs, engines and tables -----------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("url", "dialect", "driver"),
    [
        ("postgresql://u@h/db", "postgresql", "asyncpg"),
        ("postgresql+asyncpg://u@h/db", "postgresql", "asyncpg"),
        ("postgres://u@h/db", "postgresql", "asyncpg"),
        ("sqlite://", "sqlite", "aiosqlite"),
        ("sqlite:///relative.db", "sqlite", "aiosqlite"),
        ("mysql://u@h/db", "mysql", "asyncmy"),
        ("mariadb://u@h/db", "mariadb", "asyncmy"),
    ],
)
async def test_urls_choose_the_async_driver(url: str, dialect: str, driver: str) -> None:
    # Through the registry where an entry point names the scheme (postgres:// has none: directly).
    backend = SQLAlchemyBackend(url, table_name="t") if url.startswith("postgres:") else registry_from_url(
        url, table_name="t")
    assert isinstance(backend, SQLAlchemyBackend)
    try:
        assert (backend.engine.dialect.name, backend.engine.dialect.driver) == (dialect, driver)
        assert backend.table.name == "t"
    finally:
        await backend.aclose()


def test_bad_options_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        SQLAlchemyBackend("sqlite://", purge_batch_size=0)
    with pytest.raises(ConfigurationError):
        SQLAlchemyBackend(create_async_engine("sqlite+aiosqlite://"), pool_size=3)
    with pytest.raises(ConfigurationError):
        SQLAlchemyBackend("postgresql+psycopg2://u@h/db")  # a sync driver cannot serve an async backend


@pytest.mark.asyncio
async def test_an_existing_engine_is_used_and_left_open(pg: str) -> None:
    engine = create_async_engine(pg)
    name = f"{TABLE}_own"
    try:
        backend = SQLAlchemyBackend(engine, table_name=name)
        await backend.create_table()
        rec = record()
        await backend.create(rec)
        assert await backend.read(rec.key) == rec
        await backend.aclose()
        async with engine.connect() as conn:  # still the application's engine, still open
            tables = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
            assert name in tables
            assert (await conn.execute(select(func.count()).select_from(backend.table))).scalar() == 1
        await backend.drop_table()
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_table_creation_is_explicit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'explicit.db'}"
    async with SQLAlchemyBackend(url) as backend:
        with pytest.raises(BackendError) as caught:
            await backend.read("k")
        assert not isinstance(caught.value, BackendUnavailable)
        assert "create-table" in str(caught.value)
        await backend.create_table()
        await backend.create_table()  # idempotent
        assert await backend.read("k") is None
        async with backend.engine.connect() as conn:
            indexes = await conn.run_sync(lambda sync: inspect(sync).get_indexes("fastapi_sessions"))
        assert sorted(tuple(i["column_names"]) for i in indexes) == [("expires_at",), ("user_id",)]
    async with SQLAlchemyBackend(f"sqlite:///{tmp_path / 'startup.db'}", create_table=True) as backend:
        assert await backend.read("k") is None  # created on start, as opted in


def test_command_line_creates_prints_and_drops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["create-table", url, "--table", "cli_sessions"]) == 0
    assert "cli_sessions" in capsys.readouterr().out

    async def tables() -> list[str]:
        engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
        try:
            async with engine.connect() as conn:
                return list(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
        finally:
            await engine.dispose()

    assert asyncio.run(tables()) == ["cli_sessions"]
    assert main(["ddl", url, "--table", "cli_sessions"]) == 0
    assert "CREATE TABLE cli_sessions" in capsys.readouterr().out
    assert main(["drop-table", url, "--table", "cli_sessions"]) == 0
    assert asyncio.run(tables()) == []
    assert main(["create-table", "oracle://u@h/x"]) == 1
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize("dialect", [postgresql.dialect(), sqlite.dialect(), mysql.dialect()], ids=lambda d: d.name)
def test_the_docs_show_the_ddl_of_each_dialect(dialect: Any) -> None:
    docs = DOCS.read_text()
    for statement in ddl(dialect, session_table()):
        assert statement in docs, f"docs/backends/sql.md is out of date for {dialect.name}:\n{statement}"


@pytest_asyncio.fixture
async def mysql_backend(my: str) -> AsyncIterator[SQLAlchemyBackend]:
    async with opened(my) as backend:
        yield backend


@pytest.mark.asyncio
async def test_mysql_stores_payloads_beyond_64_kib(mysql_backend: SQLAlchemyBackend) -> None:
    rec = record()
    rec = SessionRecord(rec.key, bytes(range(256)) * 4096 * 4, None, rec.created_at, rec.expires_at, 1)  # 4 MiB
    await mysql_backend.create(rec)
    assert await mysql_backend.read(rec.key) == rec


@pytest.mark.asyncio
async def test_from_url_takes_a_clock_and_a_passed_now_overrides_it() -> None:
    from fastapi_sessions.backends.sqlalchemy import from_url

    clock = ManualClock()  # 2030: far from the database server's clock, which never judges
    async with from_url("sqlite+aiosqlite://", create_table=True, clock=clock) as backend:
        mine = record(clock, ttl=60)
        await backend.create(mine)
        assert await backend.read(mine.key) == mine
        assert await backend.read(mine.key, now=mine.expires_at) is None
        clock.advance(seconds=60)
        assert await backend.read(mine.key) is None
        assert await backend.read(mine.key, now=mine.created_at) == mine
        assert await backend.purge_expired() == 1
