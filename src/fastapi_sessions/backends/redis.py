"""Redis backend: standalone, TLS and Redis Cluster, on ``redis.asyncio``.

URLs (``pip install "fastapi-sessions[redis]"``)::

    redis://[[user]:password@]host[:port][/db][?prefix=app:&protocol=2&...]
    rediss://...                       TLS
    redis+cluster://host:port[?...]    Redis Cluster (any node seeds the client)
    rediss+cluster://host:port[?...]   Redis Cluster over TLS

``prefix`` and ``pool_timeout`` are ours (default ``fastapi-sessions:`` and 5
seconds); every other query option goes to redis-py. Every wait is bounded by
default (docs/backends/redis.md, "Timeouts and pool"): 5 s to connect, 5 s for
a reply, 5 s for a free pool connection, and a timeout is never retried. An
application's own client is accepted as well: ``RedisBackend(client)``; it is
then left open by :meth:`RedisBackend.aclose`.

Layout (``P`` is the prefix; see docs/backends/redis.md):

* ``P s:<key>``: one string per session with a native expiry: a 59-byte
  header (created, expires and version as 16 zero-padded digits each, times
  in integer microseconds; ``u`` or ``-``; the user id's byte length in 10
  digits), then the user id, then the payload. A read is one ``GET``; every
  write to one session is one Lua script on that one key: the
  compare-and-set, the fused read-and-touch, create, touch, delete.
* ``P u:{b<n>}:<sha256(user)>``: the user's index, a sorted set of session
  keys scored by a lower bound of their expiry; ``n`` is one of 16 buckets.
  It expires one to two days after its last session, whether or not
  :meth:`RedisBackend.purge_expired` runs.
* ``P q:{b<n>}``: the bucket's purge queue, a sorted set of index names scored
  by the earliest score in each index. It shares the indexes' hash slot, so
  the scripts that touch an index and its queue are single-slot. It expires
  with its latest index.

A session and its user's index are in different slots, so no script touches
both. The index is a superset, and what it lists is checked against the
sessions: an entry is written *before* the session is created or moved to
that user, and the index's expiry raised *before* a session is extended past
it (so no live session is ever missing from its user's index), and listing
keeps only live sessions that still belong to the user. Stale entries
(deleted, expired, moved) are dropped by :meth:`RedisBackend.purge_expired`
once their score is due, at a cost proportional to the due entries.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.backoff import FullJitterBackoff
from redis.exceptions import (
    ClusterDownError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.typing import EncodableT

from ..core.clock import Clock, utc_now
from ..core.contract import BaseSessionBackend
from ..core.errors import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    SessionConflict,
    SessionExists,
    SessionNotFound,
)
from ..core.records import SessionRecord
from ..core.registry import mask_url
from . import _redis_scripts as scripts

__all__ = ["DEFAULT_POOL_TIMEOUT", "DEFAULT_PREFIX", "DEFAULT_SOCKET_OPTIONS", "RedisBackend", "from_url"]

DEFAULT_PREFIX = "fastapi-sessions:"
#: Seconds a call waits for a free connection when all ``max_connections`` are in use.
DEFAULT_POOL_TIMEOUT = 5.0
#: What :meth:`RedisBackend.from_url` gives redis-py unless the URL or a keyword says otherwise:
#: redis-py before 8 waits forever for a reply, and its default pool fails at once when full.
DEFAULT_SOCKET_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 5.0,
    "socket_timeout": 5.0,
    "socket_keepalive": True,
    "max_connections": 100,
}
#: Buckets of user indexes; fixed, as it is part of the key layout.
INDEX_BUCKETS = 16
#: Entries handled per purge step, so one call never builds a huge reply.
_PURGE_BATCH = 500

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_UNAVAILABLE_ERRORS = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,  # also MasterDownError
    TryAgainError,
    RedisClusterException,  # "cannot be connected", slot not covered
    OSError,
)
_HEADER = 59
_NO_USER = b"-0000000000"
Client = Redis | RedisCluster


def _seconds(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, not {value!r}") from None


def _check_seconds(name: str, value: object) -> None:
    """A timeout must be a positive, finite number: ``None`` would mean waiting forever."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ConfigurationError(f"{name} must be a positive number of seconds, not {value!r}")


def _us(value: datetime) -> int:
    return (value - _EPOCH) // _US


