"""Pure ASGI middleware: ``request.session`` backed by a SessionManager."""

from __future__ import annotations

import logging

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import BackendUnavailable, SessionConflict
from .manager import SessionManager

__all__ = ["SessionMiddleware"]

logger = logging.getLogger("fastapi_sessions")

_UNAVAILABLE = (503, b'{"detail":"The session store is unavailable; try again shortly."}')
_CONFLICT = (409, b'{"detail":"The session was changed by a concurrent request; retry."}')


async def _send_error(send: Send, error: tuple[int, bytes]) -> None:
    status, body = error
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _raw_headers(message: Message) -> list[tuple[bytes, bytes]]:
    """The response start's header list, created if the app sent none (ASGI allows leaving it out)."""
    headers = message.get("headers")
    if not isinstance(headers, list):
        headers = message["headers"] = list(headers or ())
    return headers


def _add_vary(message: Message, name: bytes) -> None:
    """Add ``name`` to the response's Vary header unless one of its tokens already names it (or ``*``)."""
    headers = _raw_headers(message)
    wanted = name.lower()
    for index, (key, value) in enumerate(headers):
        if key.lower() == b"vary":
            tokens = {token.strip().lower() for token in value.split(b",")}
            if wanted not in tokens and b"*" not in tokens:
                headers[index] = (key, value + b", " + name)
            return
    headers.append((b"vary", name))


def _private(message: Message) -> None:
    """A response that hands out or clears a token is for one client: no shared cache may store it."""
    headers = _raw_headers(message)
    for index, (key, value) in enumerate(headers):
        if key.lower() == b"cache-control":
            directives = [d.strip() for d in value.split(b",") if d.strip()]
            kept = [d for d in directives if d.lower() != b"public" and not d.lower().startswith(b"s-maxage")]
            if not any(d.lower() in (b"private", b"no-store") for d in kept):
                kept.insert(0, b"private")
            headers[index] = (key, b", ".join(kept))
            return
    headers.append((b"cache-control", b"private, no-store"))


class SessionMiddleware:
    """Loads the session before the app runs and saves it before the headers leave.

    ``scope["session"]`` holds a :class:`~fastapi_sessions.Session`, so
    ``request.session`` works as with Starlette's middleware. The save happens
    when the app starts its response, whatever response class it returns, so a
    ``RedirectResponse`` carries the cookie too. If the store is unreachable the
    client gets a 503 instead of the app's response (never a 500, and never a
    success for a save that failed); a lost compare-and-set under
    ``conflict_policy="raise"`` gives a 409. WebSocket connections get the
    session read-only.
    """

    def __init__(self, app: ASGIApp, manager: SessionManager) -> None:
        self.app = app
        self.manager = manager
        self.vary = getattr(manager.frontend, "vary", "Cookie")
        self._vary = self.vary.encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        manager = self.manager
        frontend = manager.frontend
        try:
            session = await manager.load(frontend.extract(scope))
        except BackendUnavailable:
            logger.warning("session store unavailable while loading a session", exc_info=True)
            if scope["type"] == "http":
                await _send_error(send, _UNAVAILABLE)
            else:
                await send({"type": "websocket.close", "code": 1011})
            return
        scope["session"] = session
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        started = False
        replaced = False
        vary = self._vary

        async def send_wrapper(message: Message) -> None:
            nonlocal started, replaced
            if message["type"] != "http.response.start":
                if not replaced:
                    await send(message)
                return
            started = True
            try:
                result = await manager.commit(session)
            except (BackendUnavailable, SessionConflict) as exc:
                replaced = True
                unavailable = isinstance(exc, BackendUnavailable)
                logger.warning("session save failed: %s", type(exc).__name__, exc_info=unavailable)
                await _send_error(send, _UNAVAILABLE if unavailable else _CONFLICT)
                return
            if session.accessed:
                _add_vary(message, vary)
            if result.token is not None or result.clear:
                _private(message)
                headers = MutableHeaders(raw=_raw_headers(message))
                if result.token is not None:
                    frontend.issue(headers, result.token, result.max_age)
                else:
                    frontend.clear(headers)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BackendUnavailable:
            # The app itself hit the store (a manager call in a route, say).
            if started:
                raise
            logger.warning("session store unavailable in the application", exc_info=True)
            await _send_error(send, _UNAVAILABLE)
