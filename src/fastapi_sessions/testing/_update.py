"""Update, a compare-and-set on the version: the next version, conflicts, never a resurrection.

``update(record, expected_version)`` returns ``expected_version + 1``, raises
``SessionConflict`` on a stale version and ``SessionNotFound`` for an unknown,
expired or deleted key (storing nothing), keeps the stored ``created_at``, and
may shorten the expiry.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from .._core.contract import SessionBackend
from .._core.records import SessionRecord
from ..errors import SessionConflict, SessionNotFound
from ._base import KitBase, in_own_loop, ms
from ._rules import broke, show

__all__ = ["UpdateTests"]


class UpdateTests(KitBase):
    @in_own_loop
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

    @in_own_loop
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

    @in_own_loop
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

    @in_own_loop
    async def test_update_of_an_unknown_key_is_not_found(self, backend: SessionBackend) -> None:
        record = self.record()
        with pytest.raises(SessionNotFound):
            await backend.update(record, expected_version=1, now=self.now())
            pytest.fail(broke("update-no-resurrection", "update() of an unknown key returned normally"))
        got = await backend.read(record.key, now=self.now())
        assert got is None, broke("update-no-resurrection", f"after update() of an unknown key read {show(got)}")

    @in_own_loop
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

    @in_own_loop
    async def test_update_never_resurrects_a_deleted_record(self, backend: SessionBackend) -> None:
        record = self.record()
        await backend.create(record, now=self.now())
        await backend.delete(record.key, now=self.now())
        with pytest.raises(SessionNotFound):
            await backend.update(self._with(record, b"{}"), expected_version=1, now=self.now())
            pytest.fail(broke("update-no-resurrection", "update() of a deleted record returned normally"))
        got = await backend.read(record.key, now=self.now())
        assert got is None, broke("update-no-resurrection", f"after update() of a deleted record read {show(got)}")

    @in_own_loop
    async def test_update_can_shorten_expiry(self, backend: SessionBackend) -> None:
        record = self.record()
        await backend.create(record, now=self.now())
        soon = ms(self.now() + timedelta(seconds=self.expiry_delay))
        await backend.update(self._with(record, record.payload, expires_at=soon), expected_version=1, now=self.now())
        await self.expire(backend)
        got = await backend.read(record.key, now=self.now())
        assert got is None, broke("expired-is-absent", f"update() shortened the expiry; after it read {show(got)}")
