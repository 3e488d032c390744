"""Cookie and header frontends: cookie attributes, configuration checks, OpenAPI schemes, key rotation."""

from collections.abc import Callable
from datetime import timedelta
from enum import Enum, StrEnum
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient

from conftest import SECRET, app_with, client_for
from fastapi_sessions import ConfigurationError, ManualClock, Session, SessionManager
from fastapi_sessions._core.tokens import TokenSigner, new_token, storage_key
from fastapi_sessions.frontends import CookieFrontend, HeaderFrontend, SessionFrontend

OLD_KEY = "old-key-0123456789abcdef0123456789"
NEW_KEY = "new-key-fedcba9876543210fedcba9876"
COOKIE_SALT = "fastapi-sessions.cookie"


# -- helpers -------------------------------------------------------------------------------------


def session_app(manager: SessionManager) -> FastAPI:
    app = app_with(manager)

    @app.post("/write")
    async def write(request: Request) -> dict[str, Any]:
        request.session["n"] = request.session.get("n", 0) + 1
        return dict(request.session)

    @app.get("/read")
    async def read(request: Request) -> dict[str, Any]:
        return dict(request.session)

    @app.post("/clear")
    async def clear(request: Request) -> dict[str, Any]:
        request.session.clear()
        return {}

    @app.post("/regenerate")
    async def regenerate(request: Request) -> dict[str, Any]:
        request.session.regenerate()  # type: ignore[attr-defined]
        return {}

    @app.get("/dep")
    async def dep(session: Annotated[Session, Depends(manager.session)]) -> dict[str, Any]:
        return dict(session)

    return app


def parse_set_cookie(header: str) -> tuple[str, str, list[str]]:
    """Name, value and the attribute list (exactly as sent) of one Set-Cookie header."""
    first, *attributes = header.split("; ")
    name, _, value = first.partition("=")
    return name, value, attributes


def attribute_map(attributes: list[str]) -> dict[str, str | None]:
    result: dict[str, str | None] = {}
    for attribute in attributes:
        key, sep, value = attribute.partition("=")
        assert key.lower() not in result, f"duplicate attribute {key}"
        result[key.lower()] = value if sep else None
    return result


def only_set_cookie(response: Any) -> str:
    headers = response.headers.get_list("set-cookie")
    assert len(headers) == 1, headers
    return str(headers[0])


def issue_cookie(frontend: CookieFrontend, max_age: int = 1800) -> str:
    from starlette.datastructures import MutableHeaders

    headers = MutableHeaders()
    frontend.issue(headers, new_token(), max_age)
    return str(headers["set-cookie"])


def clear_cookie(frontend: CookieFrontend) -> str:
    from starlette.datastructures import MutableHeaders

    headers = MutableHeaders()
    frontend.clear(headers)
    return str(headers["set-cookie"])


# -- default attributes ----------------------------------------------------------------------------


def test_default_cookie_has_exactly_the_secure_attributes(manager: SessionManager) -> None:
    response = client_for(session_app(manager)).post("/write")
    assert response.status_code == 200
    name, value, attributes = parse_set_cookie(only_set_cookie(response))
    assert name == "session"
    assert manager.frontend.unsign(value) is not None
    # Max-Age runs to the absolute deadline (8 hours by default); the server enforces idle time.
    assert sorted(attributes) == sorted(["HttpOnly", "Secure", "SameSite=lax", "Path=/", "Max-Age=28800"])


def test_samesite_is_sent_as_the_literal_lowercase_value(manager: SessionManager) -> None:
    header = only_set_cookie(client_for(session_app(manager)).post("/write"))
    assert "SameSite=lax" in header.split("; ")
    assert "SameSite." not in header and "<" not in header


@pytest.mark.parametrize("samesite", ["strict", "none"])
def test_samesite_strict_and_none(samesite: Any) -> None:
    _, _, attributes = parse_set_cookie(issue_cookie(CookieFrontend(SECRET, samesite=samesite)))
    assert attribute_map(attributes)["samesite"] == samesite
    assert "Secure" in attributes


class StrSameSite(StrEnum):
    STRICT = "strict"


