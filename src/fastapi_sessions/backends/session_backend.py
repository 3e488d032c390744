"""The 0.3.2 backend contract: ``SessionBackend[ID, SessionModel]``, ``SessionModel``, ``BackendError``.

A 0.3.2 backend stores pydantic models under an application-chosen id with
four async methods. Kept as it was so custom backends written against 0.3.2
still subclass and run. It is unrelated to the new storage contract,
``fastapi_sessions.SessionBackend`` (records of bytes); ``BridgeBackend`` in
``fastapi_sessions.backends.implementations`` implements this one on top of
that one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Generic, TypeVar

from pydantic import BaseModel

from ..frontends.session_frontend import ID

__all__ = ["BackendError", "SessionBackend", "SessionModel"]

SessionModel = TypeVar("SessionModel", bound=BaseModel)


class BackendError(Exception):
    """Error that is thrown by backends."""


class SessionBackend(ABC, Generic[ID, SessionModel]):
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
