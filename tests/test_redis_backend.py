"""RedisBackend beyond the kit: URLs and the registry, an application's own client, the index and purge.

Every test on a server runs on Redis and on Valkey (``valkey://``): see the ``redis_url`` fixture below.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.crc import key_slot

from conftest import redis_py_url
from fastapi_sessions import SessionManager, SessionRecord
from fastapi_sessions._core.tokens import new_token, storage_key
from fastapi_sessions.backends import from_url as registry_from_url
from fastapi_sessions.backends.redis import DEFAULT_PREFIX, INDEX_BUCKETS, RedisBackend
from fastapi_sessions.errors import BackendError, BackendUnavailable, ConfigurationError


def record(user: str | None = None, ttl: float = 3600, payload: bytes = b"{}") -> SessionRecord:
    now = datetime.now(UTC)
    return SessionRecord(storage_key(new_token()), payload, user, now, now + timedelta(seconds=ttl))


@pytest.fixture(params=["redis_url", "valkey_url"], ids=["redis", "valkey"])
def redis_url(request: pytest.FixtureRequest) -> str:
    """This module's server: Redis (conftest's ``redis_url``, which this one overrides here) or Valkey."""
    return str(request.getfixturevalue(request.param))


@pytest_asyncio.fixture
async def backend(redis_url: str) -> AsyncIterator[RedisBackend]:
    prefix = f"fs-test-{uuid.uuid4().hex}:"
    backend = RedisBackend.from_url(redis_url, prefix=prefix)
    try:
        yield backend
    finally:
        client = backend.client
        assert isinstance(client, Redis)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await backend.aclose()


# -- URLs and construction ---------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("family", ["redis", "valkey"])
async def test_the_registry_resolves_every_redis_and_valkey_scheme(family: str) -> None:
    plain = registry_from_url(f"{family}://127.0.0.1:6379/3?prefix=app:")
    tls = registry_from_url(f"{family}s://user:pw@127.0.0.1:6380/0")
    cluster = registry_from_url(f"{family}+cluster://127.0.0.1:7000/0")
    tls_cluster = registry_from_url(f"{family}s+cluster://127.0.0.1:7000")
    try:
        assert all(isinstance(b, RedisBackend) for b in (plain, tls, cluster, tls_cluster))
        assert isinstance(plain, RedisBackend) and isinstance(tls, RedisBackend)
        assert isinstance(plain.client, Redis) and plain.prefix == "app:"
        assert plain.client.get_connection_kwargs()["db"] == 3  # type: ignore[no-untyped-call]
        assert plain.client.connection_pool.connection_class is not SSLConnection
        assert isinstance(tls.client, Redis) and tls.prefix == DEFAULT_PREFIX
        assert tls.client.connection_pool.connection_class is SSLConnection
        assert isinstance(cluster, RedisBackend) and isinstance(cluster.client, RedisCluster)
        assert isinstance(tls_cluster, RedisBackend) and isinstance(tls_cluster.client, RedisCluster)
        kwargs = tls_cluster.client.get_connection_kwargs()
        assert kwargs["connection_class"] is SSLConnection
    finally:
        for b in (plain, tls, cluster, tls_cluster):
            await b.aclose()


def test_bad_urls_are_configuration_errors_with_the_password_masked() -> None:
    with pytest.raises(ConfigurationError) as caught:
        RedisBackend.from_url("redis://user:s3cret@127.0.0.1:6379/0?socket_timeout=soon")
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)
    with pytest.raises(ConfigurationError, match="database 0"):
        RedisBackend.from_url("redis+cluster://127.0.0.1:7000/2")
    with pytest.raises(ConfigurationError, match="database 0"):
        RedisBackend.from_url("valkey+cluster://127.0.0.1:7000/2")
    with pytest.raises(ConfigurationError, match="not a Redis or Valkey URL"):
        RedisBackend.from_url("memcached://127.0.0.1:11211")
    with pytest.raises(ConfigurationError) as caught:
        RedisBackend.from_url("valkeys://user:s3cret@127.0.0.1:6379/0?socket_timeout=soon")
    assert "s3cret" not in str(caught.value) and "valkeys://user:***@" in str(caught.value)


@pytest.mark.asyncio
async def test_unavailable_errors_mask_the_password() -> None:
    async with RedisBackend.from_url("redis://user:s3cret@127.0.0.1:1/0") as backend:
        with pytest.raises(BackendUnavailable) as caught:
            await backend.read("k")
    assert "s3cret" not in str(caught.value)
    assert caught.value.__cause__ is not None  # chained to the driver's error


@pytest.mark.asyncio
async def test_a_manager_from_url_runs_on_redis(redis_url: str) -> None:
    prefix = f"fs-test-{uuid.uuid4().hex}:"
    async with SessionManager.from_url(redis_url, secret_key="k" * 32, backend_options={"prefix": prefix}) as manager:
        assert isinstance(manager.backend, RedisBackend) and manager.backend.prefix == prefix
        session_id = await manager.create_session({"a": 1}, user_id="alice")
        session = await manager.get_session(session_id)
        assert session is not None and dict(session) == {"a": 1}
        assert [info.user_id for info in await manager.list_sessions("alice")] == ["alice"]
        assert await manager.revoke_user("alice") == 1
        client = manager.backend.client
        assert isinstance(client, Redis)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:  # the purge queue still names alice's index until its score is due
            await client.delete(*keys)


@pytest.mark.asyncio
async def test_an_application_client_is_used_and_left_open(redis_url: str) -> None:
    client = Redis.from_url(redis_py_url(redis_url))
    backend = RedisBackend(client, prefix=f"fs-test-{uuid.uuid4().hex}:")
    r = record()
    await backend.create(r)
    assert await backend.read(r.key) == r
    assert await backend.delete(r.key)
    await backend.aclose()
    await backend.aclose()
    assert await client.ping()  # still the application's, still open
    await client.aclose()


def test_a_client_that_decodes_responses_is_refused(redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="decode_responses"):
        RedisBackend(Redis.from_url(redis_py_url(redis_url), decode_responses=True))


@pytest.mark.asyncio
async def test_a_store_error_that_is_not_an_outage_is_backend_error(backend: RedisBackend) -> None:
    r = record()
    await backend.client.set(backend.session_key(r.key), b"x")
    await backend.client.lpush(backend.index_key("alice"), b"not a sorted set")
    with pytest.raises(BackendError) as caught:
        await backend.list_by_user("alice")  # WRONGTYPE
    assert not isinstance(caught.value, BackendUnavailable)
    assert (caught.value.backend, caught.value.operation) == ("redis", "list_by_user")


@pytest.mark.asyncio
async def test_an_outage_error_names_the_backend_and_the_storage_call() -> None:
    r = record("alice")
    async with RedisBackend.from_url("redis://127.0.0.1:1/0") as backend:
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "create": lambda: backend.create(r),
            "read": lambda: backend.read(r.key),
            "read_and_touch": lambda: backend.read_and_touch(
                r.key, now=r.created_at, idle_timeout=timedelta(hours=1), absolute_timeout=timedelta(hours=8),
                refresh_interval=timedelta(minutes=1)),
            "update": lambda: backend.update(r, 1),
            "touch": lambda: backend.touch(r.key, r.expires_at),
            "delete": lambda: backend.delete(r.key),
            "list_by_user": lambda: backend.list_by_user("alice"),
            "delete_by_user": lambda: backend.delete_by_user("alice"),
            "purge_expired": lambda: backend.purge_expired(),
        }
        for operation, call in calls.items():
            with pytest.raises(BackendUnavailable) as caught:
                await call()
            assert (caught.value.backend, caught.value.operation) == ("redis", operation)


# -- the key layout ----------------------------------------------------------------------------


def test_an_index_and_its_purge_queue_share_a_slot() -> None:
    backend = RedisBackend(Redis(), prefix="p:")
    slots = set()
    for n in range(200):
        index = backend.index_key(f"user-{n}")
        assert key_slot(index.encode()) == key_slot(backend._queue_key(index).encode())
        slots.add(key_slot(index.encode()))
    assert len(slots) == INDEX_BUCKETS  # the users spread over every bucket
    assert backend.session_key("abc") == "p:s:abc"


@pytest.mark.asyncio
async def test_the_stored_string_follows_the_documented_layout(backend: RedisBackend) -> None:
    r = record("ユーザー", payload=b'{"a":1}')
    await backend.create(r)
    raw = await backend.client.get(backend.session_key(r.key))
    user = "ユーザー".encode()
    created = (r.created_at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    expires = (r.expires_at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert raw == b"%016d%016d%016du%010d" % (created, expires, 1, len(user)) + user + b'{"a":1}'
    ttl_ms = await backend.client.pttl(backend.session_key(r.key))
    assert 3_590_000 < ttl_ms <= 3_600_000  # native expiry follows expires_at


@pytest.mark.asyncio
async def test_timestamps_round_trip_to_the_microsecond(backend: RedisBackend) -> None:
    now = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    r = SessionRecord("k" + uuid.uuid4().hex, b"{}", None, now - timedelta(hours=1), now, 1)
    await backend.create(r)
    assert await backend.read(r.key) == r


# -- the per-user index and purge ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_purge_cleans_the_index_of_expired_and_deleted_sessions(backend: RedisBackend) -> None:
    alice = f"alice-{uuid.uuid4().hex}"
    short = [record(alice, ttl=0.3) for _ in range(3)]
    live = record(alice)
    for r in [*short, live]:
        await backend.create(r)
    index = backend.index_key(alice)
    assert await backend.client.zcard(index) == 4
    await backend.delete(live.key)
    assert await backend.client.zcard(index) == 3  # delete drops its entry at once
    await asyncio.sleep(0.5)
    assert await backend.purge_expired() == 3
    assert await backend.client.exists(index) == 0
    assert await backend.client.zscore(backend._queue_key(index), index) is None
    assert await backend.purge_expired() == 0


@pytest.mark.asyncio
async def test_purge_keeps_an_extended_session_and_rescores_it(backend: RedisBackend) -> None:
    alice = f"alice-{uuid.uuid4().hex}"
    r = record(alice, ttl=0.3)
    await backend.create(r)
    later = datetime.now(UTC) + timedelta(hours=1)
    assert await backend.touch(r.key, later)
    await asyncio.sleep(0.5)
    assert await backend.purge_expired() == 0
    index = backend.index_key(alice)
    score = await backend.client.zscore(index, r.key)
    assert score == (later - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert [x.key for x in await backend.list_by_user(alice)] == [r.key]


@pytest.mark.asyncio
async def test_a_moved_session_leaves_a_stale_entry_that_is_never_listed_and_is_purged(
    backend: RedisBackend,
) -> None:
    alice, bob = f"alice-{uuid.uuid4().hex}", f"bob-{uuid.uuid4().hex}"
    r = record(alice, ttl=0.3)
    await backend.create(r)
    moved = SessionRecord(r.key, b"{}", bob, r.created_at, datetime.now(UTC) + timedelta(hours=1), 1)
    assert await backend.update(moved, 1) == 2
    assert await backend.list_by_user(alice) == []
    assert await backend.delete_by_user(alice) == 0
    await asyncio.sleep(0.5)
    assert await backend.purge_expired() == 1  # alice's stale entry
    assert await backend.client.exists(backend.index_key(alice)) == 0
    assert [x.key for x in await backend.list_by_user(bob)] == [r.key]


@pytest.mark.asyncio
async def test_update_keeps_the_stored_creation_time(backend: RedisBackend) -> None:
    r = record("alice")
    await backend.create(r)
    other = SessionRecord(r.key, b"{}", "alice", r.created_at - timedelta(days=1), r.expires_at, 1)
    await backend.update(other, 1)
    got = await backend.read(r.key)
    assert got is not None and got.created_at == r.created_at


@pytest.mark.asyncio
async def test_read_and_touch_extends_when_another_process_moved_the_expiry_earlier(
    backend: RedisBackend, redis_url: str
) -> None:
    # This backend's expiry hint says "not due"; the stored record, shortened by another
    # process, says due: the plain read must not hide the extension.
    r = record("alice", ttl=3600)
    await backend.create(r)
    async with RedisBackend.from_url(redis_url, prefix=backend.prefix) as other:
        soon = datetime.now(UTC) + timedelta(minutes=5)
        await other.update(SessionRecord(r.key, b"{}", "alice", r.created_at, soon, 1), 1)
    now = datetime.now(UTC)
    got, extended = await backend.read_and_touch(
        r.key, now=now, idle_timeout=timedelta(hours=1), absolute_timeout=timedelta(hours=8),
        refresh_interval=timedelta(minutes=1),
    )
    assert extended is True
    assert got is not None and got.expires_at == now + timedelta(hours=1) and got.version == 2
    assert await backend.read(r.key) == got


# -- the index expires with its sessions ---------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Manager clocks years away from the server's: every native expiry counts from the `now` passed.
CLOCKS = {"years-ahead": datetime(2031, 5, 1, tzinfo=UTC), "years-behind": datetime(2020, 5, 1, tzinfo=UTC)}
clocks = pytest.mark.parametrize("start", list(CLOCKS.values()), ids=list(CLOCKS))


def day(start: datetime, n: float, hours: float = 0) -> datetime:
    """A time on a fixed day of the manager's clock, so which UTC day an expiry falls on is known."""
    return start + timedelta(days=n, hours=hours)


