"""The "Registry" rules of DESIGN.md: backends by URL through entry points, loaded on demand."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import Request

from conftest import SECRET, app_with, client_for
from fastapi_sessions import (
    AmbiguousBackend,
    BackendNotInstalled,
    ConfigurationError,
    SessionManager,
    SessionSettings,
    UnknownBackend,
)
from fastapi_sessions import backends as backends_package
from fastapi_sessions._core import registry
from fastapi_sessions.backends import (
    BackendInfo,
    available_backends,
    from_url,
    mask_url,
    register_backend,
    unregister_backend,
)
from fastapi_sessions.backends.in_memory import InMemoryBackend
from fastapi_sessions.frontends import SessionFrontend

PASSWORD = "hunter2"


# -- fakes -----------------------------------------------------------------------------------


@dataclass
class FakeEntryPoint:
    """Quacks like ``importlib.metadata.EntryPoint``; ``load`` records that it was called."""

    name: str
    dist_name: str
    target: Any  # the factory to return, or an exception to raise
    loads: list[str] = field(default_factory=list)

    @property
    def value(self) -> str:
        return f"fake_{self.name.replace('+', '_')}:from_url"

    @property
    def dist(self) -> SimpleNamespace:
        return SimpleNamespace(name=self.dist_name)

    def load(self) -> Any:
        self.loads.append(self.name)
        if isinstance(self.target, BaseException):
            raise self.target
        return self.target


class Recorder:
    """A backend factory that remembers its calls and returns a fresh in-memory backend."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, url: str, **options: Any) -> InMemoryBackend:
        self.calls.append((url, options))
        return InMemoryBackend()


@pytest.fixture
def install_entry_points(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[FakeEntryPoint]]:
    """Replace the installed entry points, as the registry module sees them, with fakes."""

    def install(*eps: FakeEntryPoint) -> list[FakeEntryPoint]:
        def fake_entry_points(**kwargs: Any) -> list[FakeEntryPoint]:
            assert kwargs == {"group": registry.ENTRY_POINT_GROUP}
            return list(eps)

        monkeypatch.setattr(registry, "entry_points", fake_entry_points)
        return list(eps)

    return install


@pytest.fixture
def registered() -> Iterator[Callable[..., None]]:
    """``register_backend`` that is undone after the test."""
    names: list[str] = []

    def register(name: str, factory: Callable[..., Any], **kwargs: Any) -> None:
        register_backend(name, factory, **kwargs)
        names.append(name)

    yield register
    for name in names:
        unregister_backend(name)


def all_loads(eps: list[FakeEntryPoint]) -> list[str]:
    return [name for ep in eps for name in ep.loads]


# -- the public surface ----------------------------------------------------------------------


def test_backends_package_exposes_the_registry() -> None:
    assert backends_package.from_url is registry.from_url
    assert backends_package.register_backend is registry.register_backend
    assert backends_package.available_backends is registry.available_backends
    assert registry.ENTRY_POINT_GROUP == "fastapi_sessions.backends"


def test_error_types_are_distinct_configuration_errors() -> None:
    kinds = [UnknownBackend, BackendNotInstalled, AmbiguousBackend]
    for kind in kinds:
        assert issubclass(kind, ConfigurationError)
        assert [other for other in kinds if issubclass(kind, other)] == [kind]
    assert issubclass(BackendNotInstalled, ImportError)


# -- resolution through the real entry points ------------------------------------------------


@pytest.mark.asyncio
async def test_memory_url_resolves_through_our_own_entry_point() -> None:
    assert available_backends()["memory"].distribution == "fastapi-sessions"
    async with from_url("memory://") as backend:
        assert type(backend) is InMemoryBackend
        assert backend.max_entries is None
    async with from_url("memory://?max_entries=5") as bounded:
        assert isinstance(bounded, InMemoryBackend) and bounded.max_entries == 5


def test_scheme_case_does_not_matter() -> None:
    assert isinstance(from_url("MEMORY://"), InMemoryBackend)


@pytest.mark.parametrize("url", ["memory://?max_entries=0", "memory://?max_entries=x", "memory://?bogus=1"])
def test_memory_url_options_are_validated(url: str) -> None:
    with pytest.raises(ConfigurationError):
        from_url(url)


@pytest.mark.parametrize("url", ["memory", "memory:", "localhost:6379", "", "/var/run/redis.sock"])
def test_url_without_a_scheme_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"scheme|parse"):
        from_url(url)


