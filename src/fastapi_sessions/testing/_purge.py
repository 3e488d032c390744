"""Purge: ``purge_expired`` removes expired records, keeps live ones and, with ``EXACT_PURGE_COUNT``, counts exactly."""

from __future__ import annotations

from .._core.contract import SessionBackend
from ._base import Capability, KitBase, in_own_loop, sorted_keys
from ._rules import broke, show

__all__ = ["PurgeTests"]


class PurgeTests(KitBase):
    @in_own_loop
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
        assert sorted_keys(listed) == sorted_keys(live), broke("purge", f"after purge_expired() listed {show(listed)}")

    @in_own_loop
    async def test_purge_expired_counts_what_it_removed(self, backend: SessionBackend) -> None:
        self.require(Capability.EXACT_PURGE_COUNT)
        await backend.purge_expired(now=self.now())  # start from a store without expired leftovers
        expired = [self.short_lived() for _ in range(4)]
        for record in [*expired, self.record()]:
            await backend.create(record, now=self.now())
        await self.expire(backend)
        counts = [await backend.purge_expired(now=self.now()) for _ in range(2)]
        assert counts == [4, 0], broke("purge-count", f"four expired, one live; two purges counted {counts}")
