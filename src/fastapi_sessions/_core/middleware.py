"""Pure ASGI middleware: ``request.session`` backed by a SessionManager."""

from __future__ import annotations

import logging

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import BackendUnavailable, SessionConflict, SessionTooLarge
from .devices import after_login, note_login
from .events import EventKind
from .manager import CommitOutcome, SessionManager

__all__ = ["SessionMiddleware"]

logger = logging.getLogger("fastapi_sessions")

_UNAVAILABLE = (503, b'{"detail":"The session store is unavailable; try again shortly."}')
_CONFLICT = (409, b'{"detail":"The session was changed by a concurrent request; retry."}')


def _too_large(exc: SessionTooLarge) -> tuple[int, bytes]:
    # 413: the request made the session bigger than the server accepts; resending it as is will not help.
    return 413, b'{"detail":"The session data is too large (limit: %d bytes); nothing was saved."}' % exc.limit


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
    success for a save that failed), logged once per outage rather than per
    request; a lost compare-and-set under ``conflict_policy="raise"`` gives a
    409, and data over ``max_session_size`` a 413 (nothing is saved).
    WebSocket connections get the session read-only.
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
        outage = manager._outage
        token = frontend.extract(scope)
        try:
            session = await manager.load(token)
        except BackendUnavailable as exc:
            outage.failed(exc, "loading a session")
            if scope["type"] == "http":
                await _send_error(send, _UNAVAILABLE)
            else:
                await send({"type": "websocket.close", "code": 1011})
            return
        scope["session"] = session
        if scope["type"] == "websocket":
            if outage.down and token is not None:  # the load reached the store
                outage.recovered()
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
            # A login (a change of user regenerates) records the device, saved with the login itself.
            login = session._regenerate and note_login(manager, session, scope)
            try:
                result = await manager.commit(session)
                if login:
                    await after_login(manager, session, result)  # max_sessions_per_user
            except BackendUnavailable as exc:
                replaced = True
                outage.failed(exc, "saving a session")
                await _send_error(send, _UNAVAILABLE)
                return
            except SessionConflict:
                replaced = True
                logger.warning("session save failed: SessionConflict")
                if manager._events.on:
                    manager._events.fire(EventKind.CONFLICT, session.key, session.user_id, "raised")
                await _send_error(send, _CONFLICT)
                return
            except SessionTooLarge as exc:
                replaced = True  # the manager logged it
                await _send_error(send, _too_large(exc))
                return
            # Back only once a whole request went through the store (a load alone may work while saves fail).
            if outage.down and (token is not None or result.outcome is not CommitOutcome.UNCHANGED):
                outage.recovered()
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
        except BackendUnavailable as exc:
            # The app itself hit the store (a manager call in a route, say).
            if started:
                raise
            outage.failed(exc, "in the application")
            await _send_error(send, _UNAVAILABLE)
        except SessionTooLarge as exc:  # a manager call in a route (create_session, say)
            if started:
                raise
            await _send_error(send, _too_large(exc))