def ms(value: datetime) -> int:
    return (value - EPOCH) // timedelta(milliseconds=1)


async def assert_lives(backend: RedisBackend, key: str, left: timedelta) -> None:
    """The key expires ``left`` after the call that set it, by the server's clock (PTTL counts down meanwhile)."""
    ttl = int(await backend.client.pttl(key))
    assert left // timedelta(milliseconds=1) - 2000 < ttl <= -(-left // timedelta(milliseconds=1)), (key, ttl)


@pytest.mark.asyncio
async def test_after_every_session_of_a_user_is_gone_no_key_lacks_a_ttl(backend: RedisBackend) -> None:
    alice = f"alice-{uuid.uuid4().hex}"
    short = [record(alice, ttl=0.3) for _ in range(2)]
    gone = record(alice)
    for r in [*short, gone]:
        await backend.create(r)
    await backend.delete(gone.key)
    await asyncio.sleep(0.5)  # Redis expires the short ones itself; purge_expired() never runs
    assert await backend.list_by_user(alice) == []
    keys = [key async for key in backend.client.scan_iter(match=f"{backend.prefix}*")]
    assert keys  # the index and its queue are still there (with stale entries) ...
    for key in keys:
        assert await backend.client.pttl(key) > 0, key  # ... but they expire by themselves


