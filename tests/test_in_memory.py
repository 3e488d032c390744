"""InMemoryBackend against the storage contract (DESIGN.md, "The storage contract")."""

import asyncio
import heapq
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from fastapi_sessions import (
    BaseSessionBackend,
    ConfigurationError,
    ManualClock,
    SessionBackend,
    SessionConflict,
    SessionExists,
    SessionNotFound,
    SessionRecord,
)
from fastapi_sessions.backends.in_memory import InMemoryBackend, from_url

MINUTE = timedelta(minutes=1)


@pytest.fixture
def record(clock: ManualClock) -> Callable[..., SessionRecord]:
    """Build a record that lives ``ttl`` from now (default ten minutes)."""
    counter = iter(range(1_000_000))

    def make(
        key: str | None = None,
        payload: bytes = b"{}",
        user_id: str | None = None,
        ttl: timedelta = 10 * MINUTE,
        version: int = 1,
    ) -> SessionRecord:
        now = clock()
        return SessionRecord(key or f"key-{next(counter)}", payload, user_id, now, now + ttl, version)

    return make


Make = Callable[..., SessionRecord]


# -- protocol and lifecycle ------------------------------------------------------------------------


def test_is_a_session_backend(backend: InMemoryBackend) -> None:
    assert isinstance(backend, SessionBackend)
    assert isinstance(backend, BaseSessionBackend)


@pytest.mark.asyncio
async def test_is_an_async_context_manager(clock: ManualClock, record: Make) -> None:
    async with InMemoryBackend(clock=clock) as backend:
        assert isinstance(backend, InMemoryBackend)
        await backend.create(record("k"))
        assert await backend.read("k") is not None
    await backend.aclose()  # idempotent


# -- create ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_create_then_read_returns_the_record(backend: InMemoryBackend, record: Make) -> None:
    stored = record("k", b'{"a":1}', user_id="u")
    await backend.create(stored)
    assert await backend.read("k") == stored


@pytest.mark.asyncio
async def test_create_stores_version_one(backend: InMemoryBackend, record: Make) -> None:
    await backend.create(record("k", version=7))
    got = await backend.read("k")
    assert got is not None and got.version == 1


@pytest.mark.asyncio
async def test_create_on_a_live_key_raises_and_keeps_the_original(backend: InMemoryBackend, record: Make) -> None:
    await backend.create(record("k", b"first"))
    with pytest.raises(SessionExists):
        await backend.create(record("k", b"second"))
    got = await backend.read("k")
    assert got is not None and got.payload == b"first"


@pytest.mark.asyncio
async def test_create_over_an_expired_key_works(
    backend: InMemoryBackend, record: Make, clock: ManualClock
) -> None:
    await backend.create(record("k", b"old", user_id="alice", ttl=MINUTE))
    clock.advance(minutes=2)
    await backend.create(record("k", b"new", user_id="bob"))
    got = await backend.read("k")
    assert got is not None and got.payload == b"new" and got.version == 1
    assert await backend.list_by_user("alice") == []
    assert [r.key for r in await backend.list_by_user("bob")] == ["k"]


@pytest.mark.asyncio
async def test_create_exactly_at_expiry_counts_as_expired(
    backend: InMemoryBackend, record: Make, clock: ManualClock
) -> None:
    await backend.create(record("k", ttl=MINUTE))
    clock.advance(MINUTE)  # expires_at == now: no longer live
    assert await backend.read("k") is None
    await backend.create(record("k"))


# -- read ------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_read_unknown_key_is_none_and_creates_nothing(backend: InMemoryBackend) -> None:
    assert await backend.read("missing") is None
    assert len(backend) == 0
    assert await backend.read("missing") is None


@pytest.mark.asyncio
async def test_read_never_returns_an_expired_record(
    backend: InMemoryBackend, record: Make, clock: ManualClock
) -> None:
    await backend.create(record("k", ttl=MINUTE))
    clock.advance(seconds=59)
    assert await backend.read("k") is not None
    clock.advance(seconds=1)
    assert await backend.read("k") is None


