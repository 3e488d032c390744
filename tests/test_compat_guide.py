"""The 0.3.2 getting-started guide app, routes unchanged, on our package: every row of its behaviour.

``GUIDE_APP`` is the guide's "Putting it all together" program copied verbatim
(reference section 3.2). It runs as written on the 0.3.2 ``InMemoryBackend``;
the bridge variants change exactly the backend line (and add the import), the
one-line swap the migration guide promises. Each variant answers the table of
section 2.9, with the fixes: a second logout is a 200, and a route that depends
only on the verifier works instead of a 500.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

import pytest
from fastapi import Depends
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from fastapi_sessions import ManualClock, utc_now
from fastapi_sessions.backends import from_url
from fastapi_sessions.backends.in_memory import InMemoryBackend as Store

T = TypeVar("T")

GUIDE_APP = '''
from pydantic import BaseModel
from fastapi import HTTPException, FastAPI, Response, Depends
from uuid import UUID, uuid4

from fastapi_sessions.backends.implementations import InMemoryBackend
from fastapi_sessions.session_verifier import SessionVerifier
from fastapi_sessions.frontends.implementations import SessionCookie, CookieParameters


class SessionData(BaseModel):
    username: str


cookie_params = CookieParameters()

# Uses UUID
cookie = SessionCookie(
    cookie_name="cookie",
    identifier="general_verifier",
    auto_error=True,
    secret_key="DONOTUSE",
    cookie_params=cookie_params,
)
backend = InMemoryBackend[UUID, SessionData]()


class BasicVerifier(SessionVerifier[UUID, SessionData]):
    def __init__(
        self,
        *,
        identifier: str,
        auto_error: bool,
        backend: InMemoryBackend[UUID, SessionData],
        auth_http_exception: HTTPException,
    ):
        self._identifier = identifier
        self._auto_error = auto_error
        self._backend = backend
        self._auth_http_exception = auth_http_exception

    @property
    def identifier(self):
        return self._identifier

    @property
    def backend(self):
        return self._backend

    @property
    def auto_error(self):
        return self._auto_error

    @property
    def auth_http_exception(self):
        return self._auth_http_exception

    def verify_session(self, model: SessionData) -> bool:
        """If the session exists, it is valid"""
        return True


verifier = BasicVerifier(
    identifier="general_verifier",
    auto_error=True,
    backend=backend,
    auth_http_exception=HTTPException(status_code=403, detail="invalid session"),
)

app = FastAPI()


@app.post("/create_session/{name}")
async def create_session(name: str, response: Response):

    session = uuid4()
    data = SessionData(username=name)

    await backend.create(session, data)
    cookie.attach_to_response(response, session)

    return f"created session for {name}"


@app.get("/whoami", dependencies=[Depends(cookie)])
async def whoami(session_data: SessionData = Depends(verifier)):
    return session_data


@app.post("/delete_session")
async def del_session(response: Response, session_id: UUID = Depends(cookie)):
    await backend.delete(session_id)
    cookie.delete_from_response(response)
    return "deleted session"
'''

IMPORT_LINE = "from fastapi_sessions.backends.implementations import InMemoryBackend\n"
BACKEND_LINE = "backend = InMemoryBackend[UUID, SessionData]()\n"
# The swap: one backend line (plus its import). STORE and TTL are put in the namespace by the fixture.
BRIDGE_IMPORT_LINE = "from fastapi_sessions.backends.implementations import BridgeBackend, InMemoryBackend\n"
BRIDGE_LINE = "backend = BridgeBackend[UUID, SessionData](STORE, ttl=TTL, clock=CLOCK)\n"

SECRET, COOKIE_NAME, MAX_AGE = "DONOTUSE", "cookie", 14 * 24 * 60 * 60
TTL = timedelta(hours=1)  # what the server stores keep after a run
SET_COOKIE = f"; HttpOnly; Max-Age={MAX_AGE}; Path=/; SameSite=lax"
# Produced by the real fastapi-sessions 0.3.2 wheel (attach_to_response for GOLDEN_ID,
# secret "DONOTUSE", cookie name "cookie"); its timestamp is GOLDEN_TIME.
GOLDEN_ID = UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
GOLDEN_COOKIE = "IjBmMWUyZDNjNGI1YTY5Nzg4Nzk2YTViNGMzZDJlMWYwIg.awqFXQ.tJuatmqb4kjg1poM1tf71NGBsdU"
GOLDEN_TIME = int.from_bytes(b"\x6b\x0a\x85\x5d", "big")  # base64url "awqFXQ"


class Guide:
    """One run of the guide app: its module namespace, a client with one event loop, the variant."""

    def __init__(self, namespace: dict[str, Any], client: TestClient, variant: str, clock: ManualClock | None):
        self.ns = namespace
        self.client = client
        self.variant = variant
        self.clock = clock

    def __getattr__(self, name: str) -> Any:
        return self.ns[name]

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run a coroutine function on the client's event loop (the one the store's connections use)."""
        return self.client.portal.call(fn, *args)  # type: ignore[union-attr]

    def present(self, value: str) -> None:
        """Make ``value`` the only cookie the client sends."""
        self.client.cookies.clear()
        self.client.cookies.set("cookie", value)

    def login(self, name: str = "alice") -> str:
        response = self.client.post(f"/create_session/{name}")
        assert response.status_code == 200
        return str(self.client.cookies["cookie"])


