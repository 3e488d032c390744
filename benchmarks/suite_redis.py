"""Server suite ``redis``: our Redis backend beside starsessions' RedisStore, on the same Redis.

    python benchmarks/run.py --suite redis

The Redis URL is ``FASTAPI_SESSIONS_BENCH_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``). Floors: a bare FastAPI request plus the same
number of raw redis-py round trips as a session layer needs at the least: one
GET for read-only, a GET and a SET for read-modify-write.
"""

from __future__ import annotations

import os
import uuid

from apps import OURS_WRITE_METHODS, SECRET, STARSESSIONS_WRITE_METHODS, _add_session_routes
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from harness import USER_VALUE, Contender
from redis.asyncio import Redis

TITLE = "Session layers on Redis"
URL = os.environ.get("FASTAPI_SESSIONS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

FLOOR = "floor: bare FastAPI + raw redis-py"
STARSESSIONS = "starsessions 2.2.1 (RedisStore)"
OURS = "fastapi-sessions (ours, RedisBackend)"


def _prefix(name: str) -> str:
    # A fresh namespace per run, so runs sharing a server never read each other's keys.
    return f"bench-{name}-{uuid.uuid4().hex[:8]}:"


def floor_contender() -> Contender:
    """FastAPI plus the bare round trips: GET for read-only, GET then SET for read-modify-write."""
    client = Redis.from_url(URL)
    prefix = _prefix("floor")
    counter, user = f"{prefix}counter", f"{prefix}user"
    app = FastAPI()

    @app.post("/setup")
    async def setup() -> JSONResponse:
        await client.set(counter, 0)
        await client.set(user, USER_VALUE)
        return JSONResponse({"value": 0})

    @app.get("/rmw")
    async def rmw() -> JSONResponse:
        value = int(await client.get(counter)) + 1
        await client.set(counter, value)
        return JSONResponse({"value": value})

    @app.get("/ro")
    async def ro() -> JSONResponse:
        return JSONResponse({"value": (await client.get(user)).decode()})

    return Contender(FLOOR, app, uses_cookie=False)


def starsessions_contender() -> Contender:
    from starsessions import SessionAutoloadMiddleware, SessionMiddleware
    from starsessions.stores.redis import RedisStore

    store = RedisStore(connection=Redis.from_url(URL), prefix=_prefix("starsessions"))
    app = FastAPI()
    # As in starsessions' README: autoload inside SessionMiddleware (the last added is outermost).
    app.add_middleware(SessionAutoloadMiddleware)
    app.add_middleware(SessionMiddleware, store=store, cookie_https_only=False)
    return Contender(STARSESSIONS, _add_session_routes(app), store, STARSESSIONS_WRITE_METHODS, floor=FLOOR)


def ours_contender() -> Contender:
    from fastapi_sessions import SessionManager, SessionMiddleware
    from fastapi_sessions.backends.redis import RedisBackend
    from fastapi_sessions.frontends import SessionFrontend

    backend = RedisBackend.from_url(URL, prefix=_prefix("ours"))
    manager = SessionManager(backend=backend, frontend=SessionFrontend(secret_key=SECRET))
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=manager)
    return Contender(OURS, _add_session_routes(app), backend, OURS_WRITE_METHODS, floor=FLOOR, peer=STARSESSIONS)


#: Contenders left out of this run, with the reason (printed under the table).
SKIPPED: dict[str, str] = {}


def build() -> list[Contender]:
    contenders = [floor_contender()]
    try:
        contenders.append(starsessions_contender())
    except ImportError as exc:  # the peer is optional: `pip install starsessions` (tox -e benchmarks has it)
        SKIPPED[STARSESSIONS] = f"not installed ({exc})"
    return [*contenders, ours_contender()]
