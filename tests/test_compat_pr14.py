"""The three tests of upstream PR #14 ("added tests", never merged), against our package.

Same app shape as the PR (the guide's cookie, backend and verifier; plain-text
``POST``/``DELETE /session`` and ``GET /session`` behind ``Depends(cookie)``),
same requests and assertions. The PR passed ``cookies=response.cookies`` per
request, which httpx now deprecates (a warning, so an error here); the client's
own cookie jar carries the same cookies.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi.responses import PlainTextResponse
from fastapi.testclient import TestClient

from fastapi_sessions.backends.implementations import InMemoryBackend
from fastapi_sessions.frontends.implementations import CookieParameters, SessionCookie
from guide032 import BasicVerifier, SessionData


@pytest.fixture
def client() -> TestClient:
    cookie = SessionCookie(
        cookie_name="cookie", identifier="general_verifier", auto_error=True, secret_key="DONOTUSE",
        cookie_params=CookieParameters(),
    )
    backend = InMemoryBackend[UUID, SessionData]()
    verifier = BasicVerifier(
        identifier="general_verifier", auto_error=True, backend=backend,
        auth_http_exception=HTTPException(status_code=403, detail="invalid session"),
    )
    app = FastAPI()
    app.state.frontend = cookie  # keep the (weakly registered) frontend alive with the app

    @app.post("/session/{name}", response_class=PlainTextResponse)
    async def create_session(name: str, response: Response) -> str:
        session = uuid4()
        await backend.create(session, SessionData(username=name))
        cookie.attach_to_response(response, session)
        return "OK"

    @app.get("/session", dependencies=[Depends(cookie)])
    async def whoami(session_data: Any = Depends(verifier)) -> Any:  # noqa: B008 - the 0.3.2 style
        return session_data

    @app.delete("/session", response_class=PlainTextResponse)
    async def del_session(response: Response, session_id: UUID = Depends(cookie)) -> str:  # noqa: B008
        await backend.delete(session_id)
        cookie.delete_from_response(response)
        return "deleted session"

    return TestClient(app)


def test_get_session_without_created(client: TestClient) -> None:
    response = client.get("/session")
    assert response.status_code == 403
    assert response.json() == {"detail": "No session provided"}


def test_create_session(client: TestClient) -> None:
    response = client.post("/session/test")
    assert (response.status_code, response.text) == (200, "OK")
    response = client.get("/session")
    assert (response.status_code, response.json()) == (200, {"username": "test"})


def test_create_session_then_clear(client: TestClient) -> None:
    response = client.post("/session/test")
    assert (response.status_code, response.text) == (200, "OK")
    response = client.delete("/session")
    assert (response.status_code, response.text) == (200, "deleted session")
    response = client.get("/session")
    assert response.status_code == 403
    assert response.json() == {"detail": "No session provided"}
