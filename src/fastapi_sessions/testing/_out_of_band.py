"""What the store holds (``OUT_OF_BAND_READ``): writes land, deletes and purges leave.

Read through the subclass's ``stored_record``, which bypasses the backend, so a
backend that answers from a cache of its own, or reports a write it did not
make, fails here.
"""

from __future__ import annotations

from datetime import timedelta

from .._core.contract import SessionBackend
from ._base import Capability, KitBase, in_own_loop, ms
from ._rules import broke, show

__all__ = ["OutOfBandTests"]


class OutOfBandTests(KitBase):
    @in_own_loop
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

    @in_own_loop
    async def test_purge_physically_removes_expired_records(self, backend: SessionBackend) -> None:
        self.require(Capability.OUT_OF_BAND_READ)
        self.require(Capability.IMMEDIATE_PURGE)
        record = self.short_lived()
        await backend.create(record, now=self.now())
        await self.expire(backend)
        await backend.purge_expired(now=self.now())
        stored = await self.stored_record(backend, record.key)
        assert stored is None, broke("purge-removes-at-once", f"after purge_expired() the store holds {show(stored)}")