def load_guide(*, bridge: bool = False, **namespace: Any) -> dict[str, Any]:
    source = GUIDE_APP
    if bridge:
        assert source.count(BACKEND_LINE) == 1 and source.count(IMPORT_LINE) == 1
        source = source.replace(IMPORT_LINE, BRIDGE_IMPORT_LINE).replace(BACKEND_LINE, BRIDGE_LINE)
    namespace["__name__"] = "guide_app"
    exec(compile(source, "<0.3.2 getting-started guide>", "exec"), namespace)
    return namespace


def _server_store(request: pytest.FixtureRequest, module: str, fixture: str, **options: Any) -> Any:
    if importlib.util.find_spec(f"fastapi_sessions.backends.{module}") is None:
        pytest.skip(f"fastapi_sessions.backends.{module} does not exist yet")
    return from_url(request.getfixturevalue(fixture), **options)


VARIANTS = ["0.3.2-in-memory", "bridge-memory", "bridge-litestore", "bridge-redis", "bridge-postgres"]


@pytest.fixture(params=VARIANTS)
def guide(request: pytest.FixtureRequest) -> Iterator[Guide]:
    variant: str = request.param
    clock: ManualClock | None = None
    if variant == "0.3.2-in-memory":
        namespace = load_guide()
    else:
        if variant == "bridge-memory":
            clock = ManualClock(start=utc_now())  # now, but movable
            store: Any = Store(clock=clock)
        elif variant == "bridge-litestore":
            store = from_url("litestore://")
        elif variant == "bridge-redis":
            # A key space of its own: nothing left by other runs or suites can interfere.
            store = _server_store(request, "redis", "redis_url", prefix=f"compat-test-{uuid4().hex[:12]}:")
        else:
            # A table of its own, dropped afterwards: the shared database keeps nothing of this test.
            store = _server_store(
                request, "sqlalchemy", "postgres_url", create_table=True, table_name=f"compat_{uuid4().hex[:12]}"
            )
        namespace = load_guide(bridge=True, STORE=store, TTL=TTL, CLOCK=clock or utc_now)
    app = namespace["app"]

    # Not a guide route: the pattern 0.3.2 answered with a 500 (issue #18).
    verifier = namespace["verifier"]

    @app.get("/verifier_only")
    async def verifier_only(session_data: Any = Depends(verifier)) -> Any:  # noqa: B008 - the 0.3.2 style
        return session_data

    with TestClient(app) as client:
        yield Guide(namespace, client, variant, clock)
        if variant == "bridge-postgres":
            client.portal.call(store.drop_table)  # type: ignore[union-attr]
        if variant != "0.3.2-in-memory":
            client.portal.call(namespace["backend"].aclose)  # type: ignore[union-attr]


