"""The 0.3.2 signed-cookie frontend: ``SessionCookie``, ``CookieParameters``, ``SameSiteEnum``.

Wire format, unchanged from 0.3.2 so that cookies it issued stay valid: the
cookie value is ``URLSafeTimedSerializer(secret_key, salt=cookie_name)`` over
the JSON string of ``uuid.hex`` (itsdangerous defaults: HMAC-SHA1, django-concat
key derivation), and a signature older than ``cookie_params.max_age`` is
rejected. New cookies use the same scheme, so a rollback keeps users logged in.

Fixed without changing the contract: ``SameSite=lax|strict|none`` instead of
``SameSiteEnum.lax``; ``model_copy`` instead of pydantic 1's ``copy``; a
correctly signed value that is not a UUID is a 401 like any bad cookie, not a
500; ``delete_from_response`` repeats the cookie's attributes so browsers
match and drop it; each cookie registers itself by ``identifier`` so a
verifier can find it when a route forgot ``Depends(cookie)``.

No ``from __future__ import annotations``: FastAPI inspects ``__call__`` at
runtime and must see the real ``Request`` class.
"""

from enum import Enum, StrEnum
from typing import Any
from uuid import UUID

from fastapi import HTTPException
from fastapi.openapi.models import APIKey, APIKeyIn
from fastapi.security.base import SecurityBase
from itsdangerous import BadData, URLSafeTimedSerializer
from pydantic import BaseModel, field_validator
from starlette.requests import Request
from starlette.responses import Response

from ..errors import FrontendError, public_path
from .frontend import LegacySessionFrontend, register_frontend

__all__ = ["CookieParameters", "SameSiteEnum", "SessionCookie"]


# A StrEnum (a str, as 0.3.2's ``str, Enum`` was) so str() and format() give "lax":
# on Python 3.11+ 0.3.2's member printed as "SameSiteEnum.lax" in Set-Cookie (bug #16).
@public_path("fastapi_sessions.frontends.implementations.cookie.SameSiteEnum")
class SameSiteEnum(StrEnum):
    lax = "lax"
    strict = "strict"
    none = "none"


@public_path("fastapi_sessions.frontends.implementations.cookie.CookieParameters")
class CookieParameters(BaseModel):
    max_age: int = 14 * 24 * 60 * 60  # 14 days in seconds
    path: str = "/"
    domain: str | None = None
    secure: bool = False
    httponly: bool = True
    samesite: SameSiteEnum = SameSiteEnum.lax

    @field_validator("samesite", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        # "Lax" and "STRICT" are what people write in settings files.
        return value.lower() if isinstance(value, str) and not isinstance(value, Enum) else value


@public_path("fastapi_sessions.frontends.implementations.cookie.SessionCookie")
class SessionCookie(SecurityBase, LegacySessionFrontend[UUID]):
    """A signed cookie holding a UUID session id; a FastAPI security scheme (apiKey in cookie)."""

    def __init__(
        self,
        *,
        cookie_name: str,
        identifier: str,
        secret_key: str | bytes,
        cookie_params: CookieParameters,
        scheme_name: str | None = None,
        auto_error: bool = False,
    ) -> None:
        self.model: APIKey = APIKey(**{"in": APIKeyIn.cookie}, name=cookie_name)  # type: ignore[arg-type]
        self._identifier = identifier
        self.scheme_name = scheme_name or self.__class__.__name__
        self.auto_error = auto_error
        self.signer = URLSafeTimedSerializer(secret_key, salt=cookie_name)
        self.cookie_params = cookie_params.model_copy(deep=True)
        register_frontend(self)

    @property
    def identifier(self) -> str:
        return self._identifier

    def __call__(self, request: Request) -> UUID | FrontendError:
        signed_session_id = request.cookies.get(self.model.name)
        if not signed_session_id:
            if self.auto_error:
                raise HTTPException(status_code=403, detail="No session provided")
            error = FrontendError("No session cookie attached to request")
            self.attach_id_state(request, error)
            return error
        try:
            session_id = UUID(
                self.signer.loads(signed_session_id, max_age=self.cookie_params.max_age, return_timestamp=False)
            )
        except (BadData, ValueError, TypeError, AttributeError):
            # BadData covers a bad or expired signature and an unreadable payload; the others
            # a well-signed payload that is not a UUID hex string (0.3.2 answered those with a 500).
            if self.auto_error:
                raise HTTPException(status_code=401, detail="Invalid session provided") from None
            error = FrontendError("Session cookie has invalid signature")
            self.attach_id_state(request, error)
            return error
        self.attach_id_state(request, session_id)
        return session_id

    def _attributes(self) -> dict[str, Any]:
        params = self.cookie_params
        return {
            "path": params.path,
            "domain": params.domain,
            "secure": params.secure,
            "httponly": params.httponly,
            "samesite": SameSiteEnum(params.samesite).value,
        }

    def attach_to_response(self, response: Response, session_id: UUID) -> None:
        response.set_cookie(
            key=self.model.name,
            value=str(self.signer.dumps(session_id.hex)),
            max_age=self.cookie_params.max_age,
            **self._attributes(),
        )

    def delete_from_response(self, response: Response) -> None:
        response.delete_cookie(key=self.model.name, **self._attributes())
