"""Every exception fastapi-sessions raises, in one hierarchy.

    SessionError                  base of everything below
    ├── ConfigurationError        bad settings; also a ValueError       .setting .suggestion
    │   ├── UnknownBackend        no backend for the URL's scheme       .scheme .suggestion .available
    │   ├── BackendNotInstalled   the backend's driver is missing       .scheme .extra .missing
    │   │                         (also an ImportError)
    │   └── AmbiguousBackend      two distributions claim one scheme    .scheme .distributions
    ├── SerializationError        data that cannot be encoded/decoded   .operation
    ├── SessionTooLarge           over ``max_session_size``; nothing    .size .limit
    │                             was stored
    ├── SessionExists             create() met a live record            .key_prefix .operation
    ├── SessionNotFound           no live record (gone or expired)      .key_prefix .operation
    ├── SessionConflict           lost a compare-and-set on version     .key_prefix .operation
    └── BackendError              the store failed                      .backend .operation .suggestion
        └── BackendUnavailable    the store cannot be reached
                                  (connection, timeout, pool wait)

The 0.3.2 layer (``fastapi_sessions._compat``) has its own small tree, in the
last section of this module and not in ``__all__``: 0.3.2 code imports these
from their 0.3.2 paths, which re-export them under the names shown here::

    Exception
    ├── LegacyBackendError        0.3.2's ``BackendError`` (backends.session_backend)
    │   └── StoreError            a ``BridgeBackend``'s store failed;
    │       │                     also the ``BackendError`` above
    │       └── StoreUnavailable  ... cannot be reached; also ``BackendUnavailable``
    └── FrontendError             what a 0.3.2 frontend with ``auto_error=False``
                                  returns instead of an id (frontends.session_frontend)

The attributes give handlers and metrics the context without parsing
messages; any of them may be ``None`` when the raiser did not know it.
``key_prefix`` is the first characters of the *storage key* (a SHA-256 of the
token), enough to match log lines and never enough to use: no exception,
attribute or message carries a token, a secret or a password.

Backends map their driver's exceptions to ``BackendError`` or
``BackendUnavailable`` at the boundary, chaining the original with
``raise ... from exc``, so application code never handles a driver's own types.
``SessionMiddleware`` turns ``BackendUnavailable`` into a 503 response,
``SessionTooLarge`` into a 413 and ``SessionConflict`` into a 409 (each with a
JSON ``detail``); ``SerializationError`` is a bug in the route and stays a 500.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

__all__ = [
    "KEY_PREFIX_LENGTH",
    "AmbiguousBackend",
    "BackendError",
    "BackendNotInstalled",
    "BackendUnavailable",
    "ConfigurationError",
    "SerializationError",
    "SessionConflict",
    "SessionError",
    "SessionExists",
    "SessionNotFound",
    "SessionTooLarge",
    "UnknownBackend",
]

#: How many characters of a storage key an exception keeps (``key_prefix``).
KEY_PREFIX_LENGTH = 8


def _prefix(key: str | None) -> str | None:
    return None if key is None else key[:KEY_PREFIX_LENGTH]


class SessionError(Exception):
    """Base class of every exception raised by fastapi-sessions."""


class ConfigurationError(SessionError, ValueError):
    """A setting is invalid, for example a ``__Host-`` cookie with a Domain.

    ``setting`` names the option at fault and ``suggestion`` says what to do,
    when the raiser knows them.
    """

    def __init__(self, message: str, *, setting: str | None = None, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting
        self.suggestion = suggestion


class UnknownBackend(ConfigurationError):
    """No backend is registered for the URL's scheme.

    ``suggestion`` is the nearest known scheme (``"redis"`` for ``"rdis"``) or
    ``None``; ``available`` lists the registered schemes.
    """

    def __init__(self, message: str, *, scheme: str | None = None, suggestion: str | None = None,
                 available: Iterable[str] = ()) -> None:
        super().__init__(message, suggestion=suggestion)
        self.scheme = scheme
        self.available = tuple(available)


class BackendNotInstalled(ConfigurationError, ImportError):
    """The backend exists but its driver is not installed; the message names the extra.

    ``extra`` is the pip extra that installs the driver (``"redis"``), when
    the backend is first-party; ``missing`` is the module that failed to import.
    """

    def __init__(self, message: str, *, scheme: str | None = None, extra: str | None = None,
                 missing: str | None = None, suggestion: str | None = None) -> None:
        ConfigurationError.__init__(self, message, suggestion=suggestion)
        self.scheme = scheme
        self.extra = extra
        self.missing = missing
        self.name = missing  # ImportError's own attribute


class AmbiguousBackend(ConfigurationError):
    """Two installed distributions register the same scheme (``distributions``)."""

    def __init__(self, message: str, *, scheme: str | None = None, distributions: Iterable[str] = ()) -> None:
        super().__init__(message, suggestion="uninstall one of them, or register_backend(..., replace=True)")
        self.scheme = scheme
        self.distributions = tuple(distributions)


class SerializationError(SessionError):
    """Session data could not be serialized, or a stored payload not decoded.

    ``operation`` is ``"encode"`` or ``"decode"`` when known.
    """

    def __init__(self, message: str, *, operation: str | None = None) -> None:
        super().__init__(message)
        self.operation = operation


class SessionTooLarge(SessionError):
    """The serialized session data is larger than the manager's ``max_session_size``.

    Raised before anything is written, so the stored session is unchanged.
    ``size`` and ``limit`` are in bytes of serialized data.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"session data is {size} bytes, over max_session_size={limit}; nothing was stored")
        self.size = size
        self.limit = limit


