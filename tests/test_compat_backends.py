"""The 0.3.2 ``InMemoryBackend`` (with its fixes) and ``BridgeBackend`` onto the new storage contract."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from pydantic import BaseModel

from fastapi_sessions import BackendError as NewBackendError
from fastapi_sessions import BackendUnavailable, ConfigurationError, ManualClock, SessionRecord
from fastapi_sessions._core.tokens import storage_key
from fastapi_sessions.backends.implementations import BridgeBackend, InMemoryBackend
from fastapi_sessions.backends.implementations.bridge import StoreError, StoreUnavailable
from fastapi_sessions.backends.in_memory import InMemoryBackend as Store
from fastapi_sessions.backends.session_backend import BackendError

pytestmark = pytest.mark.asyncio

SID = UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")


class Data(BaseModel):
    username: str
    roles: list[str] = []


# -- 0.3.2 InMemoryBackend --------------------------------------------------------------------


async def test_in_memory_create_read_update_delete_like_0_3_2() -> None:
    backend = InMemoryBackend[UUID, Data]()
    assert await backend.read(SID) is None
    await backend.create(SID, Data(username="a"))
    with pytest.raises(BackendError, match=r"^create can't overwrite an existing session$"):
        await backend.create(SID, Data(username="b"))
    await backend.update(SID, Data(username="c"))
    assert await backend.read(SID) == Data(username="c")
    with pytest.raises(BackendError, match=r"^session does not exist, cannot update$"):
        await backend.update(UUID(int=0), Data(username="x"))
    assert set(backend.data) == {SID}  # 0.3.2's public dict is still there
    await backend.delete(SID)
    assert await backend.read(SID) is None


async def test_in_memory_delete_is_idempotent() -> None:
    """Fixed: 0.3.2 raised KeyError, so a second logout was a 500."""
    backend = InMemoryBackend[UUID, Data]()
    await backend.delete(SID)
    await backend.create(SID, Data(username="a"))
    await backend.delete(SID)
    await backend.delete(SID)


async def test_in_memory_copies_on_create_read_and_update() -> None:
    """Fixed: 0.3.2 stored the caller's object on update (aliasing)."""
    backend = InMemoryBackend[UUID, Data]()
    data = Data(username="a")
    await backend.create(SID, data)
    data.roles.append("created")
    read = await backend.read(SID)
    assert read is not None and read.roles == []
    read.roles.append("read")
    assert (await backend.read(SID)).roles == []  # type: ignore[union-attr]
    update = Data(username="b")
    await backend.update(SID, update)
    update.roles.append("updated")
    assert (await backend.read(SID)) == Data(username="b")


# -- BridgeBackend -----------------------------------------------------------------------------


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(clock: ManualClock) -> Store:
    return Store(clock=clock)


def bridge(store: Any, clock: ManualClock, **options: Any) -> BridgeBackend[UUID, Data]:
    return BridgeBackend[UUID, Data](store, clock=clock, **options)


async def test_bridge_round_trip_and_0_3_2_errors(store: Store, clock: ManualClock) -> None:
    backend = bridge(store, clock)
    assert await backend.read(SID) is None
    await backend.create(SID, Data(username="a", roles=["x"]))
    assert await backend.read(SID) == Data(username="a", roles=["x"])
    with pytest.raises(BackendError, match=r"^create can't overwrite an existing session$"):
        await backend.create(SID, Data(username="b"))
    await backend.update(SID, Data(username="c"))
    assert await backend.read(SID) == Data(username="c")
    await backend.delete(SID)
    await backend.delete(SID)  # idempotent
    assert await backend.read(SID) is None
    with pytest.raises(BackendError, match=r"^session does not exist, cannot update$"):
        await backend.update(SID, Data(username="d"))  # never resurrects


async def test_bridge_stores_a_hashed_key_and_a_json_payload(store: Store, clock: ManualClock) -> None:
    backend = bridge(store, clock, ttl=timedelta(hours=2))
    await backend.create(SID, Data(username="a"))
    (key, record), = store._records.items()
    assert SID.hex not in key and str(SID) not in key  # the store holds no usable id
    assert key == storage_key("fastapi-sessions/0.3:" + SID.hex)
    assert json.loads(record.payload) == {"username": "a", "roles": []}  # JSON, never pickle
    assert record.user_id is None
    assert record.expires_at - record.created_at == timedelta(hours=2)


