"""The Redis record layout pinned to exact bytes, for every operation that writes or reads it.

Sessions already in Redis must keep working across releases, so each test
compares what Redis holds with a literal string (docs/backends/redis.md, "Data
layout"), not with a formula that a layout change would change too. Every call
passes one fixed ``now``: native expiries are relative to it, so the keys still
live on the server while the header says 2031.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from fastapi_sessions import SessionRecord
from fastapi_sessions.backends.redis import RedisBackend

NOW = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
#: NOW, NOW + 1 h and NOW + 2 h as the header spells them: microseconds since the epoch, 16 digits.
AT_NOW, AT_1H, AT_2H = b"1935817689123456", b"1935821289123456", b"1935824889123456"
USER = "ユーザー"
USER_BYTES = b"\xe3\x83\xa6\xe3\x83\xbc\xe3\x82\xb6\xe3\x83\xbc"  # 12 bytes of UTF-8
HOUR = timedelta(hours=1)


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


async def raw(backend: RedisBackend, key: str) -> bytes:
    value = await backend.client.get(backend.session_key(key))
    assert isinstance(value, bytes)
    return value


def key() -> str:
    return "k" + uuid.uuid4().hex


@pytest.mark.asyncio
async def test_create_without_a_user(backend: RedisBackend) -> None:
    k = key()
    await backend.create(SessionRecord(k, b'{"a":1}', None, NOW, NOW + HOUR), now=NOW)
    assert await raw(backend, k) == AT_NOW + AT_1H + b"0000000000000001" + b"-0000000000" + b'{"a":1}'


@pytest.mark.asyncio
async def test_create_with_a_user(backend: RedisBackend) -> None:
    k = key()
    await backend.create(SessionRecord(k, b'{"a":1}', USER, NOW, NOW + HOUR), now=NOW)
    assert await raw(backend, k) == AT_NOW + AT_1H + b"0000000000000001" + b"u0000000012" + USER_BYTES + b'{"a":1}'


@pytest.mark.asyncio
async def test_a_user_id_with_a_lone_surrogate_is_stored_as_its_surrogatepass_bytes(backend: RedisBackend) -> None:
    k = key()
    record = SessionRecord(k, b"{}", "\udc80x", NOW, NOW + HOUR)
    await backend.create(record, now=NOW)
    assert await raw(backend, k) == AT_NOW + AT_1H + b"0000000000000001" + b"u0000000004\xed\xb2\x80x" + b"{}"
    assert await backend.read(k, now=NOW) == SessionRecord(k, b"{}", "\udc80x", NOW, NOW + HOUR, 1)


@pytest.mark.asyncio
async def test_update_writes_the_new_version_user_and_expiry_and_keeps_the_creation_time(
    backend: RedisBackend,
) -> None:
    k = key()
    await backend.create(SessionRecord(k, b"{}", USER, NOW, NOW + HOUR), now=NOW)
    moved = SessionRecord(k, b'{"b":2}', "bob", NOW - timedelta(days=1), NOW + 2 * HOUR, 1)
    assert await backend.update(moved, 1, now=NOW) == 2
    assert await raw(backend, k) == AT_NOW + AT_2H + b"0000000000000002" + b"u0000000003bob" + b'{"b":2}'
    assert await backend.update(SessionRecord(k, b"", None, NOW, NOW + HOUR, 2), 2, now=NOW) == 3
    assert await raw(backend, k) == AT_NOW + AT_1H + b"0000000000000003" + b"-0000000000"


@pytest.mark.asyncio
async def test_touch_rewrites_only_the_expiry(backend: RedisBackend) -> None:
    k = key()
    await backend.create(SessionRecord(k, b'{"a":1}', USER, NOW, NOW + HOUR), now=NOW)
    assert await backend.touch(k, NOW + 2 * HOUR, now=NOW)
    assert await raw(backend, k) == AT_NOW + AT_2H + b"0000000000000001" + b"u0000000012" + USER_BYTES + b'{"a":1}'


@pytest.mark.asyncio
async def test_read_and_touch_rewrites_only_the_expiry_and_returns_the_stored_record(backend: RedisBackend) -> None:
    k = key()
    await backend.create(SessionRecord(k, b'{"a":1}', USER, NOW, NOW + HOUR), now=NOW)
    got, extended = await backend.read_and_touch(
        k, now=NOW, idle_timeout=2 * HOUR, absolute_timeout=8 * HOUR, refresh_interval=timedelta(minutes=1))
    assert extended is True
    assert got == SessionRecord(k, b'{"a":1}', USER, NOW, NOW + 2 * HOUR, 1)
    assert await raw(backend, k) == AT_NOW + AT_2H + b"0000000000000001" + b"u0000000012" + USER_BYTES + b'{"a":1}'
    # Not due now: the same record again, read by the plain GET this time.
    assert await backend.read_and_touch(
        k, now=NOW, idle_timeout=2 * HOUR, absolute_timeout=8 * HOUR, refresh_interval=timedelta(minutes=1),
    ) == (got, False)


@pytest.mark.asyncio
async def test_a_string_written_by_hand_in_the_layout_is_read_and_found_by_its_user(backend: RedisBackend) -> None:
    # As an earlier release stored it: every reader decodes it, and the per-user scripts match its user.
    k = key()
    value = AT_NOW + AT_1H + b"0000000000000007" + b"u0000000012" + USER_BYTES + b'{"z":0}'
    await backend.client.set(backend.session_key(k), value, px=3_600_000)
    expected = SessionRecord(k, b'{"z":0}', USER, NOW, NOW + HOUR, 7)
    assert await backend.read(k, now=NOW) == expected
    assert await backend.read_and_touch(
        k, now=NOW, idle_timeout=HOUR, absolute_timeout=8 * HOUR, refresh_interval=timedelta(minutes=1),
    ) == (expected, False)
    await backend.client.zadd(backend.index_key(USER), {k: 0})
    assert await backend.list_by_user(USER, now=NOW) == [expected]
    assert await backend.delete_by_user("ユーザ", now=NOW) == 0  # another user's, by its header
    assert await backend.delete_by_user(USER, now=NOW) == 1
    assert await backend.client.exists(backend.session_key(k)) == 0


@pytest.mark.asyncio
async def test_purge_reads_expiry_and_user_from_the_header(backend: RedisBackend) -> None:
    short, long = key(), key()
    await backend.create(SessionRecord(short, b"{}", USER, NOW, NOW + HOUR), now=NOW)
    await backend.create(SessionRecord(long, b"{}", USER, NOW, NOW + 4 * HOUR), now=NOW)
    index = backend.index_key(USER)
    await backend.client.zadd(index, {long: 0})  # due at once: purge must re-score it from its header
    later = NOW + 2 * HOUR  # the short one is expired by its header, though Redis still holds it
    assert await backend.purge_expired(now=later) == 1
    assert await backend.client.zrange(index, 0, -1, withscores=True) == [(long.encode(), 1935832089123456.0)]


def test_the_documented_header_table_is_the_one_the_code_uses() -> None:
    from pathlib import Path

    from fastapi_sessions.backends.redis._layout import HEADER, HEADER_SIZE

    docs = (Path(__file__).parents[1] / "docs" / "backends" / "redis.md").read_text()
    assert f"a {HEADER_SIZE}-byte ASCII header" in docs
    for field in HEADER:  # the docs write a range as "16\u201331", with an en dash
        where = str(field.offset) if field.width == 1 else f"{field.offset}\u2013{field.end - 1}"
        assert f"\n| {where} | " in docs, field
