"""CSRF protection tied to the session: a cross-site check, then a synchronizer token kept in the session.

``CSRFMiddleware`` runs inside ``SessionMiddleware`` (so ``scope["session"]``
exists). For an unsafe method on a cookie session it rejects, in order:

1. cross-site requests, by Fetch Metadata (``Sec-Fetch-Site``) or, when a browser
   sends none, by ``Origin`` (else ``Referer``) against the request's own origin
   and ``trusted_origins``;
2. requests whose token, sent in a header or a form field, is not the one kept in
   the session's metadata (``"csrf"``, dropped by a change of user, so a login
   rotates it), compared in constant time.

A form body is read only when the header is absent, buffered up to
``max_body_size`` (over it, a 413) and replayed to the application unchanged.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Iterable
from hmac import compare_digest
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._core.dependencies import session_of
from ._core.manager import SessionManager
from ._core.session import Session
from .errors import ConfigurationError
from .frontends.header import HeaderFrontend

__all__ = ["CSRF_META", "SAFE_METHODS", "CSRFMiddleware", "csrf_token"]

logger = logging.getLogger("fastapi_sessions.csrf")

#: The session metadata name of the token; login-scoped (``LOGIN_SCOPED_META``), so a login rotates it.
CSRF_META: Final = "csrf"
#: Methods that must not change state (RFC 9110 section 9.2.1): never checked.
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_FORM = b"application/x-www-form-urlencoded"
_MULTIPART = b"multipart/form-data"
_PART_NAME = re.compile(rb';\s*name\s*=\s*(?:"([^"]*)"|([^\s;]+))', re.IGNORECASE)
_FILENAME = re.compile(rb";\s*filename\*?\s*=", re.IGNORECASE)
_BOUNDARY = re.compile(rb';\s*boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))', re.IGNORECASE)

_REASONS: Final = {
    "cross_site": "the request comes from another site",
    "origin_mismatch": "the request's Origin is neither this site nor a trusted origin",
    "referer_mismatch": "the request's Referer is neither this site nor a trusted origin",
    "no_session_token": "the session holds no CSRF token: render the form (or fetch the page) that calls "
    "csrf_token(request) first, with cookies enabled",
    "token_missing": "no CSRF token was sent (header {header} or form field {field})",
    "token_mismatch": "the CSRF token does not match the session's (it rotates on login: reload the page)",
}


def csrf_token(request: HTTPConnection) -> str:
    """The session's CSRF token, for a form's hidden field or an SPA's ``X-CSRF-Token`` header.

    Created (256 bits from :mod:`secrets`) on first use, which saves the session
    once (an anonymous one too, so a login form is protected); later calls write
    nothing. A login (a change of ``user_id``) drops it: the next call makes a new one.
    """
    session = session_of(request)
    token = session.get_meta(CSRF_META)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        session.set_meta(CSRF_META, token)
    return token


def _origin(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, lower-case, default port left out; ``None`` if not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def _media_type(value: bytes) -> bytes:
    return value.split(b";", 1)[0].strip().lower()


def _param(pattern: re.Pattern[bytes], value: bytes) -> bytes | None:
    match = pattern.search(value)
    return None if match is None else (match.group(1) if match.group(1) is not None else match.group(2))


def _urlencoded_field(body: bytes, name: str) -> str | None:
    for key, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
        if key == name:
            return value
    return None


def _multipart_field(body: bytes, content_type: bytes, name: str) -> str | None:
    """The first non-file part called ``name`` of a ``multipart/form-data`` body (RFC 7578)."""
    boundary = _param(_BOUNDARY, content_type)
    if not boundary:
        return None
    wanted = name.encode()
    for part in body.split(b"--" + boundary)[1:]:
        if part.startswith(b"--"):  # the closing delimiter
            break
        head, separator, value = part.partition(b"\r\n\r\n")
        if not separator:
            continue
        for line in head.split(b"\r\n"):
            key, _, disposition = line.partition(b":")
            if key.strip().lower() != b"content-disposition" or _FILENAME.search(disposition):
                continue
            if _param(_PART_NAME, disposition) == wanted:
                return value.removesuffix(b"\r\n").decode("utf-8", "replace")
    return None


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or ``None`` if the client went away; ``_TooLarge`` past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the application the buffered body, then whatever the client sends next."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _respond(send: Send, status: int, content: dict[str, str]) -> None:
    body = json.dumps(content).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class CSRFMiddleware:
    """Rejects cross-site and token-less unsafe requests on cookie sessions with a 403.

    Install it *inside* ``SessionMiddleware``: with ``add_middleware``, add it
    first (the last one added runs first)::

        app.add_middleware(CSRFMiddleware, manager=manager)
        app.add_middleware(SessionMiddleware, manager=manager)

    Safe methods, ``exempt_paths`` (a ``str`` is an exact path, a compiled
    pattern must match the whole path) and a manager whose frontend is a
    :class:`~fastapi_sessions.HeaderFrontend` (a browser never attaches its
    token by itself) pass unchecked. ``Sec-Fetch-Site: same-site`` (a sibling
    subdomain) is rejected unless ``allow_same_site``; ``trusted_origins``
    (``"https://app.example.com"``, or ``"https://*.example.com"`` for every
    subdomain) may post from elsewhere, with the token. The token comes from the
    ``header_name`` header, else from the ``field_name`` field of an urlencoded or
    multipart form of at most ``max_body_size`` bytes (larger: a 413).

    A failure is a 403 ``{"detail": ..., "reason": ...}``, with ``reason`` one of
    ``cross_site``, ``origin_mismatch``, ``referer_mismatch``,
    ``no_session_token``, ``token_missing``, ``token_mismatch``, and a WARNING on
    the ``fastapi_sessions.csrf`` logger (method, path, reason; never a token).
    """

    def __init__(
        self,
        app: ASGIApp,
        manager: SessionManager,
        *,
        header_name: str = "X-CSRF-Token",
        field_name: str = "csrf_token",
        trusted_origins: Iterable[str] = (),
        allow_same_site: bool = False,
        exempt_paths: Iterable[str | re.Pattern[str]] = (),
        max_body_size: int = 1024 * 1024,
    ) -> None:
        if not header_name or not header_name.isascii() or not header_name.replace("-", "").isalnum():
            raise ConfigurationError(f"invalid CSRF header name {header_name!r}", setting="header_name")
        if not field_name:
            raise ConfigurationError("the CSRF form field name must not be empty", setting="field_name")
        if isinstance(max_body_size, bool) or not isinstance(max_body_size, int) or max_body_size < 1:
            raise ConfigurationError("max_body_size must be a positive number of bytes", setting="max_body_size")
        self.app = app
        self.manager = manager
        self.header_name = header_name
        self.field_name = field_name
        self.allow_same_site = allow_same_site
        self.max_body_size = max_body_size
        #: Off for a header (or bearer) transport: nothing a browser sends on its own carries the token.
        self.enabled = not isinstance(manager.frontend, HeaderFrontend)
        self._header = header_name.lower().encode("latin-1")
        self._trusted: set[str] = set()
        self._trusted_suffixes: list[tuple[str, str]] = []  # (scheme://, .domain[:port])
        for entry in trusted_origins:
            scheme, separator, rest = entry.partition("://*.")
            if separator:
                origin = _origin(f"{scheme}://{rest}")
                if origin is None:
                    raise ConfigurationError(f"invalid trusted origin {entry!r}", setting="trusted_origins")
                prefix, _, domain = origin.partition("://")
                self._trusted_suffixes.append((prefix + "://", "." + domain))
                continue
            origin = _origin(entry)
            if origin is None or urlsplit(entry).path not in ("", "/"):
                raise ConfigurationError(f"invalid trusted origin {entry!r} (scheme://host[:port])",
                                         setting="trusted_origins")
            self._trusted.add(origin)
        self._exact: set[str] = set()
        self._patterns: list[re.Pattern[str]] = []
        for path in exempt_paths:
            if isinstance(path, str):
                self._exact.add(path)
            else:
                self._patterns.append(path)

    def _exempt(self, path: str) -> bool:
        return path in self._exact or any(pattern.fullmatch(path) for pattern in self._patterns)

    def _trusted_origin(self, origin: str | None, own: str | None) -> bool:
        if origin is None:
            return False
        if origin == own or origin in self._trusted:
            return True
        return any(origin.startswith(scheme) and origin.endswith(domain) for scheme, domain in self._trusted_suffixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] in SAFE_METHODS or not self.enabled
                or self._exempt(scope["path"])):
            await self.app(scope, receive, send)
            return
        session = scope.get("session")
        if not isinstance(session, Session):
            raise RuntimeError("CSRFMiddleware needs a session: add it before SessionMiddleware "
                               "(app.add_middleware(CSRFMiddleware, ...), then "
                               "app.add_middleware(SessionMiddleware, ...))")
        headers: dict[bytes, bytes] = {}
        for key, value in scope["headers"]:
            headers.setdefault(key, value)
        reason = self._cross_site(scope, headers)
        if reason is None:
            expected = session.get_meta(CSRF_META)
            if not isinstance(expected, str) or not expected:
                reason = "no_session_token"
            else:
                sent = headers.get(self._header, b"").strip()
                content_type = headers.get(b"content-type", b"")
                if not sent and _media_type(content_type) in (_FORM, _MULTIPART):
                    try:
                        body = await self._read_form(receive, headers)
                    except _TooLarge:
                        logger.warning("CSRF check refused %s %r: form body over max_body_size=%d",
                                       scope["method"], scope["path"], self.max_body_size)
                        detail = f"The form is too large to check its CSRF token (limit: {self.max_body_size} bytes)."
                        await _respond(send, 413, {"detail": detail, "reason": "body_too_large"})
                        return
                    if body is None:  # the client went away
                        return
                    field = (_urlencoded_field(body, self.field_name) if _media_type(content_type) == _FORM
                             else _multipart_field(body, content_type, self.field_name))
                    sent = b"" if field is None else field.strip().encode()
                    receive = _replay(body, receive)
                if not sent:
                    reason = "token_missing"
                elif not compare_digest(sent, expected.encode()):
                    reason = "token_mismatch"
        if reason is None:
            await self.app(scope, receive, send)
            return
        logger.warning("CSRF check failed: %s %r (%s)", scope["method"], scope["path"], reason)
        detail = _REASONS[reason].format(header=self.header_name, field=self.field_name)
        await _respond(send, 403, {"detail": f"CSRF check failed: {detail}.", "reason": reason})

    async def _read_form(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes | None:
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        if declared > self.max_body_size:  # refused before a byte is read
            raise _TooLarge
        return await _read_body(receive, self.max_body_size)

    def _cross_site(self, scope: Scope, headers: dict[bytes, bytes]) -> str | None:
        """Why the request is cross-site, or ``None``: Fetch Metadata first, else Origin, else Referer."""
        site = headers.get(b"sec-fetch-site", b"").strip().lower()
        if site in (b"same-origin", b"none"):
            return None
        if site == b"same-site" and self.allow_same_site:
            return None
        host = headers.get(b"host")
        if host is None and scope.get("server"):
            server_host, port = scope["server"]
            host = f"{server_host}:{port}".encode("latin-1") if port else str(server_host).encode("latin-1")
        own = _origin(f"{scope.get('scheme', 'http')}://{(host or b'').decode('latin-1')}")
        origin_header = headers.get(b"origin")
        origin = None if origin_header is None else _origin(origin_header.decode("latin-1"))
        if site in (b"cross-site", b"same-site"):
            return None if self._trusted_origin(origin, None) else "cross_site"
        # No Fetch Metadata (an older browser, or not a browser): the Origin, else the Referer.
        if origin_header is not None:
            return None if self._trusted_origin(origin, own) else "origin_mismatch"
        referer = headers.get(b"referer", b"").strip()
        if referer:
            return None if self._trusted_origin(_origin(referer.decode("latin-1")), own) else "referer_mismatch"
        return None  # a client that says nothing: only the token decides