class MixinSameSite(str, Enum):  # noqa: UP042 - the pre-3.11 idiom users still have
    STRICT = "strict"


@pytest.mark.parametrize("member", [StrSameSite.STRICT, MixinSameSite.STRICT])
def test_samesite_enum_member_is_sent_as_its_value_not_its_repr(member: Any) -> None:
    header = issue_cookie(CookieFrontend(SECRET, samesite=member))
    assert "SameSite=strict" in header.split("; ")
    assert "SameSite." not in header and "StrSameSite" not in header and "MixinSameSite" not in header


def test_max_age_is_the_time_to_the_absolute_deadline(
    make_manager: Callable[..., SessionManager], clock: ManualClock
) -> None:
    manager = make_manager(idle_timeout=timedelta(hours=1), absolute_timeout=timedelta(minutes=90))
    client = client_for(session_app(manager))
    first = attribute_map(parse_set_cookie(only_set_cookie(client.post("/write")))[2])
    assert first["max-age"] == str(90 * 60)  # however active the user, the session cannot outlive this
    clock.advance(minutes=50)
    assert client.post("/write").headers.get_list("set-cookie") == []  # so no write needs a new cookie
    clock.advance(minutes=39)
    assert client.get("/read").json() == {"n": 2}  # one minute before the end, still there


def test_domain_and_partitioned_are_sent() -> None:
    frontend = CookieFrontend(SECRET, domain="example.com", partitioned=True, path="/app")
    attributes = parse_set_cookie(issue_cookie(frontend, 60))[2]
    assert sorted(attributes) == sorted(
        ["Max-Age=60", "Path=/app", "Domain=example.com", "HttpOnly", "Secure", "SameSite=lax", "Partitioned"]
    )


def test_no_domain_attribute_by_default() -> None:
    assert "domain" not in attribute_map(parse_set_cookie(issue_cookie(CookieFrontend(SECRET)))[2])


def test_non_persistent_cookie_has_no_max_age_or_expires(make_manager: Callable[..., SessionManager]) -> None:
    manager = make_manager(frontend=SessionFrontend(secret_key=SECRET, persistent=False))
    attributes = attribute_map(parse_set_cookie(only_set_cookie(client_for(session_app(manager)).post("/write")))[2])
    assert "max-age" not in attributes
    assert "expires" not in attributes
    assert {"httponly", "secure", "samesite", "path"} <= attributes.keys()


def test_httponly_can_be_turned_off() -> None:
    assert "HttpOnly" not in parse_set_cookie(issue_cookie(CookieFrontend(SECRET, httponly=False)))[2]


# -- clearing --------------------------------------------------------------------------------------


def test_clear_cookie_through_the_app_has_max_age_zero_and_the_same_attributes(manager: SessionManager) -> None:
    client = client_for(session_app(manager))
    client.post("/write")
    response = client.post("/clear")
    name, value, attributes = parse_set_cookie(only_set_cookie(response))
    assert name == "session"
    assert value in ("", '""')
    mapped = attribute_map(attributes)
    assert mapped["max-age"] == "0"
    assert {k: mapped[k] for k in ("path", "samesite")} == {"path": "/", "samesite": "lax"}
    assert "httponly" in mapped and "secure" in mapped


@pytest.mark.parametrize("persistent", [True, False])
def test_clear_cookie_repeats_path_domain_and_flags(persistent: bool) -> None:
    frontend = CookieFrontend(
        SECRET, domain="example.com", path="/app", samesite="strict", partitioned=True, persistent=persistent
    )
    issued = attribute_map(parse_set_cookie(issue_cookie(frontend))[2])
    cleared = attribute_map(parse_set_cookie(clear_cookie(frontend))[2])
    assert cleared.pop("max-age") == "0"
    cleared.pop("expires", None)
    issued.pop("max-age", None)
    assert cleared == issued


# -- configuration checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"secure": False},
        {"path": "/app"},
        {"domain": "example.com"},
    ],
    ids=["not-secure", "path", "domain"],
)
def test_host_prefix_requirements(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match=r"__Host- cookie must be Secure, have Path=/ and no Domain"):
        CookieFrontend(SECRET, cookie_name="__Host-session", **options)