@pytest.mark.asyncio
async def test_records_returned_are_immutable_snapshots(backend: InMemoryBackend, record: Make) -> None:
    await backend.create(record("k", b"v1"))
    before = await backend.read("k")
    assert before is not None
    await backend.update(SessionRecord("k", b"v2", None, before.created_at, before.expires_at), 1)
    assert before.payload == b"v1" and before.version == 1


# -- update ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_update_is_compare_and_set_and_returns_the_new_version(
    backend: InMemoryBackend, record: Make
) -> None:
    original = record("k", b"v1")
    await backend.create(original)
    assert await backend.update(replace(original, payload=b"v2"), 1) == 2
    assert await backend.update(replace(original, payload=b"v3", version=99), 2) == 3
    got = await backend.read("k")
    assert got is not None and (got.payload, got.version) == (b"v3", 3)


@pytest.mark.asyncio
async def test_update_with_a_stale_version_conflicts_and_changes_nothing(
    backend: InMemoryBackend, record: Make
) -> None:
    original = record("k", b"v1")
    await backend.create(original)
    await backend.update(replace(original, payload=b"v2"), 1)
    with pytest.raises(SessionConflict):
        await backend.update(replace(original, payload=b"lost"), 1)
    got = await backend.read("k")
    assert got is not None and (got.payload, got.version) == (b"v2", 2)


@pytest.mark.asyncio
async def test_update_of_a_missing_record_raises_not_found(backend: InMemoryBackend, record: Make) -> None:
    with pytest.raises(SessionNotFound):
        await backend.update(record("k"), 1)
    assert await backend.read("k") is None


@pytest.mark.asyncio
async def test_update_of_a_deleted_record_does_not_resurrect(backend: InMemoryBackend, record: Make) -> None:
    original = record("k", user_id="u")
    await backend.create(original)
    await backend.delete("k")
    with pytest.raises(SessionNotFound):
        await backend.update(original, 1)
    assert await backend.read("k") is None
    assert await backend.list_by_user("u") == []


@pytest.mark.asyncio
async def test_update_of_an_expired_record_does_not_resurrect(
    backend: InMemoryBackend, record: Make, clock: ManualClock
) -> None:
    original = record("k", ttl=MINUTE)
    await backend.create(original)
    clock.advance(minutes=2)
    with pytest.raises(SessionNotFound):
        await backend.update(replace(original, expires_at=clock() + 10 * MINUTE), 1)
    assert await backend.read("k") is None


@pytest.mark.asyncio
async def test_update_keeps_created_at_and_sets_expiry(
    backend: InMemoryBackend, record: Make, clock: ManualClock
) -> None:
    original = record("k")
    await backend.create(original)
    clock.advance(minutes=5)
    new_expiry = clock() + 30 * MINUTE
    await backend.update(replace(original, created_at=clock(), expires_at=new_expiry), 1)
    got = await backend.read("k")
    assert got is not None
    assert got.created_at == original.created_at
    assert got.expires_at == new_expiry


@pytest.mark.asyncio
async def test_concurrent_updates_with_the_same_version_have_exactly_one_winner(
    backend: InMemoryBackend, record: Make
) -> None:
    original = record("k", b"start")
    await backend.create(original)

    async def attempt(i: int) -> int:
        await asyncio.sleep(0)  # let every task get going before any of them writes
        return await backend.update(replace(original, payload=f"writer-{i}".encode()), 1)

    results = await asyncio.gather(*(attempt(i) for i in range(20)), return_exceptions=True)
    winners = [i for i, r in enumerate(results) if r == 2]
    assert len(winners) == 1
    assert all(isinstance(r, SessionConflict) for i, r in enumerate(results) if i not in winners)
    got = await backend.read("k")
    assert got is not None
    assert (got.payload, got.version) == (f"writer-{winners[0]}".encode(), 2)


# -- touch -----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_touch_extends_expiry_without_rewriting(
    backend: InMemoryBackend, record: Make, clock: ManualClock
) -> None:
    await backend.create(record("k", b"data", user_id="u", ttl=MINUTE))
    assert await backend.touch("k", clock() + 10 * MINUTE) is True
    clock.advance(minutes=5)
    got = await backend.read("k")
    assert got is not None
    assert (got.payload, got.user_id, got.version) == (b"data", "u", 1)
    assert got.expires_at == clock() + 5 * MINUTE


