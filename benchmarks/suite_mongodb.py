"""Server suite ``mongodb``: our MongoBackend against its floor.

    python benchmarks/run.py --suite mongodb [--requests N --repeats R --warmup W]

The server comes from ``FASTAPI_SESSIONS_BENCH_MONGODB_URL``, else
``FASTAPI_SESSIONS_TEST_MONGODB_URL``, else ``mongodb://127.0.0.1:27017/``; each run
uses collections of its own and drops them at exit.

The floor is bare FastAPI plus the same raw PyMongo calls our backend makes for
each route (one ``find_one`` filtered on key and expiry for a read; that plus one
``update_one`` compare-and-set on key, version and expiry for a write), the JSON
work on the payload included. What remains between the two is the session layer:
signing, the cookie, the manager.
"""

from __future__ import annotations

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
from pymongo import AsyncMongoClient, MongoClient

TITLE = "MongoDB: session layer over raw PyMongo"
OURS = "fastapi-sessions MongoBackend"
FLOOR = "floor: bare FastAPI + raw PyMongo"

URL = (
    os.environ.get("FASTAPI_SESSIONS_BENCH_MONGODB_URL")
    or os.environ.get("FASTAPI_SESSIONS_TEST_MONGODB_URL")
    or "mongodb://127.0.0.1:27017/"
)
DATABASE = "fastapi_sessions_bench"
_RUN = uuid.uuid4().hex[:8]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _now_ms() -> int:
    return (datetime.now(UTC) - _EPOCH) // timedelta(milliseconds=1)


def _drop_at_exit(*names: str) -> None:
    def drop() -> None:
        with MongoClient(URL, serverSelectionTimeoutMS=2000) as client:
            for name in names:
                client[DATABASE].drop_collection(name)

    atexit.register(drop)


def ours_contender() -> Contender:
    from fastapi_sessions import SessionManager, SessionMiddleware
    from fastapi_sessions.backends.mongodb import MongoBackend
    from fastapi_sessions.frontends import SessionFrontend

    collection = f"bench_ours_{_RUN}"
    _drop_at_exit(collection)
    backend = MongoBackend(URL, database=DATABASE, collection=collection)
    manager = SessionManager(backend=backend, frontend=SessionFrontend(secret_key=SECRET))
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=manager)
    return Contender(OURS, _add_session_routes(app), backend, OURS_WRITE_METHODS, floor=FLOOR)


def floor_contender() -> Contender:
    collection_name = f"bench_floor_{_RUN}"
    _drop_at_exit(collection_name)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(URL)
    sessions = client[DATABASE][collection_name]
    key = "floor-session"  # one fixed session: no cookie, no signing, no manager
    ttl = timedelta(minutes=30)

    async def load() -> dict[str, Any]:
        doc = await sessions.find_one({"_id": key, "expires_ms": {"$gt": _now_ms()}})
        assert doc is not None
        return doc

    app = FastAPI()

    @app.post("/setup")
    async def setup() -> JSONResponse:
        now = datetime.now(UTC)
        expires = now + ttl
        await sessions.update_one(
            {"_id": key, "expires_ms": {"$lte": _now_ms()}},
            {"$set": {"payload": json.dumps({"counter": 0, "user": USER_VALUE}).encode(), "version": 1,
                      "created_ms": _now_ms(), "expires_ms": _now_ms() + ttl // timedelta(milliseconds=1),
                      "expires_at": expires}},
            upsert=True,
        )
        return JSONResponse({"value": 0})

    @app.get("/rmw")
    async def rmw() -> JSONResponse:
        doc = await load()
        data = json.loads(doc["payload"])
        data["counter"] += 1
        expires = datetime.now(UTC) + ttl
        await sessions.update_one(
            {"_id": key, "version": doc["version"], "expires_ms": {"$gt": _now_ms()}},
            {"$set": {"payload": json.dumps(data).encode(), "version": doc["version"] + 1,
                      "expires_ms": (expires - _EPOCH) // timedelta(milliseconds=1), "expires_at": expires}},
        )
        return JSONResponse({"value": data["counter"]})

    @app.get("/ro")
    async def ro() -> JSONResponse:
        doc = await load()
        return JSONResponse({"value": json.loads(doc["payload"])["user"]})

    return Contender(FLOOR, app, uses_cookie=False)


def build() -> list[Contender]:
    return [floor_contender(), ours_contender()]
