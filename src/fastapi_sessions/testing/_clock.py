"""One clock: every method judges liveness by the ``now`` it is passed, never by a clock of its own.

Each ``*_judges_liveness_by_the_passed_now`` test moves ``now`` by hand around a
record that expires at T+60s, with T on the kit's clock and three hours either
side of the system clock (``NOW_SKEWS``), so none of them sleeps. A native expiry
(a key TTL, a TTL index) must count the time left at ``now``. The last test
calls without ``now``: the backend's own clock, which the kit's ``now()`` matches.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from .._core.contract import SessionBackend
from .._core.records import SessionRecord
from ..errors import SessionExists, SessionNotFound
from ._base import SECOND, Capability, KitBase, each_skew, in_own_loop, ms, sorted_keys
from ._rules import broke, show

__all__ = ["ClockTests"]


class ClockTests(KitBase):
    @in_own_loop
    @each_skew
    async def test_read_judges_liveness_by_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        t = self.start(skew)
        record = self.record_at(t, user_id=self.new_user())
        await backend.create(record, now=t)
        for offset, expected in ((59, record), (60, None), (61, None)):  # expires_at <= now: expired
            got = await backend.read(record.key, now=t + offset * SECOND)
            assert got == expected, broke("one-clock", f"expires at T+60s; read(now=T+{offset}s) -> {show(got)}")

    @in_own_loop
    @each_skew
    async def test_update_judges_liveness_by_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        t = self.start(skew)
        record = self.record_at(t)
        await backend.create(record, now=t)
        later = t + 120 * SECOND
        version = await backend.update(self._with(record, b'{"n":2}', expires_at=later), 1, now=t + 59 * SECOND)
        assert version == 2, broke("one-clock", f"expires at T+60s; update(now=T+59s) -> {version!r}")
        got = await backend.read(record.key, now=t + 119 * SECOND)
        expected = SessionRecord(record.key, b'{"n":2}', None, t, later, 2)
        assert got == expected, broke("one-clock", f"updated to expire at T+120s; read(now=T+119s) -> {show(got)}")
        with pytest.raises(SessionNotFound):
            await backend.update(self._with(record, b'{"n":3}', expires_at=t + 3600 * SECOND), 2, now=later)
            pytest.fail(broke("one-clock", "expires at T+120s; update(now=T+120s) returned normally"))
        got = await backend.read(record.key, now=later)
        assert got is None, broke("update-no-resurrection", f"read() after a refused update -> {show(got)}")

    @in_own_loop
    @each_skew
    async def test_touch_judges_liveness_by_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        t = self.start(skew)
        user = self.new_user()
        record = self.record_at(t, user_id=user)
        await backend.create(record, now=t)
        later = t + 120 * SECOND
        touched = await backend.touch(record.key, later, now=t + 59 * SECOND)
        assert touched is True, broke("one-clock", f"expires at T+60s; touch(now=T+59s) -> {touched!r}")
        got = await backend.read(record.key, now=t + 119 * SECOND)
        assert got == replace(record, expires_at=later), broke("touch-only-expiry", f"after touch read {show(got)}")
        listed = await backend.list_by_user(user, now=t + 119 * SECOND)
        assert sorted_keys(listed) == [record.key], broke(
            "touch-extends-index", f"list_by_user(now=T+119s) -> {listed}")
        touched = await backend.touch(record.key, t + 3600 * SECOND, now=t + 121 * SECOND)
        assert touched is False, broke("touch-no-revival", f"expired at T+120s; touch(now=T+121s) -> {touched!r}")
        got = await backend.read(record.key, now=t + 121 * SECOND)
        assert got is None, broke("touch-no-revival", f"read() after touching an expired record -> {show(got)}")

    @in_own_loop
    @each_skew
    async def test_delete_judges_liveness_by_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        t = self.start(skew)
        live, dead = self.record_at(t), self.record_at(t)
        await backend.create(live, now=t)
        await backend.create(dead, now=t)
        deleted = await backend.delete(live.key, now=t + 59 * SECOND)
        assert deleted is True, broke("one-clock", f"expires at T+60s; delete(now=T+59s) -> {deleted!r}")
        touched = await backend.touch(live.key, t + 3600 * SECOND, now=t + 59 * SECOND)
        assert touched is False, broke("touch-no-revival", f"touch() after delete() -> {touched!r}")
        got = await backend.read(live.key, now=t + 59 * SECOND)
        assert got is None, broke("touch-no-revival", f"read() after delete() and touch() -> {show(got)}")
        deleted = await backend.delete(dead.key, now=t + 61 * SECOND)
        assert deleted is False, broke("delete-idempotent", f"expired at T+60s; delete(now=T+61s) -> {deleted!r}")
        got = await backend.read(dead.key, now=t + 61 * SECOND)
        assert got is None, broke("expired-is-absent", f"read(now=T+61s) -> {show(got)}")

    @in_own_loop
    @each_skew
    async def test_list_by_user_judges_liveness_by_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        t = self.start(skew)
        user = self.new_user()
        short, long = self.record_at(t, user_id=user), self.record_at(t, user_id=user, ttl=3600)
        await backend.create(short, now=t)
        await backend.create(long, now=t)
        listed = await backend.list_by_user(user, now=t + 59 * SECOND)
        assert sorted_keys(listed) == sorted([short.key, long.key]), broke(
            "one-clock", f"at T+59s listed {show(listed)}")
        listed = await backend.list_by_user(user, now=t + 61 * SECOND)
        assert list(listed) == [long], broke("one-clock", f"one expired at T+60s; at T+61s listed {show(listed)}")

    @in_own_loop
    @each_skew
    async def test_delete_by_user_judges_liveness_by_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        t = self.start(skew)
        expired_user, live_user = self.new_user(), self.new_user()
        await backend.create(self.record_at(t, user_id=expired_user), now=t)
        count = await backend.delete_by_user(expired_user, now=t + 61 * SECOND)
        assert count == 0, broke("one-clock", f"expired at T+60s; delete_by_user(now=T+61s) counted {count}")
        mine = self.record_at(t, user_id=live_user)
        await backend.create(mine, now=t)
        count = await backend.delete_by_user(live_user, now=t + 59 * SECOND)
        assert count == 1, broke("one-clock", f"expires at T+60s; delete_by_user(now=T+59s) counted {count}")
        got = await backend.read(mine.key, now=t + 59 * SECOND)
        assert got is None, broke("delete-by-user-exact", f"read() after delete_by_user() -> {show(got)}")

    @in_own_loop
    @each_skew
    async def test_create_judges_liveness_by_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        t = self.start(skew)
        old = self.record_at(t, payload=b'{"old":true}', user_id=self.new_user())
        await backend.create(old, now=t)
        with pytest.raises(SessionExists):
            await backend.create(self.record_at(t + 59 * SECOND, key=old.key), now=t + 59 * SECOND)
            pytest.fail(broke("one-clock", "expires at T+60s; create(now=T+59s) of its key returned normally"))
        fresh = self.record_at(t + 61 * SECOND, key=old.key, payload=b'{"new":true}', ttl=3600)
        await backend.create(fresh, now=t + 61 * SECOND)
        got = await backend.read(old.key, now=t + 61 * SECOND)
        assert got == fresh, broke("create-over-expired", f"created at T+61s over it, read {show(got)}")

    @in_own_loop
    @each_skew
    async def test_native_expiry_is_relative_to_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        """What the store expires by itself counts the time left at ``now``, by the server's own clock."""
        t = self.start(skew)
        user = self.new_user()
        record = self.record_at(t, user_id=user, ttl=3600)
        await backend.create(record, now=t)
        version = await backend.update(self._with(record, b'{"n":2}', expires_at=t + 7200 * SECOND), 1, now=t)
        assert version == 2, broke("native-expiry-relative", f"update(now=T) of a record created at T -> {version!r}")
        touched = await backend.touch(record.key, t + 10800 * SECOND, now=t)
        assert touched is True, broke("native-expiry-relative", f"touch(now=T) -> {touched!r}")
        if t <= datetime.now(UTC):  # a purge at a later `now` would take the records of tests running beside
            await backend.purge_expired(now=t)
        expected = SessionRecord(record.key, b'{"n":2}', user, t, t + 10800 * SECOND, 2)
        seen = f"T is the system clock {'+' if skew and skew > timedelta(0) else '-'}{abs(skew or timedelta(0))}"
        got = await backend.read(record.key, now=t)
        assert got == expected, broke("native-expiry-relative", f"{seen}; read(now=T) -> {show(got)}")
        listed = await backend.list_by_user(user, now=t)
        assert list(listed) == [expected], broke("native-expiry-relative", f"{seen}; listed {show(listed)}")
        if Capability.OUT_OF_BAND_READ in self.provided():
            stored = await self.stored_record(backend, record.key)
            assert stored == expected, broke("native-expiry-relative", f"{seen}; the store holds {show(stored)}")
        got = await backend.read(record.key, now=t + 10799 * SECOND)
        assert got == expected, broke("native-expiry-relative", f"{seen}; read(now=T+10799s) -> {show(got)}")

    @in_own_loop
    async def test_without_now_the_backend_judges_by_its_own_clock(self, backend: SessionBackend) -> None:
        """``now`` is optional: a call without it is judged by the backend's own clock, which :meth:`now` matches."""
        user = self.new_user()
        record, short = self.record(user_id=user), self.short_lived(user_id=user)
        await backend.create(record)
        await backend.create(short)
        got = await backend.read(short.key)
        assert got == short, broke("own-clock", f"read() without now -> {show(got)}")
        version = await backend.update(self._with(record, b'{"n":2}'), 1)
        assert version == 2, broke("own-clock", f"update() without now -> {version!r}")
        touched = await backend.touch(record.key, record.expires_at)
        assert touched is True, broke("own-clock", f"touch() without now -> {touched!r}")
        await self.expire(backend)
        got = await backend.read(short.key)
        assert got is None, broke("own-clock", f"read() without now, after expiry -> {show(got)}")
        touched = await backend.touch(short.key, ms(self.now() + timedelta(hours=1)))
        assert touched is False, broke("own-clock", f"touch() without now, after expiry -> {touched!r}")
        listed = await backend.list_by_user(user)
        assert sorted_keys(listed) == [record.key], broke("own-clock", f"list_by_user() without now -> {show(listed)}")
        assert await backend.purge_expired() >= 0
        deleted = await backend.delete(record.key)
        assert deleted is True, broke("own-clock", f"delete() without now -> {deleted!r}")
        count = await backend.delete_by_user(user)
        assert count == 0, broke("own-clock", f"delete_by_user() without now counted {count}")
        got = await backend.read(record.key)
        assert got is None, broke("own-clock", f"read() without now, after delete -> {show(got)}")
