"""Storage backends, chosen by URL.

``from_url("redis://localhost/0")`` builds the backend registered for the
URL's scheme family through the ``fastapi_sessions.backends`` entry points;
see :mod:`fastapi_sessions._core.registry`. Each backend lives in its own
module or package and imports its own driver; this package imports none of them, so one
missing driver never affects another backend.

``SessionBackend`` here is the 0.3.2 abstract base (``SessionBackend[ID,
SessionModel]`` with async create/read/update/delete of pydantic models), as
0.3.2 exported it; it is imported on first use, so the new API never loads the
0.3.2 layer. The new storage contract is ``fastapi_sessions.SessionBackend``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._core.registry import (
    AmbiguousBackend,
    BackendInfo,
    BackendNotInstalled,
    UnknownBackend,
    available_backends,
    from_url,
    mask_url,
    register_backend,
    unregister_backend,
)

if TYPE_CHECKING:
    from .session_backend import SessionBackend as SessionBackend

__all__ = [
    "AmbiguousBackend",
    "BackendInfo",
    "BackendNotInstalled",
    "SessionBackend",
    "UnknownBackend",
    "available_backends",
    "from_url",
    "mask_url",
    "register_backend",
    "unregister_backend",
]


def __getattr__(name: str) -> Any:
    # PEP 562: ``from fastapi_sessions.backends import SessionBackend`` (0.3.2) loads the ABC lazily.
    if name == "SessionBackend":
        from .session_backend import SessionBackend

        return SessionBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
