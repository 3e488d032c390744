"""The application's lifespan: close the backend on shutdown, optionally purge expired sessions periodically.

``SessionManager.lifespan`` builds a :class:`SessionLifespan`; FastAPI and
Starlette call it with the app at startup, and its context closes the backend
at shutdown, after the application's own lifespan (which it may wrap) has
ended. With ``purge_every``, a background task runs ``purge_expired()`` right
away and then once per period; a failed purge is logged and tried again the
next period, and the task is stopped (never left running) before the backend
closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, SessionError
from .options import as_timedelta

if TYPE_CHECKING:
    from .manager import SessionManager

__all__ = ["AppLifespan", "SessionLifespan"]

logger = logging.getLogger("fastapi_sessions")

#: Seconds shutdown waits for a cancelled purge to end.
_STOP_TIMEOUT = 10.0

#: An application's own lifespan, as FastAPI and Starlette take it: ``app -> async context manager``.
AppLifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


class SessionLifespan:
    """A lifespan for ``FastAPI(lifespan=...)`` or ``Starlette(lifespan=...)`` (see ``SessionManager.lifespan``).

    Each call with the app opens one run: startup enters ``wraps`` (the
    application's own lifespan, if given) and starts the periodic purge;
    shutdown stops the purge, exits ``wraps`` and closes the backend. What
    ``wraps`` yields (Starlette's lifespan state) is yielded on.
    """

    def __init__(self, manager: SessionManager, *, purge_every: timedelta | float | None = None,
                 wraps: AppLifespan | None = None) -> None:
        self.manager = manager
        self.purge_every = None if purge_every is None else as_timedelta(purge_every, "purge_every")
        if wraps is not None and not callable(wraps):
            raise ConfigurationError("wraps must be the application's lifespan: a callable taking the app",
                                     setting="wraps")
        self.wraps = wraps

    def __call__(self, app: Any) -> AbstractAsyncContextManager[Any]:
        return self._run(app)

    @asynccontextmanager
    async def _run(self, app: Any) -> AsyncIterator[Any]:
        try:
            async with self.wraps(app) if self.wraps is not None else nullcontext() as state:
                purging = None
                if self.purge_every is not None:
                    purging = asyncio.create_task(_purge_forever(self.manager, self.purge_every),
                                                  name="fastapi-sessions periodic purge")
                try:
                    yield state
                finally:
                    if purging is not None:
                        await _stop(purging)
        finally:
            await _close(self.manager)


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel the purge task and wait for it, a bounded while: shutdown never hangs on a stuck store."""
    task.cancel()
    # wait() neither raises the task's CancelledError nor swallows a cancellation of our own.
    await asyncio.wait([task], timeout=_STOP_TIMEOUT)
    if not task.done():
        logger.warning("the periodic session purge did not stop within %s s; leaving it", _STOP_TIMEOUT)


async def _close(manager: SessionManager) -> None:
    try:
        await manager.aclose()
    except SessionError as exc:
        logger.warning("closing the session backend failed: %s", exc)
    except Exception as exc:  # shutdown goes on: the process is ending anyway
        logger.warning("closing the session backend failed: %s", type(exc).__name__)


async def _purge_forever(manager: SessionManager, period: timedelta) -> None:
    """``purge_expired()`` now and then once per ``period``, until cancelled; a failure waits for the next period."""
    seconds = period.total_seconds()
    while True:
        try:
            removed = await manager.purge_expired()
        except SessionError as exc:  # a store outage, mostly: its message names no secret
            logger.warning("periodic session purge failed, next try in %s: %s", period, exc)
        except Exception as exc:  # a backend's bug must not end the loop (or the app)
            logger.warning("periodic session purge failed, next try in %s: %s", period, type(exc).__name__)
        else:
            if removed:
                logger.debug("periodic session purge removed %d expired records", removed)
        await asyncio.sleep(seconds)
