"""Exceptions carry their context as attributes, set by the code that really raises them.

A handler or a metric reads ``exc.operation``, ``exc.backend``, ``exc.scheme``
or ``exc.suggestion`` instead of parsing a message; ``key_prefix`` matches a
record in the logs without carrying enough of the key to use it, and nothing
carries a token or a password.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy.engine import make_url

import fastapi_sessions
from fastapi_sessions import (
    BackendUnavailable,
    ConfigurationError,
    SerializationError,
    SessionConflict,
    SessionExists,
    SessionNotFound,
    UnknownBackend,
    errors,
)
from fastapi_sessions._core.clock import utc_now
from fastapi_sessions._core.records import SessionRecord
from fastapi_sessions._core.serializers import JSONSerializer
from fastapi_sessions._core.tokens import new_token, storage_key
from fastapi_sessions.backends import from_url
from fastapi_sessions.backends.in_memory import InMemoryBackend

pytestmark = pytest.mark.asyncio


def _record(key: str) -> SessionRecord:
    now = utc_now()
    return SessionRecord(key, b"{}", None, now, now + timedelta(minutes=5), 1)


async def test_record_errors_name_the_operation_and_a_short_key_prefix() -> None:
    token = new_token()
    key = storage_key(token)
    backend = InMemoryBackend()
    await backend.create(_record(key))
    with pytest.raises(SessionExists) as exists:
        await backend.create(_record(key))
    with pytest.raises(SessionConflict) as conflict:
        await backend.update(_record(key), expected_version=7)
    await backend.delete(key)
    with pytest.raises(SessionNotFound) as gone:
        await backend.update(_record(key), expected_version=1)
    for caught, operation in ((exists, "create"), (conflict, "update"), (gone, "update")):
        error = caught.value
        assert error.operation == operation
        assert error.key_prefix == key[: errors.KEY_PREFIX_LENGTH]
        assert token not in str(error) and key not in str(error)
        assert str(error)  # a message a person can read, not an empty string


async def test_unknown_scheme_carries_the_scheme_the_nearest_and_the_list() -> None:
    with pytest.raises(UnknownBackend) as caught:
        from_url("rdis://localhost/0")
    error = caught.value
    assert (error.scheme, error.suggestion) == ("rdis", "redis")
    assert "memory" in error.available and "redis" in error.available
    assert isinstance(error, ConfigurationError) and isinstance(error, ValueError)


async def test_bad_backend_options_name_the_setting() -> None:
    with pytest.raises(ConfigurationError) as caught:
        from_url("memory://", no_such_option=True)
    assert caught.value.setting == "backend_options"


async def test_serialization_errors_say_which_way() -> None:
    serializer = JSONSerializer()
    with pytest.raises(SerializationError) as encode:
        serializer.dumps({1: "non-str key"})  # type: ignore[dict-item]
    with pytest.raises(SerializationError) as decode:
        serializer.loads(b"not json")
    assert (encode.value.operation, decode.value.operation) == ("encode", "decode")


async def test_an_unreachable_sql_store_names_backend_and_operation(postgres_url: str) -> None:
    from fastapi_sessions.backends.sqlalchemy import SQLAlchemyBackend

    password = "pw-" + uuid.uuid4().hex
    dead = make_url(postgres_url).set(host="127.0.0.1", port=1, password=password)
    async with SQLAlchemyBackend(dead.render_as_string(hide_password=False), connect_timeout=1) as backend:
        with pytest.raises(BackendUnavailable) as caught:
            await backend.read("k" * 64)
    error = caught.value
    assert (error.backend, error.operation) == ("postgresql", "read")
    assert password not in str(error)


async def test_a_missing_table_suggests_creating_it(postgres_url: str) -> None:
    from fastapi_sessions.backends.sqlalchemy import SQLAlchemyBackend

    async with SQLAlchemyBackend(postgres_url, table_name=f"fs_missing_{uuid.uuid4().hex[:8]}") as backend:
        with pytest.raises(fastapi_sessions.BackendError) as caught:
            await backend.read("k" * 64)
    error = caught.value
    assert not isinstance(error, BackendUnavailable)
    assert error.suggestion is not None and "create-table" in error.suggestion
    assert (error.backend, error.operation) == ("postgresql", "read")


async def test_every_public_exception_is_defined_in_the_errors_module() -> None:
    exported = [getattr(fastapi_sessions, name) for name in fastapi_sessions.__all__]
    classes = [item for item in exported if isinstance(item, type) and issubclass(item, BaseException)]
    assert classes, "the package exports its exceptions"
    for cls in classes:
        assert cls.__module__ == errors.__name__, cls
        assert cls.__name__ in errors.__doc__, f"{cls.__name__} is missing from the tree in the docstring"
