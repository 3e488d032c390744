"""The sessions table: its columns and types on every dialect, its DDL, and the timestamp encoding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, MetaData, String, Table, Text, TypeDecorator
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable

DEFAULT_TABLE_NAME = "fastapi_sessions"
#: Longest user id MySQL/MariaDB store (bytes of UTF-8); PostgreSQL's index takes about 2,700 bytes.
MAX_USER_ID_BYTES = 2048

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MYSQL = ("mysql", "mariadb")


def _micros(value: datetime) -> int:
    """A timestamp as stored: integer microseconds since the Unix epoch, UTC."""
    return (value - _EPOCH) // _MICROSECOND


def _datetime(micros: int) -> datetime:
    """A stored timestamp as an aware UTC ``datetime``."""
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
