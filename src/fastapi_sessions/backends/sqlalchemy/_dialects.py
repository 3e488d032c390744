"""One strategy per database family: what differs between PostgreSQL, SQLite and MySQL/MariaDB.

Like SQLAlchemy's own dialect classes, each family overrides hooks of a
portable base: the insert and purge statements, the algorithm of ``create()``,
and what a driver's error means (unavailable, duplicate key, missing table,
deadlock). The backend picks one strategy by the engine's dialect name when it
is built (:func:`ops_for`). Another database is one more subclass, listed in
``_FAMILIES``.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import ColumnElement, Delete, Executable, Insert, Table, delete, insert, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL

from ...errors import BackendError
from ._errors import closed_message, mysql_error, original, scrub, sqlstate

if TYPE_CHECKING:
    from ._statements import Statements

#: Runs one statement for an operation (named for errors) and returns its buffered result.
Run = Callable[[str, Executable, dict[str, Any]], Awaitable[Any]]


class DialectOps:
    """Portable SQL, and the SQL standard's error classes: what the families below refine.

    The error hooks take the driver's own exception (SQLAlchemy's wrapper
    removed). Failures of the connection itself (sockets, pool, SQLAlchemy's
    disconnect verdict) are recognised for every family in ``_errors.py``.
    """

    #: The ``Dialect.name`` values this strategy serves.
    names: ClassVar[tuple[str, ...]] = ()

    # -- statements ------------------------------------------------------------------------

    def insert(self, table: Table, values: dict[str, Any], expired: ColumnElement[bool]) -> Insert:
        """The insert of a new record: a plain ``INSERT`` that a taken key makes fail."""
        return insert(table).values(values)

    def purge(self, table: Table, expired: ColumnElement[bool], batch: int) -> Delete:
        """One batch of the purge, through the expiry index."""
        victims = select(table.c.key).where(expired).limit(batch)
        return delete(table).where(table.c.key.in_(victims.scalar_subquery()))

    async def create(self, run: Run, sql: Statements, params: dict[str, Any]) -> bool:
        """Insert a record, or take over an expired row with its key; ``False`` if a live row holds it.

        Never select-then-insert: the primary key picks one winner of a race.
        """
        for _ in range(3):
            try:
                await run("create", sql.insert, params)
                return True
            except BackendError as exc:
                if not (isinstance(exc.__cause__, sa_exc.IntegrityError)
                        and self.duplicate_key(original(exc.__cause__))):
                    raise
            # The key is taken: claim it only if its row has expired.
            if (await run("create", sql.takeover, params)).rowcount == 1:
                return True
            # Live, or purged between the two statements: insert again only in the second case.
            if (await run("create", sql.version, params)).first() is not None:
                return False
        return False

    # -- what a driver's error means -------------------------------------------------------

    def unavailable(self, orig: BaseException) -> bool:
        """Whether the server said "not now" (shutting down, too many connections, a timeout)."""
        state = sqlstate(orig)  # class 08, connection exception, in the SQL standard
        return (state is not None and state.startswith("08")) or closed_message(orig)

    def duplicate_key(self, orig: BaseException) -> bool:
        """Whether an integrity error is the primary key being taken."""
        return False

    def missing_table(self, orig: BaseException) -> bool:
        """Only a missing table: a missing database, role or schema "does not exist" too; create-table won't help."""
        return False

    def deadlock(self, orig: BaseException) -> bool:
        """Whether the server chose this statement as a deadlock's victim (rolled back whole: safe to run again)."""
        return False

    def reason(self, orig: BaseException, url: URL) -> str | None:
        """The cause for a message and, where it is a setting, the fix; ``None`` if not this family's error."""
        return None


class _UpsertOps(DialectOps):
    """``INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE expired``: create in one statement."""

    def _on_conflict(self, stmt: postgresql.Insert | sqlite.Insert, table: Table, values: dict[str, Any],
                     expired: ColumnElement[bool]) -> Insert:
        stmt = stmt.values(values)
        return stmt.on_conflict_do_update(
            index_elements=[table.c.key], where=expired,
            set_={name: getattr(stmt.excluded, name) for name in values if name != "key"})

    async def create(self, run: Run, sql: Statements, params: dict[str, Any]) -> bool:
        # Inserts, or takes over an expired row; matches nothing only when a live row holds the key.
        return bool((await run("create", sql.insert, params)).rowcount != 0)


class PostgresOps(_UpsertOps):
    names = ("postgresql",)
    # SQLSTATEs meaning "not now" besides class 08: shutdown, cannot connect now, too many
    # connections, statement or lock timeout.
    UNAVAILABLE: ClassVar[frozenset[str]] = frozenset({"57P01", "57P02", "57P03", "53300", "57014", "55P03"})

    def insert(self, table: Table, values: dict[str, Any], expired: ColumnElement[bool]) -> Insert:
        return self._on_conflict(postgresql.insert(table), table, values, expired)

    def purge(self, table: Table, expired: ColumnElement[bool], batch: int) -> Delete:
        # SKIP LOCKED: concurrent purgers take disjoint rows.
        victims = select(table.c.key).where(expired).limit(batch).with_for_update(skip_locked=True)
        return delete(table).where(table.c.key.in_(victims.scalar_subquery()))

    def unavailable(self, orig: BaseException) -> bool:
        return sqlstate(orig) in self.UNAVAILABLE or super().unavailable(orig)

    def missing_table(self, orig: BaseException) -> bool:
        return sqlstate(orig) == "42P01"  # undefined_table; not 42883 undefined_function, 42703 column, ...

    def deadlock(self, orig: BaseException) -> bool:
        return sqlstate(orig) == "40P01"

    def reason(self, orig: BaseException, url: URL) -> str | None:
        state = sqlstate(orig)
        if state is None:
            return None
        # asyncpg's own exception (InvalidCatalogNameError, ...) names the cause better than the adapter's.
        pg = orig.__cause__ if getattr(orig.__cause__, "sqlstate", None) else orig
        name = f"{type(pg).__name__}, SQLSTATE {state}"
        if state == "3D000":
            return (f"database {url.database!r} does not exist ({name}); create it or correct the database "
                    "name in the URL")
        if state.startswith("28"):  # 28000 no such role or no pg_hba.conf entry, 28P01 wrong password
            user = f"user {url.username!r}" if url.username else "the connecting user"
            return (f"authentication failed for {user}: {scrub(str(pg), url)} ({name}); check the user name "
                    "and password in the URL")
        if state == "3F000":
            return f"{scrub(str(pg), url)} ({name}); create the schema or correct schema="
        return name


