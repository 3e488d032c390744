"""In-process backend: the full contract in a dict, for development, tests and single workers.

Data lives in the process: it is lost on restart and not shared between
workers. Use a server backend for anything else.
"""

from __future__ import annotations

import heapq
from datetime import datetime

from ..core.clock import Clock, utc_now
from ..core.contract import BaseSessionBackend
from ..core.errors import ConfigurationError, SessionConflict, SessionExists, SessionNotFound
from ..core.records import SessionRecord

__all__ = ["InMemoryBackend", "from_url"]


class InMemoryBackend(BaseSessionBackend):
    """Sessions in a dict, with an expiry heap so reclaiming never scans everything.

    Every method runs to completion without awaiting, so under asyncio each call
    is atomic: concurrent tasks cannot interleave inside one. Records are
    immutable, so nothing returned can alias what is stored.

    ``max_entries`` bounds memory under churn: when an insert would exceed it,
    the records closest to expiry are evicted first. ``clock`` judges liveness
    for calls that pass no ``now``.
    """

    def __init__(self, *, max_entries: int | None = None, clock: Clock = utc_now) -> None:
        if max_entries is not None and max_entries < 1:
            raise ConfigurationError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._clock = clock
        self._records: dict[str, SessionRecord] = {}
        self._by_user: dict[str, set[str]] = {}
        # (expires_at, key) pairs; stale after a touch or update, checked when popped.
        self._expiry: list[tuple[datetime, str]] = []

    def __len__(self) -> int:
        """Records held, expired ones not yet reclaimed included."""
        return len(self._records)

    # -- internals ---------------------------------------------------------------------------

    def _live(self, key: str, now: datetime) -> SessionRecord | None:
        record = self._records.get(key)
        if record is None:
            return None
        if record.expires_at <= now:
            self._remove(key)
            return None
        return record

    def _remove(self, key: str) -> SessionRecord | None:
        record = self._records.pop(key, None)
        if record is not None and record.user_id is not None:
            keys = self._by_user.get(record.user_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_user[record.user_id]
        return record

    def _store(self, record: SessionRecord) -> None:
        old = self._records.get(record.key)
        if old is not None and old.user_id != record.user_id:
            self._remove(record.key)
            old = None
        self._records[record.key] = record
        if record.user_id is not None and old is None:
            self._by_user.setdefault(record.user_id, set()).add(record.key)
        # The heap needs an entry no later than each record's expiry; a later expiry can
        # reuse the old entry (it is re-queued when popped), so updates rarely push.
        if old is None or record.expires_at < old.expires_at:
            heapq.heappush(self._expiry, (record.expires_at, record.key))
            if len(self._expiry) > 2 * len(self._records) + 64:
                self._expiry = [(r.expires_at, k) for k, r in self._records.items()]
                heapq.heapify(self._expiry)

    def _reclaim(self, now: datetime) -> int:
        """Drop expired records from the front of the heap; cost is what expired."""
        removed = 0
        heap = self._expiry
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            record = self._records.get(key)
            if record is None:
                continue
            if record.expires_at <= now:
                self._remove(key)
                removed += 1
            else:  # its expiry moved later since this entry was queued
                heapq.heappush(heap, (record.expires_at, key))
        return removed

    def _make_room(self) -> None:
        if self.max_entries is None:
            return
        heap = self._expiry
        while len(self._records) >= self.max_entries and heap:
            expires_at, key = heapq.heappop(heap)
            record = self._records.get(key)
            if record is None:
                continue
            if record.expires_at <= expires_at:
                self._remove(key)
            else:
                heapq.heappush(heap, (record.expires_at, key))

    # -- the contract ------------------------------------------------------------------------

    async def create(self, record: SessionRecord, *, now: datetime | None = None) -> None:
        now = now or self._clock()
        self._reclaim(now)
        if self._live(record.key, now) is not None:
            raise SessionExists("a live session already has this key")
        self._make_room()
        if record.version != 1:
            record = SessionRecord(
                record.key, record.payload, record.user_id, record.created_at, record.expires_at, 1
            )
        self._store(record)

    async def read(self, key: str, *, now: datetime | None = None) -> SessionRecord | None:
        return self._live(key, now or self._clock())

    async def update(self, record: SessionRecord, expected_version: int, *, now: datetime | None = None) -> int:
        current = self._live(record.key, now or self._clock())
        if current is None:
            raise SessionNotFound("the session is gone or expired")
        if current.version != expected_version:
            raise SessionConflict("the session changed since it was read")
        version = expected_version + 1
        if record.version != version or record.created_at != current.created_at:
            record = SessionRecord(
                record.key, record.payload, record.user_id, current.created_at, record.expires_at, version
            )
        if record.user_id == current.user_id and record.expires_at >= current.expires_at:
            self._records[record.key] = record  # the common case: indexes and heap stay valid
        else:
            self._store(record)
        return version

    async def touch(self, key: str, expires_at: datetime, *, now: datetime | None = None) -> bool:
        current = self._live(key, now or self._clock())
        if current is None:
            return False
        self._store(
            SessionRecord(key, current.payload, current.user_id, current.created_at, expires_at, current.version)
        )
        return True

    async def delete(self, key: str, *, now: datetime | None = None) -> bool:
        return self._live(key, now or self._clock()) is not None and self._remove(key) is not None

    async def list_by_user(self, user_id: str, *, now: datetime | None = None) -> list[SessionRecord]:
        now = now or self._clock()
        keys = list(self._by_user.get(user_id, ()))
        return [r for k in keys if (r := self._live(k, now)) is not None]

    async def delete_by_user(self, user_id: str, *, now: datetime | None = None) -> int:
        now = now or self._clock()
        removed = 0
        for key in list(self._by_user.get(user_id, ())):
            if self._live(key, now) is not None:
                self._remove(key)
                removed += 1
        return removed

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        return self._reclaim(now or self._clock())

    async def aclose(self) -> None:
        """Nothing to release; the data stays until the object goes."""


def from_url(url: str, *, clock: Clock = utc_now) -> InMemoryBackend:
    """Entry-point factory for ``memory://``; ``memory://?max_entries=N`` bounds it.

    ``clock`` judges liveness for calls that pass no ``now`` (the manager always passes one).
    """
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    if parts.scheme != "memory":
        raise ConfigurationError(f"not a memory:// URL (scheme {parts.scheme!r})")
    query = parse_qs(parts.query)
    unknown = set(query) - {"max_entries"}
    if unknown:
        raise ConfigurationError(f"unknown memory:// option(s): {', '.join(sorted(unknown))}")
    raw = query.get("max_entries", [""])[-1]
    if raw and not raw.isdigit():
        raise ConfigurationError("memory:// max_entries must be a positive integer")
    return InMemoryBackend(max_entries=int(raw) if raw else None, clock=clock)
