"""A redis-py client from a backend URL, with every wait bounded by default (private).

See :meth:`~._backend.RedisBackend.from_url` for what the options mean and
docs/backends/redis.md ("Timeouts and pool") for why they are what they are.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis, RedisCluster
from redis.backoff import FullJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.retry import Retry

from ..._core.registry import mask_url
from ...errors import ConfigurationError
from ._calls import DEFAULT_POOL_TIMEOUT, Client, check_seconds

__all__ = ["DEFAULT_SOCKET_OPTIONS", "FromUrl", "client_from_url"]

#: What :meth:`RedisBackend.from_url` gives redis-py unless the URL or a keyword says otherwise:
#: redis-py before 8 waits forever for a reply, and its default pool fails at once when full.
DEFAULT_SOCKET_OPTIONS: dict[str, Any] = {
    "socket_connect_timeout": 5.0,
    "socket_timeout": 5.0,
    "socket_keepalive": True,
    "max_connections": 100,
}

#: The URL schemes served (without ``+cluster``), and what redis-py calls each.
_REDIS_SCHEMES = {"redis": "redis", "rediss": "rediss", "valkey": "redis", "valkeys": "rediss"}


class FromUrl(NamedTuple):
    """The client made for a URL, and the backend options the URL decided."""

    client: Client
    prefix: str | None  # None: the URL and the caller gave none
    pool_timeout: float
    max_connections: int
    deadline: float | None  # set for a cluster only


def _seconds(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, not {value!r}") from None


def client_from_url(url: str, *, prefix: str | None, pool_timeout: float | None,
                    client_options: dict[str, Any]) -> FromUrl:
    """A client for ``url``; ``prefix`` and ``pool_timeout`` given as keywords win over the URL's.

    ``client_options`` go to redis-py on top of :data:`DEFAULT_SOCKET_OPTIONS`
    (it fills them in place); a URL query option wins over both, as in redis-py.
    """
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
    except ValueError as exc:
        raise ConfigurationError(f"cannot parse Redis URL {mask_url(url)!r}") from exc
    cluster = scheme.endswith("+cluster")
    # valkey:// is redis:// to redis-py, which speaks to Valkey as it does to Redis.
    base = _REDIS_SCHEMES.get(scheme.removesuffix("+cluster"))
    if base is None:
        raise ConfigurationError(f"not a Redis or Valkey URL: {mask_url(url)!r}")
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
        check_seconds("pool_timeout", pool_timeout)
        for name, default in DEFAULT_SOCKET_OPTIONS.items():
            client_options.setdefault(name, default)
        for name in ("socket_connect_timeout", "socket_timeout"):
            # The URL's value (redis-py lets it win) or the keyword's: either must be a bound.
            given = _seconds(name, url_options[name]) if name in url_options else client_options[name]
            check_seconds(name, given)
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
    return FromUrl(client, prefix, pool_timeout, limit, deadline)
