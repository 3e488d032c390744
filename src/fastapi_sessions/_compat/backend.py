"""The 0.3.2 backend contract: the abstract ``SessionBackend[ID, SessionModel]`` and ``SessionModel``.

A 0.3.2 backend stores pydantic models under an application-chosen id with
four async methods. Kept as it was so custom backends written against 0.3.2
still subclass and run. ``LegacySessionBackend`` is re-exported as
``fastapi_sessions.backends.SessionBackend`` (and ``.session_backend.SessionBackend``);
it is unrelated to the new storage contract ``fastapi_sessions.SessionBackend``
(records of bytes), on top of which :class:`~.bridge.BridgeBackend` implements it.
Its error, 0.3.2's ``BackendError``, is ``errors.LegacyBackendError``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, TypeVar

from pydantic import BaseModel

from ..errors import public_path
from .frontend import ID

__all__ = ["LegacySessionBackend", "SessionModel"]

SessionModel = TypeVar("SessionModel", bound=BaseModel)


@public_path("fastapi_sessions.backends.session_backend.SessionBackend")
class LegacySessionBackend(ABC, Generic[ID, SessionModel]):
    """Abstract class that defines methods for interacting with session data."""

    @abstractmethod
    async def create(self, session_id: ID, data: SessionModel) -> None:
        """Create a new session."""
        raise NotImplementedError()

    @abstractmethod
    async def read(self, session_id: ID) -> SessionModel | None:
        """Read session data from the storage."""
        raise NotImplementedError()

    @abstractmethod
    async def update(self, session_id: ID, data: SessionModel) -> None:
        """Update session data to the storage."""
        raise NotImplementedError()

    @abstractmethod
    async def delete(self, session_id: ID) -> None:
        """Remove session data from the storage."""
        raise NotImplementedError()
