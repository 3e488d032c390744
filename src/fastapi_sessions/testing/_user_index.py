"""The per-user index: ``list_by_user`` and ``delete_by_user`` see exactly one user's live sessions.

Expired and deleted sessions are left out (and not counted), an update that
changes the user moves the session, and any unicode user id is data: quotes,
``$``, dots, JSON and a thousand characters are stored and matched literally.
"""

from __future__ import annotations

import uuid

import pytest

from .._core.contract import SessionBackend
from .._core.records import SessionRecord
from ._base import KitBase, in_own_loop, sorted_keys
from ._rules import broke, show

__all__ = ["ODD_USER_IDS", "UserIndexTests"]

#: User ids a store might take for syntax (quotes, operators, paths, escapes) or cut short; all are data.
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


class UserIndexTests(KitBase):
    @in_own_loop
    async def test_list_by_user_lists_exactly_that_users_live_sessions(self, backend: SessionBackend) -> None:
        alice, bob = self.new_user(), self.new_user()
        mine = [self.record(user_id=alice, payload=b'{"n":%d}' % n) for n in range(3)]
        for record in [*mine, self.record(user_id=bob), self.record()]:
            await backend.create(record, now=self.now())
        listed = await backend.list_by_user(alice, now=self.now())
        assert sorted_keys(listed) == sorted_keys(mine), broke("index-exact", f"listed {show(listed)}")
        assert all(r.user_id == alice for r in listed), broke("index-exact", f"listed {show(listed)}")
        whole = sorted(listed, key=lambda r: r.key) == sorted(mine, key=lambda r: r.key)
        assert whole, broke("index-exact", f"listed records differ from those created (payload, times, version): "
                                           f"{show(listed)}")
        listed = await backend.list_by_user(self.new_user(), now=self.now())
        assert list(listed) == [], broke("index-exact", f"a user without sessions listed {show(listed)}")

    @in_own_loop
    async def test_list_by_user_excludes_expired_and_deleted(self, backend: SessionBackend) -> None:
        alice = self.new_user()
        live, short, gone = self.record(user_id=alice), self.short_lived(user_id=alice), self.record(user_id=alice)
        for record in (live, short, gone):
            await backend.create(record, now=self.now())
        await backend.delete(gone.key, now=self.now())
        await self.expire(backend)
        listed = await backend.list_by_user(alice, now=self.now())
        assert sorted_keys(listed) == [live.key], broke(
            "index-exact", f"one live, one expired, one deleted: {show(listed)}")

    @in_own_loop
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

    @in_own_loop
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

    @in_own_loop
    async def test_update_that_changes_the_user_moves_the_session(self, backend: SessionBackend) -> None:
        alice, bob = self.new_user(), self.new_user()
        record = self.record(user_id=alice)
        await backend.create(record, now=self.now())
        moved = SessionRecord(record.key, record.payload, bob, record.created_at, record.expires_at, 1)
        await backend.update(moved, expected_version=1, now=self.now())
        listed = await backend.list_by_user(alice, now=self.now())
        assert list(listed) == [], broke("update-moves-user", f"moved to bob; alice's list: {show(listed)}")
        listed = await backend.list_by_user(bob, now=self.now())
        assert sorted_keys(listed) == [record.key], broke(
            "update-moves-user", f"moved to bob; bob's list: {show(listed)}")
        count = await backend.delete_by_user(alice, now=self.now())
        assert count == 0, broke("update-moves-user", f"moved to bob; delete_by_user(alice) counted {count}")
        got = await backend.read(record.key, now=self.now())
        assert got is not None, broke("update-moves-user", "delete_by_user(alice) removed bob's session")

    @in_own_loop
    @pytest.mark.parametrize("user_id", ODD_USER_IDS, ids=lambda u: f"len{len(u)}-{u[:12]!r}")
    async def test_odd_but_legal_user_ids_are_data(self, backend: SessionBackend, user_id: str) -> None:
        user = f"{user_id}-{uuid.uuid4().hex}"  # unique per test, so the index is this test's alone
        record = self.record(user_id=user)
        await backend.create(record, now=self.now())
        got = await backend.read(record.key, now=self.now())
        assert got == record, broke("user-ids-are-data", f"read {show(got)}")
        listed = await backend.list_by_user(user, now=self.now())
        assert sorted_keys(listed) == [record.key], broke("user-ids-are-data", f"listed {show(listed)}")
        listed = await backend.list_by_user(user_id, now=self.now())
        assert list(listed) == [], broke("user-ids-are-data", f"a prefix of the user id listed {show(listed)}")
        count = await backend.delete_by_user(user, now=self.now())
        assert count == 1, broke("user-ids-are-data", f"delete_by_user() counted {count}")
