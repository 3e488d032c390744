"""The optional fused ``read_and_touch``: tested whenever the backend has it, as the manager then uses it.

The manager decides by presence (``isinstance(backend, SupportsReadAndTouch)``),
so the kit does too; a backend without the method skips these tests, naming
them, in strict mode as well (absence is allowed, an untested method is not).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from .._core.contract import SessionBackend
from .._core.records import SessionRecord
from ..errors import SessionConflict
from ._base import SECOND, KitBase, each_skew, in_own_loop, ms
from ._rules import broke, show

__all__ = ["ReadAndTouchTests"]



class ReadAndTouchTests(KitBase):
    async def _read_and_touch(
        self, backend: SessionBackend, key: str, now: datetime, *, idle: float = 3600, absolute: float = 8 * 3600,
        refresh: float = 60,
    ) -> tuple[SessionRecord | None, bool]:
        return await self.fused(backend).read_and_touch(
            key,
            now=now,
            idle_timeout=timedelta(seconds=idle),
            absolute_timeout=timedelta(seconds=absolute),
            refresh_interval=timedelta(seconds=refresh),
        )

    @in_own_loop
    async def test_read_and_touch_of_missing_or_expired_is_none(self, backend: SessionBackend) -> None:
        got = await self._read_and_touch(backend, self.new_key(), ms(self.now()))
        assert got == (None, False), broke("read-and-touch", f"read_and_touch() of an unknown key -> {show(got)}")
        record = self.short_lived()
        await backend.create(record, now=self.now())
        await self.expire(backend)
        got = await self._read_and_touch(backend, record.key, ms(self.now()))
        assert got == (None, False), broke("read-and-touch-deadlines", f"idle-expired record -> {show(got)}")
        read = await backend.read(record.key, now=self.now())
        assert read is None, broke("read-and-touch-deadlines", f"after read_and_touch() read {show(read)}")

    @in_own_loop
    async def test_read_and_touch_of_a_deleted_record_is_none(self, backend: SessionBackend) -> None:
        record = self.record(ttl=600, user_id=self.new_user())
        await backend.create(record, now=self.now())
        await backend.delete(record.key, now=self.now())
        got = await self._read_and_touch(backend, record.key, ms(self.now()))
        assert got == (None, False), broke("touch-no-revival", f"read_and_touch() after delete() -> {show(got)}")
        read = await backend.read(record.key, now=self.now())
        assert read is None, broke("touch-no-revival", f"after delete() and read_and_touch() read {show(read)}")

    @in_own_loop
    async def test_read_and_touch_extends_the_idle_deadline_when_due(self, backend: SessionBackend) -> None:
        record = self.record(ttl=600, payload=b'{"keep":1}', user_id=self.new_user())
        await backend.create(record, now=self.now())
        now = ms(self.now())
        got, extended = await self._read_and_touch(backend, record.key, now, idle=3600)
        expected = replace(record, expires_at=now + timedelta(seconds=3600))
        assert (got, extended) == (expected, True), broke(
            "read-and-touch", f"expires in 600 s, idle 3600 s: returned {show((got, extended))}")
        read = await backend.read(record.key, now=self.now())
        assert read == expected, broke("read-and-touch-only-expiry", f"after read_and_touch() read {show(read)}")

    @in_own_loop
    async def test_read_and_touch_leaves_a_fresh_deadline_alone(self, backend: SessionBackend) -> None:
        record = self.record(ttl=3600 - 30)
        await backend.create(record, now=self.now())
        got = await self._read_and_touch(backend, record.key, ms(self.now()), idle=3600, refresh=60)
        assert got == (record, False), broke("read-and-touch", f"30 s short of the idle target, refresh 60 s: "
                                                               f"returned {show(got)}")
        read = await backend.read(record.key, now=self.now())
        assert read == record, broke("read-and-touch", f"after read_and_touch() read {show(read)}")

    @in_own_loop
    async def test_read_and_touch_never_passes_the_absolute_deadline(self, backend: SessionBackend) -> None:
        now = ms(self.now())
        started = now - timedelta(hours=7, minutes=50)  # absolute deadline in 10 minutes
        record = SessionRecord(self.new_key(), b"{}", None, started, now + timedelta(minutes=1), 1)
        await backend.create(record, now=self.now())
        got, extended = await self._read_and_touch(backend, record.key, now, idle=3600, absolute=8 * 3600)
        deadline = started + timedelta(hours=8)
        assert extended is True and got is not None and got.expires_at == deadline, broke(
            "read-and-touch-deadlines", f"absolute deadline {deadline.isoformat()}: returned {show((got, extended))}")
        read = await backend.read(record.key, now=self.now())
        assert read is not None and read.expires_at == deadline, broke(
            "read-and-touch-deadlines", f"absolute deadline {deadline.isoformat()}: stored {show(read)}")

    @in_own_loop
    async def test_read_and_touch_then_update_still_compares_versions(self, backend: SessionBackend) -> None:
        record = self.record(ttl=600)
        await backend.create(record, now=self.now())
        await self._read_and_touch(backend, record.key, ms(self.now()))
        version = await backend.update(self._with(record, b'{"n":2}'), expected_version=1, now=self.now())
        assert version == 2, broke("read-and-touch-only-expiry", f"update(expected_version=1) -> {version!r}")
        with pytest.raises(SessionConflict):
            await backend.update(self._with(record, b'{"n":3}'), expected_version=1, now=self.now())
            pytest.fail(broke("update-cas", "after read_and_touch(), a stale update() returned normally"))

    @in_own_loop
    async def test_read_and_touch_keeps_the_record_listed_for_its_user(self, backend: SessionBackend) -> None:
        t = ms(self.now())
        user = self.new_user()
        record = self.record_at(t, user_id=user, ttl=60)
        await backend.create(record, now=t)
        got, extended = await self._read_and_touch(backend, record.key, t + 30 * SECOND, idle=3600)
        assert extended is True, broke("read-and-touch", f"due for extension: returned {show((got, extended))}")
        listed = await backend.list_by_user(user, now=t + 120 * SECOND)
        assert [r.key for r in listed] == [record.key], broke(
            "touch-extends-index", f"expired at T+60s, extended to T+3630s; list_by_user(now=T+120s) -> "
            f"{show(listed)}")
        count = await backend.delete_by_user(user, now=t + 120 * SECOND)
        assert count == 1, broke("touch-extends-index", f"delete_by_user(now=T+120s) counted {count}")

    @in_own_loop
    @each_skew
    async def test_read_and_touch_judges_by_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        self.fused(backend)
        t = self.start(skew)
        record = self.record_at(t, user_id=self.new_user())
        await backend.create(record, now=t)
        got, extended = await self._read_and_touch(backend, record.key, t + 30 * SECOND, idle=3600)
        expected = replace(record, expires_at=t + 3630 * SECOND)
        assert (got, extended) == (expected, True), broke(
            "one-clock", f"read_and_touch(now=T+30s, idle 3600 s) -> {show((got, extended))}")
        read = await backend.read(record.key, now=t + 3629 * SECOND)
        assert read == got, broke("one-clock", f"read(now=T+3629s) -> {show(read)}")
        after = await self._read_and_touch(backend, record.key, t + 3630 * SECOND)
        assert after == (None, False), broke("read-and-touch-deadlines", f"expired at T+3630s; read_and_touch(now="
                                                                         f"T+3630s) -> {show(after)}")
