"""Import path of ``BridgeBackend`` and its errors; the implementation is in :mod:`fastapi_sessions._compat.bridge`."""

from __future__ import annotations

from ..._compat.bridge import DEFAULT_TTL, BridgeBackend
from ...errors import StoreError, StoreUnavailable

__all__ = ["DEFAULT_TTL", "BridgeBackend", "StoreError", "StoreUnavailable"]
