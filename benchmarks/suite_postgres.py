"""Server suite: fastapi-sessions on PostgreSQL against its floor.

    python benchmarks/run.py --suite postgres

The floor is a bare FastAPI app issuing the same statements with SQLAlchemy
Core directly, on an engine configured like ours (asyncpg, autocommit): one
``SELECT`` for a read-only request, the ``SELECT`` plus the compare-and-set
``UPDATE`` for a read-modify-write. What separates the two rows is the session
layer itself: middleware, signing, serialization and the manager's rules.

The server comes from ``FASTAPI_SESSIONS_BENCH_POSTGRES_URL``, else
``FASTAPI_SESSIONS_TEST_POSTGRES_URL``, else the loopback development server.
Each run uses its own table and drops it at exit. ``suite_sqlite.py`` reuses
:func:`sql_contenders` for SQLite.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from apps import OURS_WRITE_METHODS, SECRET, _add_session_routes
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from harness import USER_VALUE, Contender
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

TITLE = "PostgreSQL (asyncpg): fastapi-sessions vs bare FastAPI + the same SQLAlchemy Core statements"
DEFAULT_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _now_us() -> int:
    return (datetime.now(UTC) - _EPOCH) // _US


def floor_contender(name: str, engine: AsyncEngine, table: Any) -> Contender:
    """Bare FastAPI plus, per request, exactly the statements our backend sends, via Core."""
    c = table.c
    key = "floor-" + uuid.uuid4().hex
    live = c.expires_at > bindparam("now")
    read = select(c.key, c.payload, c.user_id, c.created_at, c.expires_at, c.version).where(c.key == key, live)
    cas = (
        update(table)
        .where(c.key == key, c.version == bindparam("expected"), live)
        .values(payload=bindparam("payload"), user_id=bindparam("user_id"),
                expires_at=bindparam("expires_at"), version=c.version + 1)
    )
    app = FastAPI()

    @app.post("/setup")
    async def setup() -> JSONResponse:
        now = _now_us()
        payload = json.dumps({"counter": 0, "user": USER_VALUE}).encode()
        async with engine.connect() as conn:
            await conn.execute(delete(table).where(c.key == key))
            await conn.execute(insert(table).values(key=key, payload=payload, user_id=None, created_at=now,
                                                    expires_at=now + 1800 * 10**6, version=1))
        return JSONResponse({"value": 0})

    @app.get("/rmw")
    async def rmw() -> JSONResponse:
        now = _now_us()
        async with engine.connect() as conn:
            row = (await conn.execute(read, {"now": now})).one()
        data = json.loads(row.payload)
        data["counter"] += 1
        async with engine.connect() as conn:
            result = await conn.execute(cas, {"now": now, "expected": row.version, "user_id": row.user_id,
                                              "payload": json.dumps(data).encode(), "expires_at": now + 1800 * 10**6})
        if result.rowcount != 1:
            raise RuntimeError("floor lost its compare-and-set")
        return JSONResponse({"value": data["counter"]})

    @app.get("/ro")
    async def ro() -> JSONResponse:
        async with engine.connect() as conn:
            row = (await conn.execute(read, {"now": _now_us()})).one()
        return JSONResponse({"value": json.loads(row.payload)["user"]})

    return Contender(name, app, uses_cookie=False)


def sql_contenders(url: str, label: str) -> list[Contender]:
    """Ours on ``url`` and its floor, on one throwaway table dropped at exit."""
    from fastapi_sessions import SessionManager, SessionMiddleware
    from fastapi_sessions.backends.sqlalchemy import SQLAlchemyBackend
    from fastapi_sessions.frontends import SessionFrontend

    backend = SQLAlchemyBackend(url, table_name=f"fs_bench_{uuid.uuid4().hex[:10]}")
    # The floor's engine is configured exactly like the one the backend builds for itself.
    floor_engine = create_async_engine(backend.engine.url, isolation_level="AUTOCOMMIT",
                                       skip_autocommit_rollback=True, **_pool_options(backend.engine))

    async def create() -> None:
        await backend.create_table()
        await backend.engine.dispose()  # connections of this loop must not reach the benchmark's loop

    async def drop() -> None:
        # The benchmark's loop is gone with its connections: forget them, then clean up on fresh ones.
        await backend.engine.dispose(close=False)
        await floor_engine.dispose(close=False)
        await backend.drop_table()
        await backend.aclose()

    asyncio.run(create())
    atexit.register(lambda: asyncio.run(drop()))

    manager = SessionManager(backend=backend, frontend=SessionFrontend(secret_key=SECRET))
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=manager)
    floor_name = f"floor: bare FastAPI + SQLAlchemy Core ({label})"
    ours = Contender(f"fastapi-sessions ({label})", _add_session_routes(app), backend, OURS_WRITE_METHODS,
                     floor=floor_name)
    return [ours, floor_contender(floor_name, floor_engine, backend.table)]


def _pool_options(engine: AsyncEngine) -> dict[str, Any]:
    from sqlalchemy.pool import StaticPool

    return {"poolclass": StaticPool} if isinstance(engine.pool, StaticPool) else {}


def build() -> list[Contender]:
    url = (os.environ.get("FASTAPI_SESSIONS_BENCH_POSTGRES_URL")
           or os.environ.get("FASTAPI_SESSIONS_TEST_POSTGRES_URL") or DEFAULT_URL)
    return sql_contenders(url, "PostgreSQL")
