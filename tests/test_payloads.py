"""Session payloads through the app: JSON only, refused clearly when not, unicode intact."""

import asyncio
import dataclasses
import datetime
import decimal
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from conftest import SECRET, app_with
from fastapi_sessions import JSONSerializer, SerializationError, SessionManager
from fastapi_sessions.backends.in_memory import InMemoryBackend


@dataclasses.dataclass
class Point:
    x: int
    y: int


NOT_JSON: dict[str, Callable[[], Any]] = {
    "set": lambda: {1, 2},
    "frozenset": lambda: frozenset({"a"}),
    "datetime": lambda: datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC),
    "date": lambda: datetime.date(2030, 1, 1),
    "bytes": lambda: b"raw",
    "decimal": lambda: decimal.Decimal("1.5"),
    "object": object,
    "dataclass": lambda: Point(1, 2),
    "nested set": lambda: {"inner": [1, {2}]},
    "lone surrogate": lambda: "\ud800",
    "nan": lambda: float("nan"),
    "infinity": lambda: float("-inf"),
    "nested nan": lambda: [None, {"x": float("nan")}],
    "int key": lambda: {1: "a"},
}

SERIALIZERS = {"orjson": lambda: JSONSerializer(use_orjson=True), "stdlib": lambda: JSONSerializer(use_orjson=False)}

UNICODE = {
    "ключ": "значение",
    "日本語": "値 🎉",
    "emoji 🔑": "👩‍💻 zwj sequence",
    "rtl": "مرحبا بالعالم",
    "combining": "e\u0301",
    "control": "tab\tnew\nline\u0000nul",
    "quotes": '"\\\'',
    "": "empty key",
}


def payload_app(manager: SessionManager) -> FastAPI:
    app = app_with(manager)
    app.state.values = {}

    @app.post("/put")
    async def put(request: Request, kind: str) -> dict[str, bool]:
        request.session["v"] = app.state.values[kind]
        return {"ok": True}

    @app.post("/put-all")
    async def put_all(request: Request) -> dict[str, bool]:
        request.session.update(app.state.values)
        return {"ok": True}

    @app.get("/read")
    async def read(request: Request) -> JSONResponse:
        return JSONResponse({"session": request.session})

    @app.get("/types")
    async def types(request: Request) -> dict[str, str]:
        return {key: type(value).__name__ for key, value in request.session.items()}

    return app


@pytest.fixture(params=list(SERIALIZERS))
def serializer_manager(request: pytest.FixtureRequest, make_manager: Callable[..., SessionManager]) -> SessionManager:
    return make_manager(serializer=SERIALIZERS[request.param]())


def _cookie(response: Any) -> str:
    return str(response.cookies["session"])


def _refused(manager: SessionManager, value: Any, cookie: str | None = None) -> None:
    """Putting ``value`` in the session fails with a clear SerializationError and a 500, storing nothing."""
    app = payload_app(manager)
    app.state.values["bad"] = value
    strict = TestClient(app, base_url="https://testserver")
    with pytest.raises(SerializationError, match="not JSON-serializable"):
        strict.post("/put", params={"kind": "bad"}, headers={"cookie": f"session={cookie}"} if cookie else {})

    lenient = TestClient(app, base_url="https://testserver", raise_server_exceptions=False)
    response = lenient.post("/put", params={"kind": "bad"}, headers={"cookie": f"session={cookie}"} if cookie else {})
    assert response.status_code == 500
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("kind", list(NOT_JSON))
def test_non_json_value_in_a_new_session_is_refused_and_never_stored(
    serializer_manager: SessionManager, backend: InMemoryBackend, kind: str
) -> None:
    _refused(serializer_manager, NOT_JSON[kind]())
    assert len(backend) == 0


@pytest.mark.parametrize("kind", list(NOT_JSON))
def test_non_json_value_in_an_existing_session_leaves_the_stored_data_unchanged(
    serializer_manager: SessionManager, backend: InMemoryBackend, kind: str
) -> None:
    app = payload_app(serializer_manager)
    app.state.values["good"] = "kept"
    client = TestClient(app, base_url="https://testserver")
    cookie = _cookie(client.post("/put", params={"kind": "good"}))
    before = dict(backend._records)

    _refused(serializer_manager, NOT_JSON[kind](), cookie)

    assert backend._records == before
    client.cookies.clear()
    assert client.get("/read", headers={"cookie": f"session={cookie}"}).json() == {"session": {"v": "kept"}}


@pytest.mark.parametrize("name", list(SERIALIZERS))
def test_a_uuid_is_stored_as_its_string_with_either_engine(name: str) -> None:
    serializer = SERIALIZERS[name]()
    assert serializer.loads(serializer.dumps({"v": uuid.UUID(int=1)})) == {"v": str(uuid.UUID(int=1))}


def test_serialization_error_message_names_the_offending_type(manager: SessionManager) -> None:
    app = payload_app(manager)
    app.state.values["bad"] = {1, 2}
    with pytest.raises(SerializationError) as info:
        TestClient(app, base_url="https://testserver").post("/put", params={"kind": "bad"})
    assert "set" in str(info.value)
    assert SECRET not in str(info.value)


def test_unicode_keys_and_values_round_trip(serializer_manager: SessionManager) -> None:
    app = payload_app(serializer_manager)
    app.state.values.update(UNICODE)
    client = TestClient(app, base_url="https://testserver")
    cookie = _cookie(client.post("/put-all"))

    client.cookies.clear()
    assert client.get("/read", headers={"cookie": f"session={cookie}"}).json() == {"session": UNICODE}


def test_json_types_round_trip_with_their_types(serializer_manager: SessionManager) -> None:
    values = {"int": 7, "float": 1.5, "bool": True, "none": None, "list": [1, "a", None], "dict": {"n": {"m": []}}}
    app = payload_app(serializer_manager)
    app.state.values.update(values)
    client = TestClient(app, base_url="https://testserver")
    cookie = _cookie(client.post("/put-all"))
    client.cookies.clear()
    headers = {"cookie": f"session={cookie}"}

    assert client.get("/read", headers=headers).json() == {"session": values}
    assert client.get("/types", headers=headers).json() == {
        "int": "int", "float": "float", "bool": "bool", "none": "NoneType", "list": "list", "dict": "dict"
    }


def test_unicode_user_id_is_indexed(manager: SessionManager) -> None:
    app = payload_app(manager)

    @app.post("/login")
    async def login(request: Request) -> dict[str, bool]:
        request.session.user_id = "Ålice 🎉"
        return {"ok": True}

    client = TestClient(app, base_url="https://testserver")
    assert client.post("/login").status_code == 200
    assert [info.user_id for info in asyncio.run(manager.list_sessions("Ålice 🎉"))] == ["Ålice 🎉"]