@pytest.mark.asyncio
@clocks
async def test_an_index_and_its_queue_outlive_its_latest_session_by_at_most_two_days(
    backend: RedisBackend, start: datetime
) -> None:
    alice = f"alice-{uuid.uuid4().hex}"
    now = day(start, 0)
    early = SessionRecord(storage_key(new_token()), b"{}", alice, now, day(start, 0, 1))
    late = SessionRecord(storage_key(new_token()), b"{}", alice, now, day(start, 3, 5))
    await backend.create(late, now=now)
    await backend.create(early, now=now)
    index = backend.index_key(alice)
    # The expiry is rounded up to a whole UTC day, then one more: day 3 05:00 -> day 5 00:00, counted from now.
    await assert_lives(backend, index, day(start, 5) - now)
    await assert_lives(backend, backend._queue_key(index), day(start, 5) - now)
    await assert_lives(backend, backend.session_key(late.key), day(start, 3, 5) - now)
    assert sorted(r.key for r in await backend.list_by_user(alice, now=now)) == sorted([late.key, early.key])


@pytest.mark.asyncio
@clocks
@pytest.mark.parametrize("how", ["touch", "update", "read_and_touch"])
async def test_an_extension_past_its_index_expiry_raises_the_index_first(
    backend: RedisBackend, how: str, start: datetime
) -> None:
    alice = f"alice-{uuid.uuid4().hex}"
    now = day(start, 0, 0.5)  # one reading of the manager's clock for every call
    r = SessionRecord(storage_key(new_token()), b"{}", alice, day(start, 0), day(start, 0, 1))
    await backend.create(r, now=now)
    index, session = backend.index_key(alice), backend.session_key(r.key)
    await assert_lives(backend, index, day(start, 2) - now)

    async def extend(to: datetime, version: int) -> None:
        if how == "touch":
            assert await backend.touch(r.key, to, now=now)
        elif how == "update":
            changed = SessionRecord(r.key, b"{}", alice, r.created_at, to, version)
            assert await backend.update(changed, version, now=now) == version + 1
        else:
            got, extended = await backend.read_and_touch(
                r.key, now=now, idle_timeout=to - now, absolute_timeout=timedelta(days=30),
                refresh_interval=timedelta(minutes=1))
            assert extended and got is not None and got.expires_at == to

    await extend(day(start, 0, 20), 1)  # the same UTC day: the index's expiry already covers it
    await assert_lives(backend, index, day(start, 2) - now)
    await assert_lives(backend, session, day(start, 0, 20) - now)
    await extend(day(start, 3, 1), 2)  # past it: the index is raised before the session moves
    await assert_lives(backend, session, day(start, 3, 1) - now)
    await assert_lives(backend, index, day(start, 5) - now)
    await assert_lives(backend, backend._queue_key(index), day(start, 5) - now)
    assert [x.key for x in await backend.list_by_user(alice, now=now)] == [r.key]
    assert await backend.delete_by_user(alice, now=now) == 1


