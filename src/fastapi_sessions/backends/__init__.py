"""Storage backends, chosen by URL.

``from_url("redis://localhost/0")`` builds the backend registered for the
URL's scheme family through the ``fastapi_sessions.backends`` entry points;
see :mod:`fastapi_sessions.core.registry`. Each backend lives in its own
module and imports its own driver; this package imports none of them, so one
missing driver never affects another backend.
"""

from __future__ import annotations

from ..core.registry import (
    AmbiguousBackend,
    BackendNotInstalled,
    UnknownBackend,
    available_backends,
    from_url,
    mask_url,
    register_backend,
    unregister_backend,
)

__all__ = [
    "AmbiguousBackend",
    "BackendNotInstalled",
    "UnknownBackend",
    "available_backends",
    "from_url",
    "mask_url",
    "register_backend",
    "unregister_backend",
]
