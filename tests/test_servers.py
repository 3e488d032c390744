"""``fastapi_sessions.testing.server_url``: environment URL, else a container, else skip (or fail)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from fastapi_sessions.testing import server_url, servers

VARIABLE = "MYPLUGIN_TEST_COUCHDB_URL"
REQUIRE = "FASTAPI_SESSIONS_TEST_REQUIRE"


@pytest.fixture(autouse=True)
def no_docker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic: no Docker daemon and no server variables unless a test sets them."""
    monkeypatch.setattr(servers, "docker_available", lambda: False)
    for name in (VARIABLE, REQUIRE, "FASTAPI_SESSIONS_TEST_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)


def test_the_environment_url_is_used_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, "couchdb://ci-host:5984/")
    monkeypatch.setenv(REQUIRE, "all")
    with server_url("couchdb", VARIABLE) as url:
        assert url == "couchdb://ci-host:5984/"


def test_the_environment_url_wins_over_a_container(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "docker_available", lambda: True)
    monkeypatch.setenv(VARIABLE, "couchdb://from-env/")

    @contextmanager
    def container() -> Iterator[str]:
        raise AssertionError("no container when the variable is set")
        yield "unreachable"  # pragma: no cover

    with server_url("couchdb", VARIABLE, container=container) as url:
        assert url == "couchdb://from-env/"


def test_without_url_or_docker_the_test_is_skipped_naming_the_variable() -> None:
    with pytest.raises(pytest.skip.Exception) as caught, server_url("couchdb", VARIABLE):
        pytest.fail("the body must not run")  # pragma: no cover
    assert VARIABLE in str(caught.value)
    assert "couchdb" in str(caught.value)


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, "")
    with pytest.raises(pytest.skip.Exception, match=VARIABLE), server_url("couchdb", VARIABLE):
        pass  # pragma: no cover


def test_a_container_factory_is_used_when_docker_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "docker_available", lambda: True)
    events: list[str] = []

    @contextmanager
    def container() -> Iterator[str]:
        events.append("start")
        yield "couchdb://container:5984/"
        events.append("stop")

    with server_url("couchdb", VARIABLE, container=container) as url:
        assert url == "couchdb://container:5984/"
        assert events == ["start"]
    assert events == ["start", "stop"]


def test_a_container_factory_is_not_used_without_docker() -> None:
    @contextmanager
    def container() -> Iterator[str]:
        raise AssertionError("Docker is not available")
        yield "unreachable"  # pragma: no cover

    with pytest.raises(pytest.skip.Exception, match=VARIABLE), server_url("couchdb", VARIABLE, container=container):
        pass  # pragma: no cover


def test_the_built_in_servers_have_containers() -> None:
    assert set(servers.CONTAINERS) >= {"redis", "postgres", "mysql", "mongodb"}


def test_a_built_in_server_without_docker_is_skipped() -> None:
    variable = "FASTAPI_SESSIONS_TEST_REDIS_URL"
    with pytest.raises(pytest.skip.Exception, match=variable), server_url("redis", variable):
        pass  # pragma: no cover


@pytest.mark.parametrize("require", ["all", "ALL", "couchdb", "redis,couchdb", " redis , CouchDB ", "mongodb,all"])
def test_a_required_server_fails_instead_of_skipping(monkeypatch: pytest.MonkeyPatch, require: str) -> None:
    monkeypatch.setenv(REQUIRE, require)
    with pytest.raises(pytest.fail.Exception) as caught, server_url("couchdb", VARIABLE):
        pass  # pragma: no cover
    assert VARIABLE in str(caught.value)
    assert REQUIRE in str(caught.value)


@pytest.mark.parametrize("require", ["", "redis", "redis,mongodb", "couch", "couchdb2"])
def test_a_server_not_in_the_required_list_is_skipped(monkeypatch: pytest.MonkeyPatch, require: str) -> None:
    monkeypatch.setenv(REQUIRE, require)
    with pytest.raises(pytest.skip.Exception, match=VARIABLE), server_url("couchdb", VARIABLE):
        pass  # pragma: no cover


def test_required_reads_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert servers.required("redis") is False
    monkeypatch.setenv(REQUIRE, "postgres, Redis")
    assert servers.required("redis") is True
    assert servers.required("REDIS") is True
    assert servers.required("postgres") is True
    assert servers.required("mysql") is False


def test_docker_available_is_false_when_the_client_cannot_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.undo()  # the real function, not the autouse stand-in
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:1")  # nothing listens on port 1
    assert servers.docker_available() is False