@pytest.mark.asyncio
@clocks
async def test_purge_judges_index_entries_by_the_passed_now(backend: RedisBackend, start: datetime) -> None:
    alice = f"alice-{uuid.uuid4().hex}"
    now = day(start, 0)
    short = SessionRecord(storage_key(new_token()), b"{}", alice, now, now + timedelta(minutes=1))
    live = SessionRecord(storage_key(new_token()), b"{}", alice, now, now + timedelta(hours=1))
    await backend.create(short, now=now)
    await backend.create(live, now=now)
    index = backend.index_key(alice)
    assert await backend.purge_expired(now=now) == 0  # nothing is due yet at this clock
    later = now + timedelta(minutes=2)
    assert await backend.purge_expired(now=later) == 1  # the short one's entry, due at the later reading
    assert await backend.client.zscore(index, live.key) is not None
    assert [x.key for x in await backend.list_by_user(alice, now=later)] == [live.key]


@pytest.mark.asyncio
async def test_an_index_written_without_an_expiry_keeps_none(backend: RedisBackend) -> None:
    # Indexes written before indexes expired may list sessions extended past any expiry set now.
    alice = f"alice-{uuid.uuid4().hex}"
    index = backend.index_key(alice)
    await backend.client.zadd(index, {"older-session": ms(day(CLOCKS["years-ahead"], 9)) * 1000})
    await backend.create(record(alice))
    assert await backend.client.pttl(index) == -1
    assert await backend.client.zcard(index) == 2