class SQLiteOps(_UpsertOps):
    names = ("sqlite",)
    UNAVAILABLE: ClassVar[tuple[str, ...]] = ("unable to open", "locked", "busy", "disk i/o")

    def insert(self, table: Table, values: dict[str, Any], expired: ColumnElement[bool]) -> Insert:
        return self._on_conflict(sqlite.insert(table), table, values, expired)

    def unavailable(self, orig: BaseException) -> bool:
        if isinstance(orig, sqlite3.OperationalError):
            return any(marker in str(orig).lower() for marker in self.UNAVAILABLE)
        return super().unavailable(orig)

    def missing_table(self, orig: BaseException) -> bool:
        return isinstance(orig, sqlite3.Error) and "no such table" in str(orig).lower()

    def reason(self, orig: BaseException, url: URL) -> str | None:
        if not isinstance(orig, sqlite3.Error):
            return None
        reason = f"{type(orig).__name__}: {scrub(str(orig), url)}"
        path = url.database or ""
        if "unable to open" in str(orig) and path and not path.startswith("file:") and path != ":memory:":
            directory = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(directory):
                return (f"{reason}: the directory {directory} does not exist; create it or correct the path in "
                        "the URL")
        return reason


class MySQLOps(DialectOps):
    """MySQL and MariaDB: the portable insert-then-claim ``create()``, and ``DELETE ... LIMIT`` to purge.

    MySQL's ``ON DUPLICATE KEY UPDATE`` reports 1 both for an insert and for a live row left
    alone (SQLAlchemy always sets ``CLIENT.FOUND_ROWS``), so it cannot say "exists": the
    insert is plain, and only a duplicate key runs the conditional takeover.
    """

    names = ("mysql", "mariadb")
    # Client errors meaning the server is not reachable, and server errors meaning "not now".
    UNAVAILABLE: ClassVar[frozenset[int]] = frozenset({1040, 1053, 1205, 2002, 2003, 2005, 2006, 2013, 2055})

    def purge(self, table: Table, expired: ColumnElement[bool], batch: int) -> Delete:
        # MySQL rejects LIMIT inside an IN subquery; DELETE ... LIMIT walks the expiry index instead.
        return delete(table).where(expired).with_dialect_options(mysql_limit=batch, mariadb_limit=batch)

    def _code(self, orig: BaseException) -> int | None:
        error = mysql_error(orig)
        return None if error is None else error[0]

    def unavailable(self, orig: BaseException) -> bool:
        return self._code(orig) in self.UNAVAILABLE or super().unavailable(orig)

    def duplicate_key(self, orig: BaseException) -> bool:
        return self._code(orig) == 1062  # ER_DUP_ENTRY

    def missing_table(self, orig: BaseException) -> bool:
        return self._code(orig) == 1146  # ER_NO_SUCH_TABLE

    def deadlock(self, orig: BaseException) -> bool:
        # InnoDB deadlocks a delete by user against an update of one of its rows.
        return self._code(orig) == 1213  # ER_LOCK_DEADLOCK

    def reason(self, orig: BaseException, url: URL) -> str | None:
        error = mysql_error(orig)
        if error is None:
            return None
        code, text = error
        label = "MariaDB" if url.get_backend_name() == "mariadb" else "MySQL"
        reason = f"{label} error {code}: {scrub(text, url)}"
        if code == 1049:
            return f"{reason}; create the database or correct its name in the URL"
        if code in (1044, 1045, 1698):
            return f"{reason}; check the user name and password in the URL and the user's grants"
        return reason


_FAMILIES: tuple[type[DialectOps], ...] = (PostgresOps, SQLiteOps, MySQLOps)


class AnyDialectOps(DialectOps):
    """An engine of a dialect none of the families serves (passed in by the application).

    The portable statements; and since the driver is unknown, an error means
    what it means to any family that recognises it.
    """

    # MySQL first: its drivers may carry a SQLSTATE as well, but the error code is what its docs index.
    _families = (MySQLOps(), PostgresOps(), SQLiteOps())

    def unavailable(self, orig: BaseException) -> bool:
        return any(family.unavailable(orig) for family in self._families)

    def duplicate_key(self, orig: BaseException) -> bool:
        return any(family.duplicate_key(orig) for family in self._families)

    def missing_table(self, orig: BaseException) -> bool:
        return any(family.missing_table(orig) for family in self._families)

    def deadlock(self, orig: BaseException) -> bool:
        return any(family.deadlock(orig) for family in self._families)

    def reason(self, orig: BaseException, url: URL) -> str | None:
        return next((r for family in self._families if (r := family.reason(orig, url)) is not None), None)


def ops_for(dialect_name: str) -> DialectOps:
    """The strategy for an engine's ``dialect.name``."""
    for family in _FAMILIES:
        if dialect_name in family.names:
            return family()
    return AnyDialectOps()
