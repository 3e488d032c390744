"""Create and read: the protocol, round trips, insert-only create at version 1, and expired records.

A record comes back exactly as created (aware UTC datetimes included); a read
of an unknown key is ``None`` and creates nothing; a second create of a live
key raises ``SessionExists``, over an expired one it succeeds; and past its
expiry, before any purge, a record is absent to every method.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from .._core.contract import SessionBackend, SupportsReadAndTouch
from ..errors import SessionExists, SessionNotFound
from ._base import SECOND, KitBase, in_own_loop, ms
from ._rules import broke, show

__all__ = ["CreateReadTests"]


class CreateReadTests(KitBase):
    # -- the protocol ------------------------------------------------------------------------

    @in_own_loop
    async def test_satisfies_protocol(self, backend: SessionBackend) -> None:
        missing = [name for name in ("create", "read", "update", "touch", "delete", "list_by_user",
                                     "delete_by_user", "purge_expired", "aclose") if not hasattr(backend, name)]
        assert isinstance(backend, SessionBackend), f"SessionBackend methods missing: {missing}"

    # -- create and read ---------------------------------------------------------------------

    @in_own_loop
    async def test_create_then_read_round_trips_every_field(self, backend: SessionBackend) -> None:
        record = self.record(user_id=self.new_user(), payload=b'{"a":[1,2,3]}')
        await backend.create(record, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got == record, broke("round-trip", f"created {show(record)}, read {show(got)}")
        assert got.created_at.utcoffset() == timedelta(0), broke("round-trip", f"created_at {got.created_at!r}")
        assert got.expires_at.utcoffset() == timedelta(0), broke("round-trip", f"expires_at {got.expires_at!r}")

    @in_own_loop
    async def test_read_of_unknown_key_is_none(self, backend: SessionBackend) -> None:
        got = await backend.read(self.new_key(), now=self.now())
        assert got is None, broke("read-never-creates", f"read() of a fresh key returned {show(got)}")

    @in_own_loop
    async def test_read_never_creates(self, backend: SessionBackend) -> None:
        key = self.new_key()
        for _ in range(2):
            got = await backend.read(key, now=self.now())
            assert got is None, broke("read-never-creates", f"read() of a fresh key returned {show(got)}")
        deleted = await backend.delete(key, now=self.now())
        assert deleted is False, broke("delete-idempotent", f"delete() of a key only read returned {deleted!r}")

    @in_own_loop
    async def test_create_is_insert_only(self, backend: SessionBackend) -> None:
        original = self.record(payload=b'{"who":"first"}')
        await backend.create(original, now=self.now())
        second = self.record(key=original.key, payload=b'{"who":"second"}')
        with pytest.raises(SessionExists):
            await backend.create(second, now=self.now())
            pytest.fail(broke("create-insert-only", "a second create() of a live key returned normally"))
        got = await backend.read(original.key, now=self.now())
        assert got == original, broke("create-insert-only", f"after a refused create(), read {show(got)}")

    @in_own_loop
    async def test_create_over_an_expired_record_succeeds(self, backend: SessionBackend) -> None:
        old = self.short_lived(payload=b'{"old":true}')
        await backend.create(old, now=self.now())
        await self.expire(backend)
        fresh = self.record(key=old.key, payload=b'{"new":true}')
        await backend.create(fresh, now=self.now())
        got = await backend.read(old.key, now=self.now())
        assert got == fresh, broke("create-over-expired", f"created {show(fresh)} over an expired one, "
                                                          f"read {show(got)}")

    @in_own_loop
    async def test_expired_record_is_never_returned(self, backend: SessionBackend) -> None:
        short = self.short_lived()
        long = self.record()
        await backend.create(short, now=self.now())
        await backend.create(long, now=self.now())
        got = await backend.read(short.key, now=self.now())
        assert got == short, broke("round-trip", f"read {show(got)} before expiry")
        await self.expire(backend)
        got = await backend.read(short.key, now=self.now())
        assert got is None, broke("expired-is-absent", f"read() after expiry returned {show(got)}")
        got = await backend.read(long.key, now=self.now())
        assert got == long, broke("keys-independent", f"a live record read {show(got)}")

    @in_own_loop
    async def test_expired_records_are_absent_to_every_method(self, backend: SessionBackend) -> None:
        """Past its expiry, and before any purge, a record is absent to every method: delete() says False."""
        t = ms(self.now())
        user = self.new_user()
        records = [self.record_at(t, user_id=user, payload=b'{"i":%d}' % i) for i in range(4)]
        for record in records:
            await backend.create(record, now=t)
        now, later = t + 61 * SECOND, t + 3600 * SECOND
        seen = "expired at T+60s, called at T+61s"
        to_delete, to_touch, to_update, to_read_and_touch = records
        deleted = await backend.delete(to_delete.key, now=now)
        assert deleted is False, broke("delete-idempotent", f"{seen}: delete() -> {deleted!r}")
        touched = await backend.touch(to_touch.key, later, now=now)
        assert touched is False, broke("touch-no-revival", f"{seen}: touch() -> {touched!r}")
        with pytest.raises(SessionNotFound):
            await backend.update(self._with(to_update, b'{"revived":1}', expires_at=later), 1, now=now)
            pytest.fail(broke("update-no-resurrection", f"{seen}: update() returned normally"))
        if isinstance(backend, SupportsReadAndTouch):
            got, extended = await backend.read_and_touch(
                to_read_and_touch.key, now=now, idle_timeout=timedelta(hours=1), absolute_timeout=timedelta(hours=8),
                refresh_interval=timedelta(minutes=1))
            assert (got, extended) == (None, False), broke(
                "read-and-touch-deadlines", f"{seen}: read_and_touch() -> {show((got, extended))}")
        for record in records:
            got = await backend.read(record.key, now=now)
            assert got is None, broke("expired-is-absent", f"{seen}: read() -> {show(got)}")
        listed = await backend.list_by_user(user, now=now)
        assert list(listed) == [], broke("expired-is-absent", f"{seen}: list_by_user() -> {show(listed)}")
        count = await backend.delete_by_user(user, now=now)
        assert count == 0, broke("delete-by-user-exact", f"{seen}: delete_by_user() counted {count}")

    @in_own_loop
    async def test_keys_are_independent(self, backend: SessionBackend) -> None:
        first, second = self.record(payload=b'{"i":1}'), self.record(payload=b'{"i":2}')
        await backend.create(first, now=self.now())
        await backend.create(second, now=self.now())
        await backend.delete(first.key, now=self.now())
        got = await backend.read(first.key, now=self.now())
        assert got is None, broke("delete-idempotent", f"read() after delete() returned {show(got)}")
        got = await backend.read(second.key, now=self.now())
        assert got == second, broke("keys-independent", f"deleting another key left {show(got)}")

    @in_own_loop
    async def test_create_starts_at_version_one(self, backend: SessionBackend) -> None:
        record = replace(self.record(), version=7)
        await backend.create(record, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got == replace(record, version=1), broke("create-version-one", f"created version 7, read {show(got)}")
        version = await backend.update(self._with(record, b'{"n":2}'), expected_version=1, now=self.now())
        assert version == 2, broke("update-next-version", f"the first update() returned {version!r}")