def test_host_prefix_with_the_defaults_is_accepted() -> None:
    header = issue_cookie(CookieFrontend(SECRET, cookie_name="__Host-session"))
    assert header.startswith("__Host-session=")
    assert "domain" not in attribute_map(parse_set_cookie(header)[2])


def test_secure_prefix_requires_secure() -> None:
    with pytest.raises(ConfigurationError, match="__Secure- cookie must be Secure"):
        CookieFrontend(SECRET, cookie_name="__Secure-session", secure=False)
    CookieFrontend(SECRET, cookie_name="__Secure-session", domain="example.com", path="/app")


def test_samesite_none_requires_secure() -> None:
    with pytest.raises(ConfigurationError, match="SameSite=none requires Secure"):
        CookieFrontend(SECRET, samesite="none", secure=False)


def test_partitioned_requires_secure() -> None:
    with pytest.raises(ConfigurationError, match="Partitioned"):
        CookieFrontend(SECRET, partitioned=True, secure=False)


def test_insecure_cookie_is_allowed_when_asked_for_and_has_no_secure_flag() -> None:
    assert "Secure" not in parse_set_cookie(issue_cookie(CookieFrontend(SECRET, secure=False)))[2]


@pytest.mark.parametrize("name", ["", "a b", "a;b", "a=b", "a,b", 'a"b', "séssion", "a\tb", "a\r\nb"])
def test_invalid_cookie_names_are_rejected(name: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid cookie name"):
        CookieFrontend(SECRET, cookie_name=name)


@pytest.mark.parametrize("path", ["", "app", "/a;b", "/app; Domain=evil.com", "/a\r\nSet-Cookie: x=1", "/é"])
def test_invalid_cookie_paths_are_rejected(path: str) -> None:
    with pytest.raises(ConfigurationError, match="cookie path"):
        CookieFrontend(SECRET, path=path)


@pytest.mark.parametrize("domain", ["", "example.com; Secure", "example.com\r\nX-Evil: 1"])
def test_invalid_cookie_domains_are_rejected(domain: str) -> None:
    with pytest.raises(ConfigurationError, match="cookie domain"):
        CookieFrontend(SECRET, domain=domain)


def test_invalid_samesite_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="samesite"):
        CookieFrontend(SECRET, samesite="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize("keys", [[], [""], [b""], ["ok", ""]])
def test_empty_secret_keys_are_rejected(keys: list[Any]) -> None:
    with pytest.raises(ConfigurationError, match="secret key"):
        CookieFrontend(keys)


@pytest.mark.parametrize("name", ["", "X Token", "X-Token:", "Tökén"])
def test_invalid_header_names_are_rejected(name: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid header name"):
        HeaderFrontend(SECRET, header_name=name)


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        CookieFrontend(SECRET, cookie_name="__Host-x", domain="example.com")


# -- OpenAPI ---------------------------------------------------------------------------------------


def openapi_of(manager: SessionManager) -> dict[str, Any]:
    response = client_for(session_app(manager)).get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def test_cookie_frontend_security_scheme_in_openapi(make_manager: Callable[..., SessionManager]) -> None:
    schema = openapi_of(make_manager(frontend=CookieFrontend(SECRET, cookie_name="sid")))
    assert schema["components"]["securitySchemes"] == {
        "CookieFrontend": {"type": "apiKey", "in": "cookie", "name": "sid"}
    }
    operation = schema["paths"]["/dep"]["get"]
    assert operation["security"] == [{"CookieFrontend": []}]
    assert not operation.get("parameters"), "the frontend dependency must not surface as a parameter"


def test_header_frontend_security_scheme_in_openapi(make_manager: Callable[..., SessionManager]) -> None:
    schema = openapi_of(make_manager(frontend=HeaderFrontend(SECRET, header_name="X-Session")))
    assert schema["components"]["securitySchemes"] == {
        "HeaderFrontend": {"type": "apiKey", "in": "header", "name": "X-Session"}
    }
    assert schema["paths"]["/dep"]["get"]["security"] == [{"HeaderFrontend": []}]


def test_bearer_header_frontend_security_scheme_in_openapi(make_manager: Callable[..., SessionManager]) -> None:
    schema = openapi_of(make_manager(frontend=HeaderFrontend(SECRET, bearer=True)))
    scheme = schema["components"]["securitySchemes"]["HeaderFrontend"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"


def test_scheme_name_override(make_manager: Callable[..., SessionManager]) -> None:
    schema = openapi_of(make_manager(frontend=SessionFrontend(secret_key=SECRET, scheme_name="sessionCookie")))
    assert list(schema["components"]["securitySchemes"]) == ["sessionCookie"]
    assert schema["paths"]["/dep"]["get"]["security"] == [{"sessionCookie": []}]


def test_routes_without_the_dependency_carry_no_security(manager: SessionManager) -> None:
    schema = openapi_of(manager)
    assert "security" not in schema["paths"]["/read"]["get"]


def test_session_dependency_works_without_a_cookie(manager: SessionManager) -> None:
    response = client_for(session_app(manager)).get("/dep")
    assert response.status_code == 200
    assert response.json() == {}


def test_session_dependency_sees_the_session(manager: SessionManager) -> None:
    client = client_for(session_app(manager))
    client.post("/write")
    assert client.get("/dep").json() == {"n": 1}


# -- header frontend transport ---------------------------------------------------------------------


def test_header_frontend_round_trip_and_vary(make_manager: Callable[..., SessionManager]) -> None:
    manager = make_manager(frontend=HeaderFrontend(SECRET))
    client = client_for(session_app(manager))
    first = client.post("/write")
    token = first.headers["x-session-token"]
    assert "set-cookie" not in first.headers
    response = client.get("/read", headers={"X-Session-Token": token})
    assert response.json() == {"n": 1}
    vary = [v.strip().lower() for v in response.headers.get("vary", "").split(",")]
    assert "x-session-token" in vary
    assert "cookie" not in vary


def test_bearer_frontend_round_trip_and_vary(make_manager: Callable[..., SessionManager]) -> None:
    manager = make_manager(frontend=HeaderFrontend(SECRET, bearer=True))
    client = client_for(session_app(manager))
    token = client.post("/write").headers["x-session-token"]
    response = client.get("/read", headers={"Authorization": f"Bearer {token}"})
    assert response.json() == {"n": 1}
    assert "authorization" in response.headers["vary"].lower()
    assert client.get("/read", headers={"Authorization": f"Basic {token}"}).json() == {}


def test_header_frontend_clear_sends_an_empty_header(make_manager: Callable[..., SessionManager]) -> None:
    manager = make_manager(frontend=HeaderFrontend(SECRET))
    client = client_for(session_app(manager))
    token = client.post("/write").headers["x-session-token"]
    response = client.post("/clear", headers={"X-Session-Token": token})
    assert response.headers["x-session-token"] == ""
    assert client.get("/read", headers={"X-Session-Token": token}).json() == {}


def test_cookie_and_header_tokens_are_not_interchangeable() -> None:
    token = new_token()
    assert HeaderFrontend(SECRET).unsign(CookieFrontend(SECRET).sign(token)) is None
    assert CookieFrontend(SECRET).unsign(HeaderFrontend(SECRET).sign(token)) is None


# -- key rotation ----------------------------------------------------------------------------------


def test_signer_with_rotated_keys_verifies_old_and_signs_with_new() -> None:
    token = new_token()
    old_signed = TokenSigner([OLD_KEY], salt=COOKIE_SALT).sign(token)
    rotated = TokenSigner([NEW_KEY, OLD_KEY], salt=COOKIE_SALT)
    assert rotated.unsign(old_signed) == token
    new_signed = rotated.sign(token)
    assert new_signed != old_signed
    assert TokenSigner(NEW_KEY, salt=COOKIE_SALT).unsign(new_signed) == token
    assert TokenSigner(OLD_KEY, salt=COOKIE_SALT).unsign(new_signed) is None


def test_signer_rejects_a_retired_key() -> None:
    token = new_token()
    old_signed = TokenSigner(OLD_KEY, salt=COOKIE_SALT).sign(token)
    assert TokenSigner([NEW_KEY], salt=COOKIE_SALT).unsign(old_signed) is None


def test_frontend_with_rotated_keys_verifies_old_and_signs_with_new() -> None:
    token = new_token()
    old_signed = CookieFrontend([OLD_KEY]).sign(token)
    rotated = CookieFrontend([NEW_KEY, OLD_KEY])
    assert rotated.unsign(old_signed) == token
    assert CookieFrontend(NEW_KEY).unsign(rotated.sign(token)) == token
    assert CookieFrontend([NEW_KEY]).unsign(old_signed) is None


def test_bytes_and_str_keys_are_equivalent() -> None:
    token = new_token()
    assert CookieFrontend(OLD_KEY.encode()).unsign(CookieFrontend(OLD_KEY).sign(token)) == token


def test_rotation_through_app_restarts(make_manager: Callable[..., SessionManager], clock: ManualClock) -> None:
    before = client_for(session_app(make_manager(frontend=SessionFrontend(secret_key=[OLD_KEY]))))
    old_cookie = parse_set_cookie(only_set_cookie(before.post("/write")))[1]
    token = CookieFrontend(OLD_KEY).unsign(old_cookie)
    assert token is not None

    # Restart with the new key first and the old one kept for verification.
    rotated = session_app(make_manager(frontend=SessionFrontend(secret_key=[NEW_KEY, OLD_KEY])))
    client = fresh_client(rotated, old_cookie)
    assert client.get("/read").json() == {"n": 1}
    # A cookie is issued once per token (creation, login, regeneration), never re-sent by plain use:
    # the old key must verify until the sessions it signed have reached their absolute deadline.
    assert client.post("/write").headers.get_list("set-cookie") == []
    reissued = parse_set_cookie(only_set_cookie(client.post("/regenerate")))[1]
    assert CookieFrontend(NEW_KEY).unsign(reissued) is not None  # a new token, signed by the new key
    assert CookieFrontend(OLD_KEY).unsign(reissued) is None

    # Restart once more with the old key retired: its cookie no longer opens the session.
    retired = session_app(make_manager(frontend=SessionFrontend(secret_key=[NEW_KEY])))
    assert fresh_client(retired, old_cookie).get("/read").json() == {}
    assert fresh_client(retired, reissued).get("/read").json() == {"n": 2}


def test_retired_key_cookie_gets_a_fresh_session_on_write(
    make_manager: Callable[..., SessionManager], backend: Any
) -> None:
    before = client_for(session_app(make_manager(frontend=SessionFrontend(secret_key=OLD_KEY))))
    old_cookie = parse_set_cookie(only_set_cookie(before.post("/write")))[1]
    old_key = storage_key(CookieFrontend(OLD_KEY).unsign(old_cookie) or "")
    retired = session_app(make_manager(frontend=SessionFrontend(secret_key=NEW_KEY)))
    response = fresh_client(retired, old_cookie).post("/write")
    assert response.json() == {"n": 1}
    new_token_ = CookieFrontend(NEW_KEY).unsign(parse_set_cookie(only_set_cookie(response))[1])
    assert new_token_ is not None
    assert storage_key(new_token_) != old_key


def fresh_client(app: FastAPI, cookie: str) -> TestClient:
    client = client_for(app)
    client.cookies.set("session", cookie)
    return client


def test_only_the_exact_issued_string_verifies() -> None:
    """itsdangerous decodes base64 leniently; non-canonical spellings of a valid signature are refused."""
    frontend = CookieFrontend(SECRET)
    token = new_token()
    signed = frontend.sign(token)
    assert frontend.unsign(signed) == token
    dot = signed.rindex(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    variants = [signed[:-1] + c for c in alphabet if c != signed[-1]]  # other values of the unused low bits
    variants += [signed + "=", signed + "==", signed[: dot + 5] + "==" + signed[dot + 5 :]]
    assert [v for v in variants if frontend.unsign(v) is not None] == []


def test_tampering_with_the_token_part_is_refused() -> None:
    frontend = CookieFrontend(SECRET)
    signed = frontend.sign(new_token())
    dot = signed.rindex(".")
    for i in range(dot):
        flipped = signed[:i] + ("A" if signed[i] != "A" else "B") + signed[i + 1 :]
        assert frontend.unsign(flipped) is None, i
