"""MongoBackend beyond the kit: input is data, schema and indexes, URLs and clients, error mapping.

Tests that need behaviour the nx-27017 stand-in lacks run only against a real
MongoDB and say why when skipped; docs/backends/mongodb.md lists each difference.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient, MongoClient
from pymongo.database import Database
from pymongo.errors import NetworkTimeout, OperationFailure, ServerSelectionTimeoutError

from conftest import silent_server
from fastapi_sessions import SessionRecord
from fastapi_sessions._core.tokens import new_token, storage_key
from fastapi_sessions.backends import from_url
from fastapi_sessions.backends.mongodb import DEFAULT_COLLECTION, DEFAULT_DATABASE, MongoBackend
from fastapi_sessions.errors import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    SessionExists,
    SessionNotFound,
)

Raw = dict[str, Any]


@cache
def _server_process(url: str) -> str:
    client: MongoClient[dict[str, Any]]
    with MongoClient(url, serverSelectionTimeoutMS=5000) as client:
        return str(client.admin.command("buildInfo").get("process", "mongod"))


def skip_on_stand_in(url: str, why: str) -> None:
    """Skip (with the stand-in's shortcoming as the reason) unless the server is a real MongoDB."""
    if _server_process(url) == "nx_27017":
        pytest.skip(f"needs a real MongoDB: the nx-27017 stand-in {why}")


@pytest.fixture(scope="module")
def collection_name(mongodb_url: str) -> Iterator[str]:
    name = f"sessions_backend_{uuid.uuid4().hex[:12]}"
    yield name
    client: MongoClient[dict[str, Any]]
    with MongoClient(mongodb_url, serverSelectionTimeoutMS=5000) as client:
        database: Database[dict[str, Any]] = client.get_default_database("fastapi_sessions_test")
        for existing in database.list_collection_names():
            if existing.startswith(name):
                database.drop_collection(existing)


@pytest_asyncio.fixture
async def backend(mongodb_url: str, collection_name: str) -> AsyncIterator[MongoBackend]:
    async with MongoBackend(mongodb_url, collection=collection_name, serverSelectionTimeoutMS=5000) as backend:
        yield backend


@pytest_asyncio.fixture
async def raw(mongodb_url: str) -> AsyncIterator[AsyncMongoClient[Raw]]:
    client: AsyncMongoClient[Raw] = AsyncMongoClient(mongodb_url, tz_aware=True)
    yield client
    await client.close()


async def raw_doc(client: AsyncMongoClient[Raw], backend: MongoBackend, key: str) -> Raw | None:
    return await client[backend.database_name][backend.collection_name].find_one({"_id": key})


def record(*, key: str | None = None, user_id: str | None = None, payload: bytes = b"{}", ttl: float = 3600,
           now: datetime | None = None) -> SessionRecord:
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    return SessionRecord(key or storage_key(new_token()), payload, user_id, now, now + timedelta(seconds=ttl), 1)


# -- input is data, never query ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_operator_shaped_values_that_are_not_strings_are_rejected(backend: MongoBackend) -> None:
    victims = [record(user_id=f"victim-{uuid.uuid4().hex}") for _ in range(3)]
    for victim in victims:
        await backend.create(victim)
    injection: Any = {"$ne": None}
    with pytest.raises(TypeError):
        await backend.list_by_user(injection)
    with pytest.raises(TypeError):
        await backend.delete_by_user(injection)
    with pytest.raises(TypeError):
        await backend.read({"$gt": ""})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await backend.touch({"$exists": True}, datetime.now(UTC))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await backend.delete({"$exists": True})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await backend.create(record(user_id=injection))
    with pytest.raises(TypeError):
        await backend.update(SessionRecord(victims[0].key, b"{}", injection, victims[0].created_at,
                                           victims[0].expires_at, 1), 1)
    with pytest.raises(TypeError):
        await backend.create(SessionRecord(storage_key(new_token()), {"$set": 1}, None,  # type: ignore[arg-type]
                                           victims[0].created_at, victims[0].expires_at, 1))
    for victim in victims:  # nothing was matched, changed or deleted
        assert await backend.read(victim.key) == victim


@pytest.mark.asyncio
@pytest.mark.parametrize("value", ["$where", "$ne", "a.b", '{"$ne": null}', "$gt", "this.x == 1", ".", "$"])
async def test_operator_like_strings_are_stored_and_matched_literally(
    backend: MongoBackend, raw: AsyncMongoClient[Raw], value: str
) -> None:
    # The exact string (no unique suffix): the module's collection is this run's alone.
    bystander = record(user_id=f"bystander-{uuid.uuid4().hex}")
    await backend.create(bystander)
    await backend.delete_by_user(value)  # a previous parametrization may share a prefix: start clean
    mine = record(user_id=value, payload=b'{"$set":{"a.b":1},"$where":"1"}')
    await backend.create(mine)
    doc = await raw_doc(raw, backend, mine.key)
    assert doc is not None and doc["user_id"] == value and doc["payload"] == mine.payload
    assert [r.key for r in await backend.list_by_user(value)] == [mine.key]
    assert await backend.list_by_user(value[:-1] or "x") == []  # no prefix, pattern or path match
    assert await backend.delete_by_user(value) == 1
    assert await backend.read(bystander.key) == bystander


@pytest.mark.asyncio
@pytest.mark.parametrize("key", ["$where", "a.b", '{"$ne": null}', "$"])
async def test_operator_like_keys_are_literal(backend: MongoBackend, key: str) -> None:
    other = record()
    await backend.create(other)
    unique = f"{key}-{uuid.uuid4().hex}"
    mine = record(key=unique)
    await backend.create(mine)
    assert await backend.read(unique) == mine
    assert await backend.read(key) is None
    assert await backend.update(SessionRecord(unique, b"[1]", None, mine.created_at, mine.expires_at, 1), 1) == 2
    assert await backend.delete(unique) is True
    assert await backend.read(other.key) == other


# -- schema, timestamps, indexes -------------------------------------------------------------


@pytest.mark.asyncio
async def test_document_schema(backend: MongoBackend, raw: AsyncMongoClient[Raw]) -> None:
    anonymous, user = record(payload=b"\x00\xff"), record(user_id="u-" + uuid.uuid4().hex)
    await backend.create(anonymous)
    await backend.create(user)
    doc = await raw_doc(raw, backend, anonymous.key)
    assert doc is not None
    assert set(doc) == {"_id", "payload", "created_ms", "expires_ms", "expires_at", "version"}  # no user_id
    assert doc["payload"] == b"\x00\xff" and doc["version"] == 1
    assert doc["expires_ms"] == int(anonymous.expires_at.timestamp() * 1000)
    assert doc["created_ms"] == int(anonymous.created_at.timestamp() * 1000)
    # A BSON date for the TTL index: the system time plus what the record has left.
    assert abs(doc["expires_at"] - anonymous.expires_at) < timedelta(seconds=5)
    user_doc = await raw_doc(raw, backend, user.key)
    assert user_doc is not None and user_doc["user_id"] == user.user_id


@pytest.mark.asyncio
async def test_timestamps_are_aware_utc_floored_to_milliseconds(backend: MongoBackend) -> None:
    tokyo = timezone(timedelta(hours=9))
    created = datetime(2030, 1, 2, 3, 4, 5, 678999, tzinfo=tokyo)
    expires = datetime.now(UTC) + timedelta(hours=1, microseconds=999)
    key = storage_key(new_token())
    await backend.create(SessionRecord(key, b"{}", None, created, expires, 1))
    got = await backend.read(key)
    assert got is not None
    assert got.created_at == created.replace(microsecond=678000) and got.created_at.tzinfo is UTC
    assert got.expires_at == expires.replace(microsecond=expires.microsecond // 1000 * 1000)
    assert got.expires_at.tzinfo is UTC


@pytest.mark.asyncio
async def test_update_keeps_created_at_and_drops_the_user(backend: MongoBackend) -> None:
    user = "u-" + uuid.uuid4().hex
    original = record(user_id=user)
    await backend.create(original)
    moved = SessionRecord(original.key, b"[2]", None, original.created_at - timedelta(days=1), original.expires_at, 1)
    assert await backend.update(moved, 1) == 2
    got = await backend.read(original.key)
    assert got == SessionRecord(original.key, b"[2]", None, original.created_at, original.expires_at, 2)
    assert await backend.list_by_user(user) == []


@pytest.mark.asyncio
async def test_concurrent_creates_over_an_expired_document_have_one_winner(backend: MongoBackend) -> None:
    old = record(ttl=0.3)
    await backend.create(old)
    await asyncio.sleep(0.5)
    attempts = [record(key=old.key, payload=f"[{i}]".encode()) for i in range(10)]
    results = await asyncio.gather(*(backend.create(r) for r in attempts), return_exceptions=True)
    winners = [i for i, result in enumerate(results) if result is None]
    assert len(winners) == 1, results
    assert all(isinstance(r, SessionExists) for i, r in enumerate(results) if i != winners[0]), results
    assert await backend.read(old.key) == attempts[winners[0]]


@pytest.mark.asyncio
async def test_indexes_are_created_idempotently(mongodb_url: str, collection_name: str) -> None:
    name = f"{collection_name}_idx"
    for _ in range(2):  # a second backend, and a second ensure_indexes, change nothing
        async with MongoBackend(mongodb_url, collection=name) as backend:
            await backend.ensure_indexes()
            await backend.ensure_indexes()
            await backend.create(record())  # the first operation also ensures them
            info = await backend.collection.index_information()
    by_key = {tuple(spec["key"]): spec for spec in info.values()}
    assert by_key[(("expires_at", 1),)]["expireAfterSeconds"] == 0
    assert (("user_id", 1),) in by_key
    assert (("expires_ms", 1),) in by_key  # what purge_expired() walks
    assert len(info) == 4  # _id, the TTL index, user_id, expires_ms


@pytest.mark.asyncio
async def test_user_id_index_is_sparse(mongodb_url: str, collection_name: str) -> None:
    skip_on_stand_in(mongodb_url, "accepts sparse=True but does not report it in listIndexes")
    async with MongoBackend(mongodb_url, collection=f"{collection_name}_sparse") as backend:
        await backend.ensure_indexes()
        info = await backend.collection.index_information()
    assert any(spec["key"] == [("user_id", 1)] and spec.get("sparse") is True for spec in info.values())


@pytest.mark.asyncio
async def test_a_conflicting_index_is_a_configuration_error(mongodb_url: str, collection_name: str) -> None:
    skip_on_stand_in(mongodb_url, "silently changes expireAfterSeconds of an existing index instead of code 85")
    async with MongoBackend(mongodb_url, collection=f"{collection_name}_conflict") as backend:
        await backend.collection.create_index("expires_at", name="expires_at_ttl", expireAfterSeconds=3600)
        with pytest.raises(ConfigurationError, match="conflicts"):
            await backend.ensure_indexes()


@pytest.mark.asyncio
async def test_touch_and_update_keep_the_ttl_field_a_bson_date(
    backend: MongoBackend, raw: AsyncMongoClient[Raw], mongodb_url: str
) -> None:
    skip_on_stand_in(mongodb_url, "stores a datetime written by $set as a string, so its TTL field stops being a date")
    original = record()
    now = original.created_at
    await backend.create(original, now=now)
    later = original.expires_at + timedelta(hours=1)
    assert await backend.touch(original.key, later, now=now)
    doc = await raw_doc(raw, backend, original.key)
    assert doc is not None and isinstance(doc["expires_at"], datetime)
    assert abs(doc["expires_at"] - later) < timedelta(seconds=5)
    latest = later + timedelta(hours=1)
    await backend.update(SessionRecord(original.key, b"[]", None, original.created_at, latest, 1), 1, now=now)
    doc = await raw_doc(raw, backend, original.key)
    assert doc is not None and isinstance(doc["expires_at"], datetime)
    assert abs(doc["expires_at"] - latest) < timedelta(seconds=5)


@pytest.mark.asyncio
async def test_purge_removes_documents_expired_after_an_update(
    backend: MongoBackend, raw: AsyncMongoClient[Raw]
) -> None:
    # purge_expired() filters on expires_ms, so the stand-in's mangled $set dates do not matter.
    original = record()
    await backend.create(original)
    soon = datetime.now(UTC) + timedelta(milliseconds=300)
    await backend.update(SessionRecord(original.key, b"[]", None, original.created_at, soon, 1), 1)
    await asyncio.sleep(0.5)
    assert await backend.purge_expired() >= 1
    assert await raw_doc(raw, backend, original.key) is None


@pytest.mark.asyncio
async def test_update_of_an_expired_document_is_not_found_even_with_the_right_version(backend: MongoBackend) -> None:
    short = record(ttl=0.3)
    await backend.create(short)
    await asyncio.sleep(0.5)
    with pytest.raises(SessionNotFound):
        await backend.update(short, 1)


# -- URLs, clients, registry -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_url_names_database_and_collection() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PyMongo would warn about an unknown "collection" option
        backend = from_url("mongodb://u:pw@127.0.0.1:1/appdb?collection=web_sessions&serverSelectionTimeoutMS=100")
    assert isinstance(backend, MongoBackend)
    assert (backend.database_name, backend.collection_name) == ("appdb", "web_sessions")
    await backend.aclose()
    backend = from_url("mongodb://127.0.0.1:1/", collection="c", database="d")
    assert isinstance(backend, MongoBackend)
    assert (backend.database_name, backend.collection_name) == ("d", "c")
    await backend.aclose()
    backend = MongoBackend("mongodb://127.0.0.1:1")
    assert (backend.database_name, backend.collection_name) == (DEFAULT_DATABASE, DEFAULT_COLLECTION)
    await backend.aclose()


def test_mongodb_srv_is_registered() -> None:
    from fastapi_sessions.backends import available_backends

    found = available_backends()
    assert found["mongodb"].target == "fastapi_sessions.backends.mongodb:from_url"
    assert found["mongodb+srv"].target == "fastapi_sessions.backends.mongodb:from_url"


def test_bad_urls_are_configuration_errors_without_the_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        MongoBackend("mongodb://user:s3cret@127.0.0.1:notaport/db")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ConfigurationError):
        MongoBackend("redis://127.0.0.1/")
    with pytest.raises(ConfigurationError):
        MongoBackend()
    with pytest.raises(ConfigurationError):
        MongoBackend("mongodb://127.0.0.1:1/", collection="")


@pytest.mark.asyncio
async def test_an_existing_client_is_used_and_left_open(mongodb_url: str, collection_name: str) -> None:
    client: AsyncMongoClient[Raw] = AsyncMongoClient(mongodb_url)  # not tz_aware: the backend sets its own
    try:
        backend = MongoBackend(client=client, collection=f"{collection_name}_client")
        assert backend.database_name == "fastapi_sessions_test"  # the client URL's database
        mine = record(user_id="u")
        await backend.create(mine)
        got = await backend.read(mine.key)
        assert got == mine and got.expires_at.tzinfo is UTC
        await backend.aclose()
        assert await client[backend.database_name][backend.collection_name].count_documents({}) == 1
    finally:
        await client.close()
    with pytest.raises(ConfigurationError):
        MongoBackend(client=client, serverSelectionTimeoutMS=5)


# -- errors at the boundary ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_unreachable_server_message_has_no_password() -> None:
    with silent_server() as port:  # not a closed port: see silent_server
        async with MongoBackend(
            f"mongodb://admin:hunter2@127.0.0.1:{port}/db", serverSelectionTimeoutMS=200, connectTimeoutMS=10_000
        ) as backend:
            with pytest.raises(BackendUnavailable) as caught:
                await backend.read(storage_key(new_token()))
    assert "hunter2" not in str(caught.value) and "***" in str(caught.value)
    assert isinstance(caught.value.__cause__, ServerSelectionTimeoutError)


class _Failing:
    """A collection stand-in whose every call raises ``exc``."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def __getattr__(self, name: str) -> Any:
        async def fail(*args: object, **kwargs: object) -> None:
            raise self.exc

        return fail


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (NetworkTimeout("timed out"), BackendUnavailable),
        (ServerSelectionTimeoutError("no server"), BackendUnavailable),
        (OperationFailure("not authorized", code=13), BackendError),
    ],
    ids=["network-timeout", "server-selection", "operation-failure"],
)
async def test_driver_errors_are_mapped(exc: Exception, expected: type[BackendError]) -> None:
    backend = MongoBackend("mongodb://127.0.0.1:1/db", create_indexes=False)
    backend.collection = _Failing(exc)  # type: ignore[assignment]
    with pytest.raises(expected) as caught:
        await backend.read(storage_key(new_token()))
    assert type(caught.value) is expected and caught.value.__cause__ is exc
    await backend.aclose()


# -- one clock: the manager's ----------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("skew", [timedelta(hours=-3), timedelta(hours=3)], ids=["clock-behind", "clock-ahead"])
async def test_the_ttl_date_counts_the_time_left_at_now(
    backend: MongoBackend, raw: AsyncMongoClient[Raw], skew: timedelta
) -> None:
    # The TTL monitor compares the date with the server's clock: it must remove the document
    # when its lifetime measured from `now` is over, not at expires_at on the server's clock.
    now = (datetime.now(UTC) + skew).replace(microsecond=0)
    mine = record(now=now)
    await backend.create(mine, now=now)
    doc = await raw_doc(raw, backend, mine.key)
    assert doc is not None and doc["expires_ms"] == int(mine.expires_at.timestamp() * 1000)
    assert abs(doc["expires_at"] - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(seconds=5)
    assert await backend.read(mine.key, now=now) == mine


@pytest.mark.asyncio
async def test_purge_judges_by_the_passed_now_not_the_ttl_date(
    backend: MongoBackend, raw: AsyncMongoClient[Raw]
) -> None:
    now = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    short, long = record(now=now, ttl=60), record(now=now, ttl=3600)
    await backend.create(short, now=now)
    await backend.create(long, now=now)
    assert await backend.purge_expired(now=now + timedelta(seconds=59)) == 0
    # Expired at this `now`, though its TTL date is still a minute ahead on the server's clock.
    assert await backend.purge_expired(now=now + timedelta(seconds=61)) == 1
    assert await raw_doc(raw, backend, short.key) is None
    assert await backend.read(long.key, now=now + timedelta(seconds=61)) == long


@pytest.mark.asyncio
async def test_the_clock_option_judges_calls_without_now(mongodb_url: str, collection_name: str) -> None:
    from fastapi_sessions import ManualClock

    clock = ManualClock()  # 2030: far from the server's clock
    async with from_url(mongodb_url, collection=f"{collection_name}_clock", clock=clock) as backend:
        mine = record(now=clock())
        await backend.create(mine)
        assert await backend.read(mine.key) == mine
        clock.advance(hours=2)
        assert await backend.read(mine.key) is None
