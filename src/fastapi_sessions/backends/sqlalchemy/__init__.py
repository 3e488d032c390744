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

What differs between the databases (the insert and purge statements, the
algorithm of ``create``, what a driver's error means) lives in one strategy
class per family, in the private ``_dialects`` module.
"""

from __future__ import annotations

from ._backend import SQLAlchemyBackend, from_url
from ._cli import main
from ._engine import DEFAULT_POOL, DEFAULT_TIMEOUTS
from ._table import DEFAULT_TABLE_NAME, ddl, session_table
from ._table import MAX_USER_ID_BYTES as MAX_USER_ID_BYTES  # a documented limit, outside __all__ as before

__all__ = ["DEFAULT_POOL", "DEFAULT_TABLE_NAME", "DEFAULT_TIMEOUTS", "SQLAlchemyBackend", "ddl", "from_url", "main",
           "session_table"]
