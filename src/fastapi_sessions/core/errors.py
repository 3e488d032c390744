"""The exceptions fastapi-sessions raises, in one hierarchy.

    SessionError                  base of everything below
    ├── ConfigurationError        bad settings; also a ValueError
    │   ├── UnknownBackend        no backend for the URL's scheme (suggests the nearest)
    │   ├── BackendNotInstalled   the backend's driver is missing (names the pip extra)
    │   └── AmbiguousBackend      two distributions claim one scheme
    ├── SerializationError        session data that cannot be encoded or decoded
    ├── SessionTooLarge           session data over ``max_session_size``; nothing was stored
    ├── SessionExists             create() found a live record with that key
    ├── SessionNotFound           update() found no live record (gone or expired)
    ├── SessionConflict           update() lost a compare-and-set on ``version``
    └── BackendError              the store failed
        └── BackendUnavailable    the store cannot be reached (connection, timeout)

Backends map their driver's exceptions to ``BackendError`` or
``BackendUnavailable`` at the boundary, chaining the original with
``raise ... from exc``, so application code never handles a driver's own types.
``SessionMiddleware`` turns ``BackendUnavailable`` into a 503 response,
``SessionTooLarge`` into a 413 and ``SessionConflict`` into a 409 (each with a
JSON ``detail``); ``SerializationError`` is a bug in the route and stays a 500.
Messages never contain tokens, secrets or passwords.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendUnavailable",
    "ConfigurationError",
    "SerializationError",
    "SessionConflict",
    "SessionError",
    "SessionExists",
    "SessionNotFound",
    "SessionTooLarge",
]


class SessionError(Exception):
    """Base class of every exception raised by fastapi-sessions."""


class ConfigurationError(SessionError, ValueError):
    """A setting is invalid, for example a ``__Host-`` cookie with a Domain."""


class SerializationError(SessionError):
    """Session data could not be serialized, or a stored payload not decoded."""


class SessionTooLarge(SessionError):
    """The serialized session data is larger than the manager's ``max_session_size``.

    Raised before anything is written, so the stored session is unchanged.
    ``size`` and ``limit`` are in bytes of serialized data.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"session data is {size} bytes, over max_session_size={limit}; nothing was stored")
        self.size = size
        self.limit = limit


class SessionExists(SessionError):
    """``create()`` was called with the key of a live record."""


class SessionNotFound(SessionError):
    """The record is gone or expired; it is never silently re-created."""


class SessionConflict(SessionError):
    """A compare-and-set save lost: the record changed since it was read."""


class BackendError(SessionError):
    """The session store failed."""


class BackendUnavailable(BackendError):
    """The session store cannot be reached right now (connection refused, timeout)."""