def sign(session_id: UUID, *, secret: str = SECRET, salt: str = COOKIE_NAME, age: int = 0) -> str:
    """A cookie value exactly as 0.3.2 made it, signed ``age`` seconds ago."""
    serializer = URLSafeTimedSerializer(secret, salt=salt)
    signer = serializer.make_signer(salt)
    assert isinstance(signer, TimestampSigner)
    signer.get_timestamp = lambda: int(time.time()) - age  # type: ignore[method-assign]
    payload = serializer.dump_payload(session_id.hex)
    return signer.sign(payload).decode()


# -- the rows of section 2.9 -------------------------------------------------------------------


def test_create_session_answers_and_sets_the_cookie_with_a_real_samesite(guide: Guide) -> None:
    response = guide.client.post("/create_session/alice")
    assert response.status_code == 200
    assert response.json() == "created session for alice"
    header = response.headers["set-cookie"]
    assert header.startswith("cookie=") and header.endswith(SET_COOKIE)  # not SameSite=SameSiteEnum.lax


def test_whoami_with_the_cookie_returns_the_model(guide: Guide) -> None:
    guide.login("alice")
    response = guide.client.get("/whoami")
    assert (response.status_code, response.json()) == (200, {"username": "alice"})


def test_whoami_without_a_cookie_is_403_from_the_frontend(guide: Guide) -> None:
    response = guide.client.get("/whoami")
    assert (response.status_code, response.json()) == (403, {"detail": "No session provided"})


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda value: value[:-2] + ("AA" if not value.endswith("AA") else "BB"), id="tampered"),
        pytest.param(lambda value: sign(UUID(int=1), age=MAX_AGE + 5), id="expired"),
        pytest.param(lambda value: sign(UUID(int=1), salt="other_cookie"), id="other-cookie-name"),
        pytest.param(lambda value: sign(UUID(int=1), secret="another-secret"), id="other-secret"),
        pytest.param(lambda value: "garbage", id="garbage"),
    ],
)
def test_a_bad_cookie_is_401_from_the_frontend(guide: Guide, forge: Callable[[str], str]) -> None:
    value = guide.login()
    guide.present(forge(value))
    response = guide.client.get("/whoami")
    assert (response.status_code, response.json()) == (401, {"detail": "Invalid session provided"})


def test_a_valid_cookie_without_data_is_the_verifiers_403(guide: Guide) -> None:
    guide.present(sign(uuid4()))  # as after a restart of the 0.3.2 process
    response = guide.client.get("/whoami")
    assert (response.status_code, response.json()) == (403, {"detail": "invalid session"})


def test_after_logout_the_old_cookie_is_the_verifiers_403(guide: Guide) -> None:
    value = guide.login()
    response = guide.client.post("/delete_session")
    assert (response.status_code, response.json()) == (200, "deleted session")
    guide.present(value)
    response = guide.client.get("/whoami")
    assert (response.status_code, response.json()) == (403, {"detail": "invalid session"})


def test_logout_clears_the_cookie_with_its_attributes(guide: Guide) -> None:
    guide.login()
    response = guide.client.post("/delete_session")
    header = response.headers["set-cookie"]
    assert header.startswith('cookie=""; expires=')
    assert header.endswith("; HttpOnly; Max-Age=0; Path=/; SameSite=lax")
    assert "cookie" not in guide.client.cookies


def test_logging_out_twice_with_the_same_cookie_is_200_not_500(guide: Guide) -> None:
    """Fixed: 0.3.2's InMemoryBackend.delete raised KeyError. Logout is idempotent now."""
    value = guide.login()
    first = guide.client.post("/delete_session")
    guide.present(value)
    second = guide.client.post("/delete_session")
    assert (first.status_code, first.json()) == (200, "deleted session")
    assert (second.status_code, second.json()) == (200, "deleted session")
    assert second.headers["set-cookie"].startswith('cookie=""')


