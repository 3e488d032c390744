"""``python -m fastapi_sessions.backends.sqlalchemy``: create, drop or print the sessions table.

The same commands are ``fastapi-sessions sql create-table|drop-table|ddl URL`` (the ``cli`` extra);
both run :func:`table_command`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Literal

from ..._core.registry import mask_url
from ...errors import BackendError, ConfigurationError
from ._backend import SQLAlchemyBackend
from ._table import DEFAULT_TABLE_NAME

TableCommand = Literal["create-table", "drop-table", "ddl"]


async def table_command(command: TableCommand, url: str, *, table: str = DEFAULT_TABLE_NAME,
                        schema: str | None = None) -> str:
    """Run one table command on the database ``url`` names; return what to print (passwords masked)."""
    async with SQLAlchemyBackend(url, table_name=table, schema=schema) as backend:
        if command == "ddl":
            return ";\n\n".join(backend.ddl()) + ";"
        if command == "create-table":
            await backend.create_table()
            return f"table {backend.table.fullname!r} ready on {mask_url(url)}"
        await backend.drop_table()
        return f"table {backend.table.fullname!r} dropped on {mask_url(url)}"


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
    try:
        print(asyncio.run(table_command(args.command, args.url, table=args.table, schema=args.schema)))
    except (ConfigurationError, BackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
