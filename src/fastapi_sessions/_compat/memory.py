"""The 0.3.2 ``InMemoryBackend[ID, SessionModel]``: pydantic models in a dict.

Same contract and messages as 0.3.2, with two fixes that break nobody:
``update`` stores a copy like ``create`` does (0.3.2 kept the caller's object,
so mutating it later changed the session), and ``delete`` of an unknown id
does nothing (0.3.2 raised ``KeyError``: logging out twice was a 500).

Entries never expire and live in one process. For expiry, or a store shared
by workers, swap it for ``BridgeBackend`` (also in
``fastapi_sessions.backends.implementations``).
"""

from __future__ import annotations

from typing import Generic

from ..errors import LegacyBackendError, public_path
from .backend import LegacySessionBackend, SessionModel
from .frontend import ID

__all__ = ["LegacyInMemoryBackend"]


@public_path("fastapi_sessions.backends.implementations.in_memory_backend.InMemoryBackend")
class LegacyInMemoryBackend(Generic[ID, SessionModel], LegacySessionBackend[ID, SessionModel]):
    """Stores session data in a dictionary."""

    def __init__(self) -> None:
        self.data: dict[ID, SessionModel] = {}

    async def create(self, session_id: ID, data: SessionModel) -> None:
        if self.data.get(session_id):
            raise LegacyBackendError("create can't overwrite an existing session")
        self.data[session_id] = data.model_copy(deep=True)

    async def read(self, session_id: ID) -> SessionModel | None:
        data = self.data.get(session_id)
        if not data:
            return None
        return data.model_copy(deep=True)

    async def update(self, session_id: ID, data: SessionModel) -> None:
        if not self.data.get(session_id):
            raise LegacyBackendError("session does not exist, cannot update")
        self.data[session_id] = data.model_copy(deep=True)

    async def delete(self, session_id: ID) -> None:
        self.data.pop(session_id, None)
