"""The app ``load.py`` serves with uvicorn: one session library on one store.

    FASTAPI_SESSIONS_LOAD_CONFIG='{"library": "ours", "backend": "redis", ...}' \\
        python -m uvicorn load_app:create_app --factory --app-dir benchmarks

The configuration is JSON in ``FASTAPI_SESSIONS_LOAD_CONFIG``: ``library``
(``ours`` or ``starsessions``), ``backend`` (``memory``, ``redis``,
``postgres``), ``url``, ``namespace`` (the Redis key prefix or SQL table this
run writes to) and ``backend_options`` (ours only). The routes are those of
``apps.py`` (``POST /setup``, ``GET /rmw``, ``GET /ro``) plus ``GET /counter``,
which reads the stored counter without changing it. The signing key is made
here, per process, so it never appears in a command line or a log.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from apps import _add_session_routes
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

CONFIG_ENV = "FASTAPI_SESSIONS_LOAD_CONFIG"


def _app(close: Callable[[], Awaitable[object]]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/counter")
    async def counter(request: Request) -> JSONResponse:
        return JSONResponse({"value": request.session.get("counter")})

    return app


def _ours(cfg: dict[str, Any]) -> FastAPI:
    from fastapi_sessions import SessionManager, SessionMiddleware
    from fastapi_sessions.frontends import SessionFrontend

    options = dict(cfg["backend_options"])
    if cfg["backend"] == "redis":
        options.setdefault("prefix", cfg["namespace"])
    elif cfg["backend"] == "postgres":
        options.setdefault("table_name", cfg["namespace"])
    # secure=False: the benchmark speaks plain HTTP on loopback, where a Secure cookie would not be sent back.
    frontend = SessionFrontend(secrets.token_urlsafe(32), secure=False)
    manager = SessionManager.from_url(cfg["url"], frontend=frontend, backend_options=options)
    app = _app(manager.backend.aclose)
    app.add_middleware(SessionMiddleware, manager=manager)
    return app


def _starsessions(cfg: dict[str, Any]) -> FastAPI:
    from starsessions import InMemoryStore, SessionAutoloadMiddleware, SessionMiddleware, SessionStore

    store: SessionStore
    close: Callable[[], Awaitable[object]]
    if cfg["backend"] == "memory":
        store = InMemoryStore()

        async def close() -> None:
            pass
    elif cfg["backend"] == "redis":
        from redis.asyncio import Redis
        from starsessions.stores.redis import RedisStore

        client = Redis.from_url(cfg["url"])
        store, close = RedisStore(connection=client, prefix=cfg["namespace"]), client.aclose
    else:
        raise SystemExit(f"starsessions has no {cfg['backend']} store")
    app = _app(close)
    # As in starsessions' README: autoload inside SessionMiddleware (the last added is outermost).
    app.add_middleware(SessionAutoloadMiddleware)
    app.add_middleware(SessionMiddleware, store=store, cookie_https_only=False)
    return app


def create_app() -> FastAPI:
    cfg = json.loads(os.environ[CONFIG_ENV])
    build = {"ours": _ours, "starsessions": _starsessions}[cfg["library"]]
    return _add_session_routes(build(cfg))