def _ttl_ms(expires_us: int, now_us: int) -> int:
    """The key's native TTL: the time left at ``now``, so the server's own clock never judges liveness.

    Rounded up, so the key outlives its logical expiry by under a millisecond, never the
    reverse; at least 1 ms, so a record already expired at ``now`` goes at once.
    """
    return max(1, -(-(expires_us - now_us) // 1000))


def _cas_control(expected_version: int, now_us: int, expires_us: int, index_ready: bool) -> bytes:
    """The UPDATE script's control argument: expected version, now, index-ready flag, TTL in ms."""
    return b"%016d%016d%d%d" % (expected_version, now_us, index_ready, _ttl_ms(expires_us, now_us))


def _user_bytes(user_id: str) -> bytes:
    return user_id.encode("utf-8", "surrogatepass")


def _user_tag(user: bytes) -> bytes:
    """The header's user part for ``user``: ``u`` and its byte length in 10 digits."""
    return b"u%010d" % len(user)


def _encode(record: SessionRecord, version: int, expires_us: int) -> bytes:
    """A record as the stored string (see the module docstring)."""
    head = b"%016d%016d%016d" % (_us(record.created_at), expires_us, version)
    if record.user_id is None:
        return head + _NO_USER + record.payload
    user = _user_bytes(record.user_id)
    return head + _user_tag(user) + user + record.payload


# Decoded timestamps by their 16 stored digits: a session's are the same on most requests,
# and a dict hit is several times cheaper than building the datetime. Bounded by clearing.
_DATETIMES: dict[bytes, datetime] = {}


def _at(digits: bytes) -> datetime:
    if len(_DATETIMES) >= 4096:
        _DATETIMES.clear()
    value = _DATETIMES[digits] = _EPOCH + timedelta(microseconds=int(digits))
    return value


def _decode(key: str, value: bytes, start: int = 0) -> SessionRecord:
    """The record stored as ``value[start:]``."""
    body = start + _HEADER
    if value[start + 48] == 0x75:  # b"u"
        end = body + int(value[start + 49:body])
        user: str | None = value[body:end].decode("utf-8", "surrogatepass")
    else:
        end, user = body, None
    created, expires = value[start:start + 16], value[start + 16:start + 32]
    return SessionRecord(
        key,
        value[end:],
        user,
        _DATETIMES.get(created) or _at(created),
        _DATETIMES.get(expires) or _at(expires),
        int(value[start + 32:start + 48]),
    )


def _head(value: bytes) -> tuple[int, str | None]:
    """Expiry and user id from a header followed by the user id (the HEAD script's reply)."""
    user = value[_HEADER:].decode("utf-8", "surrogatepass") if value[48] == 0x75 else None
    return int(value[16:32]), user


class RedisBackend(BaseSessionBackend):
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
        if max_concurrency is not None and max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be at least 1, not {max_concurrency!r}")
        _check_seconds("pool_timeout", pool_timeout)
        if deadline is not None:
            _check_seconds("deadline", deadline)
        self.client = client
        self._gate = asyncio.Semaphore(max_concurrency) if max_concurrency is not None else None
        self._pool_timeout = pool_timeout
        self._deadline = deadline
        self._plain = self._gate is None and deadline is None
        self._cold = isinstance(client, RedisCluster) and not self._plain
        # The nodes that seed the cluster client, to give back to it when it has dropped them all (below).
        self._seeds = ([(node.host, node.port) for node in client.nodes_manager.startup_nodes.values()]
                       if isinstance(client, RedisCluster) else [])
        self._exec: Callable[..., Coroutine[Any, Any, Any]] = (
            client.execute_command if self._plain else self._bounded_command)
        self.prefix = prefix
        self._session_prefix = f"{prefix}s:"
        self._close_client = close_client
        self._closed = False
        self._label = label
        self._clock = clock
        self._timeouts: tuple[object, object, object, int, int, bytes, bytes, bytes] = (
            None, None, None, 0, 0, b"", b"", b"")
        # Last expiry (µs) this process saw per session key: when it shows that no idle
        # extension can be due, read_and_touch reads with a plain GET instead of the script.
        self._expiry_hints: dict[str, int] = {}

    @classmethod
    def from_url(cls, url: str, *, prefix: str | None = None, clock: Clock = utc_now,
                 pool_timeout: float | None = None, **client_options: Any) -> RedisBackend:
        """A backend on its own client for ``url`` (see the module docstring for the schemes).

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
        try:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
        except ValueError as exc:
            raise ConfigurationError(f"cannot parse Redis URL {mask_url(url)!r}") from exc
        cluster = scheme.endswith("+cluster")
        base = scheme.removesuffix("+cluster")
        if base not in ("redis", "rediss"):
            raise ConfigurationError(f"not a Redis URL: {mask_url(url)!r}")
        query = []
        url_options: dict[str, str] = {}
        try:
            for name, value in parse_qsl(parts.query, keep_blank_values=True):
                if name == "prefix":
                    prefix = value if prefix is None else prefix
                elif name == "pool_timeout":
                    pool_timeout = _seconds("pool_timeout", value) if pool_timeout is None else pool_timeout
                else:
                    query.append((name, value))
                    url_options[name] = value
            pool_timeout = DEFAULT_POOL_TIMEOUT if pool_timeout is None else pool_timeout
            _check_seconds("pool_timeout", pool_timeout)
            for name, default in DEFAULT_SOCKET_OPTIONS.items():
                client_options.setdefault(name, default)
            for name in ("socket_connect_timeout", "socket_timeout"):
                # The URL's value (redis-py lets it win) or the keyword's: either must be a bound.
                given = _seconds(name, url_options[name]) if name in url_options else client_options[name]
                _check_seconds(name, given)
            limit = int(url_options.get("max_connections", client_options["max_connections"]))
            if limit < 1:
                raise ConfigurationError(f"max_connections must be at least 1, not {limit}")
        except (ConfigurationError, ValueError, TypeError) as exc:
            raise ConfigurationError(f"bad Redis URL or option for {mask_url(url)}: {exc}") from None
        # At most 2 retries of a connection error, each after a random wait below base * 2**failures (20 ms,
        # then 40 ms; cap 50 ms). Not of a timeout: a server that hangs would make every retry wait again.
        client_options.setdefault(
            "retry", Retry(FullJitterBackoff(cap=0.05, base=0.01), 2, supported_errors=(RedisConnectionError,)))
        client: Client
        deadline = None
        try:
            if cluster:
                if parts.path not in ("", "/", "/0"):
                    raise ConfigurationError("Redis Cluster has database 0 only")
                client = RedisCluster.from_url(urlunsplit(parts._replace(scheme=base, path="", query=urlencode(query))),
                                               **client_options)
                # The cluster client retries timeouts itself: one bound over the whole call instead.
                kwargs = client.get_connection_kwargs()
                deadline = pool_timeout + sum(float(kwargs.get(name) or 0)
                                              for name in ("socket_connect_timeout", "socket_timeout"))
            else:
                client = Redis.from_url(urlunsplit(parts._replace(scheme=base, query=urlencode(query))),
                                        **client_options)
        except (ValueError, TypeError, RedisError, RedisClusterException) as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(f"bad Redis URL or option for {mask_url(url)}: {exc}") from None
        return cls(client, prefix=DEFAULT_PREFIX if prefix is None else prefix, close_client=True,
                   label=mask_url(url), clock=clock, max_concurrency=limit,
                   pool_timeout=pool_timeout, deadline=deadline)

    # -- keys --------------------------------------------------------------------------------

    def session_key(self, key: str) -> str:
        """The Redis key holding session ``key``."""
        return self._session_prefix + key

    def index_key(self, user_id: str) -> str:
        """The Redis key of ``user_id``'s index (a sorted set of session keys)."""
        digest = hashlib.sha256(_user_bytes(user_id)).hexdigest()
        return f"{self.prefix}u:{{b{int(digest[:8], 16) % INDEX_BUCKETS}}}:{digest}"

    def _queue_key(self, index_key: str) -> str:
        bucket = index_key[len(self.prefix) + 2:].partition("}")[0] + "}"
        return f"{self.prefix}q:{bucket}"

    def _queue_keys(self) -> list[str]:
        return [f"{self.prefix}q:{{b{n}}}" for n in range(INDEX_BUCKETS)]

    # -- the driver boundary -----------------------------------------------------------------

    def _error(self, exc: BaseException) -> BackendError:
        detail = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, _UNAVAILABLE_ERRORS):
            return BackendUnavailable(f"Redis is unavailable ({self._label}): {detail}", backend="redis")
        return BackendError(f"Redis failed ({self._label}): {detail}", backend="redis")

    async def _bounded(self, call: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        """``call()`` in a slot of ``max_concurrency`` and within ``deadline`` (see :class:`RedisBackend`).

        A cancelled redis-py command drops its connection, so nothing half-read is reused.
        """
        if self._deadline is None:
            return await self._gated(call)
        try:
            async with asyncio.timeout(self._deadline) as scope:
                return await self._gated(call)
        except TimeoutError:
            if not scope.expired():
                raise
            self._keep_seeds()
            raise RedisTimeoutError(f"no reply within {self._deadline:g} s") from None

    async def _gated(self, call: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        if self._cold:
            # Topology first: when the first commands of redis-py's cluster client race, it can
            # fail one from inside its connection code. initialize() is idempotent and locked.
            await self.client.initialize()
            self._cold = False
        gate = self._gate
        if gate is None:
            return await call()
        if gate.locked():
            try:
                async with asyncio.timeout(self._pool_timeout):
                    await gate.acquire()
            except TimeoutError:
                raise RedisConnectionError(
                    f"no free connection within pool_timeout={self._pool_timeout:g} s") from None
        else:
            await gate.acquire()  # free: returns without suspending
        try:
            return await call()
        except _UNAVAILABLE_ERRORS:
            self._keep_seeds()
            raise
        finally:
            gate.release()

    def _keep_seeds(self) -> None:
        """Give the cluster client its seed nodes back when a failure made it drop them all.

        redis-py's async cluster client (5.x and 6.x at least) removes a node from its
        startup nodes on every connection error or timeout and rebuilds its map from the
        ones left: once each node has failed, it can never connect again, so the backend
        would stay unavailable after the cluster is back.
        """
        manager = getattr(self.client, "nodes_manager", None)
        if manager is None or manager.startup_nodes:
            return
        for host, port in self._seeds:
            node = ClusterNode(host, port, **manager.connection_kwargs)
            manager.startup_nodes[node.name] = node

    def _bounded_command(self, *args: EncodableT) -> Coroutine[Any, Any, Any]:
        return self._bounded(lambda: self.client.execute_command(*args))

    async def _eval(self, script: scripts.Script, key: str, *args: EncodableT) -> Any:
        """Run a one-key script: EVALSHA, or EVAL when the server does not have it cached."""
        try:
            try:
                return await self._exec("EVALSHA", script.sha, b"1", key, *args)
            except NoScriptError:
                return await self._exec("EVAL", script.source, b"1", key, *args)
        except (RedisError, RedisClusterException, OSError) as exc:
            raise self._error(exc) from exc

    async def _command(self, *args: EncodableT) -> Any:
        try:
            return await self._exec(*args)
        except (RedisError, RedisClusterException, OSError) as exc:
            raise self._error(exc) from exc

    async def _pipeline(self, commands: Sequence[tuple[EncodableT, ...]]) -> list[Any]:
        """Several commands in one go (grouped per node on a cluster); scripts go as EVAL."""
        if not commands:
            return []

        async def run() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                for command in commands:
                    pipe.execute_command(*command)
                return list(await pipe.execute())

        try:
            return list(await (run() if self._plain else self._bounded(run)))
        except (RedisError, RedisClusterException, OSError) as exc:
            raise self._error(exc) from exc

    async def _index_add(self, user_id: str, key: str, expires_us: int, now_us: int) -> None:
        """Write ``key``'s entry in ``user_id``'s index and make the index outlive ``expires_us``."""
        index = self.index_key(user_id)
        args = (2, index, self._queue_key(index), expires_us, key, index, now_us)
        try:
            await self._exec("EVALSHA", scripts.INDEX_ADD.sha, *args)
        except NoScriptError:
            await self._command("EVAL", scripts.INDEX_ADD.source, *args)
        except (RedisError, RedisClusterException, OSError) as exc:
            raise self._error(exc) from exc

    # -- the contract ------------------------------------------------------------------------

    async def create(self, record: SessionRecord, *, now: datetime | None = None) -> None:
        expires, now_us = _us(record.expires_at), _us(now or self._clock())
        if record.user_id is not None:
            # The index entry comes first, so a live session is never missing from its user's index.
            await self._index_add(record.user_id, record.key, expires, now_us)
        value = _encode(record, 1, expires)
        ttl = _ttl_ms(expires, now_us)
        if not await self._eval(scripts.CREATE, self.session_key(record.key), now_us, value, ttl):
            raise SessionExists(key=record.key, operation="create")
        self._hint(record.key, expires)

    async def read(self, key: str, *, now: datetime | None = None) -> SessionRecord | None:
        value = await self._command("GET", self.session_key(key))
        if value is None:
            return None
        record = _decode(key, value)
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

        See :class:`~fastapi_sessions.core.contract.SupportsReadAndTouch`. The
        round trip is the read-and-touch script, or a plain ``GET`` when the
        expiry this process last saw for ``key`` shows that no extension can be
        due; the record that ``GET`` returns is checked again, and only if an
        extension is due after all (another process moved the expiry earlier)
        does the script follow.
        """
        # The manager passes the same timedelta objects every time: convert them once.
        cached = self._timeouts
        if (cached[0] is not idle_timeout or cached[1] is not absolute_timeout
                or cached[2] is not refresh_interval):
            idle, refresh = idle_timeout // _US, refresh_interval // _US
            cached = self._timeouts = (
                idle_timeout, absolute_timeout, refresh_interval, idle, refresh,
                b"%d" % idle, b"%d" % (absolute_timeout // _US), b"%d" % refresh,
            )
        now_us = (now - _EPOCH) // _US
        # No extension is due while now + idle - refresh < expiry (the target is at most now + idle).
        due_after = now_us + cached[3] - cached[4]
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
                record = _decode(key, value)
                expires = int(value[16:32])
                if expires <= now_us:
                    return None, False
                if due_after < expires:
                    hints[key] = expires
                    return record, False
                # The expiry moved earlier elsewhere and an extension is due: the script decides.
            args = (session, b"%d" % now_us, cached[5], cached[6], cached[7])
            try:
                reply = await self._exec("EVALSHA", scripts.READ_AND_TOUCH.sha, b"1", *args)
            except NoScriptError:
                reply = await self._exec("EVAL", scripts.READ_AND_TOUCH.source, b"1", *args)
        except (RedisError, RedisClusterException, OSError) as exc:
            raise self._error(exc) from exc
        if reply is not None and reply[0] == 0x32:  # b"2": the extension needs the user's index raised first
            created = int(reply[1:17])
            target = min(created + absolute_timeout // _US, now_us + cached[3])  # the script's target
            user = _decode(key, reply, 1).user_id
            assert user is not None
            await self._index_add(user, key, target, now_us)
            reply = await self._eval(scripts.READ_AND_TOUCH, *args, b"1")
        if reply is None:
            hints.pop(key, None)
            return None, False
        self._hint(key, int(reply[17:33]))
        return _decode(key, reply, 1), reply[0] == 0x31  # b"1": extended

    def _hint(self, key: str, expires_us: int) -> None:
        hints = self._expiry_hints
        if len(hints) >= 10_000 and key not in hints:
            hints.clear()  # bounded; a lost hint costs one script call, never correctness
        hints[key] = expires_us

    async def update(self, record: SessionRecord, expected_version: int, *, now: datetime | None = None) -> int:
        expires, now_us = _us(record.expires_at), _us(now or self._clock())
        session = self._session_prefix + record.key
        value = _encode(record, expected_version + 1, expires)
        control = _cas_control(expected_version, now_us, expires, False)
        result = await self._eval(scripts.UPDATE, session, control, value)
        if result == -3:  # to another user, or past its index's expiry: index first, then the same CAS, index ready
            assert record.user_id is not None
            await self._index_add(record.user_id, record.key, expires, now_us)
            control = _cas_control(expected_version, now_us, expires, True)
            result = await self._eval(scripts.UPDATE, session, control, value)
        if result == -1:
            raise SessionNotFound(key=record.key, operation="update")
        if result == -2:
            raise SessionConflict(key=record.key, operation="update")
        self._hint(record.key, expires)
        return int(result)

    async def touch(self, key: str, expires_at: datetime, *, now: datetime | None = None) -> bool:
        expires, now_us = _us(expires_at), _us(now or self._clock())
        args = (self.session_key(key), now_us, b"%016d" % expires, _ttl_ms(expires, now_us))
        reply = await self._eval(scripts.TOUCH, *args)
        if isinstance(reply, bytes):  # the user id: past its index's expiry, so the index first
            await self._index_add(reply.decode("utf-8", "surrogatepass"), key, expires, now_us)
            reply = await self._eval(scripts.TOUCH, *args, b"1")
        touched = bool(reply == 1)
        if touched:
            self._hint(key, expires)
        return touched

    async def delete(self, key: str, *, now: datetime | None = None) -> bool:
        self._expiry_hints.pop(key, None)
        reply = await self._eval(scripts.DELETE, self.session_key(key), _us(now or self._clock()))
        if reply is None:
            return False
        live, user = reply
        if user is not None:
            # Keeps listings lean; an entry left behind (a crash here) is dropped by purge_expired.
            await self._command("ZREM", self.index_key(user.decode("utf-8", "surrogatepass")), key)
        return bool(live == 1)

    async def list_by_user(self, user_id: str, *, now: datetime | None = None) -> list[SessionRecord]:
        now = now or self._clock()
        keys = await self._command("ZRANGE", self.index_key(user_id), 0, -1)
        if not keys:
            return []
        values = await self._pipeline([("GET", self.session_key(k.decode())) for k in keys])
        records = []
        for k, value in zip(keys, values, strict=True):
            if value is None:
                continue  # gone: a stale entry
            record = _decode(k.decode(), value)
            if record.user_id == user_id and record.expires_at > now:  # not moved to another user
                records.append(record)
        return records

    async def delete_by_user(self, user_id: str, *, now: datetime | None = None) -> int:
        now_us = _us(now or self._clock())
        index = self.index_key(user_id)
        keys = await self._command("ZRANGE", index, 0, -1)
        if not keys:
            return 0
        user = _user_bytes(user_id)
        tag = _user_tag(user)
        results = await self._pipeline(
            [("EVAL", scripts.DELETE_IF_USER.source, 1, self.session_key(k.decode()), now_us, tag, user)
             for k in keys]
        )
        gone = [k for k, result in zip(keys, results, strict=True) if result]
        if gone:
            await self._command("ZREM", index, *gone)
        return sum(1 for result in results if result == 1)

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        """Drop index entries of sessions that expired or went; Redis expires the sessions itself.

        Only due work is visited: the bucket queues name the indexes whose
        earliest score has passed at ``now``, and within them only due entries
        are read. An entry whose session is still live for its user is
        re-scored to the session's expiry. Returns the number of entries dropped.
        """
        cut = _us(now or self._clock())  # one cut-off for every round: no chasing the clock
        dropped = 0
        for _ in range(10_000):  # bounded: each round makes progress, this only guards a livelock
            due = await self._pipeline(
                [("ZRANGEBYSCORE", q, "-inf", cut, "LIMIT", 0, _PURGE_BATCH) for q in self._queue_keys()]
            )
            indexes = [i.decode() for names in due for i in names]
            if not indexes:
                return dropped
            entries = await self._pipeline(
                [("ZRANGEBYSCORE", i, "-inf", cut, "LIMIT", 0, _PURGE_BATCH) for i in indexes]
            )
            sessions = [(index, k.decode()) for index, keys in zip(indexes, entries, strict=True) for k in keys]
            heads = await self._pipeline(
                [("EVAL", scripts.HEAD.source, 1, self.session_key(k), ) for _, k in sessions]
            )
            sweeps: dict[str, list[EncodableT]] = {i: [] for i in indexes}
            for (index, key), head in zip(sessions, heads, strict=True):
                expires, user = _head(head) if head is not None else (0, None)
                alive = user is not None and expires > cut and self.index_key(user) == index
                sweeps[index] += [key, expires if alive else "-"]
            results = await self._pipeline(
                [("EVAL", scripts.INDEX_SWEEP.source, 2, i, self._queue_key(i), cut, i, *pairs)
                 for i, pairs in sweeps.items()]
            )
            dropped += sum(int(r) for r in results)
        return dropped

    async def aclose(self) -> None:
        """Close the client if this backend made it (:meth:`from_url`). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._close_client:
            await self.client.aclose()


def from_url(url: str, **options: Any) -> RedisBackend:
    """Entry-point factory for ``redis://``, ``rediss://``, ``redis+cluster://`` and ``rediss+cluster://``."""
    return RedisBackend.from_url(url, **options)
