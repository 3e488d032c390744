"""SQL backend errors name the real cause and its fix: a missing database, role or directory is not a missing table.

Every server here is real (PostgreSQL and MariaDB from the environment, SQLite
files); only the database, user or path in the URL is wrong.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, Table, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from fastapi_sessions import BackendError, BackendNotInstalled, ConfigurationError, SessionManager
from fastapi_sessions.backends import from_url as registry_from_url
from fastapi_sessions.backends.sqlalchemy import SQLAlchemyBackend, main
from fastapi_sessions.backends.sqlalchemy._dialects import AnyDialectOps, ops_for
from fastapi_sessions.backends.sqlalchemy._errors import original

PASSWORD = "s3cr3t-pw"
CREATE_TABLE_HINTS = ("create-table", "create_table=True", "is the table")


def with_(url: str, **parts: str) -> str:
    """``url`` with its database or user name replaced."""
    return make_url(url).set(**parts).render_as_string(hide_password=False)


async def failure(url: str, operation: str) -> BackendError:
    """The error ``operation`` ("read" or "create_table") raises on a backend for ``url``."""
    async with SQLAlchemyBackend(url) as backend:
        with pytest.raises(BackendError) as caught:
            if operation == "read":
                await backend.read("k")
            else:
                await backend.create_table()
    assert isinstance(caught.value.__cause__, Exception)  # the driver's error stays chained
    return caught.value


def assert_no_table_hint(message: str) -> None:
    assert not any(hint in message for hint in CREATE_TABLE_HINTS), message


# -- PostgreSQL ----------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("operation", ["read", "create_table"])
async def test_postgres_missing_database_names_it_and_not_the_table(postgres_url: str, operation: str) -> None:
    name = f"no_such_db_{uuid.uuid4().hex[:8]}"
    error = await failure(with_(postgres_url, database=name), operation)
    message = str(error)
    assert name in message and "does not exist" in message, message
    assert "database" in message
    assert_no_table_hint(message)


@pytest.mark.asyncio
@pytest.mark.parametrize("operation", ["read", "create_table"])
async def test_postgres_unknown_role_names_it_and_never_the_password(postgres_url: str, operation: str) -> None:
    user = f"no_such_user_{uuid.uuid4().hex[:8]}"
    error = await failure(with_(postgres_url, username=user, password=PASSWORD), operation)
    message = str(error)
    assert user in message and "authentication" in message, message
    assert PASSWORD not in message
    assert_no_table_hint(message)


@pytest.mark.asyncio
async def test_postgres_missing_table_still_suggests_create_table(postgres_url: str) -> None:
    async with SQLAlchemyBackend(postgres_url, table_name=f"fs_absent_{uuid.uuid4().hex[:8]}") as backend:
        with pytest.raises(BackendError) as caught:
            await backend.read("k")
    assert "create-table" in str(caught.value)


def test_create_table_command_line_names_the_missing_database(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"no_such_db_{uuid.uuid4().hex[:8]}"
    assert main(["create-table", with_(postgres_url, database=name)]) == 1
    err = capsys.readouterr().err
    assert name in err and "does not exist" in err, err
    assert_no_table_hint(err)


# -- MySQL and MariaDB ---------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("operation", ["read", "create_table"])
async def test_mysql_unknown_database_carries_the_server_code_and_reason(mysql_url: str, operation: str) -> None:
    name = f"no_such_db_{uuid.uuid4().hex[:8]}"
    error = await failure(with_(mysql_url, database=name), operation)
    message = str(error)
    assert f"MySQL error 1049: Unknown database '{name}'" in message, message
    assert_no_table_hint(message)


@pytest.mark.asyncio
async def test_mysql_access_denied_carries_the_code_and_never_the_password(mysql_url: str) -> None:
    user = f"nouser{uuid.uuid4().hex[:8]}"
    error = await failure(with_(mysql_url, username=user, password=PASSWORD), "read")
    message = str(error)
    # 1045, or 1698 where MariaDB finds the user name nowhere at all.
    assert re.search(r"MySQL error (1045|1698): Access denied", message) and user in message, message
    assert PASSWORD not in message
    assert_no_table_hint(message)


@pytest.mark.asyncio
async def test_mysql_missing_table_carries_the_code_and_suggests_create_table(mysql_url: str) -> None:
    async with SQLAlchemyBackend(mysql_url, table_name=f"fs_absent_{uuid.uuid4().hex[:8]}") as backend:
        with pytest.raises(BackendError) as caught:
            await backend.read("k")
    message = str(caught.value)
    assert "MySQL error 1146" in message and "create-table" in message, message


# -- SQLite --------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("operation", ["read", "create_table"])
async def test_sqlite_file_in_a_missing_directory_names_the_directory(tmp_path: Path, operation: str) -> None:
    missing = tmp_path / "no-such-dir"
    error = await failure(f"sqlite:///{missing / 'sessions.db'}", operation)
    # aiosqlite stops a connection that failed to open without waiting for its thread; let it finish
    # while this loop still runs, or it reports to a closed loop from the thread.
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            await asyncio.to_thread(thread.join, 5)
    message = str(error)
    assert str(missing) in message and "does not exist" in message, message
    assert_no_table_hint(message)


@pytest.mark.asyncio
async def test_sqlite_missing_table_still_suggests_create_table(tmp_path: Path) -> None:
    async with SQLAlchemyBackend(f"sqlite:///{tmp_path / 'empty.db'}") as backend:
        with pytest.raises(BackendError) as caught:
            await backend.read("k")
    assert "create-table" in str(caught.value)


# -- only a missing table suggests create-table --------------------------------------------------


@pytest.fixture(params=["postgres", "mysql", "sqlite"])
def any_sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.db'}"
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.mark.asyncio
async def test_a_table_without_our_columns_is_not_called_missing(any_sql_url: str) -> None:
    """A table of that name with other columns: "undefined column" (PostgreSQL 42703 UndefinedColumnError,
    MySQL 1054, SQLite "no such column") is no missing table, and create-table would not help."""
    name = f"fs_other_{uuid.uuid4().hex[:8]}"
    other = Table(name, MetaData(), Column("key", String(128), primary_key=True))
    async with SQLAlchemyBackend(any_sql_url, table_name=name) as backend:
        async with backend.engine.connect() as conn:
            await conn.run_sync(other.metadata.create_all)
        try:
            with pytest.raises(BackendError) as caught:
                await backend.read("k")
        finally:
            async with backend.engine.connect() as conn:
                await conn.run_sync(other.metadata.drop_all)
    assert caught.value.suggestion is None
    assert_no_table_hint(str(caught.value))


@pytest.mark.asyncio
async def test_an_undefined_function_is_not_a_missing_table(any_sql_url: str) -> None:
    """PostgreSQL's 42883 is an UndefinedFunctionError: only 42P01, MySQL 1146 and "no such table" are missing tables,
    for the dialect's own strategy and for the one an unlisted dialect gets."""
    async with SQLAlchemyBackend(any_sql_url) as backend:
        async def error(sql: str) -> BaseException:
            async with backend.engine.connect() as conn:
                with pytest.raises(DBAPIError) as caught:
                    await conn.execute(text(sql))
            return original(caught.value)

        no_function = await error("SELECT fs_no_such_function()")
        no_table = await error(f"SELECT * FROM fs_absent_{uuid.uuid4().hex[:8]}")
        for ops in (ops_for(backend.engine.dialect.name), AnyDialectOps()):
            assert not ops.missing_table(no_function), no_function
            assert ops.missing_table(no_table), no_table


