"""``BackendConformance``: the storage contract as a pytest class any backend can run.

Subclass it in a test module and override one async fixture::

    class TestMyBackend(BackendConformance):
        @pytest_asyncio.fixture(loop_scope="function")
        async def backend(self) -> AsyncIterator[SessionBackend]:
            async with MyBackend("...") as backend:
                yield backend

Every test is marked ``asyncio`` with ``loop_scope="function"``, so the kit runs
under pytest-asyncio's strict mode whatever the project's default loop scope;
give your fixtures the same loop scope. Keys and user ids are random per test,
so a shared server is safe and tests may run in parallel.

One clock decides liveness: the kit passes :meth:`now` as ``now`` to every
call, as the manager passes its clock, and the tests of the passed ``now``
move it by hand, also three hours either side of the system clock, so a
backend that judges by a clock of its own or sets a native expiry as an
absolute time (instead of relative to ``now``) fails them without any
sleeping. One test calls without ``now``: the backend's own clock, which
:meth:`now` must then match.

Physical expiry is exercised with short deadlines: records expire
``expiry_delay`` seconds after the kit creates them and :meth:`expire` lets
that time pass (through :meth:`advance`: a real sleep by default; override it
when the backend takes an injectable clock).

Optional methods are tested whenever the backend has them, as the manager
uses them whenever they are there (``read_and_touch``: ``_fused.py``). Every
mutating method is raced against the others on one key (``_concurrency.py``).
Capabilities (:class:`Capability`) are what the *subclass* provides for
further checks; a test needing one the class neither declares nor lists in
``not_applicable`` is skipped with the test's name and the capability's, or
fails when ``strict = True`` (or ``FASTAPI_SESSIONS_CONFORMANCE_STRICT=1``).
A failure names the contract rule that broke and what the backend did.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ..core.contract import SessionBackend, SupportsReadAndTouch
from ..core.errors import (
    BackendError,
    BackendUnavailable,
    SessionConflict,
    SessionExists,
    SessionNotFound,
)
from ..core.records import SessionRecord
from ._base import SECOND, Capability, ms
from ._concurrency import ConcurrencyTests
from ._fused import ReadAndTouchTests
from ._rules import broke, show

__all__ = ["BackendConformance", "Capability"]

_ms = ms  # the name kit v1 used

ODD_USER_IDS = [
    "ユーザー😀",
    "o'brien \"quoted\"",
    "$ne",
    '{"$ne": null}',
    "$where",
    "a.b.c",
    "with space\tand tab",
    "back\\slash/slash",
    "semi;colon,comma=equals",
    "%00%zz",
    "x" * 1000,
]

#: Where the tests of the passed ``now`` put it: the kit's clock (``None``), and three hours
#: either side of the system clock, where an absolute native expiry or a second clock shows.
NOW_SKEWS: dict[str, timedelta | None] = {
    "kit-clock": None,
    "system+3h": timedelta(hours=3),
    "system-3h": timedelta(hours=-3),
}
_skews = pytest.mark.parametrize("skew", list(NOW_SKEWS.values()), ids=list(NOW_SKEWS))
_kit = pytest.mark.asyncio(loop_scope="function")


def _keys(records: Sequence[SessionRecord]) -> list[str]:
    return sorted(r.key for r in records)


class BackendConformance(ConcurrencyTests, ReadAndTouchTests):
    """The executable specification of ``SessionBackend``. See the module docstring."""

    # -- the protocol ------------------------------------------------------------------------

    @_kit
    async def test_satisfies_protocol(self, backend: SessionBackend) -> None:
        missing = [name for name in ("create", "read", "update", "touch", "delete", "list_by_user",
                                     "delete_by_user", "purge_expired", "aclose") if not hasattr(backend, name)]
        assert isinstance(backend, SessionBackend), f"SessionBackend methods missing: {missing}"

    # -- create and read ---------------------------------------------------------------------

    @_kit
    async def test_create_then_read_round_trips_every_field(self, backend: SessionBackend) -> None:
        record = self.record(user_id=self.new_user(), payload=b'{"a":[1,2,3]}')
        await backend.create(record, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got == record, broke("round-trip", f"created {show(record)}, read {show(got)}")
        assert got.created_at.utcoffset() == timedelta(0), broke("round-trip", f"created_at {got.created_at!r}")
        assert got.expires_at.utcoffset() == timedelta(0), broke("round-trip", f"expires_at {got.expires_at!r}")

    @_kit
    async def test_read_of_unknown_key_is_none(self, backend: SessionBackend) -> None:
        got = await backend.read(self.new_key(), now=self.now())
        assert got is None, broke("read-never-creates", f"read() of a fresh key returned {show(got)}")

    @_kit
    async def test_read_never_creates(self, backend: SessionBackend) -> None:
        key = self.new_key()
        for _ in range(2):
            got = await backend.read(key, now=self.now())
            assert got is None, broke("read-never-creates", f"read() of a fresh key returned {show(got)}")
        deleted = await backend.delete(key, now=self.now())
        assert deleted is False, broke("delete-idempotent", f"delete() of a key only read returned {deleted!r}")

    @_kit
    async def test_create_is_insert_only(self, backend: SessionBackend) -> None:
        original = self.record(payload=b'{"who":"first"}')
        await backend.create(original, now=self.now())
        second = self.record(key=original.key, payload=b'{"who":"second"}')
        with pytest.raises(SessionExists):
            await backend.create(second, now=self.now())
            pytest.fail(broke("create-insert-only", "a second create() of a live key returned normally"))
        got = await backend.read(original.key, now=self.now())
        assert got == original, broke("create-insert-only", f"after a refused create(), read {show(got)}")

    @_kit
    async def test_create_over_an_expired_record_succeeds(self, backend: SessionBackend) -> None:
        old = self.short_lived(payload=b'{"old":true}')
        await backend.create(old, now=self.now())
        await self.expire(backend)
        fresh = self.record(key=old.key, payload=b'{"new":true}')
        await backend.create(fresh, now=self.now())
        got = await backend.read(old.key, now=self.now())
        assert got == fresh, broke("create-over-expired", f"created {show(fresh)} over an expired one, "
                                                          f"read {show(got)}")

    @_kit
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

    @_kit
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

    @_kit
    async def test_keys_are_independent(self, backend: SessionBackend) -> None:
        first, second = self.record(payload=b'{"i":1}'), self.record(payload=b'{"i":2}')
        await backend.create(first, now=self.now())
        await backend.create(second, now=self.now())
        await backend.delete(first.key, now=self.now())
        got = await backend.read(first.key, now=self.now())
        assert got is None, broke("delete-idempotent", f"read() after delete() returned {show(got)}")
        got = await backend.read(second.key, now=self.now())
        assert got == second, broke("keys-independent", f"deleting another key left {show(got)}")

    @_kit
    async def test_create_starts_at_version_one(self, backend: SessionBackend) -> None:
        record = replace(self.record(), version=7)
        await backend.create(record, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got == replace(record, version=1), broke("create-version-one", f"created version 7, read {show(got)}")
        version = await backend.update(self._with(record, b'{"n":2}'), expected_version=1, now=self.now())
        assert version == 2, broke("update-next-version", f"the first update() returned {version!r}")

    # -- one clock: liveness by the passed `now` ---------------------------------------------

    @_kit
    @_skews
    async def test_read_judges_liveness_by_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        t = self.start(skew)
        record = self.record_at(t, user_id=self.new_user())
        await backend.create(record, now=t)
        for offset, expected in ((59, record), (60, None), (61, None)):  # expires_at <= now: expired
            got = await backend.read(record.key, now=t + offset * SECOND)
            assert got == expected, broke("one-clock", f"expires at T+60s; read(now=T+{offset}s) -> {show(got)}")

    @_kit
    @_skews
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

    @_kit
    @_skews
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
        assert _keys(listed) == [record.key], broke("touch-extends-index", f"list_by_user(now=T+119s) -> {listed}")
        touched = await backend.touch(record.key, t + 3600 * SECOND, now=t + 121 * SECOND)
        assert touched is False, broke("touch-no-revival", f"expired at T+120s; touch(now=T+121s) -> {touched!r}")
        got = await backend.read(record.key, now=t + 121 * SECOND)
        assert got is None, broke("touch-no-revival", f"read() after touching an expired record -> {show(got)}")

    @_kit
    @_skews
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

    @_kit
    @_skews
    async def test_list_by_user_judges_liveness_by_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        t = self.start(skew)
        user = self.new_user()
        short, long = self.record_at(t, user_id=user), self.record_at(t, user_id=user, ttl=3600)
        await backend.create(short, now=t)
        await backend.create(long, now=t)
        listed = await backend.list_by_user(user, now=t + 59 * SECOND)
        assert _keys(listed) == sorted([short.key, long.key]), broke("one-clock", f"at T+59s listed {show(listed)}")
        listed = await backend.list_by_user(user, now=t + 61 * SECOND)
        assert list(listed) == [long], broke("one-clock", f"one expired at T+60s; at T+61s listed {show(listed)}")

    @_kit
    @_skews
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

    @_kit
    @_skews
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

    @_kit
    @_skews
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

    @_kit
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
        assert _keys(listed) == [record.key], broke("own-clock", f"list_by_user() without now -> {show(listed)}")
        assert await backend.purge_expired() >= 0
        deleted = await backend.delete(record.key)
        assert deleted is True, broke("own-clock", f"delete() without now -> {deleted!r}")
        count = await backend.delete_by_user(user)
        assert count == 0, broke("own-clock", f"delete_by_user() without now counted {count}")
        got = await backend.read(record.key)
        assert got is None, broke("own-clock", f"read() without now, after delete -> {show(got)}")

    # -- update (compare-and-set) ------------------------------------------------------------

    @_kit
    async def test_update_replaces_and_returns_the_next_version(self, backend: SessionBackend) -> None:
        record = self.record()
        await backend.create(record, now=self.now())
        later = ms(record.expires_at + timedelta(minutes=5))
        changed = SessionRecord(record.key, b'{"n":2}', record.user_id, record.created_at, later, 1)
        version = await backend.update(changed, expected_version=1, now=self.now())
        assert version == 2, broke("update-next-version", f"update(expected_version=1) -> {version!r}")
        got = await backend.read(record.key, now=self.now())
        expected = SessionRecord(record.key, b'{"n":2}', None, record.created_at, later, 2)
        assert got == expected, broke("update-next-version", f"after update read {show(got)}")
        third = SessionRecord(record.key, b'{"n":3}', None, record.created_at, later, 2)
        version = await backend.update(third, 2, now=self.now())
        assert version == 3, broke("update-next-version", f"update(expected_version=2) -> {version!r}")

    @_kit
    async def test_update_keeps_the_stored_created_at(self, backend: SessionBackend) -> None:
        """``record.created_at`` identifies the session: a caller's different value is not stored."""
        record = self.record(user_id=self.new_user())
        await backend.create(record, now=self.now())
        moved = replace(record, payload=b'{"n":2}', created_at=record.created_at - timedelta(hours=5))
        await backend.update(moved, expected_version=1, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got is not None and got.created_at == record.created_at, broke(
            "update-keeps-identity", f"created at {record.created_at.isoformat()}; after an update whose record "
            f"says {moved.created_at.isoformat()} read {show(got)}")
        listed = await backend.list_by_user(record.user_id or "", now=self.now())
        assert [r.created_at for r in listed] == [record.created_at], broke(
            "update-keeps-identity", f"list_by_user() -> {show(listed)}")

    @_kit
    async def test_update_with_a_stale_version_conflicts(self, backend: SessionBackend) -> None:
        record = self.record()
        await backend.create(record, now=self.now())
        await backend.update(self._with(record, b'{"n":2}'), expected_version=1, now=self.now())
        with pytest.raises(SessionConflict):
            await backend.update(self._with(record, b'{"n":99}'), expected_version=1, now=self.now())
            pytest.fail(broke("update-cas", "stored version 2; update(expected_version=1) returned normally"))
        got = await backend.read(record.key, now=self.now())
        assert got is not None and (got.payload, got.version) == (b'{"n":2}', 2), broke(
            "update-cas", f"after a refused update read {show(got)}")

    @_kit
    async def test_update_of_an_unknown_key_is_not_found(self, backend: SessionBackend) -> None:
        record = self.record()
        with pytest.raises(SessionNotFound):
            await backend.update(record, expected_version=1, now=self.now())
            pytest.fail(broke("update-no-resurrection", "update() of an unknown key returned normally"))
        got = await backend.read(record.key, now=self.now())
        assert got is None, broke("update-no-resurrection", f"after update() of an unknown key read {show(got)}")

    @_kit
    async def test_update_never_resurrects_an_expired_record(self, backend: SessionBackend) -> None:
        record = self.short_lived()
        await backend.create(record, now=self.now())
        await self.expire(backend)
        revived = self._with(record, b'{"revived":true}', expires_at=ms(self.now() + timedelta(hours=1)))
        with pytest.raises(SessionNotFound):
            await backend.update(revived, expected_version=1, now=self.now())
            pytest.fail(broke("update-no-resurrection", "update() of an expired record returned normally"))
        got = await backend.read(record.key, now=self.now())
        assert got is None, broke("update-no-resurrection", f"after update() of an expired record read {show(got)}")

    @_kit
    async def test_update_never_resurrects_a_deleted_record(self, backend: SessionBackend) -> None:
        record = self.record()
        await backend.create(record, now=self.now())
        await backend.delete(record.key, now=self.now())
        with pytest.raises(SessionNotFound):
            await backend.update(self._with(record, b"{}"), expected_version=1, now=self.now())
            pytest.fail(broke("update-no-resurrection", "update() of a deleted record returned normally"))
        got = await backend.read(record.key, now=self.now())
        assert got is None, broke("update-no-resurrection", f"after update() of a deleted record read {show(got)}")

    @_kit
    async def test_update_can_shorten_expiry(self, backend: SessionBackend) -> None:
        record = self.record()
        await backend.create(record, now=self.now())
        soon = ms(self.now() + timedelta(seconds=self.expiry_delay))
        await backend.update(self._with(record, record.payload, expires_at=soon), expected_version=1, now=self.now())
        await self.expire(backend)
        got = await backend.read(record.key, now=self.now())
        assert got is None, broke("expired-is-absent", f"update() shortened the expiry; after it read {show(got)}")

    # -- touch and delete --------------------------------------------------------------------

    @_kit
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
        assert _keys(listed) == [record.key], broke(
            "touch-extends-index", f"past the original expiry list_by_user() -> {show(listed)}")
        count = await backend.delete_by_user(user, now=self.now())
        assert count == 1, broke("touch-extends-index", f"past the original expiry delete_by_user() counted {count}")

    @_kit
    async def test_touch_keeps_the_record_listed_for_its_user(self, backend: SessionBackend) -> None:
        """Log out everywhere must find a touched session after its original deadline."""
        t = ms(self.now())
        user = self.new_user()
        record = self.record_at(t, user_id=user, ttl=60)
        await backend.create(record, now=t)
        touched = await backend.touch(record.key, t + 3600 * SECOND, now=t + 30 * SECOND)
        assert touched is True, broke("touch-only-expiry", f"touch() of a live record -> {touched!r}")
        listed = await backend.list_by_user(user, now=t + 120 * SECOND)
        assert _keys(listed) == [record.key], broke(
            "touch-extends-index", f"expired at T+60s, touched to T+3600s; list_by_user(now=T+120s) -> {show(listed)}")
        count = await backend.delete_by_user(user, now=t + 120 * SECOND)
        assert count == 1, broke("touch-extends-index", f"delete_by_user(now=T+120s) counted {count}")
        got = await backend.read(record.key, now=t + 120 * SECOND)
        assert got is None, broke("touch-extends-index", f"after delete_by_user() read {show(got)}: still logged in")

    @_kit
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

    @_kit
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

    @_kit
    async def test_delete_is_idempotent(self, backend: SessionBackend) -> None:
        record = self.record()
        await backend.create(record, now=self.now())
        results = [await backend.delete(record.key, now=self.now()) for _ in range(2)]
        assert results == [True, False], broke("delete-idempotent", f"delete() twice -> {results}")
        got = await backend.read(record.key, now=self.now())
        assert got is None, broke("delete-idempotent", f"read() after delete() -> {show(got)}")
        deleted = await backend.delete(self.new_key(), now=self.now())
        assert deleted is False, broke("delete-idempotent", f"delete() of an unknown key -> {deleted!r}")

    # -- per-user index ----------------------------------------------------------------------

    @_kit
    async def test_list_by_user_lists_exactly_that_users_live_sessions(self, backend: SessionBackend) -> None:
        alice, bob = self.new_user(), self.new_user()
        mine = [self.record(user_id=alice) for _ in range(3)]
        for record in [*mine, self.record(user_id=bob), self.record()]:
            await backend.create(record, now=self.now())
        listed = await backend.list_by_user(alice, now=self.now())
        assert _keys(listed) == _keys(mine), broke("index-exact", f"listed {show(listed)}")
        assert all(r.user_id == alice for r in listed), broke("index-exact", f"listed {show(listed)}")
        listed = await backend.list_by_user(self.new_user(), now=self.now())
        assert list(listed) == [], broke("index-exact", f"a user without sessions listed {show(listed)}")

    @_kit
    async def test_list_by_user_excludes_expired_and_deleted(self, backend: SessionBackend) -> None:
        alice = self.new_user()
        live, short, gone = self.record(user_id=alice), self.short_lived(user_id=alice), self.record(user_id=alice)
        for record in (live, short, gone):
            await backend.create(record, now=self.now())
        await backend.delete(gone.key, now=self.now())
        await self.expire(backend)
        listed = await backend.list_by_user(alice, now=self.now())
        assert _keys(listed) == [live.key], broke("index-exact", f"one live, one expired, one deleted: {show(listed)}")

    @_kit
    async def test_delete_by_user_removes_exactly_that_users_sessions(self, backend: SessionBackend) -> None:
        alice, bob = self.new_user(), self.new_user()
        mine = [self.record(user_id=alice) for _ in range(3)]
        others = [self.record(user_id=bob), self.record()]
        for record in [*mine, *others]:
            await backend.create(record, now=self.now())
        count = await backend.delete_by_user(alice, now=self.now())
        assert count == 3, broke("delete-by-user-exact", f"three live sessions; delete_by_user() counted {count}")
        for record in mine:
            got = await backend.read(record.key, now=self.now())
            assert got is None, broke("delete-by-user-exact", f"after delete_by_user() read {show(got)}")
        for record in others:
            got = await backend.read(record.key, now=self.now())
            assert got == record, broke("delete-by-user-exact", f"another user's (or no user's) record: {show(got)}")
        listed = await backend.list_by_user(alice, now=self.now())
        assert list(listed) == [], broke("delete-by-user-exact", f"after delete_by_user() listed {show(listed)}")
        count = await backend.delete_by_user(alice, now=self.now())
        assert count == 0, broke("delete-by-user-exact", f"a second delete_by_user() counted {count}")

    @_kit
    async def test_delete_by_user_does_not_count_expired_sessions(self, backend: SessionBackend) -> None:
        alice = self.new_user()
        await backend.create(self.short_lived(user_id=alice), now=self.now())
        live = self.record(user_id=alice)
        await backend.create(live, now=self.now())
        await self.expire(backend)
        count = await backend.delete_by_user(alice, now=self.now())
        assert count == 1, broke("delete-by-user-exact", f"one live, one expired; delete_by_user() counted {count}")
        got = await backend.read(live.key, now=self.now())
        assert got is None, broke("delete-by-user-exact", f"after delete_by_user() read {show(got)}")

    @_kit
    async def test_update_that_changes_the_user_moves_the_session(self, backend: SessionBackend) -> None:
        alice, bob = self.new_user(), self.new_user()
        record = self.record(user_id=alice)
        await backend.create(record, now=self.now())
        moved = SessionRecord(record.key, record.payload, bob, record.created_at, record.expires_at, 1)
        await backend.update(moved, expected_version=1, now=self.now())
        listed = await backend.list_by_user(alice, now=self.now())
        assert list(listed) == [], broke("update-moves-user", f"moved to bob; alice's list: {show(listed)}")
        listed = await backend.list_by_user(bob, now=self.now())
        assert _keys(listed) == [record.key], broke("update-moves-user", f"moved to bob; bob's list: {show(listed)}")
        count = await backend.delete_by_user(alice, now=self.now())
        assert count == 0, broke("update-moves-user", f"moved to bob; delete_by_user(alice) counted {count}")
        got = await backend.read(record.key, now=self.now())
        assert got is not None, broke("update-moves-user", "delete_by_user(alice) removed bob's session")

    @_kit
    @pytest.mark.parametrize("user_id", ODD_USER_IDS, ids=lambda u: f"len{len(u)}-{u[:12]!r}")
    async def test_odd_but_legal_user_ids_are_data(self, backend: SessionBackend, user_id: str) -> None:
        user = f"{user_id}-{uuid.uuid4().hex}"  # unique per test, so the index is this test's alone
        record = self.record(user_id=user)
        await backend.create(record, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got == record, broke("user-ids-are-data", f"read {show(got)}")
        listed = await backend.list_by_user(user, now=self.now())
        assert _keys(listed) == [record.key], broke("user-ids-are-data", f"listed {show(listed)}")
        listed = await backend.list_by_user(user_id, now=self.now())
        assert list(listed) == [], broke("user-ids-are-data", f"a prefix of the user id listed {show(listed)}")
        count = await backend.delete_by_user(user, now=self.now())
        assert count == 1, broke("user-ids-are-data", f"delete_by_user() counted {count}")

    # -- payloads ----------------------------------------------------------------------------

    @_kit
    async def test_payload_of_one_mebibyte_round_trips(self, backend: SessionBackend) -> None:
        payload = os.urandom(1024 * 1024)
        record = self.record(payload=payload)
        await backend.create(record, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got is not None and got.payload == payload, broke("payload-opaque", f"read {show(got)}")
        bigger = payload[::-1]
        await backend.update(self._with(record, bigger), expected_version=1, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got is not None and got.payload == bigger, broke("payload-opaque", f"after update read {show(got)}")

    @_kit
    @pytest.mark.parametrize(
        "payload",
        [b"", bytes(range(256)), b"\x00\x00", '{"k":"ünï\'\\"$.{}"}'.encode(), b'{"$set":{"a.b":1}}'],
        ids=["empty", "all-bytes", "nuls", "unicode-quotes", "operator-like"],
    )
    async def test_payload_bytes_are_opaque(self, backend: SessionBackend, payload: bytes) -> None:
        record = self.record(payload=payload)
        await backend.create(record, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got is not None and got.payload == payload, broke("payload-opaque", f"stored {payload!r}, read "
                                                                                    f"{show(got)}")

    # -- purge -------------------------------------------------------------------------------

    @_kit
    async def test_purge_expired_removes_expired_and_keeps_live(self, backend: SessionBackend) -> None:
        alice = self.new_user()
        expired = [self.short_lived(user_id=alice) for _ in range(5)]
        live = [self.record(user_id=alice) for _ in range(3)]
        for record in [*expired, *live]:
            await backend.create(record, now=self.now())
        await self.expire(backend)
        removed = await backend.purge_expired(now=self.now())
        assert removed >= 0, broke("purge", f"purge_expired() returned {removed!r}")
        for record in live:
            got = await backend.read(record.key, now=self.now())
            assert got == record, broke("purge", f"a live record after purge_expired(): {show(got)}")
        for record in expired:
            got = await backend.read(record.key, now=self.now())
            assert got is None, broke("expired-is-absent", f"an expired record after purge_expired(): {show(got)}")
        listed = await backend.list_by_user(alice, now=self.now())
        assert _keys(listed) == _keys(live), broke("purge", f"after purge_expired() listed {show(listed)}")

    @_kit
    async def test_purge_expired_counts_what_it_removed(self, backend: SessionBackend) -> None:
        self.require(Capability.EXACT_PURGE_COUNT)
        await backend.purge_expired(now=self.now())  # start from a store without expired leftovers
        expired = [self.short_lived() for _ in range(4)]
        for record in [*expired, self.record()]:
            await backend.create(record, now=self.now())
        await self.expire(backend)
        counts = [await backend.purge_expired(now=self.now()) for _ in range(2)]
        assert counts == [4, 0], broke("purge-count", f"four expired, one live; two purges counted {counts}")

    # -- out of band -------------------------------------------------------------------------

    @_kit
    async def test_writes_really_land_in_the_store(self, backend: SessionBackend) -> None:
        self.require(Capability.OUT_OF_BAND_READ)
        record = self.record(user_id=self.new_user(), payload=b'{"landed":true}')
        await backend.create(record, now=self.now())
        stored = await self.stored_record(backend, record.key)
        assert stored == record, broke("writes-land", f"created {show(record)}, the store holds {show(stored)}")
        await backend.update(self._with(record, b'{"landed":2}'), expected_version=1, now=self.now())
        stored = await self.stored_record(backend, record.key)
        assert stored is not None and (stored.payload, stored.version) == (b'{"landed":2}', 2), broke(
            "writes-land", f"after update the store holds {show(stored)}")
        later = ms(record.expires_at + timedelta(hours=1))
        await backend.touch(record.key, later, now=self.now())
        stored = await self.stored_record(backend, record.key)
        assert stored is not None and stored.expires_at == later, broke(
            "writes-land", f"after touch() to {later.isoformat()} the store holds {show(stored)}")
        await backend.delete(record.key, now=self.now())
        stored = await self.stored_record(backend, record.key)
        assert stored is None, broke("writes-land", f"after delete() the store holds {show(stored)}")

    @_kit
    async def test_purge_physically_removes_expired_records(self, backend: SessionBackend) -> None:
        self.require(Capability.OUT_OF_BAND_READ)
        self.require(Capability.IMMEDIATE_PURGE)
        record = self.short_lived()
        await backend.create(record, now=self.now())
        await self.expire(backend)
        await backend.purge_expired(now=self.now())
        stored = await self.stored_record(backend, record.key)
        assert stored is None, broke("purge-removes-at-once", f"after purge_expired() the store holds {show(stored)}")

    # -- failures ----------------------------------------------------------------------------

    @_kit
    async def test_unreachable_server_raises_backend_unavailable(self, unreachable_backend: SessionBackend) -> None:
        # Requested as an argument, so an async fixture is set up before this test's loop runs
        # (getfixturevalue() from inside a running loop cannot set one up).
        self.require(Capability.UNREACHABLE_SERVER)
        backend = unreachable_backend
        record = self.record(user_id=self.new_user())
        calls: dict[str, Callable[[], Awaitable[object]]] = {  # built one at a time: none is left un-awaited
            "create": lambda: backend.create(record, now=self.now()),
            "read": lambda: backend.read(record.key, now=self.now()),
            "update": lambda: backend.update(record, 1, now=self.now()),
            "touch": lambda: backend.touch(record.key, record.expires_at, now=self.now()),
            "delete": lambda: backend.delete(record.key, now=self.now()),
            "list_by_user": lambda: backend.list_by_user("u", now=self.now()),
            "delete_by_user": lambda: backend.delete_by_user("u", now=self.now()),
            "purge_expired": lambda: backend.purge_expired(now=self.now()),
        }
        if isinstance(backend, SupportsReadAndTouch):  # optional, but the manager calls it on every request
            fused = backend
            calls["read_and_touch"] = lambda: fused.read_and_touch(
                record.key, now=self.now(), idle_timeout=timedelta(hours=1), absolute_timeout=timedelta(hours=8),
                refresh_interval=timedelta(minutes=1))
            self.report_optional("read_and_touch errors", "tested (BackendUnavailable when unreachable)")
        for name, call in calls.items():
            try:
                result = await call()
            except BackendUnavailable as exc:
                assert isinstance(exc, BackendError)
            except Exception as exc:  # what leaked is the finding
                pytest.fail(broke("errors-mapped", f"{name}() raised {type(exc).__module__}.{type(exc).__name__}: "
                                                   f"{exc}"))
            else:
                pytest.fail(broke("errors-mapped", f"{name}() returned {show(result)}"))

    @_kit
    async def test_aclose_is_idempotent(self, backend: SessionBackend) -> None:
        await backend.aclose()
        await backend.aclose()