@pytest.mark.asyncio
async def test_touch_of_missing_or_expired_is_false_and_does_not_resurrect(
    backend: InMemoryBackend, record: Make, clock: ManualClock
) -> None:
    assert await backend.touch("missing", clock() + MINUTE) is False
    await backend.create(record("k", ttl=MINUTE))
    clock.advance(minutes=2)
    assert await backend.touch("k", clock() + 10 * MINUTE) is False
    assert await backend.read("k") is None
    assert len(backend) == 0


@pytest.mark.asyncio
async def test_touch_does_not_break_a_following_update(
    backend: InMemoryBackend, record: Make, clock: ManualClock
) -> None:
    original = record("k")
    await backend.create(original)
    await backend.touch("k", clock() + 20 * MINUTE)
    assert await backend.update(replace(original, payload=b"x"), 1) == 2


# -- delete ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_delete_is_idempotent(backend: InMemoryBackend, record: Make) -> None:
    await backend.create(record("k", user_id="u"))
    assert await backend.delete("k") is True
    assert await backend.delete("k") is False
    assert await backend.delete("never-existed") is False
    assert await backend.read("k") is None
    assert await backend.list_by_user("u") == []


@pytest.mark.asyncio
async def test_delete_of_an_expired_record_reports_nothing_deleted(
    backend: InMemoryBackend, record: Make, clock: ManualClock
) -> None:
    await backend.create(record("k", ttl=MINUTE))
    clock.advance(minutes=2)
    assert await backend.delete("k") is False


# -- per-user index --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_list_by_user_returns_only_live_sessions_of_that_user(
    backend: InMemoryBackend, record: Make, clock: ManualClock
) -> None:
    await backend.create(record("a1", user_id="alice"))
    await backend.create(record("a2", user_id="alice"))
    await backend.create(record("a-short", user_id="alice", ttl=MINUTE))
    await backend.create(record("b1", user_id="bob"))
    await backend.create(record("anon"))
    clock.advance(minutes=2)
    assert sorted(r.key for r in await backend.list_by_user("alice")) == ["a1", "a2"]
    assert [r.key for r in await backend.list_by_user("bob")] == ["b1"]
    assert await backend.list_by_user("carol") == []


@pytest.mark.asyncio
async def test_delete_by_user_removes_only_that_users_live_sessions(
    backend: InMemoryBackend, record: Make, clock: ManualClock
) -> None:
    await backend.create(record("a1", user_id="alice"))
    await backend.create(record("a2", user_id="alice"))
    await backend.create(record("a-short", user_id="alice", ttl=MINUTE))
    await backend.create(record("b1", user_id="bob"))
    await backend.create(record("anon"))
    clock.advance(minutes=2)
    assert await backend.delete_by_user("alice") == 2
    assert await backend.read("a1") is None and await backend.read("a2") is None
    assert await backend.list_by_user("alice") == []
    assert await backend.read("b1") is not None
    assert await backend.read("anon") is not None
    assert await backend.delete_by_user("alice") == 0
    assert await backend.delete_by_user("nobody") == 0


@pytest.mark.asyncio
async def test_user_change_on_update_moves_the_record_between_indexes(
    backend: InMemoryBackend, record: Make
) -> None:
    original = record("k", user_id="alice")
    await backend.create(original)
    await backend.update(replace(original, user_id="bob"), 1)
    assert await backend.list_by_user("alice") == []
    assert [r.key for r in await backend.list_by_user("bob")] == ["k"]
    assert await backend.delete_by_user("alice") == 0
    await backend.update(replace(original, user_id=None), 2)
    assert await backend.list_by_user("bob") == []
    assert await backend.read("k") is not None


@pytest.mark.asyncio
async def test_anonymous_update_gains_a_user(backend: InMemoryBackend, record: Make) -> None:
    original = record("k")
    await backend.create(original)
    await backend.update(replace(original, user_id="alice"), 1)
    assert [r.key for r in await backend.list_by_user("alice")] == ["k"]
    assert await backend.delete_by_user("alice") == 1
    assert await backend.read("k") is None


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "user_id",
    ["élodie", "用户", "o'brien", 'say "hi"', "$where", "a.b.c", "$", ".", "", " spaced ", "x" * 10_000],
)
async def test_unusual_user_ids_work(backend: InMemoryBackend, record: Make, user_id: str) -> None:
    await backend.create(record("k", user_id=user_id))
    await backend.create(record("other", user_id=user_id + "-other"))
    got = await backend.read("k")
    assert got is not None and got.user_id == user_id
    assert [r.key for r in await backend.list_by_user(user_id)] == ["k"]
    assert await backend.delete_by_user(user_id) == 1
    assert await backend.read("other") is not None


