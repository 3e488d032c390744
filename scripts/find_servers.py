"""Find the test servers on their default loopback ports; ``scripts/dev.py test`` runs this in its venv.

Prints one JSON object: ``environment``, the ``FASTAPI_SESSIONS_TEST_*`` variables
to set for the servers that answered, and ``summary``, one line saying which
backends the suite runs and which it skips, and why. A variable that is already
set wins and is not probed. Every probe is bounded (about two seconds).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from fastapi_sessions.backends import mask_url
from fastapi_sessions.testing.servers import REQUIRE_VARIABLE, docker_available

TIMEOUT = 2.0


def _redis_py(url: str) -> str:
    """redis-py's spelling of a ``valkey://`` or ``+cluster`` URL."""
    scheme, rest = url.split("://", 1)
    family = scheme.removesuffix("+cluster")
    spelled = {"valkey": "redis", "valkeys": "rediss"}.get(family, family)
    return f"{spelled}://{rest}"


async def _redis(url: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(_redis_py(url), socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _redis_cluster(url: str) -> None:
    from redis.asyncio import RedisCluster

    client = RedisCluster.from_url(_redis_py(url), socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _postgres(url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=TIMEOUT)
    await connection.close()


async def _mysql(url: str) -> None:
    import asyncmy

    parts = urlsplit(url)
    connection = await asyncmy.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username or "root",
                                       password=parts.password or "", database=parts.path.lstrip("/"),
                                       connect_timeout=TIMEOUT)
    connection.close()


async def _mongodb(url: str) -> None:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url, serverSelectionTimeoutMS=int(TIMEOUT * 1000))
    try:
        await client.admin.command("ping")
    finally:
        await client.close()


# name, variable, the URL a default local install answers on, its probe
SERVERS: list[tuple[str, str, str, Callable[[str], Awaitable[None]]]] = [
    ("redis", "FASTAPI_SESSIONS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0", _redis),
    ("redis-cluster", "FASTAPI_SESSIONS_TEST_REDIS_CLUSTER_URL", "redis+cluster://127.0.0.1:7000/0", _redis_cluster),
    ("valkey", "FASTAPI_SESSIONS_TEST_VALKEY_URL", "valkey://127.0.0.1:6390/0", _redis),
    ("valkey-cluster", "FASTAPI_SESSIONS_TEST_VALKEY_CLUSTER_URL", "valkey+cluster://127.0.0.1:7100/0",
     _redis_cluster),
    ("postgres", "FASTAPI_SESSIONS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test", _postgres),
    ("mysql", "FASTAPI_SESSIONS_TEST_MYSQL_URL", "mysql+asyncmy://root@127.0.0.1:3306/test", _mysql),
    ("mongodb", "FASTAPI_SESSIONS_TEST_MONGODB_URL", "mongodb://127.0.0.1:27017/fastapi_sessions_test", _mongodb),
]


def _listening(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 0.5).close()
    except OSError:
        return False
    return True


async def _probe(url: str, probe: Callable[[str], Awaitable[None]]) -> str | None:
    """``None`` when the server answers as the suite needs, else why not (no password in it)."""
    if not _listening(url):
        return f"nothing listens on {urlsplit(url).netloc.rpartition('@')[2]}"
    try:
        await asyncio.wait_for(probe(url), TIMEOUT * 2)
    except Exception as exc:  # any failure means "not usable"; say which, briefly
        reason = str(exc).splitlines()[0][:120] if str(exc) else ""
        return f"{mask_url(url)} answers but refused: {type(exc).__name__}{': ' + reason if reason else ''}"
    return None


async def main() -> dict[str, object]:
    environment: dict[str, str] = {}
    running = ["memory", "sqlite"]
    skipped: list[str] = []
    docker = None
    for name, variable, default, probe in SERVERS:
        if os.environ.get(variable):
            running.append(f"{name} ({variable})")
            continue
        why = await _probe(default, probe)
        if why is None:
            environment[variable] = default
            running.append(name)
            continue
        if docker is None:
            docker = docker_available()
        if docker:
            running.append(f"{name} (a container)")
        else:
            skipped.append(f"{name} ({why}; set {variable})")
    summary = f"test backends: {', '.join(running)} run"
    if skipped:
        fails = os.environ.get(REQUIRE_VARIABLE) == "all"
        summary += f"; {'FAIL, required' if fails else 'skipped'}: {', '.join(skipped)}"
    return {"environment": environment, "summary": summary}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
