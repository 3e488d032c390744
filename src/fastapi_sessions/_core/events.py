"""Lifecycle events: what the manager and the middleware report to listeners.

Events are fired by the library itself, at the moment it does something (a
login regenerates the token, a logout retires the record, a save merges a
concurrent change), never from store notifications: those are node-local on a
cluster and lost while the app is down. An expiry is therefore seen when the
client comes back with the token (``ended``, reason ``"expired"``), not when it
happens.

Delivery is asynchronous. An event is handed to its listeners in a task of
its own that the manager tracks, so a slow listener (an audit sink across the
network, say) never holds up the response: the request pays for building the
event and scheduling the task, nothing more. Tasks run one after the other, so
every listener sees the events in the order they were fired; each call is
bounded by the listener's ``timeout``, the backlog by ``MAX_PENDING`` events
(beyond it events are dropped, with a warning), and ``SessionManager.aclose()``
drains what is left, for a bounded time. A listener that fails is logged and
the next one still runs. Without listeners nothing is built at all: every
hook is behind one attribute read (``EventHub.on``).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from ..errors import KEY_PREFIX_LENGTH, ConfigurationError

__all__ = ["MAX_PENDING", "EventHub", "EventKind", "EventListener", "SessionEvent"]

logger = logging.getLogger("fastapi_sessions")

#: Events waiting for their listeners, at most; more are dropped (and counted in a warning).
MAX_PENDING = 10_000
#: How often, in dropped events, the warning about a backlog repeats.
_DROP_REMINDER = 1_000
#: The middleware's names for where an outage was seen, as an event's ``reason``.
_OUTAGE_REASONS = {"loading a session": "load", "saving a session": "save", "in the application": "application"}


class EventKind(enum.StrEnum):
    """What happened; the value is the event's name (``"created"``, ...)."""

    CREATED = "created"  # a session was stored for the first time
    LOADED = "loaded"  # a request found its session (off unless a listener samples it)
    SAVED = "saved"  # changed data was stored (merged with a concurrent save, if there was one)
    REGENERATED = "regenerated"  # a new token for the same data; reason "login", "logout" or "regenerate"
    # reason "logout", "emptied" (every key popped) or "expired": a signed token came back and its session
    # was gone (the store keeps nothing to tell an expiry from an earlier revocation or purge)
    ENDED = "ended"
    REVOKED = "revoked"  # ended by the application's revocation call; reason names the call
    CONFLICT = "conflict"  # a compare-and-set lost; reason "merged" (saved anyway) or "raised" (409)
    STORE_UNAVAILABLE = "store_unavailable"  # the first failed request of an outage; reason load/save/application
    STORE_RECOVERED = "store_recovered"  # the store answers again; count: requests that failed meanwhile


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One lifecycle event. Never carries a token: sessions are named by a prefix of their storage key.

    ``key_prefix``: the first 8 characters of the storage key (the hash of the
    token, as :meth:`SessionManager.list_sessions` shows it), ``None`` when the
    event is about no one session. ``previous_key_prefix``: for ``regenerated``,
    the key the session had before. ``user_id``: the user the event concerns
    (for a logout, the one who logged out). ``count``: how many sessions a
    revocation ended, or how many requests failed during an outage.
    ``timestamp``: the manager's clock.
    """

    kind: EventKind
    timestamp: datetime
    key_prefix: str | None = None
    user_id: str | None = None
    reason: str | None = None
    count: int | None = None
    previous_key_prefix: str | None = None


#: An async callable that takes one event (its result is ignored).
EventListener = Callable[[SessionEvent], Awaitable[object]]


def _prefix(key: str | None) -> str | None:
    return None if key is None else key[:KEY_PREFIX_LENGTH]


def _is_async(listener: object) -> bool:
    return inspect.iscoroutinefunction(listener) or inspect.iscoroutinefunction(
        getattr(type(listener), "__call__", None))  # noqa: B004 - the class's __call__, not the object's


def _name(listener: object) -> str:
    return getattr(listener, "__qualname__", None) or type(listener).__qualname__


@dataclass(frozen=True, slots=True)
class _Registration:
    listener: EventListener
    sample_loaded: float
    timeout: float


class EventHub:
    """A manager's listeners and the tasks delivering events to them.

    ``on`` is true while anything listens: every hook in the manager checks it
    (one attribute read) before building an event. ``observe`` registers a
    synchronous callable called inline with every event (except ``loaded``):
    for instrumentation that only counts, such as ``fastapi_sessions.otel``.
    """

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.on = False
        #: Some listener samples ``loaded`` events.
        self.loads = False
        self._clock = clock
        self._listeners: tuple[_Registration, ...] = ()
        self._observers: tuple[Callable[[SessionEvent], None], ...] = ()
        self._pending: set[asyncio.Task[None]] = set()
        self._tail: asyncio.Task[None] | None = None
        self._dropped = 0

    # -- registration ------------------------------------------------------------------------

    def add(self, listener: EventListener, *, sample_loaded: float = 0.0, timeout: float = 5.0) -> None:
        if not _is_async(listener):
            raise ConfigurationError(
                f"an event listener must be an async function or an object with an async __call__, not {listener!r}",
                setting="listener")
        if isinstance(sample_loaded, bool) or not 0.0 <= sample_loaded <= 1.0:
            raise ConfigurationError(f"sample_loaded must be a fraction from 0 to 1, not {sample_loaded!r}",
                                     setting="sample_loaded")
        if isinstance(timeout, bool) or not timeout > 0:
            raise ConfigurationError(f"timeout must be a positive number of seconds, not {timeout!r}",
                                     setting="timeout")
        self._listeners = (*self._listeners, _Registration(listener, float(sample_loaded), float(timeout)))
        self._update()

    def remove(self, listener: EventListener) -> None:
        self._listeners = tuple(r for r in self._listeners if r.listener != listener)
        self._update()

    def observe(self, observer: Callable[[SessionEvent], None]) -> None:
        self._observers = (*self._observers, observer)
        self._update()

    def unobserve(self, observer: Callable[[SessionEvent], None]) -> None:
        self._observers = tuple(o for o in self._observers if o != observer)
        self._update()

    def _update(self) -> None:
        self.on = bool(self._listeners or self._observers)
        self.loads = any(r.sample_loaded > 0 for r in self._listeners)

    # -- firing ------------------------------------------------------------------------------

    def fire(
        self,
        kind: EventKind,
        key: str | None = None,
        user_id: str | None = None,
        reason: str | None = None,
        *,
        count: int | None = None,
        previous_key: str | None = None,
    ) -> None:
        """Build the event and hand it to observers (inline) and listeners (in a task). Never raises."""
        try:
            event = SessionEvent(kind, self._clock(), _prefix(key), user_id, reason, count, _prefix(previous_key))
        except Exception:  # a clock that fails here must not fail the request that fired the event
            logger.exception("session event %s not fired: the clock failed", kind.value)
            return
        for observer in self._observers:
            try:
                observer(event)
            except Exception:
                logger.exception("session event observer %s failed on a %s event", _name(observer), kind.value)
        if self._listeners:
            self._schedule(event, self._listeners)

    def loaded(self, key: str, user_id: str | None) -> None:
        """A request found its session: reported to the listeners whose sample this load falls in."""
        draw = random.random()
        chosen = tuple(r for r in self._listeners if r.sample_loaded > draw)
        if chosen:
            self._schedule(SessionEvent(EventKind.LOADED, self._clock(), _prefix(key), user_id), chosen)

    def revoked(self, reason: str, *, key: str | None = None, user_id: str | None = None, count: int = 1) -> None:
        """Sessions were revoked (``reason``: the call, e.g. ``"revoke_user"``); nothing when ``count`` is 0."""
        if self.on and count:
            self.fire(EventKind.REVOKED, key, user_id, reason, count=count)

    def outage(self, down: bool, where: str, failed: int) -> None:
        """``OutageLog``'s hook: the store stopped answering (``down``) or answers again."""
        if not self.on:
            return
        if down:
            self.fire(EventKind.STORE_UNAVAILABLE, reason=_OUTAGE_REASONS.get(where, where))
        else:
            self.fire(EventKind.STORE_RECOVERED, count=failed)

    # -- delivery ----------------------------------------------------------------------------

    def _schedule(self, event: SessionEvent, registrations: tuple[_Registration, ...]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # fired outside an event loop: there is nowhere to run a listener
            logger.warning("session event %s dropped: fired outside an event loop", event.kind.value)
            return
        if len(self._pending) >= MAX_PENDING:
            self._dropped += 1
            if self._dropped % _DROP_REMINDER == 1:
                logger.warning("session event listeners are behind (%d events waiting): %d events dropped so far",
                               len(self._pending), self._dropped)
            return
        tail = self._tail
        previous = tail if tail is not None and not tail.done() and tail.get_loop() is loop else None
        task = loop.create_task(self._deliver(event, registrations, previous))
        self._tail = task
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    @staticmethod
    async def _deliver(
        event: SessionEvent, registrations: tuple[_Registration, ...], previous: asyncio.Task[None] | None
    ) -> None:
        if previous is not None:
            await asyncio.wait((previous,))  # in firing order; the previous one is bounded by its timeouts
        for registration in registrations:
            try:
                async with asyncio.timeout(registration.timeout):
                    await registration.listener(event)
            except TimeoutError:
                logger.warning("session event listener %s did not finish a %s event within %.3g s; abandoned",
                               _name(registration.listener), event.kind.value, registration.timeout)
            except Exception:
                logger.exception("session event listener %s failed on a %s event",
                                 _name(registration.listener), event.kind.value)

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for this loop's pending deliveries; cancel the rest.

        Returns how many events were not delivered.
        """
        loop = asyncio.get_running_loop()
        mine = [task for task in self._pending if task.get_loop() is loop]
        if not mine:
            return 0
        _, late = await asyncio.wait(mine, timeout=grace)
        if not late:
            return 0
        for task in late:
            task.cancel()
        await asyncio.wait(late, timeout=1.0)  # a listener that swallows the cancellation is not waited for
        logger.warning("%d session events not delivered: their listeners were still busy after %.3g s",
                       len(late), grace)
        return len(late)
