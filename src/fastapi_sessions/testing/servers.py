"""Finding a real server for a test: environment URL, else a container, else skip (or fail).

Resolution order, for each server a test needs:

1. the environment variable (for example ``FASTAPI_SESSIONS_TEST_REDIS_URL``);
2. a throwaway container through testcontainers, when a Docker daemon answers;
3. ``pytest.skip`` naming the variable to set, or ``pytest.fail`` when
   ``FASTAPI_SESSIONS_TEST_REQUIRE`` is ``all`` or lists the server's name
   (comma-separated), as CI sets it.

Plugin authors use the same helper for their own servers::

    @pytest.fixture(scope="session")
    def couch_url():
        with server_url("couchdb", "MYPLUGIN_TEST_COUCHDB_URL") as url:
            yield url
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest

__all__ = ["CONTAINERS", "docker_available", "required", "server_url"]

REQUIRE_VARIABLE = "FASTAPI_SESSIONS_TEST_REQUIRE"

ContainerFactory = Callable[[], AbstractContextManager[str]]


def required(name: str) -> bool:
    """Whether a missing ``name`` server must fail the run instead of skipping."""
    wanted = {part.strip().lower() for part in os.environ.get(REQUIRE_VARIABLE, "").split(",")}
    return "all" in wanted or name.lower() in wanted


def docker_available() -> bool:
    """Whether a Docker daemon answers (testcontainers installed and the daemon reachable)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not os.path.exists(host.removeprefix("unix://")):
        return False  # no local daemon: don't even build a client (a failed one leaks its socket)
    try:
        import docker  # type: ignore[import-untyped]  # installed with testcontainers

        # A fixed API version: "auto" would query the daemon inside the constructor,
        # where a failure leaves the connection unclosed.
        client = docker.DockerClient(base_url=host, version="1.41", timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no package, no socket, no permission: all mean "no Docker"
        return False


@contextmanager
def server_url(name: str, env_var: str, *, container: ContainerFactory | None = None) -> Iterator[str]:
    """Yield a URL for the ``name`` server; see the module docstring for the order."""
    url = os.environ.get(env_var)
    if url:
        yield url
        return
    if container is None:
        container = CONTAINERS.get(name)
    if container is not None and docker_available():
        with container() as url:
            yield url
        return
    message = f"no {name} server: set {env_var} (or run a Docker daemon for testcontainers)"
    if required(name):
        pytest.fail(f"{message}; {REQUIRE_VARIABLE} requires it", pytrace=False)
    pytest.skip(message)


# -- throwaway containers for the built-in servers (used only when Docker answers) -----------


@contextmanager
def _redis() -> Iterator[str]:
    from testcontainers.redis import RedisContainer

    with RedisContainer("redis:7.4-alpine") as redis:
        yield f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"


@contextmanager
def _postgres() -> Iterator[str]:
    from testcontainers.postgres import PostgresContainer

    with PostgresContainer("postgres:17-alpine", driver="asyncpg") as postgres:
        yield str(postgres.get_connection_url())


@contextmanager
def _mysql() -> Iterator[str]:
    from testcontainers.mysql import MySqlContainer

    with MySqlContainer("mariadb:11.4") as mysql:
        host, port = mysql.get_container_host_ip(), mysql.get_exposed_port(3306)
        yield f"mysql+asyncmy://{mysql.username}:{mysql.password}@{host}:{port}/{mysql.dbname}"


@contextmanager
def _mongodb() -> Iterator[str]:
    from testcontainers.mongodb import MongoDbContainer

    with MongoDbContainer("mongo:8.0") as mongo:
        yield str(mongo.get_connection_url())


#: Container factories for the servers fastapi-sessions' own backends use.
CONTAINERS: dict[str, ContainerFactory] = {
    "redis": _redis,
    "postgres": _postgres,
    "mysql": _mysql,
    "mongodb": _mongodb,
}
