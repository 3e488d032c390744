"""Backends by URL: entry points named after URL scheme families, loaded on demand.

A distribution registers a backend factory in its packaging metadata::

    [project.entry-points."fastapi_sessions.backends"]
    redis = "fastapi_sessions.backends.redis:from_url"

The name is the URL scheme *family*: ``postgresql+asyncpg://`` resolves
``postgresql``, while a name with a ``+`` of its own (``mongodb+srv``) matches
exactly first. The value is a callable taking the whole URL plus keyword
options and returning a :class:`SessionBackend`. Only the requested entry
point is imported, so a missing driver for one backend never affects another.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import AmbiguousBackend, BackendNotInstalled, ConfigurationError, UnknownBackend
from .contract import SessionBackend

__all__ = [
    "ENTRY_POINT_GROUP",
    "AmbiguousBackend",
    "BackendFactory",
    "BackendInfo",
    "BackendNotInstalled",
    "UnknownBackend",
    "available_backends",
    "from_url",
    "mask_url",
    "register_backend",
    "unregister_backend",
]

logger = logging.getLogger("fastapi_sessions")

ENTRY_POINT_GROUP = "fastapi_sessions.backends"
BackendFactory = Callable[..., SessionBackend]

#: First-party scheme families and the extra that brings each one's driver.
FIRST_PARTY_EXTRAS: dict[str, str | None] = {
    "memory": None,
    "redis": "redis",
    "rediss": "redis",
    "redis+cluster": "redis",
    "rediss+cluster": "redis",
    "valkey": "redis",
    "valkeys": "redis",
    "valkey+cluster": "redis",
    "valkeys+cluster": "redis",
    "postgresql": "postgres",
    "postgres": "postgres",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mongodb": "mongodb",
    "mongodb+srv": "mongodb",
}

#: The modules each first-party scheme's backend imports, checked with ``find_spec`` (which imports nothing).
FIRST_PARTY_DRIVERS: dict[str, tuple[str, ...]] = {
    "memory": (),
    "redis": ("redis",),
    "rediss": ("redis",),
    "redis+cluster": ("redis",),
    "rediss+cluster": ("redis",),
    "valkey": ("redis",),
    "valkeys": ("redis",),
    "valkey+cluster": ("redis",),
    "valkeys+cluster": ("redis",),
    "postgresql": ("sqlalchemy", "asyncpg"),
    "postgres": ("sqlalchemy", "asyncpg"),
    "sqlite": ("sqlalchemy", "aiosqlite"),
    "mysql": ("sqlalchemy", "asyncmy"),
    "mariadb": ("sqlalchemy", "asyncmy"),
    "mongodb": ("pymongo",),
    "mongodb+srv": ("pymongo",),
}

_FIRST_PARTY = "fastapi-sessions"

_registered: dict[str, BackendFactory] = {}


@dataclass(frozen=True)
class BackendInfo:
    """One scheme family :func:`available_backends` knows, described without importing its backend.

    ``target`` is the factory as ``module:attr``; ``distribution`` the one whose
    entry point registers it, ``None`` for :func:`register_backend` in this
    process. ``installed`` says whether the backend's driver is importable:
    ``None`` when that cannot be known without importing (third-party entry
    points, in-process registrations). When it is ``False``, ``missing`` names
    the modules not found and ``hint`` the ``pip install`` that brings them.
    """

    scheme: str
    target: str
    distribution: str | None
    installed: bool | None
    missing: tuple[str, ...] = ()
    hint: str | None = None

    def __str__(self) -> str:
        origin = self.distribution or "registered in this process"
        if self.installed is None:
            status = "driver not checked"
        elif self.installed:
            status = "installed"
        else:
            status = f"not installed (no {', '.join(self.missing)}): {self.hint}"
        return f"{self.scheme}:// {self.target} ({origin}): {status}"


# "_" too: SQLAlchemy's driver names have it (postgresql+psycopg_async), though RFC 3986 and urlsplit do not.
_SCHEME_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9+._-]*:/*")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+._-]*)://")


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for errors and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return _mask_loose(url)
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return "<unparseable URL>"


def _mask_loose(url: str) -> str:
    """Mask what looks like ``user:password@`` in a URL ``urlsplit`` sees no password in.

    A missing or mistyped scheme (``u:pw@host``, ``redis:/u:pw@host``) or an unescaped
    ``/``, ``?`` or ``#`` in the password hides it from ``urlsplit``; over-masking beats leaking.
    """
    userinfo, at, host = url.rpartition("@")
    if not at:
        return url
    head = _SCHEME_PREFIX.match(userinfo)
    colon = userinfo.find(":", head.end()) if head else userinfo.find(":")
    if colon < 0 and head is not None and "/" not in head.group():
        colon = userinfo.find(":")  # "u:pw@host": what looked like a scheme was the user name
    if colon < 0:
        return url
    return f"{userinfo[:colon]}:***@{host}"


def register_backend(name: str, factory: BackendFactory, *, replace: bool = False) -> None:
    """Register ``factory`` for scheme family ``name`` in this process.

    Takes precedence over entry points; meant for applications and tests.
    Registering a name twice needs ``replace=True``.
    """
    if not name or name != name.lower() or "://" in name:
        raise ConfigurationError(f"invalid scheme name {name!r}")
    if name in _registered and not replace:
        raise ConfigurationError(f"a backend is already registered for {name!r}; pass replace=True")
    _registered[name] = factory


def unregister_backend(name: str) -> None:
    """Remove an in-process registration (entry points are not affected)."""
    _registered.pop(name, None)


def _entry_points() -> dict[str, list[tuple[EntryPoint, str]]]:
    found: dict[str, list[tuple[EntryPoint, str]]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "<unknown distribution>"
        claims = found.setdefault(ep.name, [])
        # The same distribution seen twice (two sys.path entries) is not a conflict.
        if all(existing_dist != dist for _, existing_dist in claims):
            claims.append((ep, dist))
    return found


def _driver_status(name: str, dist: str) -> tuple[bool | None, tuple[str, ...], str | None]:
    """``installed``, ``missing`` and ``hint`` of :class:`BackendInfo`; known for our own schemes only."""
    if dist != _FIRST_PARTY or name not in FIRST_PARTY_DRIVERS:
        return None, (), None
    missing = []
    for module in FIRST_PARTY_DRIVERS[name]:
        try:
            found = importlib.util.find_spec(module) is not None  # finds, never imports, a top-level module
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    if not missing:
        return True, (), None
    return False, tuple(missing), f'pip install "fastapi-sessions[{FIRST_PARTY_EXTRAS[name]}]"'


def available_backends() -> dict[str, BackendInfo]:
    """Registered scheme families, where each comes from and whether its driver is installed.

    Imports no backend and no driver: a driver is looked for with ``importlib.util.find_spec``.
    """
    result = {name: BackendInfo(name, ep.value, dist, *_driver_status(name, dist))
              for name, ((ep, dist), *_) in _entry_points().items()}
    for name, factory in _registered.items():
        # A callable instance has its class's __module__ but no __qualname__ of its own.
        qualname = getattr(factory, "__qualname__", None) or type(factory).__qualname__
        target = f"{getattr(factory, '__module__', '?')}:{qualname}"
        result[name] = BackendInfo(name, target, None, None)
    return dict(sorted(result.items()))


def _known_schemes(eps: dict[str, list[tuple[EntryPoint, str]]]) -> list[str]:
    """Every scheme a URL may start with: the registered names, plus our own schemes served by a family
    (``redis+cluster://`` by ``redis``), which are no entry point names of their own."""
    known = set(eps) | set(_registered)
    for name in FIRST_PARTY_EXTRAS:
        family = name.split("+", 1)[0]
        if "+" in name and family in eps and any(dist == _FIRST_PARTY for _, dist in eps[family]):
            known.add(name)
    return sorted(known)


def _scheme_names(url: str) -> tuple[str, list[str]]:
    try:
        urlsplit(url)
    except ValueError as exc:
        raise ConfigurationError(f"cannot parse backend URL {mask_url(url)!r}") from exc
    # Not urlsplit's scheme: it has none for "postgresql+psycopg_async://" (the "_").
    match = _SCHEME.match(url)
    if match is None:
        raise ConfigurationError(f"backend URL {mask_url(url)!r} has no scheme (expected e.g. memory://)")
    scheme = match.group(1).lower()
    # Most specific first: mongodb+srv, then the family before the first '+'.
    names = [scheme]
    if "+" in scheme:
        names.append(scheme.split("+", 1)[0])
    return scheme, names


def _resolve(url: str) -> BackendFactory:
    scheme, names = _scheme_names(url)
    for name in names:
        if name in _registered:
            return _registered[name]
    eps = _entry_points()
    for name in names:
        claims = eps.get(name)
        if not claims:
            continue
        if len(claims) > 1:
            dists = " and ".join(sorted(dist for _, dist in claims))
            raise AmbiguousBackend(f"the scheme {name!r} is registered by more than one distribution: {dists}",
                                   scheme=name, distributions=sorted(dist for _, dist in claims))
        ep, dist = claims[0]
        try:
            factory: BackendFactory = ep.load()
        except ImportError as exc:
            raise _not_installed(name, dist, exc) from exc
        return factory
    known = _known_schemes(eps)
    if names[-1] in FIRST_PARTY_EXTRAS:
        raise UnknownBackend(
            f"the {names[-1]}:// backend is not part of this fastapi-sessions installation "
            f"(available: {', '.join(f'{k}://' for k in known)})",
            scheme=scheme, available=known,
        )
    close = difflib.get_close_matches(scheme, known, n=1, cutoff=0.6) or difflib.get_close_matches(
        names[-1], known, n=1, cutoff=0.6
    )
    hint = f"; did you mean {close[0]}://?" if close else ""
    listed = ", ".join(f"{k}://" for k in known) or "none"
    raise UnknownBackend(f"no session backend for {scheme}:// (known: {listed}){hint}", scheme=scheme,
                         suggestion=close[0] if close else None, available=known)


def _not_installed(name: str, dist: str, exc: ImportError) -> ConfigurationError:
    extra = FIRST_PARTY_EXTRAS.get(name)
    if dist == "fastapi-sessions" and extra is not None:
        install = f'pip install "fastapi-sessions[{extra}]"'
        return BackendNotInstalled(
            f"the {name}:// backend needs its driver ({exc.name or exc}); install it with: {install}",
            scheme=name, extra=extra, missing=exc.name, suggestion=install,
        )
    return BackendNotInstalled(f"the {name}:// backend from {dist} failed to import: {exc}", scheme=name,
                               missing=exc.name)


def from_url(url: str, **options: Any) -> SessionBackend:
    """Build the backend a URL names, e.g. ``from_url("memory://")``.

    Keyword options go to the backend's factory. Errors are
    ``UnknownBackend`` (with the nearest known scheme), ``BackendNotInstalled``
    (naming the ``pip install`` that fixes it) and ``AmbiguousBackend``;
    passwords in the URL are masked in every message.
    """
    factory = _resolve(url)
    try:
        backend = factory(url, **options)
    except TypeError as exc:
        raise ConfigurationError(f"bad options for {mask_url(url)}: {exc}", setting="backend_options") from None
    logger.debug("session backend %s for %s", type(backend).__name__, mask_url(url))
    return backend
