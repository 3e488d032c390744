"""``python -m fastapi_sessions.backends.sqlalchemy``: create, drop or print the sessions table."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ..._core.registry import mask_url
from ...errors import BackendError, ConfigurationError
from ._backend import SQLAlchemyBackend
from ._table import DEFAULT_TABLE_NAME


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
