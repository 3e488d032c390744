"""Subprocess side for fastapi-sessions 0.3.2 (runs inside its own virtualenv).

0.3.2 owns the import name ``fastapi_sessions`` too, so it cannot live in the
project's virtualenv. This script builds the bare baseline and a 0.3.2 app
following its getting-started guide (SessionCookie + InMemoryBackend +
SessionVerifier subclass), runs the shared harness and prints JSON on stdout.

Usage: <venv>/bin/python legacy_032.py --requests N --repeats R --warmup W
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from importlib.metadata import version
from uuid import UUID, uuid4

from baseline import bare_contender
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from harness import USER_VALUE, Contender, run
from pydantic import BaseModel

# 0.3.2 calls pydantic-1 style .copy(); the deprecation warnings are noise here.
warnings.filterwarnings("ignore", category=DeprecationWarning)

from fastapi_sessions.backends.implementations import InMemoryBackend  # noqa: E402
from fastapi_sessions.frontends.implementations import CookieParameters, SessionCookie  # noqa: E402
from fastapi_sessions.session_verifier import SessionVerifier  # noqa: E402

LEGACY = "fastapi-sessions 0.3.2"
LEGACY_WRITE_METHODS = ("create", "update", "delete")


class SessionData(BaseModel):
    counter: int
    user: str


class BasicVerifier(SessionVerifier[UUID, SessionData]):
    """The guide's verifier: every existing session is valid."""

    def __init__(
        self,
        *,
        identifier: str,
        auto_error: bool,
        backend: InMemoryBackend[UUID, SessionData],
        auth_http_exception: HTTPException,
    ) -> None:
        self._identifier = identifier
        self._auto_error = auto_error
        self._backend = backend
        self._auth_http_exception = auth_http_exception

    @property
    def identifier(self) -> str:
        return self._identifier

    @property
    def backend(self) -> InMemoryBackend[UUID, SessionData]:
        return self._backend

    @property
    def auto_error(self) -> bool:
        return self._auto_error

    @property
    def auth_http_exception(self) -> HTTPException:
        return self._auth_http_exception

    def verify_session(self, model: SessionData) -> bool:
        return True


def legacy_contender() -> Contender:
    cookie = SessionCookie(
        cookie_name="cookie",
        identifier="general_verifier",
        auto_error=True,
        secret_key="bench-secret",
        cookie_params=CookieParameters(),
    )
    backend = InMemoryBackend[UUID, SessionData]()
    verifier = BasicVerifier(
        identifier="general_verifier",
        auto_error=True,
        backend=backend,
        auth_http_exception=HTTPException(status_code=403, detail="invalid session"),
    )
    app = FastAPI()

    @app.post("/setup")
    async def setup() -> JSONResponse:
        session = uuid4()
        await backend.create(session, SessionData(counter=0, user=USER_VALUE))
        response = JSONResponse({"value": 0})
        cookie.attach_to_response(response, session)
        return response

    # Written as in the guide (hence noqa B008): the frontend must resolve
    # before the verifier; the session id parameter reuses the cached
    # frontend dependency.
    @app.get("/rmw", dependencies=[Depends(cookie)])
    async def rmw(
        session_id: UUID = Depends(cookie),  # noqa: B008
        data: SessionData = Depends(verifier),  # noqa: B008
    ) -> JSONResponse:
        value = data.counter + 1
        await backend.update(session_id, SessionData(counter=value, user=data.user))
        return JSONResponse({"value": value})

    @app.get("/ro", dependencies=[Depends(cookie)])
    async def ro(data: SessionData = Depends(verifier)) -> JSONResponse:  # noqa: B008
        return JSONResponse({"value": data.user})

    return Contender(LEGACY, app, backend, LEGACY_WRITE_METHODS)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--repeats", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    args = parser.parse_args()
    outcome = run([bare_contender(), legacy_contender()], args.requests, args.repeats, args.warmup)
    env = {pkg: version(pkg) for pkg in ("fastapi-sessions", "fastapi", "starlette", "pydantic")}
    env["python"] = sys.version.split()[0]
    json.dump({"results": outcome.results, "failures": outcome.failures, "versions": env}, sys.stdout)


if __name__ == "__main__":
    main()