@pytest.mark.asyncio
async def test_one_mebibyte_payload_round_trips(backend: InMemoryBackend, record: Make) -> None:
    payload = bytes(range(256)) * 4096
    assert len(payload) == 1 << 20
    await backend.create(record("k", payload))
    got = await backend.read("k")
    assert got is not None and got.payload == payload


# -- expiry reclaiming -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_purge_expired_removes_exactly_the_expired(
    backend: InMemoryBackend, record: Make, clock: ManualClock
) -> None:
    for i in range(5):
        await backend.create(record(f"short-{i}", user_id="u", ttl=MINUTE))
    for i in range(7):
        await backend.create(record(f"long-{i}", user_id="u", ttl=60 * MINUTE))
    clock.advance(minutes=2)
    assert await backend.purge_expired() == 5
    assert len(backend) == 7
    assert all([await backend.read(f"long-{i}") is not None for i in range(7)])
    assert len(await backend.list_by_user("u")) == 7
    assert await backend.purge_expired() == 0


@pytest.mark.asyncio
async def test_purge_expired_skips_touched_records(
    backend: InMemoryBackend, record: Make, clock: ManualClock
) -> None:
    await backend.create(record("k", ttl=MINUTE))
    await backend.touch("k", clock() + 10 * MINUTE)
    clock.advance(minutes=2)
    assert await backend.purge_expired() == 0
    assert await backend.read("k") is not None


@pytest.mark.asyncio
@pytest.mark.parametrize("live", [10, 2000])
async def test_purge_cost_follows_the_expired_count_not_the_table(
    backend: InMemoryBackend, record: Make, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, live: int
) -> None:
    for i in range(live):
        await backend.create(record(f"live-{i}", ttl=600 * MINUTE))
    for i in range(10):
        await backend.create(record(f"dead-{i}", ttl=MINUTE))
    clock.advance(minutes=2)
    heap_before = len(backend._expiry)
    pops = 0
    real_pop = heapq.heappop

    def counting_pop(heap: list[Any]) -> Any:
        nonlocal pops
        pops += 1
        return real_pop(heap)

    monkeypatch.setattr(heapq, "heappop", counting_pop)
    assert await backend.purge_expired() == 10
    assert pops == 10  # the same whether 10 or 2000 live records sit behind them
    assert len(backend._expiry) == heap_before - 10 == live
    assert len(backend) == live


@pytest.mark.asyncio
async def test_expired_records_are_reclaimed_without_an_explicit_purge(
    backend: InMemoryBackend, record: Make, clock: ManualClock
) -> None:
    for i in range(100):
        await backend.create(record(f"old-{i}", ttl=MINUTE))
    clock.advance(minutes=2)
    await backend.create(record("new"))
    assert len(backend) == 1


@pytest.mark.asyncio
async def test_stale_heap_entries_stay_bounded_after_many_touches(
    backend: InMemoryBackend, record: Make, clock: ManualClock
) -> None:
    for i in range(10):
        await backend.create(record(f"k{i}"))
    for step in range(2000):
        clock.advance(seconds=1)
        assert await backend.touch(f"k{step % 10}", clock() + 10 * MINUTE)
        assert len(backend._expiry) <= 2 * len(backend) + 65
    assert all([await backend.read(f"k{i}") is not None for i in range(10)])


@pytest.mark.asyncio
async def test_stale_heap_entries_stay_bounded_after_many_updates(
    backend: InMemoryBackend, record: Make, clock: ManualClock
) -> None:
    original = record("k")
    await backend.create(original)
    for version in range(1, 1000):
        clock.advance(seconds=1)
        await backend.update(replace(original, expires_at=clock() + 10 * MINUTE), version)
    assert len(backend._expiry) <= 2 * len(backend) + 65


