"""0.3.2 import path of ``InMemoryBackend``; the implementation is in :mod:`fastapi_sessions._compat.memory`."""

from __future__ import annotations

from ..._compat.backend import LegacySessionBackend as SessionBackend  # noqa: F401
from ..._compat.backend import SessionModel as SessionModel
from ..._compat.frontend import ID as ID
from ..._compat.memory import LegacyInMemoryBackend as InMemoryBackend
from ...errors import LegacyBackendError as BackendError  # noqa: F401

# The names besides InMemoryBackend: 0.3.2's module imported them, so code may import them from here.
__all__ = ["InMemoryBackend"]
