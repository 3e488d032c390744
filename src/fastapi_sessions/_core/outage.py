"""Outage logging: one warning when the store stops answering, one when it is back, a count between.

During an outage every request fails the same way; a traceback per request
would bury everything else in the log (thousands a second under load). Each
failed request gets a DEBUG record with its traceback instead, for whoever
needs it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

__all__ = ["OutageLog"]

logger = logging.getLogger("fastapi_sessions")

# A URL's credentials, should a message carry one: user:password@ becomes user:***@.
_CREDENTIALS = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")
_MAX_MESSAGE = 300


def describe(exc: BaseException) -> str:
    """The exception's type and message (credentials masked, bounded), and the type of its cause."""
    message = _CREDENTIALS.sub(r"\1***@", str(exc))
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "…"
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        text += f" (from {type(cause).__module__}.{type(cause).__qualname__})"
    return text


class OutageLog:
    """Tracks whether the store is answering, for one manager; safe to share between tasks and threads.

    ``failed`` logs a WARNING the first time (with the cause), then only counts,
    with a reminder every ``remind_every`` seconds while the outage lasts;
    ``recovered`` logs one WARNING with the duration and the count. ``down`` is
    read without the lock so a healthy request pays one attribute read.
    """

    def __init__(self, *, remind_every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.down = False
        self.remind_every = remind_every
        self._clock = clock
        self._lock = threading.Lock()
        self._since = 0.0
        self._reminded = 0.0
        self._failed = 0
        #: Called (outside the lock) when an outage starts, ``(True, where, 1)``, and when it ends,
        #: ``(False, "", failed requests)``: the manager's events hook in here.
        self.on_change: Callable[[bool, str, int], None] | None = None

    def failed(self, exc: BaseException, where: str) -> None:
        """A request failed because the store is unavailable (``where``: what it was doing)."""
        with self._lock:
            now = self._clock()
            first = not self.down
            if first:
                self.down, self._since, self._reminded, self._failed = True, now, now, 1
                remind = False
            else:
                self._failed += 1
                remind = now - self._reminded >= self.remind_every
                if remind:
                    self._reminded = now
            failed, lasted = self._failed, now - self._since
        if first:
            logger.warning("session store unavailable (%s): %s; requests get 503 until it answers again",
                           where, describe(exc))
            if self.on_change is not None:
                self.on_change(True, where, 1)
        elif remind:
            logger.warning("session store still unavailable after %.0f s: %d requests failed so far; last: %s",
                           lasted, failed, describe(exc))
        logger.debug("session store unavailable while %s", where, exc_info=exc)

    def recovered(self) -> None:
        """A request reached the store again; logs the end of the outage once."""
        with self._lock:
            if not self.down:
                return  # another request saw it first
            self.down = False
            failed, lasted = self._failed, self._clock() - self._since
        logger.warning("session store is back after %.1f s; %d requests failed with 503 meanwhile", lasted, failed)
        if self.on_change is not None:
            self.on_change(False, "", failed)
