"""Races: every mutating method against the others on one key, many keys at once.

Each test builds ``race_keys`` independent races and starts them all in one
``gather``, half of them with one call first and half with the other, and does
that ``race_rounds`` times. Whatever the interleaving, the outcome must be one
that running the two calls one after the other could give. A backend that
checks and then acts in two round trips loses these races nearly every time,
so a few dozen races find it in well under a second, while a correct backend
costs a couple of round trips per round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from .._core.contract import SessionBackend
from .._core.records import SessionRecord
from ..errors import SessionNotFound
from ._base import KitBase, in_own_loop, ms
from ._rules import broke, show

__all__ = ["ConcurrencyTests"]

Call = Callable[[], Awaitable[object]]


async def _settle(calls: list[Call]) -> list[object]:
    """Run every call at once, in this order; results and exceptions alike."""
    return list(await asyncio.gather(*(call() for call in calls), return_exceptions=True))


class ConcurrencyTests(KitBase):
    async def _races(self, pair: Callable[[int], tuple[Call, Call]]) -> list[tuple[int, object, object]]:
        """``race_keys`` races per round, ``race_rounds`` rounds; ``pair(i)`` sets race ``i`` up and returns its calls.

        Returns ``(i, first result, second result)`` for every race, in the pair's own order.
        """
        outcomes: list[tuple[int, object, object]] = []
        for round_ in range(self.race_rounds):
            indexes = [round_ * self.race_keys + i for i in range(self.race_keys)]
            pairs = [pair(i) for i in indexes]
            calls: list[Call] = []
            for i, (first, second) in zip(indexes, pairs, strict=True):
                calls += [first, second] if i % 2 == 0 else [second, first]
            results = await _settle(calls)  # an exception is a result: each test says which are allowed
            for n, i in enumerate(indexes):
                a, b = results[2 * n], results[2 * n + 1]
                outcomes.append((i, *((a, b) if i % 2 == 0 else (b, a))))
        return outcomes

    async def _created(
        self, backend: SessionBackend, *, user: bool = False, ttl: float = 3600
    ) -> list[SessionRecord]:
        """One fresh record per race of the test."""
        count = self.race_keys * self.race_rounds
        records = [self.record(user_id=self.new_user() if user else None, ttl=ttl) for _ in range(count)]
        for record in records:  # one at a time: the set-up opens no connections the races do not need
            await backend.create(record, now=self.now())
        return records

    async def _reads(self, backend: SessionBackend, records: list[SessionRecord]) -> list[SessionRecord | None]:
        """What each race left, read at once."""
        return list(await asyncio.gather(*(backend.read(r.key, now=self.now()) for r in records)))

    @in_own_loop
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
        losers = [result for result in results if type(result).__name__ == "SessionConflict"]
        assert len(winners) == 1 and len(losers) == 19, broke(
            "update-cas", f"20 updates of version 1 at once: {len(winners)} won, results {show(results)}")
        got = await backend.read(record.key, now=self.now())
        assert got is not None and got.version == 2 and got.payload == attempts[winners[0]].payload, broke(
            "update-cas", f"the winner wrote {attempts[winners[0]].payload!r}; read {show(got)}")

    @in_own_loop
    async def test_race_create_against_create(self, backend: SessionBackend) -> None:
        """Of two creates of one key at once, exactly one succeeds and its record is stored."""
        records: dict[int, tuple[SessionRecord, SessionRecord]] = {}

        def pair(i: int) -> tuple[Call, Call]:
            key = self.new_key()
            a, b = self.record(key=key, payload=b'{"creator":"a"}'), self.record(key=key, payload=b'{"creator":"b"}')
            records[i] = (a, b)
            return lambda: backend.create(a, now=self.now()), lambda: backend.create(b, now=self.now())

        outcomes = await self._races(pair)
        left = await self._reads(backend, [records[i][0] for i, _, _ in outcomes])
        for (i, first, second), got in zip(outcomes, left, strict=True):
            won = [r for r, result in zip(records[i], (first, second), strict=True) if result is None]
            assert len(won) == 1, broke("atomic", f"two create() of one key at once: results {show([first, second])}")
            assert got == won[0], broke("atomic", f"the create() that succeeded wrote {show(won[0])}; "
                                                  f"read {show(got)}")

    @in_own_loop
    async def test_race_touch_against_delete(self, backend: SessionBackend) -> None:
        """A touch racing a delete never brings the record back."""
        records = await self._created(backend, user=True)
        later = ms(self.now() + timedelta(hours=2))

        def pair(i: int) -> tuple[Call, Call]:
            key = records[i].key
            return lambda: backend.touch(key, later, now=self.now()), lambda: backend.delete(key, now=self.now())

        outcomes = await self._races(pair)
        left = await self._reads(backend, records)
        for i, touched, deleted in outcomes:
            got = left[i]
            assert got is None and deleted is True, broke(
                "touch-no-revival", f"touch() -> {touched!r} and delete() -> {deleted!r} at once; "
                f"then read {show(got)}")

    @in_own_loop
    async def test_race_touch_against_update(self, backend: SessionBackend) -> None:
        """A touch racing an update loses nothing the update wrote: touch changes the expiry only."""
        records = await self._created(backend)
        touched_to = ms(self.now() + timedelta(hours=2))
        updated_to = ms(self.now() + timedelta(hours=3))

        def pair(i: int) -> tuple[Call, Call]:
            record = records[i]
            changed = self._with(record, b'{"updated":true}', expires_at=updated_to)
            return (lambda: backend.touch(record.key, touched_to, now=self.now()),
                    lambda: backend.update(changed, 1, now=self.now()))

        outcomes = await self._races(pair)
        left = await self._reads(backend, records)
        for i, touched, version in outcomes:
            got = left[i]
            ok = (touched is True and version == 2 and got is not None and got.version == 2
                  and got.payload == b'{"updated":true}' and got.expires_at in (touched_to, updated_to))
            assert ok, broke("touch-only-expiry", f"touch() -> {touched!r} and update() -> {show(version)} at once; "
                                                  f"then read {show(got)}")

    @in_own_loop
    async def test_race_update_against_delete(self, backend: SessionBackend) -> None:
        """An update racing a delete either lands before it or finds nothing: never a resurrection."""
        records = await self._created(backend)

        def pair(i: int) -> tuple[Call, Call]:
            changed = self._with(records[i], b'{"updated":true}')
            return (lambda: backend.update(changed, 1, now=self.now()),
                    lambda: backend.delete(changed.key, now=self.now()))

        outcomes = await self._races(pair)
        left = await self._reads(backend, records)
        for i, version, deleted in outcomes:
            got = left[i]
            ok = got is None and deleted is True and (version == 2 or isinstance(version, SessionNotFound))
            assert ok, broke("update-no-resurrection", f"update() -> {show(version)} and delete() -> {deleted!r} at "
                                                       f"once; then read {show(got)}")

    @in_own_loop
    async def test_race_delete_by_user_against_an_update_moving_the_user(self, backend: SessionBackend) -> None:
        """Log out everywhere racing a move to another user: either the session went, or it moved and stays."""
        records = await self._created(backend, user=True)
        movers = {r.key: self.new_user() for r in records}

        def pair(i: int) -> tuple[Call, Call]:
            record = records[i]
            moved = SessionRecord(record.key, b'{"moved":true}', movers[record.key], record.created_at,
                                  record.expires_at, 1)
            return (lambda: backend.delete_by_user(record.user_id or "", now=self.now()),
                    lambda: backend.update(moved, 1, now=self.now()))

        outcomes = await self._races(pair)
        left = await self._reads(backend, records)
        lists = await asyncio.gather(*(backend.list_by_user(user, now=self.now()) for r in records
                                       for user in (r.user_id or "", movers[r.key])))
        for i, count, version in outcomes:
            record, got = records[i], left[i]
            old, new = lists[2 * i], lists[2 * i + 1]
            logged_out = count == 1 and isinstance(version, SessionNotFound) and got is None and not new
            moved = count == 0 and version == 2 and got is not None and [r.key for r in new] == [record.key]
            assert (logged_out or moved) and not old, broke(
                "atomic", f"delete_by_user(old user) -> {show(count)} and update() moving the session to a new user "
                f"-> {show(version)} at once; then read {show(got)}, old user lists {show(old)}, new user lists "
                f"{show(new)}")

    @in_own_loop
    async def test_race_read_and_touch_against_delete(self, backend: SessionBackend) -> None:
        fused = self.fused(backend)
        records = await self._created(backend, ttl=600)

        def pair(i: int) -> tuple[Call, Call]:
            key = records[i].key
            return (lambda: fused.read_and_touch(key, now=self.now(), idle_timeout=timedelta(hours=1),
                                                 absolute_timeout=timedelta(hours=8),
                                                 refresh_interval=timedelta(minutes=1)),
                    lambda: backend.delete(key, now=self.now()))

        outcomes = await self._races(pair)
        left = await self._reads(backend, records)
        for i, result, deleted in outcomes:
            got = left[i]
            assert got is None and deleted is True, broke(
                "touch-no-revival", f"read_and_touch() -> {show(result)} and delete() -> {deleted!r} at once; "
                f"then read {show(got)}")

    @in_own_loop
    async def test_race_read_and_touch_against_update(self, backend: SessionBackend) -> None:
        fused = self.fused(backend)
        records = await self._created(backend, ttl=600)

        def pair(i: int) -> tuple[Call, Call]:
            record = records[i]
            changed = self._with(record, b'{"updated":true}', expires_at=ms(record.expires_at + timedelta(minutes=5)))
            return (lambda: fused.read_and_touch(record.key, now=self.now(), idle_timeout=timedelta(hours=1),
                                                 absolute_timeout=timedelta(hours=8),
                                                 refresh_interval=timedelta(minutes=1)),
                    lambda: backend.update(changed, 1, now=self.now()))

        outcomes = await self._races(pair)
        left = await self._reads(backend, records)
        for i, result, version in outcomes:
            got = left[i]
            ok = version == 2 and got is not None and got.version == 2 and got.payload == b'{"updated":true}'
            assert ok, broke("read-and-touch-only-expiry", f"read_and_touch() -> {show(result)} and update() -> "
                                                           f"{show(version)} at once; then read {show(got)}")