# -- max_entries -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_max_entries_bounds_memory_under_churn(clock: ManualClock, record: Make) -> None:
    backend = InMemoryBackend(max_entries=50, clock=clock)
    for i in range(500):
        clock.advance(seconds=1)
        await backend.create(record(f"k{i}", user_id=f"user-{i % 7}"))
        assert len(backend) <= 50
        assert len(backend._expiry) <= 2 * 50 + 65
        assert await backend.read(f"k{i}") is not None  # the newest always fits
    indexed = sum([len(await backend.list_by_user(f"user-{u}")) for u in range(7)])
    assert indexed == len(backend)  # evictions leave no dangling index entries
    assert sum(len(keys) for keys in backend._by_user.values()) == len(backend)


@pytest.mark.asyncio
async def test_max_entries_evicts_the_record_closest_to_expiry(clock: ManualClock, record: Make) -> None:
    backend = InMemoryBackend(max_entries=3, clock=clock)
    await backend.create(record("late", ttl=30 * MINUTE))
    await backend.create(record("soon", ttl=5 * MINUTE))
    await backend.create(record("middle", ttl=20 * MINUTE))
    await backend.create(record("new", ttl=10 * MINUTE))
    assert await backend.read("soon") is None
    assert all([await backend.read(k) is not None for k in ("late", "middle", "new")])


@pytest.mark.asyncio
async def test_max_entries_respects_touches(clock: ManualClock, record: Make) -> None:
    backend = InMemoryBackend(max_entries=2, clock=clock)
    await backend.create(record("a", ttl=5 * MINUTE))
    await backend.create(record("b", ttl=10 * MINUTE))
    await backend.touch("a", clock() + 60 * MINUTE)  # "a" is now the one with the most time left
    await backend.create(record("c", ttl=30 * MINUTE))
    assert await backend.read("b") is None
    assert await backend.read("a") is not None and await backend.read("c") is not None


@pytest.mark.parametrize("bad", [0, -1])
def test_max_entries_must_be_positive(bad: int) -> None:
    with pytest.raises(ConfigurationError, match="max_entries"):
        InMemoryBackend(max_entries=bad)


# -- from_url --------------------------------------------------------------------------------------


def test_from_url_plain() -> None:
    backend = from_url("memory://")
    assert isinstance(backend, InMemoryBackend)
    assert backend.max_entries is None


def test_from_url_with_max_entries() -> None:
    assert from_url("memory://?max_entries=5").max_entries == 5


@pytest.mark.parametrize(
    "url",
    [
        "memory://?max_entries=0",
        "memory://?max_entries=-3",
        "memory://?max_entries=abc",
        "memory://?max_entries=1.5",
        "memory://?size=5",
        "memory://?max_entries=5&colour=blue",
        "redis://localhost",
    ],
)
def test_from_url_rejects_bad_options(url: str) -> None:
    with pytest.raises(ConfigurationError):
        from_url(url)


@pytest.mark.asyncio
async def test_from_url_backend_works_on_the_system_clock() -> None:
    backend = from_url("memory://?max_entries=2")
    now = datetime.now().astimezone()
    await backend.create(SessionRecord("k", b"{}", None, now, now + MINUTE))
    assert await backend.read("k") is not None


@pytest.mark.asyncio
async def test_from_url_takes_a_clock_for_calls_without_now(clock: ManualClock) -> None:
    backend = from_url("memory://", clock=clock)
    now = clock()
    await backend.create(SessionRecord("k", b"{}", None, now, now + MINUTE))
    assert await backend.read("k") is not None
    clock.advance(MINUTE)
    assert await backend.read("k") is None


# -- one clock: the passed `now` decides ---------------------------------------------------------


@pytest.mark.asyncio
async def test_a_passed_now_overrides_the_backends_clock(backend: InMemoryBackend, record: Make) -> None:
    mine, other = record("a", user_id="u"), record("b")  # live for ten minutes on the backend's clock
    await backend.create(mine)
    await backend.create(other)
    after = mine.expires_at + MINUTE
    assert await backend.read("a") == mine  # no `now`: the backend's clock
    assert await backend.read("a", now=after) is None
    assert await backend.purge_expired(now=after) == 1  # `other`; reading `mine` at `after` already dropped it
    assert len(backend) == 0


