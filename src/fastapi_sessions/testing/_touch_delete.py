"""Touch and delete: touch moves the expiry only, and neither brings a deleted or expired record back.

A touched record stays listed for its user (and ``delete_by_user`` finds it)
until its new expiry; ``touch`` of a missing, deleted or expired record is
``False``; ``delete`` is ``True`` only for a live record, so a second one is ``False``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from .._core.contract import SessionBackend
from ._base import SECOND, KitBase, in_own_loop, ms, sorted_keys
from ._rules import broke, show

__all__ = ["TouchDeleteTests"]


class TouchDeleteTests(KitBase):
    @in_own_loop
    async def test_touch_extends_expiry_without_rewriting(self, backend: SessionBackend) -> None:
        user = self.new_user()
        record = self.short_lived(payload=b'{"keep":"me"}', user_id=user)
        await backend.create(record, now=self.now())
        later = ms(self.now() + timedelta(hours=1))
        touched = await backend.touch(record.key, later, now=self.now())
        assert touched is True, broke("touch-only-expiry", f"touch() of a live record -> {touched!r}")
        await self.expire(backend)  # past the original expiry, physically too
        got = await backend.read(record.key, now=self.now())
        assert got == replace(record, expires_at=later), broke("touch-only-expiry", f"after touch read {show(got)}")
        listed = await backend.list_by_user(user, now=self.now())
        assert sorted_keys(listed) == [record.key], broke(
            "touch-extends-index", f"past the original expiry list_by_user() -> {show(listed)}")
        count = await backend.delete_by_user(user, now=self.now())
        assert count == 1, broke("touch-extends-index", f"past the original expiry delete_by_user() counted {count}")

    @in_own_loop
    async def test_touch_keeps_the_record_listed_for_its_user(self, backend: SessionBackend) -> None:
        """Log out everywhere must find a touched session after its original deadline."""
        t = ms(self.now())
        user = self.new_user()
        record = self.record_at(t, user_id=user, ttl=60)
        await backend.create(record, now=t)
        touched = await backend.touch(record.key, t + 3600 * SECOND, now=t + 30 * SECOND)
        assert touched is True, broke("touch-only-expiry", f"touch() of a live record -> {touched!r}")
        listed = await backend.list_by_user(user, now=t + 120 * SECOND)
        assert sorted_keys(listed) == [record.key], broke(
            "touch-extends-index", f"expired at T+60s, touched to T+3600s; list_by_user(now=T+120s) -> {show(listed)}")
        count = await backend.delete_by_user(user, now=t + 120 * SECOND)
        assert count == 1, broke("touch-extends-index", f"delete_by_user(now=T+120s) counted {count}")
        got = await backend.read(record.key, now=t + 120 * SECOND)
        assert got is None, broke("touch-extends-index", f"after delete_by_user() read {show(got)}: still logged in")

    @in_own_loop
    async def test_touch_never_revives_a_deleted_record(self, backend: SessionBackend) -> None:
        user = self.new_user()
        record = self.record(user_id=user)
        await backend.create(record, now=self.now())
        await backend.delete(record.key, now=self.now())
        touched = await backend.touch(record.key, ms(self.now() + timedelta(hours=2)), now=self.now())
        assert touched is False, broke("touch-no-revival", f"touch() after delete() -> {touched!r}")
        got = await backend.read(record.key, now=self.now())
        assert got is None, broke("touch-no-revival", f"read() after delete() and touch() -> {show(got)}")
        listed = await backend.list_by_user(user, now=self.now())
        assert list(listed) == [], broke("touch-no-revival", f"list_by_user() after delete(), touch() -> {listed}")

    @in_own_loop
    async def test_touch_of_a_missing_or_expired_record_is_false(self, backend: SessionBackend) -> None:
        touched = await backend.touch(self.new_key(), ms(self.now() + timedelta(hours=1)), now=self.now())
        assert touched is False, broke("touch-no-revival", f"touch() of an unknown key -> {touched!r}")
        record, other = self.short_lived(), self.short_lived()
        await backend.create(record, now=self.now())
        await backend.create(other, now=self.now())
        await self.expire(backend)
        deleted = await backend.delete(other.key, now=self.now())  # the same wait serves delete
        assert deleted is False, broke("delete-idempotent", f"delete() of an expired record -> {deleted!r}")
        touched = await backend.touch(record.key, ms(self.now() + timedelta(hours=1)), now=self.now())
        assert touched is False, broke("touch-no-revival", f"touch() of an expired record -> {touched!r}")
        got = await backend.read(record.key, now=self.now())
        assert got is None, broke("touch-no-revival", f"read() after touching an expired record -> {show(got)}")

    @in_own_loop
    async def test_delete_is_idempotent(self, backend: SessionBackend) -> None:
        record = self.record()
        await backend.create(record, now=self.now())
        results = [await backend.delete(record.key, now=self.now()) for _ in range(2)]
        assert results == [True, False], broke("delete-idempotent", f"delete() twice -> {results}")
        got = await backend.read(record.key, now=self.now())
        assert got is None, broke("delete-idempotent", f"read() after delete() -> {show(got)}")
        deleted = await backend.delete(self.new_key(), now=self.now())
        assert deleted is False, broke("delete-idempotent", f"delete() of an unknown key -> {deleted!r}")
