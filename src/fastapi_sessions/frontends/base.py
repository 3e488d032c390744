"""What a frontend is: the transport that carries a signed token between client and server."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from fastapi.security.base import SecurityBase
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import Scope

from ..core.tokens import SecretKey, TokenSigner

__all__ = ["BaseFrontend", "Frontend"]


@runtime_checkable
class Frontend(Protocol):
    """The transport contract the manager and the middleware rely on."""

    def sign(self, token: str) -> str:
        """The public session id for ``token``: what the client carries."""
        ...

    def unsign(self, session_id: str) -> str | None:
        """The token inside a public session id, or ``None`` if it is forged or malformed."""
        ...

    def extract(self, scope: Scope) -> str | None:
        """The verified token a request carries, or ``None``."""
        ...

    def issue(self, headers: MutableHeaders, token: str, max_age: int) -> None:
        """Add to response ``headers`` whatever hands ``token`` to the client."""
        ...

    def clear(self, headers: MutableHeaders) -> None:
        """Add to response ``headers`` whatever tells the client to forget its token."""
        ...

    def __call__(self, request: Request) -> str | None:
        """As a FastAPI dependency: the verified public session id, or ``None``."""
        ...


class BaseFrontend(SecurityBase):
    """Signing plus FastAPI security-scheme plumbing shared by the built-in frontends.

    Being a ``SecurityBase``, a frontend used as a dependency puts its scheme in
    ``/openapi.json``. Called as a dependency it returns the public session id
    the request carries if its signature verifies, else ``None``.
    """

    def __init__(self, secret_key: SecretKey | Sequence[SecretKey], *, salt: str) -> None:
        self._signer = TokenSigner(secret_key, salt=salt)

    def sign(self, token: str) -> str:
        return self._signer.sign(token)

    def unsign(self, session_id: str) -> str | None:
        return self._signer.unsign(session_id)

    def extract(self, scope: Scope) -> str | None:
        """The first value the request carries that verifies, as its token."""
        for value in self.candidates(scope):
            token = self._signer.unsign(value)
            if token is not None:
                return token
        return None

    def find(self, scope: Scope) -> str | None:
        """The first raw (still signed) value the request carries, if any."""
        return next(iter(self.candidates(scope)), None)

    def candidates(self, scope: Scope) -> Iterator[str]:
        """Every raw value the request carries, in order (a browser may send two cookies of one name)."""
        raise NotImplementedError

    def __call__(self, request: Request) -> str | None:
        for value in self.candidates(request.scope):
            if self._signer.unsign(value) is not None:
                return value
        return None


def header_value(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (``name`` lower-case), decoded as latin-1."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
