"""The 0.3.2 ``SessionVerifier`` contract, ``auto_error=False``, async ``verify_session`` and the #18 fix."""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.testclient import TestClient

from fastapi_sessions import BackendUnavailable, SessionRecord
from fastapi_sessions.backends.implementations import BridgeBackend, InMemoryBackend
from fastapi_sessions.backends.in_memory import InMemoryBackend as Store
from fastapi_sessions.backends.session_backend import SessionBackend
from fastapi_sessions.frontends.implementations import CookieParameters, SessionCookie
from fastapi_sessions.session_verifier import SessionVerifier
from guide032 import BasicVerifier, SessionData


class Verifier(BasicVerifier):
    """The guide's verifier, refusing one user so that a failed check shows."""

    def verify_session(self, model: SessionData) -> bool:
        return model.username != "banned"


class AsyncVerifier(Verifier):
    async def verify_session(self, model: SessionData) -> bool:  # type: ignore[override]
        return model.username != "banned"


def build(
    *,
    identifier: str,
    auto_error: bool = True,
    verifier_class: type[Verifier] = Verifier,
    backend: SessionBackend[UUID, SessionData] | None = None,
    with_cookie: bool = True,
) -> tuple[FastAPI, Any]:
    backend = backend or InMemoryBackend[UUID, SessionData]()
    cookie = SessionCookie(
        cookie_name="cookie", identifier=identifier, secret_key="secret", cookie_params=CookieParameters(),
        auto_error=auto_error,
    ) if with_cookie else None
    verifier = verifier_class(
        identifier=identifier, auto_error=auto_error, backend=backend,
        auth_http_exception=HTTPException(status_code=403, detail="invalid session"),
    )
    app = FastAPI()
    app.state.keep = (cookie, verifier)  # the frontend registry is weak: the app holds what it uses

    @app.post("/login/{name}")
    async def login(name: str, response: Response) -> str:
        session_id = uuid4()
        await backend.create(session_id, SessionData(username=name))
        assert cookie is not None
        cookie.attach_to_response(response, session_id)
        return "ok"

    if cookie is not None:
        @app.get("/documented", dependencies=[Depends(cookie)])
        async def documented(data: Any = Depends(verifier)) -> Any:  # noqa: B008
            return repr(data) if isinstance(data, Exception) else data

        @app.get("/cookie_param")
        async def cookie_param(value: Any = Depends(cookie)) -> Any:  # noqa: B008
            return repr(value) if isinstance(value, Exception) else str(value)

    @app.get("/verifier_only")
    async def verifier_only(data: Any = Depends(verifier)) -> Any:  # noqa: B008
        return repr(data) if isinstance(data, Exception) else data

    return app, verifier


@pytest.mark.parametrize("verifier_class", [Verifier, AsyncVerifier], ids=["sync", "async"])
def test_verify_session_may_be_sync_or_async(verifier_class: type[Verifier]) -> None:
    app, _ = build(identifier=f"verify-{verifier_class.__name__}", verifier_class=verifier_class)
    client = TestClient(app)
    client.post("/login/alice")
    assert client.get("/documented").json() == {"username": "alice"}
    client.cookies.clear()
    client.post("/login/banned")
    response = client.get("/documented")
    assert (response.status_code, response.json()) == (403, {"detail": "invalid session"})


def test_auto_error_false_the_frontend_gives_an_error_and_the_verifier_none() -> None:
    app, _ = build(identifier="quiet", auto_error=False)
    client = TestClient(app)
    assert client.get("/cookie_param").json() == "FrontendError('No session cookie attached to request')"
    assert client.get("/documented").json() is None
    assert client.get("/verifier_only").json() is None
    client.cookies.set("cookie", "forged.value.here")
    assert client.get("/documented").json() is None
    client.cookies.clear()
    client.post("/login/banned")
    assert client.get("/documented").json() is None
    client.cookies.clear()
    client.post("/login/alice")
    assert client.get("/verifier_only").json() == {"username": "alice"}


def test_the_frontend_runs_once_when_both_dependencies_are_declared() -> None:
    app, _ = build(identifier="once")
    calls: list[str] = []
    cookie = app.state.keep[0]
    original = SessionCookie.__call__

    def counting(self: SessionCookie, request: Any) -> Any:
        calls.append(self.identifier)
        return original(self, request)

    client = TestClient(app)
    client.post("/login/alice")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SessionCookie, "__call__", counting)
        assert client.get("/documented").json() == {"username": "alice"}
    assert calls == [cookie.identifier]


def test_without_any_frontend_the_0_3_2_answers_remain() -> None:
    """No frontend registered under the identifier: nothing can find the id (0.3.2's 500 / BackendError)."""
    app, _ = build(identifier="nobody-registered", with_cookie=False)
    response = TestClient(app, raise_server_exceptions=False).get("/verifier_only")
    assert (response.status_code, response.json()) == (500, {"detail": "internal failure of session verification"})
    app, _ = build(identifier="nobody-registered-quiet", with_cookie=False, auto_error=False)
    assert TestClient(app).get("/verifier_only").json() == (
        "BackendError('failed to extract the {} session from state', 'nobody-registered-quiet')"
    )


def test_a_frontend_registered_after_the_route_is_found_at_request_time() -> None:
    app, _ = build(identifier="late", with_cookie=False)
    cookie = SessionCookie(cookie_name="cookie", identifier="late", secret_key="secret",
                           cookie_params=CookieParameters(), auto_error=True)
    client = TestClient(app)
    response = client.get("/verifier_only")
    assert (response.status_code, response.json()) == (403, {"detail": "No session provided"})
    assert "security" not in client.get("/openapi.json").json()["paths"]["/verifier_only"]["get"]
    del cookie


def test_the_base_keeps_no_state_and_is_not_enforced_as_abstract() -> None:
    SessionVerifier()  # as in 0.3.2: not an ABC, so this instantiates
    assert "__init__" not in SessionVerifier.__dict__


def test_a_subclass_with_its_own_call_keeps_its_signature() -> None:
    class Custom(Verifier):
        async def __call__(self, request: Request) -> Any:  # type: ignore[override]
            return await super().__call__(request)

    app, verifier = build(identifier="custom-call", verifier_class=Custom)
    assert list(inspect.signature(verifier).parameters) == ["request"]
    client = TestClient(app)
    client.post("/login/alice")
    assert client.get("/documented").json() == {"username": "alice"}


class DownStore(Store):
    async def read(self, key: str, *, now: datetime | None = None) -> SessionRecord | None:
        raise BackendUnavailable("connection refused")


def test_a_store_outage_is_a_503_not_a_500() -> None:
    backend = BridgeBackend[UUID, SessionData](DownStore())
    app, _ = build(identifier="outage", backend=backend)
    client = TestClient(app)
    from itsdangerous import URLSafeTimedSerializer

    client.cookies.set("cookie", URLSafeTimedSerializer("secret", salt="cookie").dumps(uuid4().hex))
    response = client.get("/documented")
    assert response.status_code == 503
    assert response.json() == {"detail": "The session store is unavailable; try again shortly."}
