"""FastAPI dependencies: the session, the user, or a typed model, with the security scheme.

Also :func:`session_of`, the typed way to reach a request's session: Starlette
types ``request.session`` as a plain ``dict``, so ``request.session.user_id =
...`` does not type-check, while ``session_of(request).user_id = ...`` does.

No ``from __future__ import annotations`` here: FastAPI must see the real
``Depends(frontend)`` of each closure, not a string it cannot resolve.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from pydantic import BaseModel, ValidationError
from starlette.requests import HTTPConnection

from .contract import Frontend
from .session import Session

__all__ = ["model_dependency", "optional_user_dependency", "session_dependency", "session_of", "user_dependency"]

M = TypeVar("M", bound=BaseModel)


def session_of(connection: HTTPConnection) -> Session:
    """The session of a request (or WebSocket), typed: what ``request.session`` is at runtime.

    Marks it accessed, as ``request.session`` does. Raises ``RuntimeError`` when
    ``SessionMiddleware`` is not installed.
    """
    session = connection.scope.get("session")
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
        return session_of(request)

    return session


def user_dependency(frontend: Frontend) -> Callable[..., Awaitable[str]]:
    """A dependency returning the session's user id; 401 when nobody is logged in."""

    async def user(request: Request, _: Annotated[Any, Depends(frontend)]) -> str:
        user_id = session_of(request).user_id
        if user_id is None:
            raise HTTPException(status_code=401, detail="Not authenticated")
        return user_id

    return user


def optional_user_dependency(frontend: Frontend) -> Callable[..., Awaitable[str | None]]:
    """A dependency returning the session's user id, or ``None`` when nobody is logged in."""

    async def user(request: Request, _: Annotated[Any, Depends(frontend)]) -> str | None:
        return session_of(request).user_id

    return user


def model_dependency(frontend: Frontend, model: type[M]) -> Callable[..., Awaitable[M]]:
    """A dependency validating the session data as ``model``; a mismatch is a 422, not a 500."""

    async def typed(request: Request, _: Annotated[Any, Depends(frontend)]) -> M:
        try:
            return model.model_validate(dict(session_of(request)))
        except ValidationError as exc:
            raise HTTPException(
                status_code=422,
                detail={
                    "message": f"session data does not match {model.__name__}",
                    "errors": exc.errors(include_url=False, include_input=False),
                },
            ) from None

    return typed