def test_only_the_requested_entry_point_is_loaded_in_a_fresh_interpreter() -> None:
    """With the real installed entry points: neither listing nor memory:// imports the plugin."""
    code = textwrap.dedent(
        """
        import sys
        from fastapi_sessions.backends import available_backends, from_url
        listed = available_backends()
        assert "litestore" in listed and "memory" in listed, listed
        assert listed["postgresql"].installed is True, listed  # told by find_spec, not by importing
        assert "fsessions_litestore" not in sys.modules
        assert "fastapi_sessions.backends.in_memory" not in sys.modules
        drivers = {"redis", "sqlalchemy", "asyncpg", "aiosqlite", "asyncmy", "pymongo"}
        assert not drivers & set(sys.modules), drivers & set(sys.modules)
        from_url("memory://")
        assert "fastapi_sessions.backends.in_memory" in sys.modules
        assert "fsessions_litestore" not in sys.modules
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# -- resolution with fake entry points -------------------------------------------------------


def test_only_the_requested_entry_point_is_loaded(install_entry_points: Callable[..., Any]) -> None:
    wanted = Recorder()
    eps = install_entry_points(
        FakeEntryPoint("alpha", "dist-a", wanted),
        FakeEntryPoint("redis", "fastapi-sessions", ModuleNotFoundError("No module named 'redis'", name="redis")),
        FakeEntryPoint("beta", "dist-b", RuntimeError("importing beta must not happen")),
    )
    backend = from_url("alpha://host/1", flavour="x")
    assert isinstance(backend, InMemoryBackend)
    assert wanted.calls == [("alpha://host/1", {"flavour": "x"})]  # the whole URL, plus the options
    assert all_loads(eps) == ["alpha"]


def test_available_backends_imports_no_backend(install_entry_points: Callable[..., Any]) -> None:
    eps = install_entry_points(
        FakeEntryPoint("zeta", "dist-z", RuntimeError("must not load")),
        FakeEntryPoint("redis", "fastapi-sessions", ModuleNotFoundError(name="redis")),
    )
    listed = available_backends()
    assert list(listed) == ["redis", "zeta"]
    assert listed["zeta"] == BackendInfo("zeta", "fake_zeta:from_url", "dist-z", installed=None)
    assert listed["redis"] == BackendInfo("redis", "fake_redis:from_url", "fastapi-sessions", installed=True)
    assert all_loads(eps) == []


@pytest.mark.parametrize(
    ("scheme", "drivers", "extra"),
    [
        ("redis", ["redis"], "redis"),
        ("rediss", ["redis"], "redis"),
        ("valkey", ["redis"], "redis"),
        ("valkeys", ["redis"], "redis"),
        ("postgresql", ["sqlalchemy", "asyncpg"], "postgres"),
        ("postgres", ["sqlalchemy", "asyncpg"], "postgres"),
        ("sqlite", ["sqlalchemy", "aiosqlite"], "sqlite"),
        ("mysql", ["sqlalchemy", "asyncmy"], "mysql"),
        ("mariadb", ["sqlalchemy", "asyncmy"], "mysql"),
        ("mongodb", ["pymongo"], "mongodb"),
        ("mongodb+srv", ["pymongo"], "mongodb"),
    ],
)
def test_available_backends_says_which_drivers_are_missing(
    install_entry_points: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, scheme: str, drivers: list[str],
    extra: str,
) -> None:
    eps = install_entry_points(FakeEntryPoint(scheme, "fastapi-sessions", RuntimeError("must not load")))
    assert available_backends()[scheme].installed is True  # every driver is installed here
    missing = drivers[-1]
    monkeypatch.setitem(sys.modules, missing, None)  # import of it halted: find_spec finds nothing
    info = available_backends()[scheme]
    assert (info.installed, info.missing) == (False, (missing,))
    assert info.hint == f'pip install "fastapi-sessions[{extra}]"'
    assert missing in str(info) and info.hint in str(info) and "not installed" in str(info)
    assert all_loads(eps) == []


def test_available_backends_memory_needs_no_driver_and_others_are_unknown(
    install_entry_points: Callable[..., Any], registered: Callable[..., None]
) -> None:
    install_entry_points(
        FakeEntryPoint("memory", "fastapi-sessions", RuntimeError("must not load")),
        FakeEntryPoint("redis", "redis-fork", RuntimeError("must not load")),  # not ours: its drivers are unknown
    )
    registered("custom", Recorder())
    listed = available_backends()
    assert (listed["memory"].installed, listed["memory"].missing, listed["memory"].hint) == (True, (), None)
    assert listed["redis"].installed is None
    assert (listed["custom"].installed, listed["custom"].distribution) == (None, None)
    assert str(listed["memory"]) == "memory:// fake_memory:from_url (fastapi-sessions): installed"
    assert str(listed["redis"]) == "redis:// fake_redis:from_url (redis-fork): driver not checked"
    assert "registered in this process" in str(listed["custom"])
    with pytest.raises(AttributeError):
        listed["memory"].installed = False  # type: ignore[misc]


def test_scheme_family_before_the_plus(install_entry_points: Callable[..., Any]) -> None:
    postgres = Recorder()
    eps = install_entry_points(FakeEntryPoint("postgresql", "fastapi-sessions", postgres))
    from_url("postgresql+asyncpg://u@h/db")
    from_url("postgresql://u@h/db")
    assert [url for url, _ in postgres.calls] == ["postgresql+asyncpg://u@h/db", "postgresql://u@h/db"]
    assert all_loads(eps) == ["postgresql", "postgresql"]


def test_a_name_with_its_own_plus_matches_exactly_first(install_entry_points: Callable[..., Any]) -> None:
    plain, srv = Recorder(), Recorder()
    install_entry_points(
        FakeEntryPoint("mongodb", "fastapi-sessions", plain),
        FakeEntryPoint("mongodb+srv", "fastapi-sessions", srv),
    )
    from_url("mongodb+srv://cluster.example/db")
    from_url("mongodb://h/db")
    from_url("mongodb+other://h/db")  # no exact match: the family
    assert [url for url, _ in srv.calls] == ["mongodb+srv://cluster.example/db"]
    assert [url for url, _ in plain.calls] == ["mongodb://h/db", "mongodb+other://h/db"]


def test_the_same_distribution_seen_twice_is_not_ambiguous(install_entry_points: Callable[..., Any]) -> None:
    factory = Recorder()
    install_entry_points(
        FakeEntryPoint("gamma", "dist-g", factory),
        FakeEntryPoint("gamma", "dist-g", factory),  # e.g. two sys.path entries
    )
    assert isinstance(from_url("gamma://"), InMemoryBackend)


def test_two_distributions_claiming_a_scheme_is_an_error_naming_both(
    install_entry_points: Callable[..., Any],
) -> None:
    eps = install_entry_points(
        FakeEntryPoint("redis", "fastapi-sessions", Recorder()),
        FakeEntryPoint("redis", "redis-sessions-fork", Recorder()),
    )
    with pytest.raises(AmbiguousBackend) as caught:
        from_url(f"redis://:{PASSWORD}@localhost/0")
    message = str(caught.value)
    assert "fastapi-sessions" in message and "redis-sessions-fork" in message
    assert "redis" in message
    assert PASSWORD not in message
    assert all_loads(eps) == []


def test_an_ambiguity_elsewhere_does_not_block_other_schemes(install_entry_points: Callable[..., Any]) -> None:
    install_entry_points(
        FakeEntryPoint("redis", "dist-1", Recorder()),
        FakeEntryPoint("redis", "dist-2", Recorder()),
        FakeEntryPoint("alpha", "dist-a", Recorder()),
    )
    assert isinstance(from_url("alpha://"), InMemoryBackend)


# -- missing drivers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "url", "driver", "extra"),
    [
        ("redis", f"redis://:{PASSWORD}@localhost:6379/0", "redis", "redis"),
        ("rediss", f"rediss://default:{PASSWORD}@cache.example:6380/0", "redis", "redis"),
        ("valkey", f"valkey://:{PASSWORD}@localhost:6379/0", "redis", "redis"),
        ("valkeys", f"valkeys+cluster://default:{PASSWORD}@cache.example:6380", "redis", "redis"),
        ("postgresql", f"postgresql+asyncpg://u:{PASSWORD}@h/db", "asyncpg", "postgres"),
        ("sqlite", "sqlite+aiosqlite:///sessions.db", "aiosqlite", "sqlite"),
        ("mysql", f"mysql+asyncmy://u:{PASSWORD}@h/db", "asyncmy", "mysql"),
        ("mariadb", f"mariadb+asyncmy://u:{PASSWORD}@h/db", "asyncmy", "mysql"),
        ("mongodb+srv", f"mongodb+srv://u:{PASSWORD}@cluster.example/db", "pymongo", "mongodb"),
    ],
)
def test_missing_extra_names_the_exact_pip_install(
    install_entry_points: Callable[..., Any], name: str, url: str, driver: str, extra: str
) -> None:
    missing = ModuleNotFoundError(f"No module named {driver!r}", name=driver)
    eps = install_entry_points(
        FakeEntryPoint(name, "fastapi-sessions", missing),
        FakeEntryPoint("other", "fastapi-sessions", RuntimeError("must not load")),
    )
    with pytest.raises(BackendNotInstalled) as caught:
        from_url(url)
    message = str(caught.value)
    assert f'pip install "fastapi-sessions[{extra}]"' in message
    assert driver in message
    assert PASSWORD not in message
    assert isinstance(caught.value, ImportError)
    assert caught.value.__cause__ is missing
    assert all_loads(eps) == [name]


def test_a_third_party_import_failure_names_its_distribution(install_entry_points: Callable[..., Any]) -> None:
    install_entry_points(
        FakeEntryPoint("couch", "fsessions-couch", ModuleNotFoundError("No module named 'aiocouch'", name="aiocouch"))
    )
    with pytest.raises(BackendNotInstalled) as caught:
        from_url(f"couch://admin:{PASSWORD}@db.example/")
    message = str(caught.value)
    assert "fsessions-couch" in message and "aiocouch" in message
    assert "fastapi-sessions[" not in message  # not ours to install
    assert PASSWORD not in message


def test_a_first_party_scheme_that_is_not_installed_is_unknown_and_says_so(
    install_entry_points: Callable[..., Any],
) -> None:
    install_entry_points(FakeEntryPoint("memory", "fastapi-sessions", Recorder()))
    with pytest.raises(UnknownBackend) as caught:
        from_url(f"redis://:{PASSWORD}@localhost/0")
    assert "redis://" in str(caught.value) and "memory://" in str(caught.value)
    assert PASSWORD not in str(caught.value)


# -- unknown schemes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "suggestion"),
    [
        (f"memroy://user:{PASSWORD}@host/", "memory://"),
        ("memry://", "memory://"),
        ("litestor://", "litestore://"),
        (f"postgersql+asyncpg://u:{PASSWORD}@h/db", "postgresql://"),
        ("mongdb+srv://h/db", "mongodb+srv://"),
    ],
)
def test_unknown_scheme_suggests_the_nearest_known_one(
    install_entry_points: Callable[..., Any], url: str, suggestion: str
) -> None:
    install_entry_points(
        *(
            FakeEntryPoint(name, "fastapi-sessions", RuntimeError("must not load"))
            for name in ("memory", "redis", "postgresql", "mongodb", "mongodb+srv")
        ),
        FakeEntryPoint("litestore", "fsessions-litestore", RuntimeError("must not load")),
    )
    with pytest.raises(UnknownBackend) as caught:
        from_url(url)
    message = str(caught.value)
    assert f"did you mean {suggestion}?" in message
    assert PASSWORD not in message


def test_unknown_scheme_suggestion_with_the_real_entry_points() -> None:
    with pytest.raises(UnknownBackend, match=r"did you mean memory://\?"):
        from_url(f"memroy://user:{PASSWORD}@host/")


def test_unknown_scheme_lists_and_suggests_redis_cluster(install_entry_points: Callable[..., Any]) -> None:
    install_entry_points(FakeEntryPoint("redis", "fastapi-sessions", RuntimeError("must not load")))
    with pytest.raises(UnknownBackend) as caught:
        from_url("rediscluster://h:7000")
    message = str(caught.value)
    assert "redis+cluster://" in message and "did you mean redis+cluster://?" in message, message
    assert "rediss+cluster://" not in message  # rediss:// is not installed here


def test_unknown_scheme_lists_and_suggests_the_valkey_schemes(install_entry_points: Callable[..., Any]) -> None:
    install_entry_points(*(FakeEntryPoint(name, "fastapi-sessions", RuntimeError("must not load"))
                           for name in ("redis", "valkey", "valkeys")))
    with pytest.raises(UnknownBackend) as caught:
        from_url("valkeycluster://h:7000")
    assert caught.value.suggestion == "valkey+cluster"
    assert list(caught.value.available) == ["redis", "redis+cluster", "valkey", "valkey+cluster", "valkeys",
                                            "valkeys+cluster"]
    message = str(caught.value)
    assert "did you mean valkey+cluster://?" in message
    assert "(known: redis://, redis+cluster://, valkey://, valkey+cluster://, valkeys://, valkeys+cluster://)" in (
        message), message


def pyproject_schemes() -> set[str]:
    """The entry point names pyproject.toml registers: what an install of this checkout provides."""
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    return set(project["entry-points"][registry.ENTRY_POINT_GROUP])


def test_the_first_party_tables_cover_every_entry_point_and_nothing_else() -> None:
    families = pyproject_schemes()
    assert set(registry.FIRST_PARTY_EXTRAS) == set(registry.FIRST_PARTY_DRIVERS)
    assert families <= set(registry.FIRST_PARTY_EXTRAS), families - set(registry.FIRST_PARTY_EXTRAS)
    # Every other name is a scheme one of ours serves: redis+cluster:// by the redis entry point.
    for name in set(registry.FIRST_PARTY_EXTRAS) - families:
        assert "+" in name and name.split("+", 1)[0] in families, name
    assert {"valkey", "valkeys"} <= families
    assert {"redis+cluster", "rediss+cluster", "valkey+cluster", "valkeys+cluster"} <= set(registry.FIRST_PARTY_EXTRAS)


def test_an_unknown_scheme_lists_every_scheme_a_url_may_start_with() -> None:
    """With the real installed entry points (an install of this checkout, as on CI)."""
    with pytest.raises(UnknownBackend) as caught:
        from_url(f"nosuch://u:{PASSWORD}@h/")
    expected = pyproject_schemes() | set(registry.FIRST_PARTY_EXTRAS)  # plugins' schemes come on top
    assert expected <= set(caught.value.available), expected - set(caught.value.available)
    message = str(caught.value)
    for scheme in expected:
        assert f" {scheme}://" in message, scheme
    assert PASSWORD not in message


def test_a_scheme_with_an_underscore_resolves(install_entry_points: Callable[..., Any]) -> None:
    postgres = Recorder()
    install_entry_points(FakeEntryPoint("postgresql", "fastapi-sessions", postgres))
    from_url(f"postgresql+psycopg_async://u:{PASSWORD}@h/db")  # SQLAlchemy's async psycopg driver
    assert postgres.calls == [(f"postgresql+psycopg_async://u:{PASSWORD}@h/db", {})]
    assert mask_url(f"postgresql+psycopg_async://u:{PASSWORD}@h/db") == "postgresql+psycopg_async://u:***@h/db"
    assert mask_url("postgresql+psycopg_async://u@h/db") == "postgresql+psycopg_async://u@h/db"


def test_unrelated_scheme_gets_no_suggestion_but_the_known_list(install_entry_points: Callable[..., Any]) -> None:
    install_entry_points(FakeEntryPoint("memory", "fastapi-sessions", Recorder()))
    with pytest.raises(UnknownBackend) as caught:
        from_url("zzzqqq://x")
    assert "did you mean" not in str(caught.value)
    assert "memory://" in str(caught.value)


# -- in-process registration -----------------------------------------------------------------


def test_register_backend_makes_a_scheme_available(registered: Callable[..., None]) -> None:
    factory = Recorder()
    registered("custom", factory)
    backend = from_url("custom+driver://h/0", pool=3)
    assert isinstance(backend, InMemoryBackend)
    assert factory.calls == [("custom+driver://h/0", {"pool": 3})]
    info = available_backends()["custom"]
    assert (info.distribution, info.target) == (None, f"{Recorder.__module__}:Recorder")
    assert str(info).startswith(f"custom:// {Recorder.__module__}:Recorder (registered in this process)")


def test_registration_takes_precedence_over_entry_points(
    install_entry_points: Callable[..., Any], registered: Callable[..., None]
) -> None:
    eps = install_entry_points(FakeEntryPoint("memory", "fastapi-sessions", RuntimeError("must not load")))
    factory = Recorder()
    registered("memory", factory)
    from_url("memory://")
    assert factory.calls == [("memory://", {})]
    assert all_loads(eps) == []


def test_unregister_restores_the_entry_point() -> None:
    factory = Recorder()
    register_backend("memory", factory)
    try:
        from_url("memory://")
    finally:
        unregister_backend("memory")
    assert len(factory.calls) == 1
    assert type(from_url("memory://")) is InMemoryBackend
    assert len(factory.calls) == 1
    assert available_backends()["memory"].distribution == "fastapi-sessions"
    unregister_backend("memory")  # idempotent


def test_registering_a_name_twice_needs_replace(registered: Callable[..., None]) -> None:
    first, second = Recorder(), Recorder()
    registered("dup", first)
    with pytest.raises(ConfigurationError, match="replace=True"):
        register_backend("dup", second)
    from_url("dup://")
    registered("dup", second, replace=True)
    from_url("dup://")
    assert len(first.calls) == 1 and len(second.calls) == 1


@pytest.mark.parametrize("name", ["", "Memory", "memory://", "x://y"])
def test_register_backend_rejects_invalid_names(name: str) -> None:
    with pytest.raises(ConfigurationError):
        register_backend(name, Recorder())
    assert name not in registry._registered


def test_factory_rejecting_options_is_a_configuration_error_with_a_masked_url(
    registered: Callable[..., None],
) -> None:
    def strict_factory(url: str) -> InMemoryBackend:
        return InMemoryBackend()

    registered("strict", strict_factory)
    with pytest.raises(ConfigurationError) as caught:
        from_url(f"strict://user:{PASSWORD}@host/", bogus=1)
    assert "bogus" in str(caught.value)
    assert "strict://user:***@host/" in str(caught.value)
    assert PASSWORD not in str(caught.value)


# -- passwords never leak --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (f"memroy://user:{PASSWORD}@host/", "memroy://user:***@host/"),
        (f"postgresql+asyncpg://u:{PASSWORD}@h/db", "postgresql+asyncpg://u:***@h/db"),
        (f"redis://:{PASSWORD}@localhost:6379/0", "redis://:***@localhost:6379/0"),
        (f"mongodb://u:{PASSWORD}@h1:27017,h2:27017/db?replicaSet=rs", "mongodb://u:***@h1:27017,h2:27017/db?replicaSet=rs"),
        (f"redis://u:p@ss{PASSWORD}@h/0", "redis://u:***@h/0"),  # an unescaped '@' in the password
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://user@localhost/0", "redis://user@localhost/0"),
        ("memory://", "memory://"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


@pytest.mark.parametrize(
    "url",
    [
        f"u:{PASSWORD}@host/db",  # scheme forgotten
        f"redis:/u:{PASSWORD}@host/0",  # one slash short
        f"redis//:{PASSWORD}@host/0",  # colon forgotten
        f"postgresql+asyncpg://u:pa/{PASSWORD}@h/db",  # unescaped '/' in the password
        f"redis://u:pa#{PASSWORD}@h/0",  # unescaped '#' in the password
        f"redis://u:pa?{PASSWORD}@h/0",  # unescaped '?' in the password
        f"redis://u:{PASSWORD}@[::1/0",  # unparseable
    ],
)
def test_mask_url_hides_passwords_of_malformed_urls(url: str) -> None:
    assert PASSWORD not in mask_url(url)


@pytest.mark.parametrize(
    "url",
    [
        f"u:{PASSWORD}@host/db",
        f"redis:/u:{PASSWORD}@host/0",
        f"redis://u:{PASSWORD}@[::1/0",
    ],
)
def test_unusable_url_errors_hide_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        from_url(url)
    assert PASSWORD not in str(caught.value)
    assert PASSWORD not in repr(caught.value)


def test_no_error_or_log_line_shows_a_password(
    install_entry_points: Callable[..., Any],
    registered: Callable[..., None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    install_entry_points(
        FakeEntryPoint("redis", "fastapi-sessions", ModuleNotFoundError(name="redis")),
        FakeEntryPoint("mongodb", "fastapi-sessions", Recorder()),
        FakeEntryPoint("mongodb", "mongo-fork", Recorder()),
        FakeEntryPoint("memory", "fastapi-sessions", Recorder()),
    )
    registered("postgresql", Recorder())
    failing = {
        UnknownBackend: f"memroy://user:{PASSWORD}@host/",
        BackendNotInstalled: f"redis://:{PASSWORD}@localhost/0",
        AmbiguousBackend: f"mongodb://u:{PASSWORD}@h/db",
        ConfigurationError: f"u:{PASSWORD}@host/db",
    }
    messages = []
    for kind, url in failing.items():
        with pytest.raises(kind) as caught:
            from_url(url)
        assert type(caught.value) is kind
        messages += [str(caught.value), repr(caught.value)]
    registered("strict", lambda url: InMemoryBackend())
    with pytest.raises(ConfigurationError, match="bad options") as caught:
        from_url(f"strict://u:{PASSWORD}@h/", unknown_option=True)
    messages.append(str(caught.value))
    for url in (f"postgresql+asyncpg://u:{PASSWORD}@h/db", f"postgresql://u:pa/{PASSWORD}@h/db"):
        from_url(url)
    logged = [record.getMessage() for record in caplog.records]
    assert any("postgresql+asyncpg://u:***@h/db" in line for line in logged), logged
    for line in [*messages, *logged]:
        assert PASSWORD not in line
    assert PASSWORD not in caplog.text


# -- SessionManager.from_url -----------------------------------------------------------------


def run_a_session(manager: SessionManager, cookie_name: str = "session") -> None:
    """Write a value in one request and read it back in the next, through SessionMiddleware."""
    app = app_with(manager)

    @app.post("/set")
    async def set_value(request: Request) -> dict[str, bool]:
        request.session["n"] = 41
        return {"ok": True}

    @app.get("/get")
    async def get_value(request: Request) -> dict[str, Any]:
        return {"n": request.session.get("n")}

    with client_for(app) as client:
        response = client.post("/set")
        assert response.status_code == 200
        assert cookie_name in response.cookies
        assert client.get("/get").json() == {"n": 41}


def test_manager_from_url_serves_requests() -> None:
    manager = SessionManager.from_url("memory://", secret_key=SECRET, idle_timeout=600)
    assert isinstance(manager.backend, InMemoryBackend)
    assert manager.idle_timeout.total_seconds() == 600
    run_a_session(manager)


def test_manager_from_url_on_memory_needs_no_secret() -> None:
    run_a_session(SessionManager.from_url("memory://"))


def test_manager_from_url_elsewhere_needs_a_secret(registered: Callable[..., None]) -> None:
    factory = Recorder()
    registered("redis", factory)
    with pytest.raises(ConfigurationError, match="secret") as caught:
        SessionManager.from_url(f"redis://:{PASSWORD}@localhost/0")
    assert PASSWORD not in str(caught.value)
    assert factory.calls == []


def test_manager_from_url_passes_backend_options_and_takes_a_frontend(registered: Callable[..., None]) -> None:
    factory = Recorder()
    registered("redis", factory)
    frontend = SessionFrontend(SECRET, cookie_name="sid")
    manager = SessionManager.from_url("redis://h/0", frontend=frontend, backend_options={"pool_size": 4})
    assert manager.frontend is frontend
    assert factory.calls == [("redis://h/0", {"pool_size": 4})]
    run_a_session(manager, cookie_name="sid")
    with pytest.raises(ConfigurationError):
        SessionManager.from_url("memory://", secret_key=SECRET, frontend=frontend)


def test_manager_from_url_says_where_a_backend_option_goes(registered: Callable[..., None]) -> None:
    factory = Recorder()
    registered("redis", factory)
    with pytest.raises(ConfigurationError) as caught:
        SessionManager.from_url("redis://h/0", secret_key=SECRET, create_table=True, password=PASSWORD)
    message = str(caught.value)
    assert "'create_table'" in message and "'password'" in message, message
    assert 'backend_options={"create_table": True, "password": ...}' in message, message
    for option in ("secret_key", "frontend", "backend_options", "idle_timeout", "absolute_timeout", "clock"):
        assert option in message, message
    assert PASSWORD not in message and SECRET not in message
    assert factory.calls == []  # refused before any backend is built


def test_manager_from_settings_says_where_a_backend_option_goes() -> None:
    with pytest.raises(ConfigurationError, match=r'backend_options=\{"create_table": True\}'):
        SessionManager.from_settings(SessionSettings(url="memory://"), create_table=True)


def test_manager_from_url_reports_registry_errors() -> None:
    with pytest.raises(UnknownBackend):
        SessionManager.from_url("memroy://", secret_key=SECRET)