def test_a_route_with_only_the_verifier_works_instead_of_500(guide: Guide) -> None:
    """Fixed (#18): the verifier brings its frontend along."""
    response = guide.client.get("/verifier_only")
    assert (response.status_code, response.json()) == (403, {"detail": "No session provided"})
    guide.login("bob")
    response = guide.client.get("/verifier_only")
    assert (response.status_code, response.json()) == (200, {"username": "bob"})


def test_the_openapi_security_scheme_is_0_3_2s_and_covers_the_verifier_only_route(guide: Guide) -> None:
    schema = guide.client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"] == {
        "SessionCookie": {"type": "apiKey", "in": "cookie", "name": "cookie"}
    }
    paths = schema["paths"]
    assert paths["/whoami"]["get"]["security"] == [{"SessionCookie": []}]
    assert paths["/delete_session"]["post"]["security"] == [{"SessionCookie": []}]
    assert paths["/verifier_only"]["get"]["security"] == [{"SessionCookie": []}]
    assert "security" not in paths["/create_session/{name}"]["post"]


def test_a_cookie_issued_by_0_3_2_is_accepted(guide: Guide, monkeypatch: pytest.MonkeyPatch) -> None:
    # The signature age is judged against the clock: put "now" a minute after the golden cookie was signed.
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: GOLDEN_TIME + 60)
    guide.run(guide.backend.delete, GOLDEN_ID)  # a server store may keep it from an earlier run
    guide.run(guide.backend.create, GOLDEN_ID, guide.SessionData(username="from-0.3.2"))
    guide.present(GOLDEN_COOKIE)
    response = guide.client.get("/whoami")
    assert (response.status_code, response.json()) == (200, {"username": "from-0.3.2"})


def test_a_cookie_signed_by_the_0_3_2_scheme_now_is_accepted(guide: Guide) -> None:
    session_id = uuid4()
    guide.run(guide.backend.create, session_id, guide.SessionData(username="carol"))
    # Exactly what 0.3.2's attach_to_response put in the cookie.
    guide.present(URLSafeTimedSerializer(SECRET, salt=COOKIE_NAME).dumps(session_id.hex))
    response = guide.client.get("/whoami")
    assert (response.status_code, response.json()) == (200, {"username": "carol"})


def test_the_cookies_we_issue_are_byte_identical_to_0_3_2s(guide: Guide, monkeypatch: pytest.MonkeyPatch) -> None:
    from starlette.responses import Response

    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: GOLDEN_TIME)
    response = Response()
    guide.cookie.attach_to_response(response, GOLDEN_ID)
    assert response.headers["set-cookie"] == f"cookie={GOLDEN_COOKIE}{SET_COOKIE}"


def test_sessions_are_isolated(guide: Guide) -> None:
    alice = guide.login("alice")
    bob = guide.login("bob")
    guide.present(alice)
    assert guide.client.get("/whoami").json() == {"username": "alice"}
    guide.present(bob)
    assert guide.client.get("/whoami").json() == {"username": "bob"}


# -- the bridge: expiry, which 0.3.2 never had ---------------------------------------------------


def test_a_bridged_session_expires_server_side_after_its_ttl() -> None:
    clock = ManualClock(start=utc_now())
    namespace = load_guide(bridge=True, STORE=Store(clock=clock), TTL=timedelta(hours=1), CLOCK=clock)
    with TestClient(namespace["app"]) as client:
        client.post("/create_session/alice")
        assert client.get("/whoami").json() == {"username": "alice"}
        clock.advance(minutes=59)
        assert client.get("/whoami").json() == {"username": "alice"}
        clock.advance(minutes=1)  # the cookie's signature is still good; the server says no
        response = client.get("/whoami")
        assert (response.status_code, response.json()) == (403, {"detail": "invalid session"})
