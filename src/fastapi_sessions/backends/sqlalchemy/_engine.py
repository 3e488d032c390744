"""Engines from URLs: the async driver a URL means, and a bound on every wait (docs/backends/sql.md)."""

from __future__ import annotations

import inspect
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from ..._core.registry import mask_url
from ...errors import BackendNotInstalled, ConfigurationError

# Async driver chosen for a URL that names none (``postgresql://`` and friends), and the extra bringing it.
_DEFAULT_DRIVERS = {"postgresql": "asyncpg", "postgres": "asyncpg", "sqlite": "aiosqlite",
                    "mysql": "asyncmy", "mariadb": "asyncmy"}
_EXTRAS = {"postgresql": "postgres", "postgres": "postgres", "sqlite": "sqlite", "mysql": "mysql", "mariadb": "mysql"}

# SQLAlchemy >= 2.0.43 can skip the DBAPI rollback that ends every autocommit checkout (a round
# trip on MySQL, a thread hop on aiosqlite); older versions simply do the rollback.
_SKIP_ROLLBACK = "skip_autocommit_rollback" in inspect.signature(DefaultDialect.__init__).parameters

#: Bounds every wait on a server (seconds; see docs/backends/sql.md, "Timeouts and pool").
DEFAULT_TIMEOUTS: dict[str, float] = {"connect_timeout": 5.0, "command_timeout": 5.0, "pool_timeout": 5.0}
#: Connections per process: no overflow, so a busy pool never opens and closes a connection per request.
DEFAULT_POOL: dict[str, int] = {"pool_size": 20, "max_overflow": 0}
# The driver's keyword for each bound, by driver (aiosqlite is local: SQLite's own busy timeout applies).
_DRIVER_TIMEOUTS = {"asyncpg": {"connect_timeout": "timeout", "command_timeout": "command_timeout"},
                    "asyncmy": {"connect_timeout": "connect_timeout", "command_timeout": "read_timeout"}}


def _async_url(url: str | URL) -> URL:
    """``postgresql://`` means asyncpg, ``sqlite://`` aiosqlite, ``mysql://``/``mariadb://`` asyncmy."""
    try:
        parsed = make_url(url)
    except sa_exc.ArgumentError:
        # from None: the parser's message may quote the URL, password included.
        raise ConfigurationError(f"cannot parse database URL {mask_url(str(url))!r}") from None
    backend = parsed.get_backend_name()
    if backend == "postgres":
        parsed = parsed.set(drivername="postgresql" + (f"+{parsed.get_driver_name()}" if "+" in parsed.drivername
                                                       else ""))
        backend = "postgresql"
    if backend not in _DEFAULT_DRIVERS:
        raise ConfigurationError(f"not a PostgreSQL, SQLite, MySQL or MariaDB URL: {parsed.drivername}://")
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=f"{backend}+{_DEFAULT_DRIVERS[backend]}")
    return parsed


def _is_sqlite_memory(url: URL) -> bool:
    database = url.database or ""
    return url.get_backend_name() == "sqlite" and (database in ("", ":memory:") or "mode=memory" in database
                                                   or url.query.get("mode") == "memory")


def _option(name: str, value: Any, *, integer: bool = False, minimum: int = 0) -> Any:
    """A timeout or pool size from a keyword or a URL query string, checked: ``ConfigurationError`` if bad."""
    if isinstance(value, str):
        try:
            value = int(value) if integer else float(value)
        except ValueError:
            raise ConfigurationError(f"{name} must be {'an integer' if integer else 'a number of seconds'}, "
                                     f"not {value!r}", setting=name) from None
    if integer:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigurationError(f"{name} must be an integer of at least {minimum}, not {value!r}", setting=name)
    elif isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ConfigurationError(f"{name} must be a positive number of seconds, not {value!r}", setting=name)
    return value


