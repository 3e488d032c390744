"""The conformance kit against MongoDB (``FASTAPI_SESSIONS_TEST_MONGODB_URL``, else testcontainers).

CI runs it against the nx-27017 wire-protocol stand-in; with Docker it runs against
the official ``mongo`` image. docs/backends/mongodb.md lists how the two differ.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient, MongoClient

from conftest import silent_server
from fastapi_sessions import SessionBackend, SessionRecord
from fastapi_sessions.backends.mongodb import MongoBackend
from fastapi_sessions.testing import BackendConformance, Capability

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def mongo_collection(mongodb_url: str) -> Iterator[str]:
    """A collection of this module's own, dropped afterwards, so runs never collide."""
    name = f"sessions_kit_{uuid.uuid4().hex[:12]}"
    yield name
    client: MongoClient[dict[str, Any]]
    with MongoClient(mongodb_url, serverSelectionTimeoutMS=5000) as client:
        client.get_default_database("fastapi_sessions_test").drop_collection(name)


def decode_raw(doc: dict[str, object]) -> SessionRecord:
    """The documented schema, decoded independently of the backend's own code."""
    user_id = doc.get("user_id")
    assert user_id is None or isinstance(user_id, str)
    payload, created, expires, version = doc["payload"], doc["created_ms"], doc["expires_ms"], doc["version"]
    assert isinstance(payload, bytes) and isinstance(created, int) and isinstance(expires, int)
    assert isinstance(version, int) and isinstance(doc["_id"], str)
    return SessionRecord(
        doc["_id"],
        payload,
        user_id,
        _EPOCH + timedelta(milliseconds=created),
        _EPOCH + timedelta(milliseconds=expires),
        version,
    )


class TestMongoConformance(BackendConformance):
    # The backend has no fused read (docs/backends/mongodb.md): the kit's read_and_touch tests skip.
    capabilities = frozenset(
        {Capability.OUT_OF_BAND_READ, Capability.IMMEDIATE_PURGE, Capability.UNREACHABLE_SERVER}
    )
    not_applicable: ClassVar[Mapping[Capability, str]] = {
        Capability.EXACT_PURGE_COUNT: "MongoDB's TTL monitor deletes expired documents on its own (about once "
        "a minute), so purge_expired() cannot promise an exact count",
    }
    strict = True

    @pytest_asyncio.fixture(loop_scope="function")
    async def backend(  # type: ignore[override]  # a fixture override takes its own fixtures
        self, mongodb_url: str, mongo_collection: str
    ) -> AsyncIterator[SessionBackend]:
        self._raw: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url)
        async with MongoBackend(mongodb_url, collection=mongo_collection, serverSelectionTimeoutMS=5000) as backend:
            yield backend
        await self._raw.close()

    @pytest_asyncio.fixture(loop_scope="function")
    async def unreachable_backend(self) -> AsyncIterator[SessionBackend]:
        # A server that hangs, not a closed port: see conftest.silent_server.
        with silent_server() as port:
            url = f"mongodb://127.0.0.1:{port}/unreachable"
            async with MongoBackend(url, serverSelectionTimeoutMS=300, connectTimeoutMS=10_000) as backend:
                yield backend

    async def stored_record(self, backend: SessionBackend, key: str) -> SessionRecord | None:
        # A second client reads the raw document, expired or not.
        assert isinstance(backend, MongoBackend)
        collection = self._raw[backend.database_name][backend.collection_name]
        doc = await collection.find_one({"_id": key})
        return None if doc is None else decode_raw(doc)
