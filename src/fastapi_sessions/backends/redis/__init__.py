"""Redis backend: standalone, TLS and Redis Cluster, on ``redis.asyncio``; Valkey too.

URLs (``pip install "fastapi-sessions[redis]"``)::

    redis://[[user]:password@]host[:port][/db][?prefix=app:&protocol=2&...]
    rediss://...                       TLS
    redis+cluster://host:port[?...]    Redis Cluster (any node seeds the client)
    rediss+cluster://host:port[?...]   Redis Cluster over TLS
    valkey://, valkeys://, valkey+cluster://, valkeys+cluster://
                                       the same on Valkey (redis-py speaks to it as to Redis)

``prefix`` and ``pool_timeout`` are ours (default ``fastapi-sessions:`` and 5
seconds); every other query option goes to redis-py. Every wait is bounded by
default (docs/backends/redis.md, "Timeouts and pool"): 5 s to connect, 5 s for
a reply, 5 s for a free pool connection, and a timeout is never retried. An
application's own client is accepted as well: ``RedisBackend(client)``; it is
then left open by :meth:`RedisBackend.aclose`.

Layout (``P`` is the prefix; see docs/backends/redis.md, "Data layout"):

* ``P s:<key>``: one string per session with a native expiry (``_layout.py``).
  A read is one ``GET``; every write to one session is one Lua script on that
  one key: the compare-and-set, the fused read-and-touch, create, touch, delete.
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

The modules behind this one are private: ``_backend`` (the storage contract
on Redis keys), ``_layout`` (the stored record, defined once), ``_scripts``
(the Lua), ``_calls`` (bounded calls through redis-py) and ``_url`` (a client
from a URL).
"""

from ._backend import DEFAULT_PREFIX, RedisBackend, from_url
from ._backend import INDEX_BUCKETS as INDEX_BUCKETS
from ._calls import DEFAULT_POOL_TIMEOUT
from ._calls import Client as Client
from ._url import DEFAULT_SOCKET_OPTIONS

__all__ = ["DEFAULT_POOL_TIMEOUT", "DEFAULT_PREFIX", "DEFAULT_SOCKET_OPTIONS", "RedisBackend", "from_url"]
