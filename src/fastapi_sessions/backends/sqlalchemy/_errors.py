"""What every dialect shares at the error boundary: which exceptions to catch, and how to read a driver's error.

What an error *means* (unavailable, duplicate key, missing table, deadlock) is
the database family's call: see ``_dialects.py``.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

#: What a statement or a checkout may raise: SQLAlchemy's errors, and the socket's.
BOUNDARY_ERRORS: tuple[type[Exception], ...] = (sa_exc.SQLAlchemyError, OSError, TimeoutError, sqlite3.Error)


def driver_errors(dialect: Dialect) -> tuple[type[Exception], ...]:
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


async def discard(conn: AsyncConnection) -> None:
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


def original(exc: BaseException) -> BaseException:
    """The driver's exception inside SQLAlchemy's wrapper, or ``exc`` itself."""
    return exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc


def lost_connection(exc: BaseException) -> bool:
    """Whether ``exc`` means "cannot reach the store right now", on any database: sockets, pool, disconnects."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True  # SQLAlchemy recognised a disconnect and dropped the pool's connections
    if isinstance(exc, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True  # pool checkout timed out
    orig = original(exc)
    return any(isinstance(cause, OSError | TimeoutError | ConnectionError)
               for cause in (orig, orig.__cause__, getattr(orig, "__context__", None)))


def closed_message(orig: BaseException) -> bool:
    """A driver's "connection is closed" that SQLAlchemy did not recognise as a disconnect."""
    message = str(orig).lower()
    return "connection is closed" in message or "not connected" in message


def sqlstate(orig: BaseException) -> str | None:
    """The SQLSTATE of a driver error (asyncpg's own exception is the adapter error's cause; asyncmy has one too)."""
    for candidate in (orig, orig.__cause__):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return None


def mysql_error(orig: BaseException) -> tuple[int, str] | None:
    """MySQL's error code and message: asyncmy (like PyMySQL) raises with ``args == (code, message)``."""
    if isinstance(orig, OSError):
        return None  # (errno, strerror), not a server's answer
    args: tuple[Any, ...] = getattr(orig, "args", ())
    if len(args) >= 1 and isinstance(args[0], int) and not isinstance(args[0], bool):
        return args[0], str(args[1]) if len(args) > 1 else ""
    return None


def scrub(text: str, url: URL, limit: int = 200) -> str:
    """A server's message, short, with the URL's password masked should a server ever echo it."""
    if url.password:
        text = text.replace(str(url.password), "***")
    return text if len(text) <= limit else text[:limit - 3] + "..."