@pytest.mark.asyncio
async def test_a_login_drops_long_due_entries_from_its_purge_queue(backend: RedisBackend) -> None:
    # Without purge_expired() a queue would keep the name of every index that ever expired.
    alice = f"alice-{uuid.uuid4().hex}"
    queue = backend._queue_key(backend.index_key(alice))
    now_us = (datetime.now(UTC) - EPOCH) // timedelta(microseconds=1)
    day_us = 86_400_000_000
    await backend.client.zadd(queue, {"gone-index": now_us - 3 * day_us, "recent-index": now_us - day_us})
    await backend.create(record(alice))
    assert await backend.client.zscore(queue, "gone-index") is None
    assert await backend.client.zscore(queue, "recent-index") is not None


@pytest.mark.asyncio
async def test_from_url_takes_a_clock_and_native_expiry_follows_it(redis_url: str) -> None:
    from fastapi_sessions import ManualClock

    clock = ManualClock()  # 2030: years ahead of the server's clock
    prefix = f"fs-test-{uuid.uuid4().hex}:"
    async with registry_from_url(redis_url, prefix=prefix, clock=clock) as backend:
        assert isinstance(backend, RedisBackend)
        now = clock()
        mine = SessionRecord(storage_key(new_token()), b"{}", "alice", now, now + timedelta(hours=1))
        await backend.create(mine)
        assert await backend.read(mine.key) == mine
        await assert_lives(backend, backend.session_key(mine.key), timedelta(hours=1))
        clock.advance(minutes=30)
        assert await backend.touch(mine.key, clock() + timedelta(hours=1)) is True
        await assert_lives(backend, backend.session_key(mine.key), timedelta(hours=1))
        clock.advance(hours=2)
        assert await backend.read(mine.key) is None
        assert await backend.list_by_user("alice") == []
        keys = [key async for key in backend.client.scan_iter(match=f"{prefix}*")]
        if keys:
            await backend.client.delete(*keys)


@pytest.mark.asyncio
async def test_only_asyncios_own_writelines_failure_counts_as_a_lost_connection() -> None:
    """The Redis backend maps CPython's writelines() bug on a lost connection (gh-136234) to a
    connection error (503), and nothing else: any other TypeError stays the bug it is."""
    import socket

    from fastapi_sessions.backends.redis._calls import _lost_while_writing

    not_callable: object = None
    try:
        not_callable()  # type: ignore[operator]
    except TypeError as exc:
        assert not _lost_while_writing(exc)
    ours, theirs = socket.socketpair()
    _, writer = await asyncio.open_connection(sock=ours)
    theirs.close()
    writer.transport.abort()
    await asyncio.sleep(0)  # connection_lost runs: the transport clears its callbacks
    try:
        writer.writelines([b"PING\r\n"])
    except (TypeError, AttributeError) as exc:  # the interpreters with the bug
        assert _lost_while_writing(exc), exc
    finally:
        writer.close()
