"""Helpers the built-in frontends share; the transport contract itself lives in _core/contract.py.

``Frontend`` and ``BaseFrontend`` are defined beside ``SessionBackend`` (the
_core must not import frontends) and re-exported here and from
``fastapi_sessions.frontends``.
"""

from __future__ import annotations

from starlette.types import Scope

from .._core.contract import BaseFrontend, Frontend

__all__ = ["BaseFrontend", "Frontend"]


def header_value(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (``name`` lower-case), decoded as latin-1."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
