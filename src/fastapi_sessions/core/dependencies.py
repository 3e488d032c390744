"""FastAPI dependencies: the session, the user, or a typed model, with the security scheme.

No ``from __future__ import annotations`` here: FastAPI must see the real
``Depends(frontend)`` of each closure, not a string it cannot resolve.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from pydantic import BaseModel, ValidationError

from ..frontends.base import Frontend
from .session import Session

__all__ = ["model_dependency", "session_dependency", "user_dependency"]

M = TypeVar("M", bound=BaseModel)


def _session_of(request: Request) -> Session:
    session = request.scope.get("session")
    if not isinstance(session, Session):
        raise RuntimeError(
            "fastapi-sessions: no session in this request; add "
            "app.add_middleware(SessionMiddleware, manager=manager)"
        )
    session.mark_accessed()
    return session


def session_dependency(frontend: Frontend) -> Callable[..., Awaitable[Session]]:
    """A dependency returning ``request.session``; depends on ``frontend`` for OpenAPI."""

    async def session(request: Request, _: Annotated[Any, Depends(frontend)]) -> Session:
        return _session_of(request)

    return session


def user_dependency(
    frontend: Frontend, *, required: bool
) -> Callable[..., Awaitable[str | None]]:
    """A dependency returning the session's user id; 401 when ``required`` and nobody is in."""

    async def user(request: Request, _: Annotated[Any, Depends(frontend)]) -> str | None:
        user_id = _session_of(request).user_id
        if user_id is None and required:
            raise HTTPException(status_code=401, detail="Not authenticated")
        return user_id

    return user


def model_dependency(frontend: Frontend, model: type[M]) -> Callable[..., Awaitable[M]]:
    """A dependency validating the session data as ``model``; a mismatch is a 422, not a 500."""

    async def typed(request: Request, _: Annotated[Any, Depends(frontend)]) -> M:
        try:
            return model.model_validate(dict(_session_of(request)))
        except ValidationError as exc:
            raise HTTPException(
                status_code=422,
                detail={
                    "message": f"session data does not match {model.__name__}",
                    "errors": exc.errors(include_url=False, include_input=False),
                },
            ) from None

    return typed
