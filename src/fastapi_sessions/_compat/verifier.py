"""The 0.3.2 ``SessionVerifier[ID, SessionModel]``: a dependency returning the session model.

Subclasses define ``identifier``, ``backend``, ``auto_error`` and
``auth_http_exception`` as properties and ``verify_session(model) -> bool``,
with their own ``__init__`` (the base keeps no state). As in 0.3.2 the
abstract members are not enforced and the verifier reads the id its frontend
left in ``request.state.session_ids[identifier]``.

What is new, without changing what worked:

- ``verify_session`` may also be ``async def``;
- a route that depends only on the verifier works (0.3.2: a 500, issue #18).
  When a frontend registered under the verifier's identifier exists while the
  route is declared, the verifier depends on it, so the route also gets the
  cookie's OpenAPI security entry; otherwise the verifier calls the registered
  frontend itself at request time. The 0.3.2 500 (or returned
  ``BackendError``) remains only when no frontend with that identifier exists.
  The registry is process-global by identifier: see :mod:`fastapi_sessions._compat`;
- a store that cannot be reached gives 503, not a 500.

No ``from __future__ import annotations``: FastAPI inspects ``__call__`` at
runtime and must see the real ``Request`` class.
"""

import inspect
from abc import abstractmethod
from typing import Any, Generic

from fastapi import Depends, HTTPException
from starlette.requests import Request

from ..errors import BackendUnavailable, FrontendError, LegacyBackendError, public_path
from .backend import LegacySessionBackend, SessionModel
from .frontend import ID, find_frontend

__all__ = ["SessionVerifier"]

_UNAVAILABLE_DETAIL = "The session store is unavailable; try again shortly."  # as SessionMiddleware says it
_FRONTEND_PARAMETER = "_fastapi_sessions_frontend"


class _DependsOnFrontend:
    """``__signature__`` of a verifier: ``(request, <its frontend as a dependency>)``.

    FastAPI reads a dependency's signature once, when the route is declared. A
    verifier whose frontend is registered by then declares it as a
    sub-dependency: FastAPI runs the frontend first (once per request, shared
    with an explicit ``Depends(cookie)``) and lists its security scheme. Without
    a registered frontend the signature is 0.3.2's ``(request)``. ``None`` (use
    ``__call__`` as written) for the class itself and for a subclass with its
    own ``__call__``.
    """

    def __get__(self, verifier: "SessionVerifier[Any, Any] | None", owner: type) -> inspect.Signature | None:
        if verifier is None or owner.__call__ is not SessionVerifier.__call__:
            return None
        request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)
        try:
            frontend = find_frontend(verifier.identifier)
        except Exception:  # an identifier property that cannot answer yet: no dependency
            frontend = None
        if frontend is None:
            return inspect.Signature([request])
        return inspect.Signature([
            request,
            inspect.Parameter(
                _FRONTEND_PARAMETER, inspect.Parameter.KEYWORD_ONLY, default=Depends(frontend), annotation=Any
            ),
        ])


@public_path("fastapi_sessions.session_verifier.SessionVerifier")
class SessionVerifier(Generic[ID, SessionModel]):
    __signature__ = _DependsOnFrontend()

    @property
    @abstractmethod
    def identifier(self) -> str:
        raise NotImplementedError()

    @property
    @abstractmethod
    def backend(self) -> LegacySessionBackend[ID, SessionModel]:
        raise NotImplementedError()

    @property
    @abstractmethod
    def auto_error(self) -> bool:
        raise NotImplementedError()

    @property
    @abstractmethod
    def auth_http_exception(self) -> HTTPException:
        raise NotImplementedError()

    @abstractmethod
    def verify_session(self, model: SessionModel) -> bool:
        """Whether the session is acceptable; may also be ``async def``."""
        raise NotImplementedError()

    async def _extract(self, request: Request) -> ID | FrontendError | LegacyBackendError:
        try:
            session_id: ID | FrontendError = request.state.session_ids[self.identifier]
            return session_id
        except Exception:
            pass
        frontend = find_frontend(self.identifier)
        if frontend is None:  # nothing can tell us the id: 0.3.2's answer
            if self.auto_error:
                raise HTTPException(status_code=500, detail="internal failure of session verification")
            return LegacyBackendError("failed to extract the {} session from state", self.identifier)
        extracted = frontend(request)  # raises the frontend's 403/401 when it has auto_error
        if inspect.isawaitable(extracted):
            extracted = await extracted
        result: ID | FrontendError = extracted
        return result

    # ``**_`` takes the frontend's result FastAPI passes per ``__signature__``; the id itself
    # is read from ``request.state``, where the frontend left it, as in 0.3.2.
    async def __call__(self, request: Request, **_: Any) -> SessionModel | LegacyBackendError | None:
        session_id = await self._extract(request)
        if isinstance(session_id, LegacyBackendError):
            return session_id
        if isinstance(session_id, FrontendError):
            if self.auto_error:
                raise self.auth_http_exception
            return None
        try:
            session_data = await self.backend.read(session_id)
        except BackendUnavailable:
            raise HTTPException(status_code=503, detail=_UNAVAILABLE_DETAIL) from None
        verified = bool(session_data) and self.verify_session(session_data)  # type: ignore[arg-type]
        if inspect.isawaitable(verified):
            verified = await verified
        if not verified:
            if self.auto_error:
                raise self.auth_http_exception
            return None
        return session_data
