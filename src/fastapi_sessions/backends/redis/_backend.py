"""RedisBackend: the storage contract on Redis keys and Lua scripts (private; import it from ``..redis``).

The keys it writes are in the package docstring (``..redis``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis.typing import EncodableT

from ..._core.clock import Clock, utc_now
from ..._core.contract import BaseSessionBackend
from ..._core.records import SessionRecord
from ..._core.registry import mask_url
from ...errors import ConfigurationError, SessionConflict, SessionExists, SessionNotFound
from . import _scripts as scripts
from ._calls import DEFAULT_POOL_TIMEOUT, DRIVER_ERRORS, Client, RedisCalls
from ._layout import (
    CREATED,
    EPOCH,
    EXPIRES,
    US,
    as_us,
    cas_control,
    decode,
    decode_head,
    encode,
    ttl_ms,
    user_bytes,
    user_tag,
)
from ._url import client_from_url

__all__ = ["DEFAULT_PREFIX", "INDEX_BUCKETS", "RedisBackend", "from_url"]

DEFAULT_PREFIX = "fastapi-sessions:"
#: Buckets of user indexes; fixed, as it is part of the key layout.
INDEX_BUCKETS = 16
#: Entries handled per purge step, so one call never builds a huge reply.
_PURGE_BATCH = 500

# The read-and-touch script's reply is a status byte, then the stored record.
_EXTENDED, _INDEX_FIRST = ord("1"), ord("2")
_REPLY_START = 1
_STORED_EXPIRES, _REPLY_CREATED, _REPLY_EXPIRES = EXPIRES.at(), CREATED.at(_REPLY_START), EXPIRES.at(_REPLY_START)
_EXPIRES_DIGITS = EXPIRES.format


@dataclass(frozen=True, slots=True)
class _Timeouts:
    """The manager's timeouts, converted once for the read-and-touch script.

    The manager passes the same ``timedelta`` objects on every call, so the
    objects themselves are the cache key (compared by identity).
    """

    idle: timedelta
    absolute: timedelta
    refresh: timedelta
    idle_us: int
    absolute_us: int
    #: No extension can be due while ``now + not_due_us < expiry`` (the target is at most now + idle).
    not_due_us: int
    args: tuple[bytes, bytes, bytes]  # idle, absolute, refresh: the script's arguments

    @classmethod
    def of(cls, idle: timedelta, absolute: timedelta, refresh: timedelta) -> _Timeouts:
        idle_us, absolute_us, refresh_us = idle // US, absolute // US, refresh // US
        return cls(idle, absolute, refresh, idle_us, absolute_us, idle_us - refresh_us,
                   (b"%d" % idle_us, b"%d" % absolute_us, b"%d" % refresh_us))


_NO_TIMEOUTS = _Timeouts.of(timedelta(0), timedelta(0), timedelta(0))


class RedisBackend(RedisCalls, BaseSessionBackend):
    """Sessions in Redis or Redis Cluster, with native expiry and server-side compare-and-set.

    ``client`` is a ``redis.asyncio.Redis`` or ``RedisCluster`` made with
    ``decode_responses=False`` (the default): payloads are bytes. ``prefix``
    starts every key. Reads are one command; ``update``, ``touch`` and the fused
    :meth:`read_and_touch` are one script call each (``EVALSHA``, falling back
    to ``EVAL`` when the server lost its script cache, for example after a
    restart), except that :meth:`read_and_touch` is a plain ``GET`` when it
    knows no extension can be due. ``close_client`` says whether :meth:`aclose` closes ``client``;
    :meth:`from_url` sets it, a client passed in stays the application's.
    ``label`` names the server in error messages (:meth:`from_url` gives the
    URL with its password masked). ``clock`` judges liveness for calls that
    pass no ``now`` (the manager always passes its own); native expiries are
    set relative to ``now`` either way, so the server's clock never decides.

    ``max_concurrency`` caps the calls in flight: a call beyond it waits up to
    ``pool_timeout`` seconds for a slot, then fails with ``BackendUnavailable``,
    and a call that holds a slot ends within ``deadline`` seconds. redis-py's
    pools fail at once when their ``max_connections`` are in use, and its
    ``BlockingConnectionPool`` (before redis-py 5.1 at least) holds its lock
    while it connects, so a silent server stalls every release; :meth:`from_url`
    therefore caps calls at ``max_connections`` itself, and sets ``deadline``
    for a cluster, whose client retries timeouts on its own.
    """

    def __init__(self, client: Client, *, prefix: str = DEFAULT_PREFIX, close_client: bool = False,
                 label: str = "redis", clock: Clock = utc_now, max_concurrency: int | None = None,
                 pool_timeout: float = DEFAULT_POOL_TIMEOUT, deadline: float | None = None) -> None:
        if client.get_connection_kwargs().get("decode_responses"):
            raise ConfigurationError("the Redis client must use decode_responses=False: payloads are bytes")
        super().__init__(client, label=label, max_concurrency=max_concurrency, pool_timeout=pool_timeout,
                         deadline=deadline)
        self.prefix = prefix
        self._session_prefix = f"{prefix}s:"
        self._close_client = close_client
        self._closed = False
        self._clock = clock
        self._timeouts = _NO_TIMEOUTS
        # Last expiry (µs) this process saw per session key: when it shows that no idle
        # extension can be due, read_and_touch reads with a plain GET instead of the script.
        self._expiry_hints: dict[str, int] = {}

    @classmethod
    def from_url(cls, url: str, *, prefix: str | None = None, clock: Clock = utc_now,
                 pool_timeout: float | None = None, **client_options: Any) -> RedisBackend:
        """A backend on its own client for ``url`` (see the package docstring for the schemes).

        ``clock`` is the backend's own clock (see :class:`RedisBackend`).
        ``client_options`` go to ``redis.asyncio.Redis.from_url`` or
        ``RedisCluster.from_url``, on top of :data:`DEFAULT_SOCKET_OPTIONS`
        (a URL query option wins over both). When ``max_connections`` calls
        are in flight, a call waits up to ``pool_timeout`` seconds (URL option
        or keyword, default :data:`DEFAULT_POOL_TIMEOUT`) instead of failing
        at once. Unless ``retry=`` is given, a connection error is retried
        twice within about 0.1 s and a timeout is not retried, so a store that
        is down answers 503 quickly and one that hangs within the timeouts.
        """
        made = client_from_url(url, prefix=prefix, pool_timeout=pool_timeout, client_options=client_options)
        return cls(made.client, prefix=DEFAULT_PREFIX if made.prefix is None else made.prefix, close_client=True,
                   label=mask_url(url), clock=clock, max_concurrency=made.max_connections,
                   pool_timeout=made.pool_timeout, deadline=made.deadline)

    # -- keys --------------------------------------------------------------------------------

    def session_key(self, key: str) -> str:
        """The Redis key holding session ``key``."""
        return self._session_prefix + key

    def index_key(self, user_id: str) -> str:
        """The Redis key of ``user_id``'s index (a sorted set of session keys)."""
        digest = hashlib.sha256(user_bytes(user_id)).hexdigest()
        return f"{self.prefix}u:{{b{int(digest[:8], 16) % INDEX_BUCKETS}}}:{digest}"

    def _queue_key(self, index_key: str) -> str:
        bucket = index_key[len(self.prefix) + 2:].partition("}")[0] + "}"
        return f"{self.prefix}q:{bucket}"

    def _queue_keys(self) -> list[str]:
        return [f"{self.prefix}q:{{b{n}}}" for n in range(INDEX_BUCKETS)]

    async def _index_add(self, user_id: str, key: str, expires_us: int, now_us: int) -> None:
        """Write ``key``'s entry in ``user_id``'s index and make the index outlive ``expires_us``."""
        index = self.index_key(user_id)
        await self._eval(scripts.INDEX_ADD, index, self._queue_key(index), expires_us, key, index, now_us)

    def _hint(self, key: str, expires_us: int) -> None:
        hints = self._expiry_hints
        if len(hints) >= 10_000 and key not in hints:
            hints.clear()  # bounded; a lost hint costs one script call, never correctness
        hints[key] = expires_us

    # -- the contract: each call maps redis-py's errors, naming itself -------------------------

    async def create(self, record: SessionRecord, *, now: datetime | None = None) -> None:
        expires, now_us = as_us(record.expires_at), as_us(now or self._clock())
        try:
            if record.user_id is not None:
                # The index entry comes first, so a live session is never missing from its user's index.
                await self._index_add(record.user_id, record.key, expires, now_us)
            value = encode(record, 1, expires)
            created = await self._eval(scripts.CREATE, self.session_key(record.key), now_us, value,
                                       ttl_ms(expires, now_us))
        except DRIVER_ERRORS as exc:
            raise self._error(exc, "create") from exc
        if not created:
            raise SessionExists(key=record.key, operation="create")
        self._hint(record.key, expires)

    async def read(self, key: str, *, now: datetime | None = None) -> SessionRecord | None:
        try:
            value = await self._exec("GET", self.session_key(key))
        except DRIVER_ERRORS as exc:
            raise self._error(exc, "read") from exc
        if value is None:
            return None
        record = decode(key, value)
        # The key's TTL only frees memory; the header's expiry, judged by `now`, decides.
        return record if record.expires_at > (now or self._clock()) else None

    async def read_and_touch(
        self,
        key: str,
        *,
        now: datetime,
        idle_timeout: timedelta,
        absolute_timeout: timedelta,
        refresh_interval: timedelta,
    ) -> tuple[SessionRecord | None, bool]:
        """Read the live record and extend its idle deadline if due, in one round trip.

        See :class:`~fastapi_sessions._core.contract.SupportsReadAndTouch`. The
        round trip is the read-and-touch script, or a plain ``GET`` when the
        expiry this process last saw for ``key`` shows that no extension can be
        due; the record that ``GET`` returns is checked again, and only if an
        extension is due after all (another process moved the expiry earlier)
        does the script follow.
        """
        timeouts = self._timeouts
        if (timeouts.idle is not idle_timeout or timeouts.absolute is not absolute_timeout
                or timeouts.refresh is not refresh_interval):
            timeouts = self._timeouts = _Timeouts.of(idle_timeout, absolute_timeout, refresh_interval)
        now_us = (now - EPOCH) // US  # as_us(), inline: this runs on every request
        due_after = now_us + timeouts.not_due_us
        session = self._session_prefix + key
        hints = self._expiry_hints
        hint = hints.get(key)
        try:
            if hint is not None and due_after < hint:
                # Known not due: one plain GET, the cheapest command; the record it returns decides.
                value = await self._exec("GET", session)
                if value is None:
                    hints.pop(key, None)
                    return None, False
                record = decode(key, value)
                expires = int(value[_STORED_EXPIRES])
                if expires <= now_us:
                    return None, False
                if due_after < expires:
                    hints[key] = expires
                    return record, False
                # The expiry moved earlier elsewhere and an extension is due: the script decides.
            args = (session, b"%d" % now_us, *timeouts.args)
            reply = await self._eval(scripts.READ_AND_TOUCH, *args)
            if reply is not None and reply[0] == _INDEX_FIRST:  # the extension needs the user's index raised first
                # The script's target, for the index to outlive.
                target = min(int(reply[_REPLY_CREATED]) + timeouts.absolute_us, now_us + timeouts.idle_us)
                user = decode(key, reply, _REPLY_START).user_id
                assert user is not None
                await self._index_add(user, key, target, now_us)
                reply = await self._eval(scripts.READ_AND_TOUCH, *args, b"1")
        except DRIVER_ERRORS as exc:
            raise self._error(exc, "read_and_touch") from exc
        if reply is None:
            hints.pop(key, None)
            return None, False
        self._hint(key, int(reply[_REPLY_EXPIRES]))
        return decode(key, reply, _REPLY_START), reply[0] == _EXTENDED

    async def update(self, record: SessionRecord, expected_version: int, *, now: datetime | None = None) -> int:
        expires, now_us = as_us(record.expires_at), as_us(now or self._clock())
        session = self._session_prefix + record.key
        value = encode(record, expected_version + 1, expires)
        control = cas_control(expected_version, now_us, expires, False)
        try:
            result = await self._eval(scripts.UPDATE, session, control, value)
            if result == -3:  # to another user, or past its index's expiry: index first, then the same CAS, index ready
                assert record.user_id is not None
                await self._index_add(record.user_id, record.key, expires, now_us)
                control = cas_control(expected_version, now_us, expires, True)
                result = await self._eval(scripts.UPDATE, session, control, value)
        except DRIVER_ERRORS as exc:
            raise self._error(exc, "update") from exc
        if result == -1:
            raise SessionNotFound(key=record.key, operation="update")
        if result == -2:
            raise SessionConflict(key=record.key, operation="update")
        self._hint(record.key, expires)
        return int(result)

    async def touch(self, key: str, expires_at: datetime, *, now: datetime | None = None) -> bool:
        expires, now_us = as_us(expires_at), as_us(now or self._clock())
        args = (self.session_key(key), now_us, _EXPIRES_DIGITS % expires, ttl_ms(expires, now_us))
        try:
            reply = await self._eval(scripts.TOUCH, *args)
            if isinstance(reply, bytes):  # the user id: past its index's expiry, so the index first
                await self._index_add(reply.decode("utf-8", "surrogatepass"), key, expires, now_us)
                reply = await self._eval(scripts.TOUCH, *args, b"1")
        except DRIVER_ERRORS as exc:
            raise self._error(exc, "touch") from exc
        touched = bool(reply == 1)
        if touched:
            self._hint(key, expires)
        return touched

    async def delete(self, key: str, *, now: datetime | None = None) -> bool:
        self._expiry_hints.pop(key, None)
        try:
            reply = await self._eval(scripts.DELETE, self.session_key(key), as_us(now or self._clock()))
            if reply is None:
                return False
            live, user = reply
            if user is not None:
                # Keeps listings lean; an entry left behind (a crash here) is dropped by purge_expired.
                await self._exec("ZREM", self.index_key(user.decode("utf-8", "surrogatepass")), key)
        except DRIVER_ERRORS as exc:
            raise self._error(exc, "delete") from exc
        return bool(live == 1)

    async def list_by_user(self, user_id: str, *, now: datetime | None = None) -> list[SessionRecord]:
        now = now or self._clock()
        try:
            keys = await self._exec("ZRANGE", self.index_key(user_id), 0, -1)
            if not keys:
                return []
            values = await self._pipeline([("GET", self.session_key(k.decode())) for k in keys])
        except DRIVER_ERRORS as exc:
            raise self._error(exc, "list_by_user") from exc
        records = []
        for k, value in zip(keys, values, strict=True):
            if value is None:
                continue  # gone: a stale entry
            record = decode(k.decode(), value)
            if record.user_id == user_id and record.expires_at > now:  # not moved to another user
                records.append(record)
        return records

    async def delete_by_user(self, user_id: str, *, now: datetime | None = None) -> int:
        now_us = as_us(now or self._clock())
        index = self.index_key(user_id)
        user = user_bytes(user_id)
        tag = user_tag(user)
        script = scripts.DELETE_IF_USER
        try:
            keys = await self._exec("ZRANGE", index, 0, -1)
            if not keys:
                return 0
            results = await self._pipeline(
                [("EVAL", script.source, script.numkeys, self.session_key(k.decode()), now_us, tag, user)
                 for k in keys])
            gone = [k for k, result in zip(keys, results, strict=True) if result]
            if gone:
                await self._exec("ZREM", index, *gone)
        except DRIVER_ERRORS as exc:
            raise self._error(exc, "delete_by_user") from exc
        return sum(1 for result in results if result == 1)

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        """Drop index entries of sessions that expired or went; Redis expires the sessions itself.

        Only due work is visited: the bucket queues name the indexes whose
        earliest score has passed at ``now``, and within them only due entries
        are read. An entry whose session is still live for its user is
        re-scored to the session's expiry. Returns the number of entries dropped.
        """
        cut = as_us(now or self._clock())  # one cut-off for every round: no chasing the clock
        dropped = 0
        try:
            for _ in range(10_000):  # bounded: each round makes progress, this only guards a livelock
                swept = await self._purge_round(cut)
                if swept is None:
                    return dropped
                dropped += swept
        except DRIVER_ERRORS as exc:
            raise self._error(exc, "purge_expired") from exc
        return dropped

    async def _purge_round(self, cut: int) -> int | None:
        """One batch of due index entries swept; ``None`` when nothing is due."""
        due = await self._pipeline(
            [("ZRANGEBYSCORE", q, "-inf", cut, "LIMIT", 0, _PURGE_BATCH) for q in self._queue_keys()])
        indexes = [i.decode() for names in due for i in names]
        if not indexes:
            return None
        entries = await self._pipeline([("ZRANGEBYSCORE", i, "-inf", cut, "LIMIT", 0, _PURGE_BATCH) for i in indexes])
        sessions = [(index, k.decode()) for index, keys in zip(indexes, entries, strict=True) for k in keys]
        head, sweep = scripts.HEAD, scripts.INDEX_SWEEP
        heads = await self._pipeline([("EVAL", head.source, head.numkeys, self.session_key(k)) for _, k in sessions])
        sweeps: dict[str, list[EncodableT]] = {i: [] for i in indexes}
        for (index, key), stored in zip(sessions, heads, strict=True):
            expires, user = decode_head(stored) if stored is not None else (0, None)
            alive = user is not None and expires > cut and self.index_key(user) == index
            sweeps[index] += [key, expires if alive else "-"]
        results = await self._pipeline(
            [("EVAL", sweep.source, sweep.numkeys, i, self._queue_key(i), cut, i, *pairs)
             for i, pairs in sweeps.items()])
        return sum(int(r) for r in results)

    async def aclose(self) -> None:
        """Close the client if this backend made it (:meth:`from_url`). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._close_client:
            await self.client.aclose()


def from_url(url: str, **options: Any) -> RedisBackend:
    """Entry-point factory for ``redis://``, ``rediss://``, ``redis+cluster://``, ``rediss+cluster://``
    and their Valkey spellings (``valkey://``, ``valkeys://``, ``valkey+cluster://``, ``valkeys+cluster://``)."""
    return RedisBackend.from_url(url, **options)

