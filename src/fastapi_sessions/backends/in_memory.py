"""In-process backend: the full contract in a dict, for development, tests and single workers.

Data lives in the process: it is lost on restart and not shared between
workers. Use a server backend for anything else.
"""

from __future__ import annotations

import heapq
import struct
from datetime import UTC, datetime, timedelta

from .._core.clock import Clock, utc_now
from .._core.contract import BaseSessionBackend
from .._core.records import RecordCounts, SessionRecord
from ..errors import ConfigurationError, SessionConflict, SessionExists, SessionNotFound

__all__ = ["InMemoryBackend", "from_url"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
# A stored record is one exact-size bytes object: this header, the user id (UTF-8), the payload.
# created and expires in microseconds since the epoch, version, user-id length (_NO_USER: none).
_HEAD = struct.Struct("<qqQH")
_INT = struct.Struct("<q")
_EXPIRES_VERSION = struct.Struct("<qQ")  # the header's middle, rewritten by a save that keeps the user
_USER_SIZE = struct.Struct("<H")
_NO_USER = 0xFFFF
_USER_AT = _HEAD.size
# Decoded records of the most recently used sessions, so a busy session is not decoded on every
# request; bounded, so the per-session cost stays the compact form's.
_RECENT = 256
_new = object.__new__
_SETTERS = tuple(getattr(SessionRecord, name).__set__
                 for name in ("key", "payload", "user_id", "created_at", "expires_at", "version"))


def _new_record(*fields: object) -> SessionRecord:
    """``SessionRecord(*fields)`` in half the time: the frozen dataclass's __init__ is the slow part of a read."""
    record: SessionRecord = _new(SessionRecord)
    for setter, value in zip(_SETTERS, fields, strict=True):
        setter(record, value)
    return record


def _us(at: datetime) -> int:
    return (at - _EPOCH) // _US


def _pack(created_us: int, expires_us: int, version: int, user_id: str | None, payload: bytes) -> bytes | None:
    """The compact form, or ``None`` for what it cannot hold (a user id of 64 KiB, a 2**64 version)."""
    if user_id is None:
        user, size = b"", _NO_USER
    elif type(user_id) is str:
        user = user_id.encode("utf-8", "surrogatepass")
        size = len(user)
        if size >= _NO_USER:
            return None
    else:
        return None  # a str subclass: kept as given
    try:
        # join allocates exactly once, at the exact size: nothing over-allocated is kept.
        return b"".join((_HEAD.pack(created_us, expires_us, version, size), user, payload))
    except struct.error:
        return None


def _expires(value: bytes | SessionRecord) -> int:
    if type(value) is bytes:
        return int(_INT.unpack_from(value, 8)[0])
    assert isinstance(value, SessionRecord)
    return _us(value.expires_at)


def _user(value: bytes | SessionRecord) -> str | None:
    if type(value) is bytes:
        size = _HEAD.unpack_from(value)[3]
        return None if size == _NO_USER else value[_USER_AT:_USER_AT + size].decode("utf-8", "surrogatepass")
    assert isinstance(value, SessionRecord)
    return value.user_id


def _record(key: str, value: bytes | SessionRecord) -> SessionRecord:
    if type(value) is not bytes:
        assert isinstance(value, SessionRecord)
        return value
    created, expires, version, size = _HEAD.unpack_from(value)
    if size == _NO_USER:
        user, start = None, _USER_AT
    else:
        start = _USER_AT + size
        user = value[_USER_AT:start].decode("utf-8", "surrogatepass")
    return _new_record(key, value[start:], user, _EPOCH + created * _US, _EPOCH + expires * _US, version)


def _compact(record: SessionRecord) -> bytes | SessionRecord:
    """``record`` as stored: packed, or as given when the packed form cannot hold it."""
    packed = _pack(_us(record.created_at), _us(record.expires_at), record.version, record.user_id, record.payload)
    return record if packed is None else packed


class InMemoryBackend(BaseSessionBackend):
    """Sessions in a dict, with an expiry heap so reclaiming never scans everything.

    Every method runs to completion without awaiting, so under asyncio each call
    is atomic: concurrent tasks cannot interleave inside one. Records are
    immutable, so nothing returned can alias what is stored.

    Memory: each record is kept as one exact-size ``bytes`` object (times as
    integer microseconds, the user id and the payload), not as a
    ``SessionRecord`` with its datetimes; a read builds the ``SessionRecord``.
    About 350 bytes of process memory per session with a 20-byte payload
    (the 64-character key and the expiry heap's entry are most of it).

    ``max_entries`` bounds memory under churn: when an insert would exceed it,
    the records closest to expiry are evicted first. ``clock`` judges liveness
    for calls that pass no ``now``.
    """

    def __init__(self, *, max_entries: int | None = None, clock: Clock = utc_now) -> None:
        if max_entries is not None and max_entries < 1:
            raise ConfigurationError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._clock = clock
        self._data: dict[str, bytes | SessionRecord] = {}
        # user id -> its one key, or a set of keys once it has several (a set costs ~200 bytes).
        self._by_user: dict[str, str | set[str]] = {}
        # (expires microseconds, key) pairs; stale after a touch or update, checked when popped.
        self._expiry: list[tuple[int, str]] = []
        # key -> the decoded record, equal to what _data holds (every change to _data drops or renews it).
        self._recent: dict[str, SessionRecord] = {}

    def __len__(self) -> int:
        """Records held, expired ones not yet reclaimed included."""
        return len(self._data)

    @property
    def _records(self) -> dict[str, SessionRecord]:
        """Every stored record, decoded (a snapshot, for tests and debugging)."""
        return {key: _record(key, value) for key, value in self._data.items()}

    # -- internals ---------------------------------------------------------------------------

    def _get(self, key: str, now: int) -> bytes | SessionRecord | None:
        value = self._data.get(key)
        if value is None:
            return None
        if _expires(value) <= now:
            self._remove(key)
            return None
        return value

    def _current(self, key: str, now: datetime) -> SessionRecord | None:
        """The record live at ``now``, decoded (from the recent ones if it is there)."""
        record = self._recent.get(key)
        if record is not None:
            if record.expires_at > now:
                return record
            self._remove(key)
            return None
        value = self._get(key, _us(now))
        if value is None:
            return None
        record = _record(key, value)
        self._recall(key, record)
        return record

    _live = _current

    def _recall(self, key: str, record: SessionRecord) -> None:
        recent = self._recent
        if key not in recent and len(recent) >= _RECENT:
            del recent[next(iter(recent))]  # the first remembered
        recent[key] = record

    def _index(self, user_id: str, key: str) -> None:
        keys = self._by_user.get(user_id)
        if keys is None:
            self._by_user[user_id] = key
        elif isinstance(keys, set):
            keys.add(key)
        elif keys != key:
            self._by_user[user_id] = {keys, key}

    def _unindex(self, user_id: str, key: str) -> None:
        keys = self._by_user.get(user_id)
        if keys == key:
            del self._by_user[user_id]
        elif isinstance(keys, set):
            keys.discard(key)
            if len(keys) == 1:
                self._by_user[user_id] = keys.pop()
            elif not keys:
                del self._by_user[user_id]

    def _keys_of(self, user_id: str) -> list[str]:
        keys = self._by_user.get(user_id)
        return [] if keys is None else [keys] if isinstance(keys, str) else list(keys)

    def _remove(self, key: str) -> bool:
        self._recent.pop(key, None)
        value = self._data.pop(key, None)
        if value is None:
            return False
        user_id = _user(value)
        if user_id is not None:
            self._unindex(user_id, key)
        return True

    def _put(self, key: str, value: bytes | SessionRecord) -> None:
        self._recent.pop(key, None)
        old = self._data.get(key)
        user_id = _user(value)
        if old is not None and _user(old) != user_id:
            self._remove(key)
            old = None
        self._data[key] = value
        if user_id is not None and old is None:
            self._index(user_id, key)
        # The heap needs an entry no later than each record's expiry; a later expiry can
        # reuse the old entry (it is re-queued when popped), so updates rarely push.
        expires = _expires(value)
        if old is None or expires < _expires(old):
            heapq.heappush(self._expiry, (expires, key))
            if len(self._expiry) > 2 * len(self._data) + 64:
                self._expiry = [(_expires(v), k) for k, v in self._data.items()]
                heapq.heapify(self._expiry)

    def _store(self, record: SessionRecord) -> None:
        """Store ``record`` as given (version and creation time included)."""
        self._put(record.key, _compact(record))

    def _reclaim(self, now: int, limit: int | None = None) -> int:
        """Drop expired records (at most ``limit``) from the front of the heap; cost is what expired."""
        removed = 0
        heap = self._expiry
        while heap and heap[0][0] <= now and (limit is None or removed < limit):
            _, key = heapq.heappop(heap)
            value = self._data.get(key)
            if value is None:
                continue
            expires = _expires(value)
            if expires <= now:
                self._remove(key)
                removed += 1
            else:  # its expiry moved later since this entry was queued
                heapq.heappush(heap, (expires, key))
        return removed

    def _make_room(self) -> None:
        if self.max_entries is None:
            return
        heap = self._expiry
        while len(self._data) >= self.max_entries and heap:
            queued, key = heapq.heappop(heap)
            value = self._data.get(key)
            if value is None:
                continue
            expires = _expires(value)
            if expires <= queued:
                self._remove(key)
            else:
                heapq.heappush(heap, (expires, key))

    # -- the contract ------------------------------------------------------------------------

    async def create(self, record: SessionRecord, *, now: datetime | None = None) -> None:
        now_us = _us(now or self._clock())
        self._reclaim(now_us)
        if self._get(record.key, now_us) is not None:
            raise SessionExists(key=record.key, operation="create")
        self._make_room()
        if record.version != 1:
            record = _new_record(record.key, record.payload, record.user_id, record.created_at, record.expires_at, 1)
        self._put(record.key, _compact(record))
        self._recall(record.key, record)

    async def read(self, key: str, *, now: datetime | None = None) -> SessionRecord | None:
        return self._current(key, now or self._clock())

    async def update(self, record: SessionRecord, expected_version: int, *, now: datetime | None = None) -> int:
        key = record.key
        current = self._current(key, now or self._clock())
        if current is None:
            raise SessionNotFound(key=record.key, operation="update")
        if current.version != expected_version:
            raise SessionConflict(key=record.key, operation="update")
        version = expected_version + 1
        if record.version != version or record.created_at != current.created_at:
            record = _new_record(key, record.payload, record.user_id, current.created_at, record.expires_at, version)
        old = self._data[key]
        same_user = record.user_id == current.user_id
        if same_user and type(old) is bytes and type(record.payload) is bytes and version < 2**64:
            # Keep the stored creation time and user id; rewrite expiry and version, append the payload.
            size = _USER_SIZE.unpack_from(old, 24)[0]
            end = _USER_AT + (0 if size == _NO_USER else size)
            value: bytes | SessionRecord = b"".join(
                (old[:8], _EXPIRES_VERSION.pack(_us(record.expires_at), version), old[24:end], record.payload))
        else:
            value = _compact(record)
        if same_user and record.expires_at >= current.expires_at:
            self._data[key] = value  # the common case: indexes and heap stay valid
        else:
            self._put(key, value)
        self._recall(key, record)  # equal to what the next read would decode
        return version

    async def touch(self, key: str, expires_at: datetime, *, now: datetime | None = None) -> bool:
        current = self._get(key, _us(now or self._clock()))
        if current is None:
            return False
        if type(current) is bytes:
            self._put(key, b"".join((current[:8], _INT.pack(_us(expires_at)), current[16:])))
        else:
            assert isinstance(current, SessionRecord)
            self._put(key, SessionRecord(key, current.payload, current.user_id, current.created_at, expires_at,
                                         current.version))
        return True

    async def delete(self, key: str, *, now: datetime | None = None) -> bool:
        return self._get(key, _us(now or self._clock())) is not None and self._remove(key)

    async def list_by_user(self, user_id: str, *, now: datetime | None = None) -> list[SessionRecord]:
        now_us = _us(now or self._clock())
        return [_record(k, v) for k in self._keys_of(user_id) if (v := self._get(k, now_us)) is not None]

    async def delete_by_user(self, user_id: str, *, now: datetime | None = None) -> int:
        now_us = _us(now or self._clock())
        removed = 0
        for key in self._keys_of(user_id):
            if self._get(key, now_us) is not None:
                self._remove(key)
                removed += 1
        return removed

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        return self._reclaim(_us(now or self._clock()))

    async def purge_expired_batch(self, limit: int, *, now: datetime | None = None) -> int:
        """Remove at most ``limit`` expired records, earliest expiry first."""
        return self._reclaim(_us(now or self._clock()), max(limit, 1))

    async def count_records(self, *, now: datetime | None = None) -> RecordCounts:
        """Live and expired records at ``now``; visits every record (an operator's call, not a request's)."""
        now_us = _us(now or self._clock())
        expired = sum(1 for value in self._data.values() if _expires(value) <= now_us)
        return RecordCounts(len(self._data) - expired, expired)

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
