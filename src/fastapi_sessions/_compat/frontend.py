"""The 0.3.2 frontend contract (``ID``, the abstract ``SessionFrontend``) and the frontend registry.

A frontend extracts the session id from the request and leaves it (or a
``FrontendError``) in ``request.state.session_ids[identifier]``, where the
matching ``SessionVerifier`` picks it up.

``LegacySessionFrontend`` is 0.3.2's abstract base that custom frontends
subclass, re-exported as ``fastapi_sessions.frontends.session_frontend.SessionFrontend``;
not the new concrete cookie frontend ``fastapi_sessions.frontends.SessionFrontend``.

Additions over 0.3.2: :func:`register_frontend` and :func:`find_frontend`, a
registry by identifier that lets a verifier find its frontend when a route
forgot ``Depends(frontend)``. ``SessionCookie`` registers itself. The registry
is process-global: see the caveat in :mod:`fastapi_sessions._compat`.
"""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from typing import Any, Generic, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from ..errors import FrontendError, public_path

__all__ = ["ID", "LegacySessionFrontend", "find_frontend", "register_frontend"]

ID = TypeVar("ID")


@public_path("fastapi_sessions.frontends.session_frontend.SessionFrontend")
class LegacySessionFrontend(ABC, Generic[ID]):
    """0.3.2 abstract frontend.

    Every frontend also needs an extractor ``__call__(...) -> ID | FrontendError``
    that extracts the id, calls :meth:`attach_id_state` and returns it. It is not
    declared here because its arguments vary by frontend (as in 0.3.2).
    """

    @property
    @abstractmethod
    def identifier(self) -> str:
        raise NotImplementedError()

    @abstractmethod
    def attach_to_response(self, response: Response, session_id: ID) -> None:
        """Attach the session id to ``response``."""
        raise NotImplementedError()

    @abstractmethod
    def delete_from_response(self, response: Response) -> None:
        """Tell the client, through ``response``, to forget its session id."""
        raise NotImplementedError()

    def attach_id_state(self, request: Request, session_id: ID | FrontendError) -> None:
        """Hand the extracted id (or error) to verifiers through ``request.state.session_ids``."""
        try:
            request.state.session_ids[self.identifier] = session_id
        except Exception:  # no dict yet (or something unusable there): start one, as 0.3.2 did
            request.state.session_ids = {}
            request.state.session_ids[self.identifier] = session_id


# Weak, so a frontend built in a test or a throwaway app does not live forever.
_frontends: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def register_frontend(frontend: Any) -> None:
    """Make ``frontend`` findable by its ``identifier``; the latest registration wins.

    ``frontend`` must be callable as ``frontend(request)``, returning the id or a
    ``FrontendError`` (sync or async) and attaching it with ``attach_id_state``.
    """
    _frontends[frontend.identifier] = frontend


def find_frontend(identifier: str) -> Any | None:
    """The frontend registered under ``identifier``, if it is still alive."""
    return _frontends.get(identifier)