# -- synchronous drivers -------------------------------------------------------------------------


SYNC_URLS = [
    ("postgresql+psycopg2://app:{pw}@db/app", "postgresql+asyncpg://"),
    ("postgresql+pg8000://app:{pw}@db/app", "postgresql+asyncpg://"),
    ("mysql+pymysql://app:{pw}@db/app", "mysql+asyncmy://"),
    ("mariadb+pymysql://app:{pw}@db/app", "mariadb+asyncmy://"),
    ("mysql+mysqldb://app:{pw}@db/app", "mysql+asyncmy://"),
    ("sqlite+pysqlite:///sessions.db", "sqlite+aiosqlite://"),
]


@pytest.mark.parametrize(("url", "supported"), SYNC_URLS, ids=[u.split(":", 1)[0] for u, _ in SYNC_URLS])
@pytest.mark.parametrize("entry", ["backend", "registry", "manager"])
def test_a_sync_driver_is_a_configuration_error_naming_the_async_one(url: str, supported: str, entry: str) -> None:
    url = url.format(pw=PASSWORD)
    with pytest.raises(ConfigurationError) as caught:
        if entry == "backend":
            SQLAlchemyBackend(url)
        elif entry == "registry":
            registry_from_url(url)
        else:
            SessionManager.from_url(url, secret_key="k" * 32)
    message = str(caught.value)
    assert not isinstance(caught.value, BackendNotInstalled), message  # installing an extra would not help
    assert "synchronous" in message and supported in message, message
    assert "pip install" not in message
    assert PASSWORD not in message


def test_an_async_driver_that_is_not_installed_names_its_package() -> None:
    # psycopg 3 is async-capable but not what the [postgres] extra installs.
    if importlib.util.find_spec("psycopg") is not None:
        pytest.skip("psycopg is installed here")
    with pytest.raises(BackendNotInstalled) as caught:
        SQLAlchemyBackend(f"postgresql+psycopg://app:{PASSWORD}@db/app")
    message = str(caught.value)
    assert "psycopg" in message and "postgresql+asyncpg://" in message, message
    assert PASSWORD not in message
