"""Server suite: fastapi-sessions on a SQLite file (aiosqlite) against its floor.

    python benchmarks/run.py --suite sqlite

Same contenders as ``suite_postgres.py`` (see there for what the floor is), on
a database file in a temporary directory (``FASTAPI_SESSIONS_BENCH_SQLITE_URL``
overrides it). SQLite's default rollback journal is kept: every write commits
to the file.
"""

from __future__ import annotations

import os
import tempfile

from harness import Contender
from suite_postgres import sql_contenders

TITLE = "SQLite file (aiosqlite): fastapi-sessions vs bare FastAPI + the same SQLAlchemy Core statements"


def build() -> list[Contender]:
    url = os.environ.get("FASTAPI_SESSIONS_BENCH_SQLITE_URL")
    if not url:
        directory = tempfile.mkdtemp(prefix="fs-bench-")
        url = f"sqlite+aiosqlite:///{os.path.join(directory, 'sessions.db')}"
    return sql_contenders(url, "SQLite file")
