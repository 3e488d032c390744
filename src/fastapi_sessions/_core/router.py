"""``sessions_router(manager)``: the "where am I signed in" endpoints, ready to include.

The id a client sees for a session is its storage key. That is a SHA-256 of the
token, so it cannot be turned back into a token, and the server never accepts it
in place of one (frontends carry signed tokens, which are hashed on every load):
showing it to the session's owner gives them nothing they could present. It is
also what :meth:`SessionManager.revoke` takes, so an application's own pages and
this router use one identifier. Ownership is checked on every delete, and a
stranger's id gets the same 404 as an unknown one.

No ``from __future__ import annotations`` here: FastAPI reads the endpoints'
annotations, including ``Depends`` on this manager's dependencies.
"""

import re
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel, Field

from .records import SessionInfo
from .session import Session

if TYPE_CHECKING:
    from .manager import SessionManager

__all__ = ["DeviceSession", "RevokedSessions", "sessions_router"]

#: A storage key as the manager makes them (tokens.storage_key); anything else is no session.
_KEY = re.compile(r"[0-9a-f]{64}")
_NOT_FOUND = "No such session"


class DeviceSession(BaseModel):
    """One of the current user's sessions, as the device list shows it."""

    id: str = Field(description="Opaque id of the session, for DELETE /sessions/{id} (never its token).")
    current: bool = Field(description="Whether this is the session making the request.")
    created_at: datetime = Field(description="When this session was signed in.")
    last_seen: datetime | None = Field(
        description="When it was last used: exact to the idle refresh interval, a lower bound near the absolute "
                    "deadline.")
    expires_at: datetime = Field(description="When it ends unless used again (and at the latest).")
    user_agent: str | None = Field(description="The User-Agent it signed in with, if recorded (truncated).")
    ip: str | None = Field(description="The client IP it signed in from, if the server records it.")

    @classmethod
    def of(cls, info: SessionInfo) -> "DeviceSession":
        return cls(id=info.key, current=info.current, created_at=info.created_at, last_seen=info.last_seen,
                   expires_at=info.expires_at, user_agent=info.user_agent, ip=info.ip)


class RevokedSessions(BaseModel):
    """How many sessions a revocation ended."""

    revoked: int = Field(ge=0, description="Sessions ended (never the one making the request).")


class _Detail(BaseModel):
    detail: str


def sessions_router(
    manager: "SessionManager",
    *,
    prefix: str = "/sessions",
    tags: Sequence[str] = ("sessions",),
    **router_options: Any,
) -> APIRouter:
    """An ``APIRouter`` for the current user's sessions ("devices"); include it in the app.

    - ``GET {prefix}``: the user's live sessions, oldest first, the caller's own
      marked ``current`` (``Cache-Control: no-store``).
    - ``DELETE {prefix}/{id}``: end one of the user's sessions (204); ending the
      caller's own is a logout (its cookie is cleared). 404 for any id that is
      not one of the user's sessions, whoever's it is.
    - ``POST {prefix}/revoke-others``: end every other session of the user.

    All three answer 401 without a logged-in user and need ``SessionMiddleware``.
    They change state on DELETE and POST only, so CSRF protection for unsafe
    methods covers them. ``router_options`` go to ``APIRouter`` (``dependencies``,
    ``responses``, ...).
    """
    router = APIRouter(prefix=prefix, tags=list(tags), **router_options)
    unauthorized: dict[int | str, dict[str, Any]] = {401: {"model": _Detail, "description": "Not signed in"}}
    SessionDep = Annotated[Session, Depends(manager.session)]
    UserDep = Annotated[str, Depends(manager.user)]

    @router.get("", response_model=list[DeviceSession], summary="List my sessions", responses=unauthorized)
    async def list_sessions(user: UserDep, session: SessionDep, response: Response) -> list[DeviceSession]:
        response.headers["Cache-Control"] = "no-store"
        return [DeviceSession.of(info) for info in await manager.list_sessions(user, current=session)]

    @router.delete(
        "/{session_id}",
        status_code=204,
        response_class=Response,
        summary="Sign out one of my sessions",
        responses={**unauthorized, 404: {"model": _Detail, "description": "Not one of my sessions"}},
    )
    async def revoke_session(session_id: str, user: UserDep, session: SessionDep) -> Response:
        if session_id == session.key:
            session.invalidate()  # the caller's own: a logout, so the cookie goes too
        elif _KEY.fullmatch(session_id) is None or not await manager.revoke(session_id, user_id=user):
            raise HTTPException(status_code=404, detail=_NOT_FOUND)
        return Response(status_code=204)

    @router.post("/revoke-others", response_model=RevokedSessions, summary="Sign out my other sessions",
                 responses=unauthorized)
    async def revoke_others(user: UserDep, session: SessionDep) -> RevokedSessions:
        return RevokedSessions(revoked=await manager.revoke_others(session))

    return router
