"""Signed-cookie transport, with secure defaults and checked cookie prefixes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

from fastapi.openapi.models import APIKey, APIKeyIn
from starlette.datastructures import MutableHeaders
from starlette.types import Scope

from .._core.tokens import SecretKey
from ..errors import ConfigurationError
from .base import BaseFrontend

__all__ = ["CookieFrontend", "SessionFrontend"]

SameSite = Literal["lax", "strict", "none"]
_SAMESITE_VALUES = ("lax", "strict", "none")
# RFC 6265 token characters; a cookie name outside them could split the header.
_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}  # CTLs: never valid in a cookie name, path or domain
_NAME_FORBIDDEN = set('()<>@,;:\\"/[]?={} ') | _CONTROL


class CookieFrontend(BaseFrontend):
    """Carries the signed token in a cookie.

    Defaults follow the OWASP session cheat sheet: ``HttpOnly``, ``Secure``,
    ``SameSite=lax``, ``Path=/`` and ``Max-Age`` equal to the time the session
    has left (``persistent=False`` gives a browser-session cookie without
    ``Max-Age``; the server-side clocks still apply). A name starting with
    ``__Host-`` must be Secure with Path ``/`` and no Domain, one starting with
    ``__Secure-`` must be Secure; violations raise ``ConfigurationError``.
    """

    def __init__(
        self,
        secret_key: SecretKey | Sequence[SecretKey],
        *,
        cookie_name: str = "session",
        path: str = "/",
        domain: str | None = None,
        secure: bool = True,
        httponly: bool = True,
        samesite: SameSite = "lax",
        partitioned: bool = False,
        persistent: bool = True,
        scheme_name: str | None = None,
        salt: str = "fastapi-sessions.cookie",
    ) -> None:
        super().__init__(secret_key, salt=salt)
        if not cookie_name or not cookie_name.isascii() or _NAME_FORBIDDEN & set(cookie_name):
            raise ConfigurationError(f"invalid cookie name {cookie_name!r}")
        samesite_value = str(getattr(samesite, "value", samesite)).lower()  # an Enum member: its value
        if samesite_value not in _SAMESITE_VALUES:
            raise ConfigurationError(f"samesite must be one of {_SAMESITE_VALUES}, not {samesite!r}")
        if not path.startswith("/") or ";" in path or not path.isascii() or _CONTROL & set(path):
            raise ConfigurationError(
                f"cookie path must start with '/' and have no ';', control or non-ASCII characters: {path!r}"
            )
        if domain is not None and (";" in domain or not domain or not domain.isascii() or _CONTROL & set(domain)):
            raise ConfigurationError(f"invalid cookie domain {domain!r}")
        if cookie_name.startswith("__Host-") and (not secure or path != "/" or domain):
            raise ConfigurationError(
                "a __Host- cookie must be Secure, have Path=/ and no Domain "
                f"(got secure={secure}, path={path!r}, domain={domain!r})"
            )
        if cookie_name.startswith("__Secure-") and not secure:
            raise ConfigurationError("a __Secure- cookie must be Secure")
        if samesite_value == "none" and not secure:
            raise ConfigurationError("SameSite=none requires Secure (browsers reject it otherwise)")
        if partitioned and not secure:
            raise ConfigurationError("a Partitioned cookie must be Secure")

        self.cookie_name = cookie_name
        self.path = path
        self.domain = domain
        self.secure = secure
        self.httponly = httponly
        self.samesite: SameSite = samesite_value  # type: ignore[assignment]
        self.partitioned = partitioned
        self.persistent = persistent
        self.model = APIKey(**{"in": APIKeyIn.cookie}, name=cookie_name)  # type: ignore[arg-type]
        self.scheme_name = scheme_name or type(self).__name__

        attributes = [f"Path={path}"]
        if domain:
            attributes.append(f"Domain={domain}")
        if httponly:
            attributes.append("HttpOnly")
        if secure:
            attributes.append("Secure")
        attributes.append(f"SameSite={samesite_value}")
        if partitioned:
            attributes.append("Partitioned")
        self._attributes = "; ".join(attributes)
        self._cookie_prefix = cookie_name + "="

    def candidates(self, scope: Scope) -> Iterator[str]:
        # A browser sends two cookies of one name when they differ in Path or Domain (or one was
        # planted from a sibling domain): each is tried in turn, and the first that verifies wins.
        for key, raw in scope["headers"]:
            if key != b"cookie":
                continue
            # Parse by hand: cheaper than SimpleCookie, and it never raises on junk.
            for chunk in raw.decode("latin-1").split(";"):
                chunk = chunk.strip()
                if chunk.startswith(self._cookie_prefix):
                    yield str(chunk[len(self._cookie_prefix):].strip('"'))

    def set_cookie_header(self, value: str, max_age: int | None) -> str:
        if max_age is None or not self.persistent:
            return f"{self._cookie_prefix}{value}; {self._attributes}"
        return f"{self._cookie_prefix}{value}; Max-Age={max(max_age, 0)}; {self._attributes}"

    def issue(self, headers: MutableHeaders, token: str, max_age: int) -> None:
        headers.append("set-cookie", self.set_cookie_header(self.sign(token), max_age))

    def clear(self, headers: MutableHeaders) -> None:
        headers.append(
            "set-cookie",
            f'{self._cookie_prefix}""; Max-Age=0; expires=Thu, 01 Jan 1970 00:00:00 GMT; '
            f"{self._attributes}",
        )


class SessionFrontend(CookieFrontend):
    """The default frontend: a signed ``session`` cookie with secure defaults.

    ``SessionFrontend(secret_key="...")`` is all most applications need; every
    option of :class:`CookieFrontend` is accepted.
    """