# -- compact storage -------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "user_id", [None, "", "alice", "Ålice 🎉", "lone \ud800 surrogate", "x" * 70_000, "nul\x00inside"]
)
async def test_every_field_reads_back_exactly(
    backend: InMemoryBackend, record: Make, clock: ManualClock, user_id: str | None
) -> None:
    """Records are stored compactly (times as microseconds); what reads back is what went in."""
    stored = record("k", b'{"a":"\xc3\xa9"}' * 3, user_id=user_id)
    stored = replace(stored, created_at=stored.created_at.replace(microsecond=123_457))
    await backend.create(stored)
    assert await backend.read("k") == stored
    assert [r.key for r in await backend.list_by_user(user_id)] == (["k"] if user_id is not None else [])
    await backend.update(replace(stored, payload=b"{}", expires_at=stored.expires_at + MINUTE), 1)
    got = await backend.read("k")
    assert got == replace(stored, payload=b"{}", expires_at=stored.expires_at + MINUTE, version=2)
    assert await backend.touch("k", stored.expires_at + 2 * MINUTE)
    got = await backend.read("k")
    assert got is not None and got.expires_at == stored.expires_at + 2 * MINUTE and got.version == 2
    assert got.created_at == stored.created_at and got.user_id == user_id and got.payload == b"{}"


@pytest.mark.asyncio
async def test_a_user_index_grows_and_shrinks_through_one_and_several_sessions(
    backend: InMemoryBackend, record: Make
) -> None:
    for key in ("a", "b", "c"):
        await backend.create(record(key, user_id="u"))
    assert sorted(r.key for r in await backend.list_by_user("u")) == ["a", "b", "c"]
    await backend.delete("a")
    await backend.delete("b")
    assert [r.key for r in await backend.list_by_user("u")] == ["c"]
    await backend.create(record("d", user_id="u"))
    assert sorted(r.key for r in await backend.list_by_user("u")) == ["c", "d"]
    assert await backend.delete_by_user("u") == 2
    assert await backend.list_by_user("u") == [] and backend._by_user == {}


@pytest.mark.asyncio
async def test_memory_per_session_stays_near_the_payload_size(clock: ManualClock) -> None:
    """20,000 sessions with 20 bytes of data cost at most 400 bytes each (orjson's buffer is not kept)."""
    import gc
    import tracemalloc

    from fastapi_sessions import JSONSerializer, SessionManager
    from fastapi_sessions.frontends import SessionFrontend

    backend = InMemoryBackend(clock=clock)
    manager = SessionManager(backend, SessionFrontend("k" * 32), clock=clock, serializer=JSONSerializer())
    data = {"u": "abcdefghijkl"}
    assert len(manager.serializer.dumps(data)) == 20
    count = 20_000
    await manager.create_session(data)  # warm up every code path once
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            await manager.create_session(data)
        gc.collect()
        per_session = (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()
    assert len(backend) == count + 1
    assert per_session <= 400, f"{per_session:.0f} bytes per session"


@pytest.mark.asyncio
async def test_reads_stay_exact_past_the_decoded_records_it_keeps(
    backend: InMemoryBackend, record: Make, clock: ManualClock
) -> None:
    """Busy sessions are kept decoded (a bounded number); evicted or not, reads show the latest write."""
    from fastapi_sessions.backends.in_memory import _RECENT

    count = _RECENT * 2 + 3
    for i in range(count):
        await backend.create(record(f"k{i}", user_id=f"u{i % 3}"))
    for rounds in range(2):
        for i in range(count):
            current = await backend.read(f"k{i}")
            assert current is not None and current.version == rounds + 1
            new = replace(current, payload=b'{"r":%d}' % rounds, expires_at=clock() + (rounds + 2) * MINUTE)
            assert await backend.update(new, current.version) == rounds + 2
    clock.advance(minutes=2)
    for i in range(count):
        got = await backend.read(f"k{i}")
        assert got is not None and (got.payload, got.version, got.user_id) == (b'{"r":1}', 3, f"u{i % 3}")
    clock.advance(minutes=2)
    assert [await backend.read(f"k{i}") for i in range(count)] == [None] * count
    assert len(backend._recent) == len(backend) == 0  # the reads dropped what had expired
