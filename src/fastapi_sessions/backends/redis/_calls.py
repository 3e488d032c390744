"""How the Redis backend calls redis-py: bounded in number and time, scripts by SHA, errors mapped (private).

:class:`RedisCalls` is the base of :class:`~._backend.RedisBackend`: the
session logic lives there, and everything here is about getting one command
or script through redis-py and back, on a standalone server or a cluster.
Its helpers let driver exceptions through; each storage call maps them with
:meth:`RedisCalls._error`, so the error names the call that failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import (
    ClusterDownError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT

from ...errors import BackendError, BackendUnavailable, ConfigurationError
from ._scripts import Script

__all__ = ["DEFAULT_POOL_TIMEOUT", "DRIVER_ERRORS", "Client", "RedisCalls", "check_seconds"]

#: Seconds a call waits for a free connection when all ``max_connections`` are in use.
DEFAULT_POOL_TIMEOUT = 5.0
Client = Redis | RedisCluster
#: What redis-py raises; each storage call turns these into BackendError or BackendUnavailable.
DRIVER_ERRORS = (RedisError, RedisClusterException, OSError)
_UNAVAILABLE_ERRORS = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,  # also MasterDownError
    TryAgainError,
    RedisClusterException,  # "cannot be connected", slot not covered
    OSError,
)


def _lost_while_writing(exc: BaseException) -> bool:
    """A command sent on a connection that was lost or closed under it (then a 503, not a 500).

    CPython 3.12+ (gh-136234): ``writelines()`` on a transport whose connection was lost.

    ``write()`` drops the data of a lost connection and lets the read fail, but
    ``writelines()``, which redis-py uses, calls the transport's cleared write
    callback instead and raises ``TypeError`` (``AttributeError`` on some
    versions). redis-py has a form of its own (below). Only these are recognised,
    by the innermost frame, so a ``TypeError`` of any other origin stays a bug.
    """
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    code = tb.tb_frame.f_code
    if code.co_name == "writelines" and code.co_filename.endswith(("selector_events.py", "transports.py")):
        return True
    # redis-py's own form of the race: another task disconnected the connection (its writer is now
    # None) while this one was sending on it, as its cluster client does after a timeout.
    return (isinstance(exc, AttributeError) and code.co_name in ("_send_packed_command", "send_packed_command")
            and code.co_filename.replace("\\", "/").endswith("redis/asyncio/connection.py"))


_LOST_WRITING = "the connection was lost while a command was being sent"


async def _through_lost_connections(call: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """``call()``, with a write to a lost connection reported as the connection error it is."""
    try:
        return await call()
    except (TypeError, AttributeError) as exc:
        if not _lost_while_writing(exc):
            raise
        # redis-py has already dropped the connection (it disconnects on any exception while sending).
        raise RedisConnectionError(_LOST_WRITING) from exc


def check_seconds(name: str, value: object) -> None:
    """A timeout must be a positive, finite number: ``None`` would mean waiting forever."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ConfigurationError(f"{name} must be a positive number of seconds, not {value!r}")


class RedisCalls:
    """Commands to ``client``: at most ``max_concurrency`` in flight, each within ``deadline``.

    See :class:`~._backend.RedisBackend` for what the bounds are for. Without
    either bound, a command goes straight to redis-py.
    """

    def __init__(self, client: Client, *, label: str, max_concurrency: int | None, pool_timeout: float,
                 deadline: float | None) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be at least 1, not {max_concurrency!r}")
        check_seconds("pool_timeout", pool_timeout)
        if deadline is not None:
            check_seconds("deadline", deadline)
        self.client = client
        self._label = label
        self._gate = asyncio.Semaphore(max_concurrency) if max_concurrency is not None else None
        self._pool_timeout = pool_timeout
        self._deadline = deadline
        self._plain = self._gate is None and deadline is None
        self._cold = isinstance(client, RedisCluster) and not self._plain
        # The nodes that seed the cluster client, to give back to it when it has dropped them all (below).
        self._seeds = ([(node.host, node.port) for node in client.nodes_manager.startup_nodes.values()]
                       if isinstance(client, RedisCluster) else [])
        self._exec: Callable[..., Coroutine[Any, Any, Any]] = (
            self._plain_command if self._plain else self._bounded_command)

    def _error(self, exc: BaseException, operation: str) -> BackendError:
        """``exc`` from redis-py as ours: unavailable for an outage, else a plain backend error."""
        detail = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, _UNAVAILABLE_ERRORS):
            return BackendUnavailable(f"Redis is unavailable ({self._label}): {detail}", backend="redis",
                                      operation=operation)
        return BackendError(f"Redis failed ({self._label}): {detail}", backend="redis", operation=operation)

    async def _eval(self, script: Script, *keys_and_args: EncodableT) -> Any:
        """Run ``script``: EVALSHA, or EVAL when the server lost its script cache (a restart, a failover)."""
        try:
            return await self._exec("EVALSHA", script.sha, script.numkeys, *keys_and_args)
        except NoScriptError:
            return await self._exec("EVAL", script.source, script.numkeys, *keys_and_args)

    async def _pipeline(self, commands: Sequence[tuple[EncodableT, ...]]) -> list[Any]:
        """Several commands in one go (grouped per node on a cluster); scripts go as EVAL."""
        if not commands:
            return []

        async def run() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                for command in commands:
                    pipe.execute_command(*command)
                return list(await pipe.execute())

        return list(await (_through_lost_connections(run) if self._plain else self._bounded(run)))

    def _plain_command(self, *args: EncodableT) -> Coroutine[Any, Any, Any]:
        return _through_lost_connections(lambda: self.client.execute_command(*args))

    def _bounded_command(self, *args: EncodableT) -> Coroutine[Any, Any, Any]:
        return self._bounded(lambda: self.client.execute_command(*args))

    async def _bounded(self, call: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        """``call()`` in a slot of ``max_concurrency`` and within ``deadline``.

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
            return await _through_lost_connections(call)
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
        except (TypeError, AttributeError) as exc:  # inline: this is every command's path
            if not _lost_while_writing(exc):
                raise
            self._keep_seeds()
            raise RedisConnectionError(_LOST_WRITING) from exc
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
