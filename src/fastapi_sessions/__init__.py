"""Async server-side sessions for FastAPI and Starlette.

Everything an application needs is importable from here, grouped below. A
backend that needs a driver is chosen by URL (``from_url("redis://...")``,
``SessionManager.from_url``) or imported from its own module
(``fastapi_sessions.backends.redis``, ``.sqlalchemy``, ``.mongodb``); the
conformance kit for backend authors is ``fastapi_sessions.testing``. Modules
whose names start with an underscore are the implementation: they may change
in any release.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._core.clock import Clock, ManualClock, utc_now
from ._core.commit import Commit, CommitOutcome
from ._core.contract import (
    BaseFrontend,
    BaseSessionBackend,
    Frontend,
    SessionBackend,
    SupportsBatchedPurge,
    SupportsReadAndTouch,
    SupportsRecordCounts,
)
from ._core.dependencies import session_of
from ._core.events import EventKind, EventListener, SessionEvent
from ._core.lifespan import SessionLifespan
from ._core.manager import SessionManager
from ._core.merge import ConflictPolicy
from ._core.middleware import SessionMiddleware
from ._core.records import RecordCounts, SessionInfo, SessionRecord
from ._core.registry import available_backends, from_url
from ._core.router import DeviceSession, RevokedSessions, sessions_router
from ._core.serializers import JSONSerializer, Serializer
from ._core.session import Session
from ._core.settings import SessionSettings
from ._csrf import CSRFMiddleware, csrf_token
from ._flash import flash, get_flashed_messages
from .errors import (
    AmbiguousBackend,
    BackendError,
    BackendNotInstalled,
    BackendUnavailable,
    ConfigurationError,
    SerializationError,
    SessionConflict,
    SessionError,
    SessionExists,
    SessionNotFound,
    SessionTooLarge,
    UnknownBackend,
)
from .frontends import CookieFrontend, HeaderFrontend

if TYPE_CHECKING:
    from .backends.in_memory import InMemoryBackend

__version__ = "1.0.0.dev0"

__all__ = [  # noqa: RUF022 - grouped by topic, as a reader looks for them
    # Sessions: the manager, the middleware and the session a request sees
    "Commit",
    "CommitOutcome",
    "ConflictPolicy",
    "Session",
    "SessionLifespan",
    "SessionManager",
    "SessionMiddleware",
    "session_of",
    # Devices: where a user is signed in, and signing the others out
    "DeviceSession",
    "RevokedSessions",
    "sessions_router",
    # Events: what the manager reports to its listeners (manager.add_listener; OpenTelemetry: fastapi_sessions.otel)
    "EventKind",
    "EventListener",
    "SessionEvent",
    # Browser apps: CSRF protection tied to the session, flash messages
    "CSRFMiddleware",
    "csrf_token",
    "flash",
    "get_flashed_messages",
    # Frontends: how the signed token travels (fastapi_sessions.frontends)
    "BaseFrontend",
    "CookieFrontend",
    "Frontend",
    "HeaderFrontend",
    # Storage: backends by URL, the driver-free in-memory one, the contract (fastapi_sessions.backends)
    "BaseSessionBackend",
    "InMemoryBackend",
    "RecordCounts",
    "SessionBackend",
    "SessionInfo",
    "SessionRecord",
    "SupportsBatchedPurge",
    "SupportsReadAndTouch",
    "SupportsRecordCounts",
    "available_backends",
    "from_url",
    # Configuration and data
    "JSONSerializer",
    "Serializer",
    "SessionSettings",
    # Time: the clock every deadline is judged by
    "Clock",
    "ManualClock",
    "utc_now",
    # Errors: one tree, documented in fastapi_sessions.errors
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
    "__version__",
]


def __getattr__(name: str) -> Any:
    # PEP 562: the in-memory backend is a backend like the others, imported when first named
    # (``from_url("redis://...")`` loads no backend module it does not need).
    if name == "InMemoryBackend":
        from .backends.in_memory import InMemoryBackend

        return InMemoryBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
