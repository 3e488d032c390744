"""Async server-side sessions for FastAPI and Starlette.

The public API is what ``__all__`` lists; everything else may move.
"""

from __future__ import annotations

from .core.clock import Clock, ManualClock, utc_now
from .core.contract import BaseSessionBackend, SessionBackend, SupportsReadAndTouch
from .core.errors import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    SerializationError,
    SessionConflict,
    SessionError,
    SessionExists,
    SessionNotFound,
    SessionTooLarge,
)
from .core.manager import Commit, CommitOutcome, ConflictPolicy, SessionManager
from .core.middleware import SessionMiddleware
from .core.records import SessionInfo, SessionRecord
from .core.registry import AmbiguousBackend, BackendNotInstalled, UnknownBackend
from .core.serializers import JSONSerializer, Serializer
from .core.session import Session
from .core.settings import SessionSettings

__version__ = "1.0.0.dev0"

__all__ = [
    "AmbiguousBackend",
    "BackendError",
    "BackendNotInstalled",
    "BackendUnavailable",
    "BaseSessionBackend",
    "Clock",
    "Commit",
    "CommitOutcome",
    "ConfigurationError",
    "ConflictPolicy",
    "JSONSerializer",
    "ManualClock",
    "SerializationError",
    "Serializer",
    "Session",
    "SessionBackend",
    "SessionConflict",
    "SessionError",
    "SessionExists",
    "SessionInfo",
    "SessionManager",
    "SessionMiddleware",
    "SessionNotFound",
    "SessionRecord",
    "SessionSettings",
    "SessionTooLarge",
    "SupportsReadAndTouch",
    "UnknownBackend",
    "__version__",
    "utc_now",
]