async def test_the_bridge_clock_decides_liveness_not_the_stores() -> None:
    # A bridge clock years behind the store's own: it is passed to the store as `now` on every call.
    clock = ManualClock(datetime(2020, 1, 1, tzinfo=UTC))
    store = Store()  # its own clock is the system clock, years ahead
    backend = bridge(store, clock, ttl=60)
    await backend.create(SID, Data(username="a"))
    clock.advance(seconds=30)
    await backend.update(SID, Data(username="b"))
    assert await backend.read(SID) == Data(username="b")
    assert await backend.purge_expired() == 0
    clock.advance(seconds=31)
    assert await backend.purge_expired() == 1
    assert await backend.read(SID) is None


async def test_bridge_expires_after_ttl_and_update_does_not_extend(store: Store, clock: ManualClock) -> None:
    backend = bridge(store, clock, ttl=60)
    await backend.create(SID, Data(username="a"))
    clock.advance(seconds=50)
    await backend.update(SID, Data(username="b"))
    clock.advance(seconds=9)
    assert await backend.read(SID) == Data(username="b")
    clock.advance(seconds=1)
    assert await backend.read(SID) is None
    with pytest.raises(BackendError):
        await backend.update(SID, Data(username="c"))
    await backend.create(SID, Data(username="again"))  # an expired id is free again
    assert await backend.purge_expired() == 0


async def test_bridge_purges_expired_records(store: Store, clock: ManualClock) -> None:
    backend = bridge(store, clock, ttl=60)
    await backend.create(SID, Data(username="a"))
    clock.advance(seconds=61)
    assert await backend.purge_expired() == 1
    assert len(store) == 0


async def test_bridge_model_from_subscription_argument_or_subclass(store: Store, clock: ManualClock) -> None:
    class Sub(BridgeBackend[UUID, Data]):
        pass

    for backend in (bridge(store, clock), BridgeBackend(store, model=Data, clock=clock), Sub(store, clock=clock)):
        assert backend.model is Data
    with pytest.raises(ConfigurationError, match="model=SessionData"):
        _ = BridgeBackend(store).model


async def test_bridge_from_a_url_and_by_classmethod() -> None:
    by_url = BridgeBackend[UUID, Data]("memory://", ttl=30)
    assert isinstance(by_url.store, Store) and by_url.ttl == timedelta(seconds=30)
    by_method = BridgeBackend.from_url("memory://?max_entries=5", model=Data)
    assert isinstance(by_method.store, Store) and by_method.store.max_entries == 5
    async with by_method as backend:
        await backend.create(SID, Data(username="a"))
        assert await backend.read(SID) == Data(username="a")
    with pytest.raises(ConfigurationError):
        BridgeBackend(Store(), model=Data, ttl=0)


async def test_bridge_ids_of_other_types(store: Store, clock: ManualClock) -> None:
    backend = BridgeBackend[str, Data](store, clock=clock)
    await backend.create("plain-string-id", Data(username="a"))
    assert await backend.read("plain-string-id") == Data(username="a")
    assert await backend.read("other") is None


async def test_a_payload_that_no_longer_validates_reads_as_none(
    store: Store, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    class Old(BaseModel):
        name: str

    await BridgeBackend[UUID, Old](store, clock=clock).create(SID, Old(name="a"))
    with caplog.at_level(logging.WARNING, logger="fastapi_sessions"):
        assert await bridge(store, clock).read(SID) is None
    assert "does not match Data" in caplog.text


async def test_a_concurrent_write_between_read_and_update_is_retried(store: Store, clock: ManualClock) -> None:
    backend = bridge(store, clock)
    await backend.create(SID, Data(username="a"))
    real_update = store.update
    raced = False

    async def racing_update(record: SessionRecord, expected_version: int, *, now: datetime | None = None) -> int:
        nonlocal raced
        if not raced:  # someone else saves first: our compare-and-set must lose once
            raced = True
            current = await store.read(record.key, now=now)
            assert current is not None
            await real_update(current, current.version, now=now)
        return await real_update(record, expected_version, now=now)

    store.update = racing_update  # type: ignore[method-assign]
    await backend.update(SID, Data(username="last-writer"))
    assert raced and await backend.read(SID) == Data(username="last-writer")


class BrokenStore(Store):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def read(self, key: str, *, now: datetime | None = None) -> SessionRecord | None:
        raise self.error


async def test_store_failures_are_both_kinds_of_backend_error() -> None:
    down = BridgeBackend[UUID, Data](BrokenStore(BackendUnavailable("connection refused")))
    with pytest.raises(StoreUnavailable) as caught:
        await down.read(SID)
    assert isinstance(caught.value, BackendError)  # what 0.3.2 code catches
    assert isinstance(caught.value, BackendUnavailable)  # what new code (and the verifier's 503) catches
    failed = BridgeBackend[UUID, Data](BrokenStore(NewBackendError("disk full")))
    with pytest.raises(StoreError) as error:
        await failed.read(SID)
    assert isinstance(error.value, BackendError) and not isinstance(error.value, BackendUnavailable)
