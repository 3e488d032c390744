"""The optional maintenance methods, ``purge_expired_batch`` and ``count_records``: tested whenever they are there.

Operators' tools use them by presence (``isinstance(backend, SupportsBatchedPurge)``,
``SupportsRecordCounts``), so the kit does too; a backend without them skips
these tests, naming them. Purges and counts see the whole store, not one key,
so these tests work at a ``now`` of their own: about ten years back (where only
this test's records have expired) and ten years ahead (where only its records
are live). A shared store stays safe: nothing another test wrote is expired at
the first, and nothing of theirs is touched at the second.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from .._core.contract import SessionBackend, SupportsBatchedPurge, SupportsRecordCounts
from ._base import KitBase, in_own_loop, ms, sorted_keys
from ._rules import broke, show

__all__ = ["MaintenanceTests"]

HOUR = timedelta(hours=1)
_DECADE = timedelta(days=3652)


class MaintenanceTests(KitBase):
    def batched(self, backend: SessionBackend) -> SupportsBatchedPurge:
        """``backend`` as a batched purger, or skip: the method is optional."""
        if isinstance(backend, SupportsBatchedPurge):
            self.report_optional("purge_expired_batch", "tested")
            return backend
        self.report_optional("purge_expired_batch", "absent (tools make one purge_expired() call)")
        pytest.skip(f"{self._kit_test}: the backend has no purge_expired_batch() (an optional maintenance method)")

    def counted(self, backend: SessionBackend) -> SupportsRecordCounts:
        """``backend`` as a record counter, or skip: the method is optional."""
        if isinstance(backend, SupportsRecordCounts):
            self.report_optional("count_records", "tested")
            return backend
        self.report_optional("count_records", "absent (tools say the counts are unknown)")
        pytest.skip(f"{self._kit_test}: the backend has no count_records() (an optional maintenance method)")

    def far(self, direction: int) -> datetime:
        """A ``now`` about ten years back (``-1``) or ahead (``1``), a random few months apart per test."""
        return ms(self.now() + direction * (_DECADE + timedelta(minutes=random.randrange(500_000))))

    async def _clear_past(self, backend: SessionBackend, cut: datetime) -> None:
        # Only leftovers of an earlier run of these tests are expired this far back.
        await backend.purge_expired(now=cut)

    @in_own_loop
    async def test_purge_expired_batch_removes_at_most_limit(self, backend: SessionBackend) -> None:
        batched = self.batched(backend)
        start = self.far(-1)
        cut = start + 2 * HOUR
        await self._clear_past(backend, cut)
        user = self.new_user()
        expired = [self.record_at(start, user_id=user, ttl=3600) for _ in range(5)]
        live = [self.record_at(start, user_id=user, ttl=3 * 3600) for _ in range(2)]
        for record in [*expired, *live]:
            await backend.create(record, now=start)
        counts = [await batched.purge_expired_batch(2, now=cut) for _ in range(4)]
        assert counts == [2, 2, 1, 0], broke(
            "purge-batch", f"five expired, two live; four purge_expired_batch(2) calls counted {counts}")
        for record in expired:
            # Read at a time it was live: only a record physically there can come back.
            got = await backend.read(record.key, now=start + timedelta(seconds=1))
            assert got is None, broke("purge-batch", f"purged, yet read at a time it was live: {show(got)}")
        for record in live:
            got = await backend.read(record.key, now=cut)
            assert got == record, broke("purge-batch", f"a live record after purge_expired_batch(): {show(got)}")
        listed = await backend.list_by_user(user, now=cut)
        assert sorted_keys(listed) == sorted_keys(live), broke(
            "purge-batch", f"after purge_expired_batch() listed {show(listed)}")
        await backend.delete_by_user(user, now=cut)

    @in_own_loop
    async def test_purge_expired_batch_of_one_leaves_the_rest(self, backend: SessionBackend) -> None:
        batched = self.batched(backend)
        start = self.far(-1)
        cut = start + 2 * HOUR
        await self._clear_past(backend, cut)
        records = [self.record_at(start, ttl=3600) for _ in range(3)]
        for record in records:
            await backend.create(record, now=start)
        removed = await batched.purge_expired_batch(1, now=cut)
        assert removed == 1, broke("purge-batch", f"three expired; purge_expired_batch(1) counted {removed}")
        there = [r.key for r in records if await backend.read(r.key, now=start) is not None]
        assert len(there) == 2, broke("purge-batch", f"purge_expired_batch(1) of three left {len(there)} stored")
        rest = await backend.purge_expired(now=cut)
        assert rest >= 2, broke("purge", f"two expired left; purge_expired() counted {rest}")

    @in_own_loop
    async def test_count_records_counts_expired_at_the_passed_now(self, backend: SessionBackend) -> None:
        counted = self.counted(backend)
        start = self.far(-1)
        cut = start + 2 * HOUR
        await self._clear_past(backend, cut)
        records = [self.record_at(start, ttl=3600) for _ in range(2)]
        records.append(self.record_at(start, ttl=3 * 3600))
        for record in records:
            await backend.create(record, now=start)
        counts = await counted.count_records(now=cut)
        assert counts.expired == 2, broke(
            "counts", f"two records expired ten years back (nothing else is); count_records() -> {counts!r}")
        assert counts.live >= 1, broke("counts", f"one of them still live at that now; count_records() -> {counts!r}")
        before = await counted.count_records(now=start - HOUR)
        assert before.expired == 0, broke("counts", f"nothing expired an hour before; count_records() -> {before!r}")
        await backend.purge_expired(now=cut)
        after = await counted.count_records(now=cut)
        assert after.expired == 0, broke("counts", f"after purge_expired(): count_records() -> {after!r}")
        await backend.purge_expired(now=cut + 2 * HOUR)

    @in_own_loop
    async def test_count_records_counts_live_at_the_passed_now(self, backend: SessionBackend) -> None:
        counted = self.counted(backend)
        start = self.far(1)
        records = [self.record_at(start, ttl=3600) for _ in range(3)]
        records.append(self.record_at(start, ttl=30))
        for record in records:
            await backend.create(record, now=start)
        counts = await counted.count_records(now=start + timedelta(minutes=1))
        assert counts.live == 3, broke(
            "counts", f"three records live ten years ahead (nothing else is); count_records() -> {counts!r}")
        assert counts.expired >= 1, broke("counts", f"one of them expired; count_records() -> {counts!r}")
        for record in records:
            await backend.delete(record.key, now=start)
        counts = await counted.count_records(now=start + timedelta(minutes=1))
        assert counts.live == 0, broke("counts", f"all four deleted; count_records() -> {counts!r}")
