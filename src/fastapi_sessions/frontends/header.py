"""Signed-token transport in a request header, for API clients that keep no cookies."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from fastapi.openapi.models import APIKey, APIKeyIn, HTTPBearer
from starlette.datastructures import MutableHeaders
from starlette.types import Scope

from .._core.tokens import SecretKey
from ..errors import ConfigurationError
from .base import BaseFrontend, header_value

__all__ = ["HeaderFrontend"]


class HeaderFrontend(BaseFrontend):
    """Reads the signed token from a named header, or from ``Authorization: Bearer``.

    When a session is created or its token regenerated, the new signed token is
    sent back in the response header ``response_header`` (by default the same
    name as the request header, or ``X-Session-Token`` in bearer mode). When the
    session ends, that header is sent empty. Clients store the value and send it
    back on later requests.
    """

    def __init__(
        self,
        secret_key: SecretKey | Sequence[SecretKey],
        *,
        header_name: str = "X-Session-Token",
        bearer: bool = False,
        response_header: str | None = None,
        scheme_name: str | None = None,
        salt: str = "fastapi-sessions.header",
    ) -> None:
        super().__init__(secret_key, salt=salt)
        for name in (header_name, response_header):
            if name is not None and (not name or not name.isascii() or not name.replace("-", "").isalnum()):
                raise ConfigurationError(f"invalid header name {name!r}")
        self.bearer = bearer
        self.header_name = "Authorization" if bearer else header_name
        self.response_header = response_header or ("X-Session-Token" if bearer else header_name)
        self._lookup = self.header_name.lower().encode("latin-1")
        #: What responses vary on (read by the middleware): the request header, not Cookie.
        self.vary = self.header_name
        if bearer:
            self.model = HTTPBearer(description="Signed session token")
        else:
            self.model = APIKey(**{"in": APIKeyIn.header}, name=header_name)  # type: ignore[arg-type]
        self.scheme_name = scheme_name or type(self).__name__

    def candidates(self, scope: Scope) -> Iterator[str]:
        value = header_value(scope, self._lookup)
        if value is None:
            return
        if not self.bearer:
            value = value.strip()
        else:
            scheme, _, credentials = value.strip().partition(" ")
            value = credentials.strip() if scheme.lower() == "bearer" else ""
        if value:
            yield value

    def issue(self, headers: MutableHeaders, token: str, max_age: int) -> None:
        headers[self.response_header] = self.sign(token)

    def clear(self, headers: MutableHeaders) -> None:
        headers[self.response_header] = ""