class _RecordError(SessionError):
    """A storage operation on one record did not apply; ``key_prefix`` names the record."""

    default_message = ""

    def __init__(self, message: str | None = None, *, key: str | None = None, operation: str | None = None) -> None:
        super().__init__(message or self.default_message)
        self.key_prefix = _prefix(key)
        self.operation = operation


class SessionExists(_RecordError):
    """``create()`` was called with the key of a live record."""

    default_message = "a live session already has this key"


class SessionNotFound(_RecordError):
    """The record is gone or expired; it is never silently re-created."""

    default_message = "the session is gone or expired"


class SessionConflict(_RecordError):
    """A compare-and-set save lost: the record changed since it was read."""

    default_message = "the session changed since it was read"


class BackendError(SessionError):
    """The session store failed.

    ``backend`` names the store (``"redis"``, ``"postgresql"``, ...),
    ``operation`` the storage call (``"read"``, ``"update"``, ...) and
    ``suggestion`` what to check, when the raiser knows them.
    """

    def __init__(self, message: str, *, backend: str | None = None, operation: str | None = None,
                 suggestion: str | None = None) -> None:
        super().__init__(message)
        self.backend = backend
        self.operation = operation
        self.suggestion = suggestion


class BackendUnavailable(BackendError):
    """The session store cannot be reached right now (connection refused, timeout, full pool)."""


# -- 0.3.2 compatibility -------------------------------------------------------------------------
# The exceptions of the 0.3.2 API. 0.3.2 apps print them (a verifier with auto_error=False hands
# its error to the route, which often renders repr()), so each shows the module path and name
# 0.3.2 gave it; pickle finds it again there, since that path re-exports it.

_C = TypeVar("_C", bound=type)


def public_path(path: str) -> Callable[[_C], _C]:
    """Show a 0.3.2 class (repr, tracebacks, pickle) as ``path``, its 0.3.2 module and name.

    Used on every class of the 0.3.2 layer, since each lives in a private module
    and some carry a ``Legacy`` name there so as not to shadow the new API.
    """
    module, _, name = path.rpartition(".")

    def show(cls: _C) -> _C:
        cls.__module__, cls.__name__, cls.__qualname__ = module, name, name
        return cls

    return show


@public_path("fastapi_sessions.backends.session_backend.BackendError")
class LegacyBackendError(Exception):
    """Error that is thrown by backends."""  # 0.3.2's docstring; it takes any arguments, as 0.3.2's did


@public_path("fastapi_sessions.frontends.session_frontend.FrontendError")
class FrontendError(Exception):
    """What a frontend with ``auto_error=False`` returns (and stores) instead of an id."""


@public_path("fastapi_sessions.backends.implementations.bridge.StoreError")
class StoreError(LegacyBackendError, BackendError):
    """The store behind a ``BridgeBackend`` failed: both the 0.3.2 and the new ``BackendError``."""


@public_path("fastapi_sessions.backends.implementations.bridge.StoreUnavailable")
class StoreUnavailable(StoreError, BackendUnavailable):
    """The store behind a ``BridgeBackend`` cannot be reached (connection, timeout)."""
