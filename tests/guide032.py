"""The session model and verifier of the 0.3.2 getting-started guide, shared by the compat tests.

Written as the guide writes them: the verifier has its own ``__init__`` (no
``super().__init__()``), the four members as properties, and a sync
``verify_session``. The one change is the ``backend`` annotation, the 0.3.2
ABC instead of ``InMemoryBackend``, since tests also pass a ``BridgeBackend``.
``test_compat_guide.py`` runs the guide's whole program from its own verbatim
copy; ``benchmarks/legacy_032.py`` keeps a copy too, because it runs against
the 0.3.2 release in a virtualenv of its own.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import HTTPException
from pydantic import BaseModel

from fastapi_sessions.backends.session_backend import SessionBackend
from fastapi_sessions.session_verifier import SessionVerifier


class SessionData(BaseModel):
    username: str


class BasicVerifier(SessionVerifier[UUID, SessionData]):
    def __init__(
        self,
        *,
        identifier: str,
        auto_error: bool,
        backend: SessionBackend[UUID, SessionData],
        auth_http_exception: HTTPException,
    ) -> None:
        self._identifier = identifier
        self._auto_error = auto_error
        self._backend = backend
        self._auth_http_exception = auth_http_exception

    @property
    def identifier(self) -> str:
        return self._identifier

    @property
    def backend(self) -> SessionBackend[UUID, SessionData]:
        return self._backend

    @property
    def auto_error(self) -> bool:
        return self._auto_error

    @property
    def auth_http_exception(self) -> HTTPException:
        return self._auth_http_exception

    def verify_session(self, model: SessionData) -> bool:
        """If the session exists, it is valid"""
        return True
