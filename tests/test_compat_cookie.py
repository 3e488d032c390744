"""The 0.3.2 ``SessionCookie``: attributes, wire format, errors, ``auto_error=False`` and the fixes."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi import Depends, FastAPI, Response
from fastapi.openapi.models import APIKey
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from pydantic import ValidationError

from fastapi_sessions.frontends.implementations import CookieParameters, SameSiteEnum, SessionCookie
from fastapi_sessions.frontends.session_frontend import FrontendError, find_frontend


def make_cookie(**options: Any) -> SessionCookie:
    params = options.pop("cookie_params", CookieParameters())
    defaults: dict[str, Any] = {"cookie_name": "cookie", "identifier": "cookie-tests", "secret_key": "DONOTUSE"}
    return SessionCookie(**{**defaults, **options}, cookie_params=params)


def app_for(cookie: SessionCookie) -> FastAPI:
    app = FastAPI()

    @app.get("/id")
    def session_id(value: Any = Depends(cookie)) -> Any:  # noqa: B008 - the 0.3.2 style
        return repr(value) if isinstance(value, FrontendError) else str(value)

    @app.post("/login")
    def login(response: Response) -> str:
        cookie.attach_to_response(response, UUID(int=7))
        return "ok"

    @app.post("/logout")
    def logout(response: Response) -> str:
        cookie.delete_from_response(response)
        return "ok"

    return app


def test_defaults_and_attributes_are_0_3_2s() -> None:
    params = CookieParameters()
    assert dict(params) == {
        "max_age": 14 * 24 * 60 * 60, "path": "/", "domain": None, "secure": False, "httponly": True,
        "samesite": SameSiteEnum.lax,
    }
    cookie = make_cookie()
    assert cookie.auto_error is False
    assert cookie.scheme_name == "SessionCookie"
    assert cookie.identifier == "cookie-tests"
    assert cookie.model == APIKey(**{"in": "cookie"}, name="cookie")  # type: ignore[arg-type]
    assert isinstance(cookie.signer, URLSafeTimedSerializer)
    assert cookie.cookie_params == params and cookie.cookie_params is not params  # a copy, as 0.3.2 made
    assert make_cookie(scheme_name="My Cookies").scheme_name == "My Cookies"


def test_samesite_accepts_strings_and_prints_its_value() -> None:
    assert CookieParameters(samesite="strict").samesite is SameSiteEnum.strict  # type: ignore[arg-type]
    assert CookieParameters(samesite="Lax").samesite is SameSiteEnum.lax  # type: ignore[arg-type]
    assert str(SameSiteEnum.none) == "none" and f"{SameSiteEnum.lax}" == "lax"
    assert SameSiteEnum.lax == "lax"
    with pytest.raises(ValidationError):
        CookieParameters(samesite="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize("samesite", ["lax", "strict", "none"])
def test_set_and_delete_carry_every_attribute(samesite: str) -> None:
    params = CookieParameters(max_age=600, path="/app", domain="example.com", secure=True, samesite=samesite)  # type: ignore[arg-type]
    client = TestClient(app_for(make_cookie(cookie_params=params)))
    set_header = client.post("/login").headers["set-cookie"]
    attributes = f"Domain=example.com; HttpOnly; Path=/app; SameSite={samesite}; Secure"
    assert set_header.endswith(f"; {attributes}".replace("HttpOnly;", "HttpOnly; Max-Age=600;"))
    delete_header = client.post("/logout").headers["set-cookie"]
    assert delete_header.startswith('cookie=""; Domain=example.com; expires=')
    assert delete_header.endswith(f"; HttpOnly; Max-Age=0; Path=/app; SameSite={samesite}; Secure")


def test_the_wire_format_is_0_3_2s() -> None:
    cookie = make_cookie()
    session_id = uuid4()
    response = Response()
    cookie.attach_to_response(response, session_id)
    value = response.headers["set-cookie"].split(";")[0].removeprefix("cookie=")
    # Readable by 0.3.2's own signer: the JSON string of uuid.hex, salted with the cookie name.
    assert URLSafeTimedSerializer("DONOTUSE", salt="cookie").loads(value, max_age=60) == session_id.hex
    payload = value.split(".")[0]
    assert payload == URLSafeTimedSerializer("DONOTUSE", salt="cookie").dumps(session_id.hex).split(".")[0]


def test_a_signature_older_than_max_age_is_rejected() -> None:
    cookie = make_cookie(cookie_params=CookieParameters(max_age=60), auto_error=True)
    client = TestClient(app_for(cookie))
    serializer = URLSafeTimedSerializer("DONOTUSE", salt="cookie")
    signer = serializer.make_signer("cookie")
    signer.get_timestamp = lambda: 1_000  # type: ignore[attr-defined]
    client.cookies.set("cookie", signer.sign(serializer.dump_payload(uuid4().hex)).decode())
    response = client.get("/id")
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid session provided"})


@pytest.mark.parametrize(
    "payload",
    ["not-a-uuid", 12345, ["list"], {"a": 1}, None],
    ids=["string", "number", "list", "object", "null"],
)
def test_a_well_signed_value_that_is_no_uuid_is_401_not_500(payload: Any) -> None:
    """Fixed: 0.3.2 let the ValueError escape (a 500) for a validly signed non-UUID payload."""
    client = TestClient(app_for(make_cookie(auto_error=True)))
    client.cookies.set("cookie", URLSafeTimedSerializer("DONOTUSE", salt="cookie").dumps(payload))
    response = client.get("/id")
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid session provided"})


def test_auto_error_true_statuses() -> None:
    client = TestClient(app_for(make_cookie(auto_error=True)))
    response = client.get("/id")
    assert (response.status_code, response.json()) == (403, {"detail": "No session provided"})
    client.cookies.set("cookie", "")
    assert client.get("/id").status_code == 403
    client.cookies.set("cookie", "a.b.c")
    response = client.get("/id")
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid session provided"})


def test_auto_error_false_returns_and_stores_a_frontend_error() -> None:
    cookie = make_cookie()
    client = TestClient(app_for(cookie))
    assert client.get("/id").json() == "FrontendError('No session cookie attached to request')"
    client.cookies.set("cookie", "a.b.c")
    assert client.get("/id").json() == "FrontendError('Session cookie has invalid signature')"
    client.cookies.clear()
    client.post("/login")
    assert client.get("/id").json() == str(UUID(int=7))


def test_the_id_is_handed_off_in_request_state() -> None:
    from starlette.requests import Request

    cookie = make_cookie(identifier="state-test")
    value = URLSafeTimedSerializer("DONOTUSE", salt="cookie").dumps(UUID(int=3).hex)
    request = Request({"type": "http", "headers": [(b"cookie", f"cookie={value}".encode())], "state": {}})
    assert cookie(request) == UUID(int=3)
    assert request.state.session_ids == {"state-test": UUID(int=3)}
    other = make_cookie(identifier="other", cookie_name="other")
    assert isinstance(other(request), FrontendError)
    assert set(request.state.session_ids) == {"state-test", "other"}  # one dict, shared by frontends


def test_cookies_register_by_identifier_weakly() -> None:
    import gc

    cookie = make_cookie(identifier="registry-test")
    assert find_frontend("registry-test") is cookie
    newer = make_cookie(identifier="registry-test")
    assert find_frontend("registry-test") is newer  # the latest wins
    del cookie, newer
    gc.collect()
    assert find_frontend("registry-test") is None


def test_no_pydantic_deprecation_warning() -> None:
    # pytest turns every warning into an error here; 0.3.2 warned on .copy() and .dict().
    cookie = make_cookie(cookie_params=CookieParameters(max_age=5))
    cookie.attach_to_response(Response(), uuid4())
    cookie.delete_from_response(Response())
