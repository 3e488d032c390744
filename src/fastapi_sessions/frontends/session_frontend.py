"""The 0.3.2 frontend contract: ``SessionFrontend``, ``FrontendError`` and ``ID``.

Kept for applications written against fastapi-sessions 0.3.2. A frontend
extracts the session id from the request and leaves it (or a
``FrontendError``) in ``request.state.session_ids[identifier]``, where the
matching ``SessionVerifier`` picks it up.

Not to be confused with ``fastapi_sessions.frontends.SessionFrontend``, the
new concrete cookie frontend of the manager API; this module's
``SessionFrontend`` is the 0.3.2 abstract base that custom frontends subclass.

Additions over 0.3.2: :func:`register_frontend` and :func:`find_frontend`, a
registry by identifier that lets a verifier find its frontend when a route
forgot ``Depends(frontend)``. ``SessionCookie`` registers itself.
"""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from typing import Any, Generic, TypeVar

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["ID", "FrontendError", "SessionFrontend", "find_frontend", "register_frontend"]


class FrontendError(Exception):
    """What a frontend with ``auto_error=False`` returns (and stores) instead of an id."""


ID = TypeVar("ID")


class SessionFrontend(ABC, Generic[ID]):
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
