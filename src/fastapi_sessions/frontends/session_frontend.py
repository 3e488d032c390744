"""0.3.2 import path of the abstract ``SessionFrontend``, ``FrontendError`` and ``ID``, and the frontend registry.

Not the new concrete cookie frontend ``fastapi_sessions.frontends.SessionFrontend``.
The implementation is in :mod:`fastapi_sessions._compat.frontend`.
"""

from __future__ import annotations

from .._compat.frontend import ID, find_frontend, register_frontend
from .._compat.frontend import LegacySessionFrontend as SessionFrontend
from ..errors import FrontendError

__all__ = ["ID", "FrontendError", "SessionFrontend", "find_frontend", "register_frontend"]
