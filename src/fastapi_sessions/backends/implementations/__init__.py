"""0.3.2 backend implementations (``InMemoryBackend``), plus ``BridgeBackend`` onto every new backend.

``InMemoryBackend`` is 0.3.2's dict store. ``BridgeBackend`` implements the
same 0.3.2 contract over any backend from the registry (``memory://``,
``redis://``, ``postgresql+asyncpg://``, …), with expiry. The implementations
are in :mod:`fastapi_sessions._compat`.
"""

from __future__ import annotations

from .bridge import BridgeBackend as BridgeBackend
from .in_memory_backend import InMemoryBackend as InMemoryBackend

__all__ = ["BridgeBackend", "InMemoryBackend"]
