"""``BackendConformance``: the storage contract as a pytest class any backend can run.

Subclass it in a test module and override one async fixture::

    import pytest_asyncio
    from fastapi_sessions.testing import BackendConformance

    class TestMyBackend(BackendConformance):
        @pytest_asyncio.fixture
        async def backend(self):
            async with MyBackend("...") as backend:
                yield backend

Every test is marked ``asyncio`` explicitly, so the kit runs under
pytest-asyncio's strict mode. Keys and user ids are random per test, so a
shared server is safe and tests may run in parallel.

One clock decides liveness: the kit passes :meth:`now` as ``now`` to every
call, as the manager passes its clock, and the tests of the passed ``now``
move it by hand, also three hours either side of the system clock, so a
backend that judges by a clock of its own or sets a native expiry as an
absolute time (instead of relative to ``now``) fails them without any
sleeping. One test calls without ``now``: the backend's own clock, which
:meth:`now` must then match.

Physical expiry is exercised with short deadlines: records expire
``expiry_delay`` seconds after the kit creates them and :meth:`advance` lets
that time pass (a real sleep by default; override it when the backend takes an
injectable clock). Optional abilities are :class:`Capability` values listed in
``capabilities``; a test needing one the class does not declare is skipped
with the capability's name, or fails when ``strict = True`` (or the
environment variable ``FASTAPI_SESSIONS_CONFORMANCE_STRICT=1``) is set.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import ClassVar

import pytest
import pytest_asyncio

from ..core.contract import SessionBackend, SupportsReadAndTouch
from ..core.errors import (
    BackendError,
    BackendUnavailable,
    SessionConflict,
    SessionExists,
    SessionNotFound,
)
from ..core.records import SessionRecord
from ..core.tokens import new_token, storage_key

__all__ = ["BackendConformance", "Capability"]


class Capability(StrEnum):
    """Optional abilities a conformance subclass can declare."""

    #: The subclass implements :meth:`BackendConformance.stored_record`, reading the
    #: store directly, so the kit can check that data really landed (and really left).
    OUT_OF_BAND_READ = "out_of_band_read"
    #: ``purge_expired()`` returns the exact number of expired records it removed.
    #: Stores whose server expires records on its own cannot promise that.
    EXACT_PURGE_COUNT = "exact_purge_count"
    #: The backend implements ``SupportsReadAndTouch.read_and_touch`` (the fused read
    #: that extends the idle deadline in the same round trip).
    READ_AND_TOUCH = "read_and_touch"
    #: The subclass provides an ``unreachable_backend`` fixture: the same backend
    #: pointed at a server that does not answer.
    UNREACHABLE_SERVER = "unreachable_server"


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


SECOND = timedelta(seconds=1)
#: Where the tests of the passed ``now`` put it: the kit's clock (``None``), and three hours
#: either side of the system clock, where an absolute native expiry or a second clock shows.
NOW_SKEWS: dict[str, timedelta | None] = {
    "kit-clock": None,
    "system+3h": timedelta(hours=3),
    "system-3h": timedelta(hours=-3),
}
_skews = pytest.mark.parametrize("skew", list(NOW_SKEWS.values()), ids=list(NOW_SKEWS))


def _ms(value: datetime) -> datetime:
    # Some stores keep milliseconds only; the kit's timestamps fit every store.
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


class BackendConformance:
    """The executable specification of ``SessionBackend``. See the module docstring."""

    #: Abilities this backend has beyond the mandatory contract.
    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    #: Fail instead of skipping tests whose capability is not declared.
    strict: ClassVar[bool] = False
    #: Seconds after which the kit's short-lived records expire.
    expiry_delay: ClassVar[float] = 0.5
    #: Seconds :meth:`expire` waits beyond ``expiry_delay``: the store's expiry granularity and lag.
    expiry_margin: ClassVar[float] = 0.3

    # -- what a subclass provides ------------------------------------------------------------

    @pytest_asyncio.fixture
    async def backend(self) -> AsyncIterator[SessionBackend]:
        """Override: yield a ready backend, and close it afterwards."""
        pytest.fail("BackendConformance subclasses must override the async `backend` fixture")
        yield  # pragma: no cover

    @pytest_asyncio.fixture
    async def unreachable_backend(self) -> AsyncIterator[SessionBackend]:
        """Override with ``UNREACHABLE_SERVER``: the backend pointed at a server that does not answer."""
        self.require(Capability.UNREACHABLE_SERVER)  # skips (or fails) when it is not declared
        pytest.fail("declaring UNREACHABLE_SERVER needs an `unreachable_backend` fixture")
        yield  # pragma: no cover

    def now(self) -> datetime:
        """The kit's clock, passed as ``now`` to every call (override with the backend's injected clock).

        It must match the backend's own clock, which judges calls without ``now``.
        """
        return datetime.now(UTC)

    async def advance(self, backend: SessionBackend, seconds: float) -> None:
        """Let ``seconds`` pass for ``backend``; a real sleep unless overridden."""
        await asyncio.sleep(seconds)

    async def stored_record(self, backend: SessionBackend, key: str) -> SessionRecord | None:
        """Read ``key`` straight from the store, bypassing ``backend`` (``OUT_OF_BAND_READ``).

        Return what is physically stored, expired or not, or ``None``.
        """
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------------------------

    def require(self, capability: Capability) -> None:
        if capability in self.capabilities:
            return
        message = f"backend does not declare capability {capability.value!r}"
        if self.strict or os.environ.get("FASTAPI_SESSIONS_CONFORMANCE_STRICT") == "1":
            pytest.fail(message)
        pytest.skip(message)

    @staticmethod
    def new_key() -> str:
        return storage_key(new_token())

    @staticmethod
    def new_user() -> str:
        return f"user-{uuid.uuid4().hex}"

    def record(
        self,
        *,
        key: str | None = None,
        payload: bytes = b'{"n":1}',
        user_id: str | None = None,
        ttl: float = 3600,
    ) -> SessionRecord:
        now = _ms(self.now())
        return SessionRecord(
            key=key or self.new_key(),
            payload=payload,
            user_id=user_id,
            created_at=now,
            expires_at=_ms(now + timedelta(seconds=ttl)),
            version=1,
        )

    def start(self, skew: timedelta | None) -> datetime:
        """Where a test of the passed ``now`` starts its clock (see ``NOW_SKEWS``)."""
        return _ms(self.now() if skew is None else datetime.now(UTC) + skew)

    def record_at(
        self, now: datetime, *, key: str | None = None, payload: bytes = b'{"n":1}', user_id: str | None = None,
        ttl: float = 60,
    ) -> SessionRecord:
        """A record created at ``now`` that expires ``ttl`` seconds later."""
        return SessionRecord(key or self.new_key(), payload, user_id, now, now + timedelta(seconds=ttl), 1)

    def short_lived(self, **kwargs: object) -> SessionRecord:
        return self.record(ttl=self.expiry_delay, **kwargs)  # type: ignore[arg-type]

    async def expire(self, backend: SessionBackend) -> None:
        """Let every short-lived record of this test expire."""
        await self.advance(backend, self.expiry_delay + self.expiry_margin)

    # -- the protocol ------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_satisfies_protocol(self, backend: SessionBackend) -> None:
        assert isinstance(backend, SessionBackend)

    # -- create and read ---------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_create_then_read_round_trips_every_field(self, backend: SessionBackend) -> None:
        record = self.record(user_id=self.new_user(), payload=b'{"a":[1,2,3]}')
        await backend.create(record, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got == record
        assert got is not None and got.created_at.utcoffset() == timedelta(0)
        assert got.expires_at.utcoffset() == timedelta(0)

    @pytest.mark.asyncio
    async def test_read_of_unknown_key_is_none(self, backend: SessionBackend) -> None:
        assert await backend.read(self.new_key(), now=self.now()) is None

    @pytest.mark.asyncio
    async def test_read_never_creates(self, backend: SessionBackend) -> None:
        key = self.new_key()
        assert await backend.read(key, now=self.now()) is None
        assert await backend.read(key, now=self.now()) is None
        assert await backend.delete(key, now=self.now()) is False

    @pytest.mark.asyncio
    async def test_create_is_insert_only(self, backend: SessionBackend) -> None:
        original = self.record(payload=b'{"who":"first"}')
        await backend.create(original, now=self.now())
        with pytest.raises(SessionExists):
            await backend.create(self.record(key=original.key, payload=b'{"who":"second"}'), now=self.now())
        assert await backend.read(original.key, now=self.now()) == original

    @pytest.mark.asyncio
    async def test_create_over_an_expired_record_succeeds(self, backend: SessionBackend) -> None:
        old = self.short_lived(payload=b'{"old":true}')
        await backend.create(old, now=self.now())
        await self.expire(backend)
        fresh = self.record(key=old.key, payload=b'{"new":true}')
        await backend.create(fresh, now=self.now())
        assert await backend.read(old.key, now=self.now()) == fresh

    @pytest.mark.asyncio
    async def test_expired_record_is_never_returned(self, backend: SessionBackend) -> None:
        short = self.short_lived()
        long = self.record()
        await backend.create(short, now=self.now())
        await backend.create(long, now=self.now())
        assert await backend.read(short.key, now=self.now()) == short
        await self.expire(backend)
        assert await backend.read(short.key, now=self.now()) is None
        assert await backend.read(long.key, now=self.now()) == long

    @pytest.mark.asyncio
    async def test_keys_are_independent(self, backend: SessionBackend) -> None:
        first, second = self.record(payload=b'{"i":1}'), self.record(payload=b'{"i":2}')
        await backend.create(first, now=self.now())
        await backend.create(second, now=self.now())
        await backend.delete(first.key, now=self.now())
        assert await backend.read(first.key, now=self.now()) is None
        assert await backend.read(second.key, now=self.now()) == second

    @pytest.mark.asyncio
    async def test_create_starts_at_version_one(self, backend: SessionBackend) -> None:
        record = replace(self.record(), version=7)
        await backend.create(record, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got == replace(record, version=1)
        assert await backend.update(self._with(record, b'{"n":2}'), expected_version=1, now=self.now()) == 2

    # -- one clock: liveness by the passed `now` ---------------------------------------------

    @pytest.mark.asyncio
    @_skews
    async def test_read_judges_liveness_by_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        t = self.start(skew)
        record = self.record_at(t, user_id=self.new_user())
        await backend.create(record, now=t)
        assert await backend.read(record.key, now=t + 59 * SECOND) == record
        assert await backend.read(record.key, now=t + 60 * SECOND) is None  # expires_at <= now: expired
        assert await backend.read(record.key, now=t + 61 * SECOND) is None

    @pytest.mark.asyncio
    @_skews
    async def test_update_judges_liveness_by_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        t = self.start(skew)
        record = self.record_at(t)
        await backend.create(record, now=t)
        later = t + 120 * SECOND
        assert await backend.update(self._with(record, b'{"n":2}', expires_at=later), 1, now=t + 59 * SECOND) == 2
        got = await backend.read(record.key, now=t + 119 * SECOND)
        assert got == SessionRecord(record.key, b'{"n":2}', None, t, later, 2)
        with pytest.raises(SessionNotFound):
            await backend.update(self._with(record, b'{"n":3}', expires_at=t + 3600 * SECOND), 2, now=later)
        assert await backend.read(record.key, now=later) is None

    @pytest.mark.asyncio
    @_skews
    async def test_touch_judges_liveness_by_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        t = self.start(skew)
        user = self.new_user()
        record = self.record_at(t, user_id=user)
        await backend.create(record, now=t)
        later = t + 120 * SECOND
        assert await backend.touch(record.key, later, now=t + 59 * SECOND) is True
        assert await backend.read(record.key, now=t + 119 * SECOND) == replace(record, expires_at=later)
        assert [r.key for r in await backend.list_by_user(user, now=t + 119 * SECOND)] == [record.key]
        assert await backend.touch(record.key, t + 3600 * SECOND, now=t + 121 * SECOND) is False  # no revival
        assert await backend.read(record.key, now=t + 121 * SECOND) is None

    @pytest.mark.asyncio
    @_skews
    async def test_delete_judges_liveness_by_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        t = self.start(skew)
        live, dead = self.record_at(t), self.record_at(t)
        await backend.create(live, now=t)
        await backend.create(dead, now=t)
        assert await backend.delete(live.key, now=t + 59 * SECOND) is True
        assert await backend.touch(live.key, t + 3600 * SECOND, now=t + 59 * SECOND) is False  # deleted stays gone
        assert await backend.read(live.key, now=t + 59 * SECOND) is None
        assert await backend.delete(dead.key, now=t + 61 * SECOND) is False
        assert await backend.read(dead.key, now=t + 61 * SECOND) is None

    @pytest.mark.asyncio
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
        assert sorted(r.key for r in listed) == sorted([short.key, long.key])
        assert list(await backend.list_by_user(user, now=t + 61 * SECOND)) == [long]

    @pytest.mark.asyncio
    @_skews
    async def test_delete_by_user_judges_liveness_by_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        t = self.start(skew)
        expired_user, live_user = self.new_user(), self.new_user()
        await backend.create(self.record_at(t, user_id=expired_user), now=t)
        assert await backend.delete_by_user(expired_user, now=t + 61 * SECOND) == 0
        mine = self.record_at(t, user_id=live_user)
        await backend.create(mine, now=t)
        assert await backend.delete_by_user(live_user, now=t + 59 * SECOND) == 1
        assert await backend.read(mine.key, now=t + 59 * SECOND) is None

    @pytest.mark.asyncio
    @_skews
    async def test_create_judges_liveness_by_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        t = self.start(skew)
        old = self.record_at(t, payload=b'{"old":true}', user_id=self.new_user())
        await backend.create(old, now=t)
        with pytest.raises(SessionExists):
            await backend.create(self.record_at(t + 59 * SECOND, key=old.key), now=t + 59 * SECOND)
        fresh = self.record_at(t + 61 * SECOND, key=old.key, payload=b'{"new":true}', ttl=3600)
        await backend.create(fresh, now=t + 61 * SECOND)
        assert await backend.read(old.key, now=t + 61 * SECOND) == fresh

    @pytest.mark.asyncio
    @_skews
    async def test_native_expiry_is_relative_to_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        """What the store expires by itself counts the time left at ``now``, by the server's own clock."""
        t = self.start(skew)
        user = self.new_user()
        record = self.record_at(t, user_id=user, ttl=3600)
        await backend.create(record, now=t)
        assert await backend.update(self._with(record, b'{"n":2}', expires_at=t + 7200 * SECOND), 1, now=t) == 2
        assert await backend.touch(record.key, t + 10800 * SECOND, now=t) is True
        if t <= datetime.now(UTC):  # a purge at a later `now` would take the records of tests running beside
            await backend.purge_expired(now=t)
        expected = SessionRecord(record.key, b'{"n":2}', user, t, t + 10800 * SECOND, 2)
        assert await backend.read(record.key, now=t) == expected
        assert list(await backend.list_by_user(user, now=t)) == [expected]
        if Capability.OUT_OF_BAND_READ in self.capabilities:
            assert await self.stored_record(backend, record.key) == expected
        assert await backend.read(record.key, now=t + 10799 * SECOND) == expected

    @pytest.mark.asyncio
    @_skews
    async def test_read_and_touch_judges_by_the_passed_now(
        self, backend: SessionBackend, skew: timedelta | None
    ) -> None:
        self.require(Capability.READ_AND_TOUCH)
        t = self.start(skew)
        record = self.record_at(t, user_id=self.new_user())
        await backend.create(record, now=t)
        got, extended = await self._read_and_touch(backend, record.key, t + 30 * SECOND, idle=3600)
        assert extended is True and got == replace(record, expires_at=t + 3630 * SECOND)
        assert await backend.read(record.key, now=t + 3629 * SECOND) == got
        assert await self._read_and_touch(backend, record.key, t + 3630 * SECOND) == (None, False)

    @pytest.mark.asyncio
    async def test_without_now_the_backend_judges_by_its_own_clock(self, backend: SessionBackend) -> None:
        """``now`` is optional: a call without it is judged by the backend's own clock, which :meth:`now` matches."""
        user = self.new_user()
        record, short = self.record(user_id=user), self.short_lived(user_id=user)
        await backend.create(record)
        await backend.create(short)
        assert await backend.read(short.key) == short
        assert await backend.update(self._with(record, b'{"n":2}'), 1) == 2
        assert await backend.touch(record.key, record.expires_at) is True
        await self.expire(backend)
        assert await backend.read(short.key) is None
        assert await backend.touch(short.key, _ms(self.now() + timedelta(hours=1))) is False
        assert [r.key for r in await backend.list_by_user(user)] == [record.key]
        assert await backend.purge_expired() >= 0
        assert await backend.delete(record.key) is True
        assert await backend.delete_by_user(user) == 0
        assert await backend.read(record.key) is None

    # -- update (compare-and-set) ------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_update_replaces_and_returns_the_next_version(self, backend: SessionBackend) -> None:
        record = self.record()
        await backend.create(record, now=self.now())
        later = _ms(record.expires_at + timedelta(minutes=5))
        changed = SessionRecord(record.key, b'{"n":2}', record.user_id, record.created_at, later, 1)
        assert await backend.update(changed, expected_version=1, now=self.now()) == 2
        got = await backend.read(record.key, now=self.now())
        assert got == SessionRecord(record.key, b'{"n":2}', None, record.created_at, later, 2)
        third = SessionRecord(record.key, b'{"n":3}', None, record.created_at, later, 2)
        assert await backend.update(third, 2, now=self.now()) == 3

    @pytest.mark.asyncio
    async def test_update_with_a_stale_version_conflicts(self, backend: SessionBackend) -> None:
        record = self.record()
        await backend.create(record, now=self.now())
        await backend.update(self._with(record, b'{"n":2}'), expected_version=1, now=self.now())
        with pytest.raises(SessionConflict):
            await backend.update(self._with(record, b'{"n":99}'), expected_version=1, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got is not None and got.payload == b'{"n":2}' and got.version == 2

    @pytest.mark.asyncio
    async def test_update_of_an_unknown_key_is_not_found(self, backend: SessionBackend) -> None:
        record = self.record()
        with pytest.raises(SessionNotFound):
            await backend.update(record, expected_version=1, now=self.now())
        assert await backend.read(record.key, now=self.now()) is None

    @pytest.mark.asyncio
    async def test_update_never_resurrects_an_expired_record(self, backend: SessionBackend) -> None:
        record = self.short_lived()
        await backend.create(record, now=self.now())
        await self.expire(backend)
        revived = self._with(record, b'{"revived":true}', expires_at=_ms(self.now() + timedelta(hours=1)))
        with pytest.raises(SessionNotFound):
            await backend.update(revived, expected_version=1, now=self.now())
        assert await backend.read(record.key, now=self.now()) is None

    @pytest.mark.asyncio
    async def test_update_never_resurrects_a_deleted_record(self, backend: SessionBackend) -> None:
        record = self.record()
        await backend.create(record, now=self.now())
        await backend.delete(record.key, now=self.now())
        with pytest.raises(SessionNotFound):
            await backend.update(self._with(record, b"{}"), expected_version=1, now=self.now())
        assert await backend.read(record.key, now=self.now()) is None

    @pytest.mark.asyncio
    async def test_update_can_shorten_expiry(self, backend: SessionBackend) -> None:
        record = self.record()
        await backend.create(record, now=self.now())
        soon = _ms(self.now() + timedelta(seconds=self.expiry_delay))
        await backend.update(self._with(record, record.payload, expires_at=soon), expected_version=1, now=self.now())
        await self.expire(backend)
        assert await backend.read(record.key, now=self.now()) is None

    @pytest.mark.asyncio
    async def test_concurrent_updates_with_one_version_have_exactly_one_winner(
        self, backend: SessionBackend
    ) -> None:
        record = self.record()
        await backend.create(record, now=self.now())
        attempts = [self._with(record, f'{{"writer":{i}}}'.encode()) for i in range(20)]
        now = self.now()
        results = await asyncio.gather(
            *(backend.update(attempt, expected_version=1, now=now) for attempt in attempts), return_exceptions=True
        )
        winners = [i for i, result in enumerate(results) if result == 2]
        losers = [result for result in results if isinstance(result, SessionConflict)]
        assert len(winners) == 1, results
        assert len(losers) == 19, results
        got = await backend.read(record.key, now=self.now())
        assert got is not None and got.version == 2
        assert got.payload == attempts[winners[0]].payload

    # -- touch and delete --------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_touch_extends_expiry_without_rewriting(self, backend: SessionBackend) -> None:
        record = self.short_lived(payload=b'{"keep":"me"}')
        await backend.create(record, now=self.now())
        later = _ms(self.now() + timedelta(hours=1))
        assert await backend.touch(record.key, later, now=self.now()) is True
        await self.expire(backend)
        got = await backend.read(record.key, now=self.now())
        assert got is not None
        assert (got.payload, got.version, got.expires_at) == (record.payload, record.version, later)

    @pytest.mark.asyncio
    async def test_touch_of_a_missing_or_expired_record_is_false(self, backend: SessionBackend) -> None:
        assert await backend.touch(self.new_key(), _ms(self.now() + timedelta(hours=1)), now=self.now()) is False
        record = self.short_lived()
        await backend.create(record, now=self.now())
        await self.expire(backend)
        assert await backend.touch(record.key, _ms(self.now() + timedelta(hours=1)), now=self.now()) is False
        assert await backend.read(record.key, now=self.now()) is None

    @pytest.mark.asyncio
    async def test_delete_is_idempotent(self, backend: SessionBackend) -> None:
        record = self.record()
        await backend.create(record, now=self.now())
        assert await backend.delete(record.key, now=self.now()) is True
        assert await backend.delete(record.key, now=self.now()) is False
        assert await backend.read(record.key, now=self.now()) is None
        assert await backend.delete(self.new_key(), now=self.now()) is False

    # -- per-user index ----------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_list_by_user_lists_exactly_that_users_live_sessions(self, backend: SessionBackend) -> None:
        alice, bob = self.new_user(), self.new_user()
        mine = [self.record(user_id=alice) for _ in range(3)]
        for record in [*mine, self.record(user_id=bob), self.record()]:
            await backend.create(record, now=self.now())
        listed = await backend.list_by_user(alice, now=self.now())
        assert sorted(r.key for r in listed) == sorted(r.key for r in mine)
        assert all(r.user_id == alice for r in listed)
        assert await backend.list_by_user(self.new_user(), now=self.now()) == []

    @pytest.mark.asyncio
    async def test_list_by_user_excludes_expired_and_deleted(self, backend: SessionBackend) -> None:
        alice = self.new_user()
        live, short, gone = self.record(user_id=alice), self.short_lived(user_id=alice), self.record(user_id=alice)
        for record in (live, short, gone):
            await backend.create(record, now=self.now())
        await backend.delete(gone.key, now=self.now())
        await self.expire(backend)
        assert [r.key for r in await backend.list_by_user(alice, now=self.now())] == [live.key]

    @pytest.mark.asyncio
    async def test_delete_by_user_removes_exactly_that_users_sessions(self, backend: SessionBackend) -> None:
        alice, bob = self.new_user(), self.new_user()
        mine = [self.record(user_id=alice) for _ in range(3)]
        others = [self.record(user_id=bob), self.record()]
        for record in [*mine, *others]:
            await backend.create(record, now=self.now())
        assert await backend.delete_by_user(alice, now=self.now()) == 3
        for record in mine:
            assert await backend.read(record.key, now=self.now()) is None
        for record in others:
            assert await backend.read(record.key, now=self.now()) == record
        assert await backend.list_by_user(alice, now=self.now()) == []
        assert await backend.delete_by_user(alice, now=self.now()) == 0

    @pytest.mark.asyncio
    async def test_delete_by_user_does_not_count_expired_sessions(self, backend: SessionBackend) -> None:
        alice = self.new_user()
        await backend.create(self.short_lived(user_id=alice), now=self.now())
        live = self.record(user_id=alice)
        await backend.create(live, now=self.now())
        await self.expire(backend)
        assert await backend.delete_by_user(alice, now=self.now()) == 1
        assert await backend.read(live.key, now=self.now()) is None

    @pytest.mark.asyncio
    async def test_update_that_changes_the_user_moves_the_session(self, backend: SessionBackend) -> None:
        alice, bob = self.new_user(), self.new_user()
        record = self.record(user_id=alice)
        await backend.create(record, now=self.now())
        moved = SessionRecord(record.key, record.payload, bob, record.created_at, record.expires_at, 1)
        await backend.update(moved, expected_version=1, now=self.now())
        assert await backend.list_by_user(alice, now=self.now()) == []
        assert [r.key for r in await backend.list_by_user(bob, now=self.now())] == [record.key]
        assert await backend.delete_by_user(alice, now=self.now()) == 0
        assert await backend.read(record.key, now=self.now()) is not None

    @pytest.mark.asyncio
    @pytest.mark.parametrize("user_id", ODD_USER_IDS, ids=lambda u: f"len{len(u)}-{u[:12]!r}")
    async def test_odd_but_legal_user_ids_are_data(self, backend: SessionBackend, user_id: str) -> None:
        user = f"{user_id}-{uuid.uuid4().hex}"  # unique per test, so the index is this test's alone
        record = self.record(user_id=user)
        await backend.create(record, now=self.now())
        assert await backend.read(record.key, now=self.now()) == record
        assert [r.key for r in await backend.list_by_user(user, now=self.now())] == [record.key]
        assert await backend.list_by_user(user_id, now=self.now()) == []  # a prefix is not a match
        assert await backend.delete_by_user(user, now=self.now()) == 1

    # -- payloads ----------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_payload_of_one_mebibyte_round_trips(self, backend: SessionBackend) -> None:
        payload = os.urandom(1024 * 1024)
        record = self.record(payload=payload)
        await backend.create(record, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got is not None and got.payload == payload
        bigger = payload[::-1]
        await backend.update(self._with(record, bigger), expected_version=1, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got is not None and got.payload == bigger

    @pytest.mark.asyncio
    @pytest.mark.parametrize(
        "payload",
        [b"", bytes(range(256)), b"\x00\x00", '{"k":"ünï\'\\"$.{}"}'.encode(), b'{"$set":{"a.b":1}}'],
        ids=["empty", "all-bytes", "nuls", "unicode-quotes", "operator-like"],
    )
    async def test_payload_bytes_are_opaque(self, backend: SessionBackend, payload: bytes) -> None:
        record = self.record(payload=payload)
        await backend.create(record, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got is not None and got.payload == payload

    # -- purge -------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_purge_expired_removes_expired_and_keeps_live(self, backend: SessionBackend) -> None:
        alice = self.new_user()
        expired = [self.short_lived(user_id=alice) for _ in range(5)]
        live = [self.record(user_id=alice) for _ in range(3)]
        for record in [*expired, *live]:
            await backend.create(record, now=self.now())
        await self.expire(backend)
        removed = await backend.purge_expired(now=self.now())
        assert removed >= 0
        for record in live:
            assert await backend.read(record.key, now=self.now()) == record
        for record in expired:
            assert await backend.read(record.key, now=self.now()) is None
        assert sorted(r.key for r in await backend.list_by_user(alice, now=self.now())) == sorted(r.key for r in live)

    @pytest.mark.asyncio
    async def test_purge_expired_counts_what_it_removed(self, backend: SessionBackend) -> None:
        self.require(Capability.EXACT_PURGE_COUNT)
        await backend.purge_expired(now=self.now())  # start from a store without expired leftovers
        expired = [self.short_lived() for _ in range(4)]
        for record in [*expired, self.record()]:
            await backend.create(record, now=self.now())
        await self.expire(backend)
        assert await backend.purge_expired(now=self.now()) == 4
        assert await backend.purge_expired(now=self.now()) == 0

    # -- read and touch (optional) -----------------------------------------------------------

    async def _read_and_touch(
        self, backend: SessionBackend, key: str, now: datetime, *, idle: float = 3600, absolute: float = 8 * 3600,
        refresh: float = 60,
    ) -> tuple[SessionRecord | None, bool]:
        self.require(Capability.READ_AND_TOUCH)
        assert isinstance(backend, SupportsReadAndTouch)
        return await backend.read_and_touch(
            key,
            now=now,
            idle_timeout=timedelta(seconds=idle),
            absolute_timeout=timedelta(seconds=absolute),
            refresh_interval=timedelta(seconds=refresh),
        )

    @pytest.mark.asyncio
    async def test_read_and_touch_of_missing_or_expired_is_none(self, backend: SessionBackend) -> None:
        now = _ms(self.now())
        assert await self._read_and_touch(backend, self.new_key(), now) == (None, False)
        record = self.short_lived()
        await backend.create(record, now=self.now())
        await self.expire(backend)
        assert await self._read_and_touch(backend, record.key, _ms(self.now())) == (None, False)
        assert await backend.read(record.key, now=self.now()) is None

    @pytest.mark.asyncio
    async def test_read_and_touch_extends_the_idle_deadline_when_due(self, backend: SessionBackend) -> None:
        record = self.record(ttl=600, payload=b'{"keep":1}', user_id=self.new_user())
        await backend.create(record, now=self.now())
        now = _ms(self.now())
        got, extended = await self._read_and_touch(backend, record.key, now, idle=3600)
        assert extended is True
        expected = SessionRecord(
            record.key, record.payload, record.user_id, record.created_at, now + timedelta(seconds=3600), 1
        )
        assert got == expected
        assert await backend.read(record.key, now=self.now()) == expected

    @pytest.mark.asyncio
    async def test_read_and_touch_leaves_a_fresh_deadline_alone(self, backend: SessionBackend) -> None:
        record = self.record(ttl=3600 - 30)
        await backend.create(record, now=self.now())
        got, extended = await self._read_and_touch(backend, record.key, _ms(self.now()), idle=3600, refresh=60)
        assert (got, extended) == (record, False)
        assert await backend.read(record.key, now=self.now()) == record

    @pytest.mark.asyncio
    async def test_read_and_touch_never_passes_the_absolute_deadline(self, backend: SessionBackend) -> None:
        now = _ms(self.now())
        started = now - timedelta(hours=7, minutes=50)  # absolute deadline in 10 minutes
        record = SessionRecord(self.new_key(), b"{}", None, started, now + timedelta(minutes=1), 1)
        await backend.create(record, now=self.now())
        got, extended = await self._read_and_touch(backend, record.key, now, idle=3600, absolute=8 * 3600)
        assert extended is True
        assert got is not None and got.expires_at == started + timedelta(hours=8)

    @pytest.mark.asyncio
    async def test_read_and_touch_then_update_still_compares_versions(self, backend: SessionBackend) -> None:
        record = self.record(ttl=600)
        await backend.create(record, now=self.now())
        await self._read_and_touch(backend, record.key, _ms(self.now()))
        assert await backend.update(self._with(record, b'{"n":2}'), expected_version=1, now=self.now()) == 2
        with pytest.raises(SessionConflict):
            await backend.update(self._with(record, b'{"n":3}'), expected_version=1, now=self.now())

    # -- out of band -------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_writes_really_land_in_the_store(self, backend: SessionBackend) -> None:
        self.require(Capability.OUT_OF_BAND_READ)
        record = self.record(user_id=self.new_user(), payload=b'{"landed":true}')
        await backend.create(record, now=self.now())
        assert await self.stored_record(backend, record.key) == record
        await backend.update(self._with(record, b'{"landed":2}'), expected_version=1, now=self.now())
        stored = await self.stored_record(backend, record.key)
        assert stored is not None and (stored.payload, stored.version) == (b'{"landed":2}', 2)
        await backend.delete(record.key, now=self.now())
        assert await self.stored_record(backend, record.key) is None

    @pytest.mark.asyncio
    async def test_purge_physically_removes_expired_records(self, backend: SessionBackend) -> None:
        self.require(Capability.OUT_OF_BAND_READ)
        record = self.short_lived()
        await backend.create(record, now=self.now())
        await self.expire(backend)
        await backend.purge_expired(now=self.now())
        assert await self.stored_record(backend, record.key) is None

    # -- failures ----------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_unreachable_server_raises_backend_unavailable(self, unreachable_backend: SessionBackend) -> None:
        # Requested as an argument, so an async fixture is set up before this test's loop runs
        # (getfixturevalue() from inside a running loop cannot set one up).
        self.require(Capability.UNREACHABLE_SERVER)
        backend = unreachable_backend
        record = self.record(user_id=self.new_user())
        calls: list[Callable[[], Awaitable[object]]] = [  # built one at a time: none is left un-awaited
            lambda: backend.create(record, now=self.now()),
            lambda: backend.read(record.key, now=self.now()),
            lambda: backend.update(record, 1, now=self.now()),
            lambda: backend.touch(record.key, record.expires_at, now=self.now()),
            lambda: backend.delete(record.key, now=self.now()),
            lambda: backend.list_by_user("u", now=self.now()),
            lambda: backend.delete_by_user("u", now=self.now()),
            lambda: backend.purge_expired(now=self.now()),
        ]
        for call in calls:
            with pytest.raises(BackendUnavailable) as caught:
                await call()
            assert isinstance(caught.value, BackendError)

    @pytest.mark.asyncio
    async def test_aclose_is_idempotent(self, backend: SessionBackend) -> None:
        await backend.aclose()
        await backend.aclose()

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _with(record: SessionRecord, payload: bytes, *, expires_at: datetime | None = None) -> SessionRecord:
        return SessionRecord(
            record.key, payload, record.user_id, record.created_at, expires_at or record.expires_at, record.version
        )
