"""0.3.2 import path of the abstract ``SessionBackend[ID, SessionModel]``, ``SessionModel`` and ``BackendError``.

Not the new storage contract ``fastapi_sessions.SessionBackend``. The
implementation is in :mod:`fastapi_sessions._compat.backend`.
"""

from __future__ import annotations

from .._compat.backend import LegacySessionBackend as SessionBackend
from .._compat.backend import SessionModel
from .._compat.frontend import ID as ID  # 0.3.2's module imported it, so it was importable from here too
from ..errors import LegacyBackendError as BackendError

__all__ = ["BackendError", "SessionBackend", "SessionModel"]
