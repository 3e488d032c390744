"""0.3.2 import path of ``SessionVerifier``; the implementation is in :mod:`fastapi_sessions._compat.verifier`."""

from __future__ import annotations

from ._compat.backend import LegacySessionBackend as SessionBackend  # noqa: F401
from ._compat.backend import SessionModel as SessionModel
from ._compat.frontend import ID as ID
from ._compat.verifier import SessionVerifier as SessionVerifier
from .errors import FrontendError as FrontendError
from .errors import LegacyBackendError as BackendError  # noqa: F401

# The names besides SessionVerifier: 0.3.2's module imported them, so code may import them from here.
__all__ = ["SessionVerifier"]
