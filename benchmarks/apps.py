"""Contender apps that run in the project's own virtualenv."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from harness import USER_VALUE, Contender

STARLETTE = "Starlette SessionMiddleware"
STARSESSIONS = "starsessions 2.2.1 (InMemoryStore)"
OURS = "fastapi-sessions (ours)"
SECRET = "bench-secret-key-of-at-least-32-bytes"

# Methods that write to a store; whichever exist on the instance are counted.
OURS_WRITE_METHODS = ("create", "update", "touch", "delete", "delete_by_user", "purge_expired", "set", "write", "save")
STARSESSIONS_WRITE_METHODS = ("write", "remove")


def _add_session_routes(app: FastAPI) -> FastAPI:
    """The same three routes for every `request.session`-style library."""

    @app.post("/setup")
    async def setup(request: Request) -> JSONResponse:
        request.session["counter"] = 0
        request.session["user"] = USER_VALUE
        return JSONResponse({"value": 0})

    @app.get("/rmw")
    async def rmw(request: Request) -> JSONResponse:
        value = request.session["counter"] + 1
        request.session["counter"] = value
        return JSONResponse({"value": value})

    @app.get("/ro")
    async def ro(request: Request) -> JSONResponse:
        return JSONResponse({"value": request.session["user"]})

    return app


def starlette_contender() -> Contender:
    from starlette.middleware.sessions import SessionMiddleware

    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key=SECRET)
    # The whole session lives in the signed cookie: no store, no counter to
    # advance while the setup cookie is replayed.
    return Contender(STARLETTE, _add_session_routes(app), server_side=False)


def starsessions_contender() -> Contender:
    from starsessions import InMemoryStore, SessionAutoloadMiddleware, SessionMiddleware

    store = InMemoryStore()
    app = FastAPI()
    # As in starsessions' README: autoload must run inside SessionMiddleware,
    # and add_middleware() puts the last-added one outermost.
    app.add_middleware(SessionAutoloadMiddleware)
    app.add_middleware(SessionMiddleware, store=store, cookie_https_only=False)
    return Contender(STARSESSIONS, _add_session_routes(app), store, STARSESSIONS_WRITE_METHODS)


def ours_contender() -> Contender:
    from fastapi_sessions import SessionManager, SessionMiddleware
    from fastapi_sessions.backends.in_memory import InMemoryBackend
    from fastapi_sessions.frontends import SessionFrontend

    backend = InMemoryBackend()
    manager = SessionManager(backend=backend, frontend=SessionFrontend(secret_key=SECRET))
    app = FastAPI()
    app.add_middleware(SessionMiddleware, manager=manager)
    return Contender(OURS, _add_session_routes(app), backend, OURS_WRITE_METHODS)


# Built in this order; the first one is the baseline for overheads.
BUILDERS: dict[str, Callable[[], Contender]] = {
    STARLETTE: starlette_contender,
    STARSESSIONS: starsessions_contender,
    OURS: ours_contender,
}