def _bounds(parsed: URL, given: dict[str, Any], options: dict[str, Any]) -> URL:
    """Our timeout and pool options, from keywords first, then the URL's query (removed from it), then defaults.

    Timeouts go to the driver's connect arguments, ``pool_*`` and ``max_overflow`` to the engine;
    ``given["deadline"]`` becomes the bound over a whole call (``None``: none).
    """
    query = dict(parsed.query)
    pool_options = ("pool_size", "max_overflow")
    for name in (*DEFAULT_TIMEOUTS, *pool_options):
        raw = query.pop(name, None)
        if given.get(name, False) is not False:
            continue  # a keyword wins over the URL
        if raw is not None:
            given[name] = raw if isinstance(raw, str) else raw[-1]
    parsed = parsed.set(query=query)
    if not _is_sqlite_memory(parsed) and parsed.get_backend_name() != "sqlite":
        for name, default in DEFAULT_POOL.items():
            value = given.get(name, False)
            options.setdefault(name, _option(name, default if value is False else value, integer=True,
                                             minimum=1 if name == "pool_size" else 0))
        value = given.get("pool_timeout", False)
        if value is not None:
            options.setdefault("pool_timeout", _option("pool_timeout", DEFAULT_TIMEOUTS["pool_timeout"]
                                                       if value is False else value))
    keys = _DRIVER_TIMEOUTS.get(parsed.get_driver_name(), {})
    deadline: float | None = float(options.get("pool_timeout", 0))
    for name in ("connect_timeout", "command_timeout"):
        value = given.get(name, False)
        value = DEFAULT_TIMEOUTS[name] if value is False else value
        if value is None:
            deadline = None  # None: the driver's own behaviour (for a command: no bound at all)
            continue
        value = _option(name, value)
        if deadline is not None:
            deadline += value
        if name in keys:
            options.setdefault("connect_args", {}).setdefault(keys[name], value)
    # One bound over the whole call as well: asyncpg before 0.31 makes a timed-out statement wait for
    # its cancel request, which a silent server never answers.
    given["deadline"] = deadline if keys else None
    return parsed


def build_engine(url: str | URL, *, bounds: dict[str, Any], **options: Any) -> AsyncEngine:
    """The autocommit async engine for ``url``, its waits bounded by ``bounds`` (see :func:`_bounds`)."""
    parsed = _async_url(url)
    options.setdefault("isolation_level", "AUTOCOMMIT")  # one statement per operation: no BEGIN/COMMIT trips
    if _SKIP_ROLLBACK:
        options.setdefault("skip_autocommit_rollback", True)
    if _is_sqlite_memory(parsed):
        # An in-memory database lives in its connection: share exactly one.
        options.setdefault("poolclass", StaticPool)
        options.setdefault("connect_args", {"check_same_thread": False})
    parsed = _bounds(parsed, bounds, options)
    backend = parsed.get_backend_name()
    default = f"{backend}+{_DEFAULT_DRIVERS[backend]}://"
    extra = _EXTRAS.get(backend, backend)
    install = f'pip install "fastapi-sessions[{extra}]"'
    try:
        # The dialect class says whether the driver is async without importing the driver itself.
        dialect = parsed.get_dialect(_is_async=True)
    except sa_exc.NoSuchModuleError:
        raise ConfigurationError(f"SQLAlchemy knows no driver {parsed.drivername}://; use {default}") from None
    if not dialect.is_async:
        # Installing anything would not help: the backend runs on SQLAlchemy's asyncio engine.
        raise ConfigurationError(
            f"{parsed.drivername}:// is a synchronous driver, which the SQL session backend cannot use; "
            f"use the async driver {default} (or {backend}://, which picks it)"
        )
    try:
        return create_async_engine(parsed, **options)
    except ImportError as exc:
        if parsed.get_driver_name() == _DEFAULT_DRIVERS[backend]:
            raise BackendNotInstalled(
                f"the {backend}:// session backend needs its driver ({exc.name or exc}); install it with: {install}",
                scheme=backend, extra=extra, missing=exc.name,
            ) from exc
        raise BackendNotInstalled(
            f"the {parsed.drivername}:// driver needs {exc.name or exc}, which no fastapi-sessions extra installs: "
            f"install it, or use {default} ({install})", scheme=backend, missing=exc.name,
        ) from exc
    except (sa_exc.ArgumentError, sa_exc.InvalidRequestError, TypeError) as exc:
        raise ConfigurationError(f"cannot build an async engine for {mask_url(str(url))}: {exc}") from exc
