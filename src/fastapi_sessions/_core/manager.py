"""SessionManager: the session rules, identical on every backend.

This module holds the manager's configuration and its public API (loading, the
direct API, the per-user index); what a save writes is core/saving.py's, the
merge of concurrent changes core/merge.py's.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, overload

from pydantic import BaseModel

from ..errors import ConfigurationError, SerializationError
from .clock import Clock, utc_now
from .commit import Commit, CommitOutcome
from .contract import Frontend, SessionBackend, SupportsReadAndTouch
from .dependencies import model_dependency, optional_user_dependency, session_dependency, user_dependency
from .direct import DirectAPI
from .events import EventHub, EventKind, EventListener
from .lifespan import AppLifespan, SessionLifespan
from .markers import read_marker, retired_key
from .merge import ConflictPolicy
from .options import (
    DEFAULT_MAX_SESSION_SIZE,
    as_timedelta,
    check_cap,
    check_clock,
    check_manager_options,
    check_size,
    is_memory,
    takes_clock,
)
from .outage import OutageLog
from .records import SessionRecord
from .registry import from_url as backend_from_url
from .registry import mask_url
from .saving import MAX_HOPS
from .serializers import JSONSerializer, Serializer
from .session import Session, split_stored
from .tokens import SecretKey, cached_storage_key

if TYPE_CHECKING:
    from .settings import SessionSettings

__all__ = ["DEFAULT_MAX_SESSION_SIZE", "Commit", "CommitOutcome", "ConflictPolicy", "SessionManager"]

logger = logging.getLogger("fastapi_sessions")

M = TypeVar("M", bound=BaseModel)


class SessionManager(DirectAPI):
    """Loads, saves, regenerates and revokes sessions on any backend.

    Tokens are 256-bit, signed by ``frontend`` and stored only as a hash.
    Unknown, expired or forged tokens are never adopted. Two server-side clocks
    apply: ``idle_timeout`` (extended by use, at most once per
    ``idle_refresh_interval``) and ``absolute_timeout`` (counted from login or
    creation, never extended); ``clock`` alone judges both, on every backend.
    Nothing is stored until a session holds data, and a request that only reads
    writes nothing. Every save, login, regeneration and logout is a
    compare-and-set on the record's version; on a conflict this request's
    key-level changes are re-applied to the fresh record (through the forward a
    concurrent regeneration left, if any), and ``conflict_policy`` decides what
    happens when both sides changed the same key. The client is sent a cookie
    only when its token changes, living to the absolute deadline.
    """

    def __init__(
        self,
        backend: SessionBackend,
        frontend: Frontend,
        *,
        idle_timeout: timedelta | float = timedelta(minutes=30),
        absolute_timeout: timedelta | float = timedelta(hours=8),
        idle_refresh_interval: timedelta | float | None = None,
        regenerate_grace: timedelta | float = 0,
        conflict_policy: ConflictPolicy = "last_writer_wins",
        max_save_attempts: int = 64,
        max_session_size: int | None = DEFAULT_MAX_SESSION_SIZE,
        serializer: Serializer | None = None,
        clock: Clock = utc_now,
        max_sessions_per_user: int | None = None,
        record_user_agent: bool = True,
        record_ip: bool = False,
    ) -> None:
        self.backend = backend
        self.frontend = frontend
        self.idle_timeout = as_timedelta(idle_timeout, "idle_timeout")
        self.absolute_timeout = as_timedelta(absolute_timeout, "absolute_timeout")
        if idle_refresh_interval is None:
            self.idle_refresh_interval = min(timedelta(minutes=1), self.idle_timeout / 4)
        else:
            self.idle_refresh_interval = as_timedelta(idle_refresh_interval, "idle_refresh_interval")
        if self.idle_refresh_interval >= self.idle_timeout:
            raise ConfigurationError("idle_refresh_interval must be shorter than idle_timeout")
        # A record is due for an idle extension once now + idle - refresh reaches its expiry.
        self._touch_slack = self.idle_timeout - self.idle_refresh_interval
        # A backend that reads and extends in one round trip is used that way.
        self._read_and_touch = backend.read_and_touch if isinstance(backend, SupportsReadAndTouch) else None
        grace = regenerate_grace if isinstance(regenerate_grace, timedelta) else timedelta(
            seconds=regenerate_grace)
        if grace < timedelta(0):
            raise ConfigurationError("regenerate_grace must not be negative")
        self.regenerate_grace = grace
        if conflict_policy not in ("last_writer_wins", "raise"):
            raise ConfigurationError("conflict_policy must be 'last_writer_wins' or 'raise'")
        self.conflict_policy = conflict_policy
        if max_save_attempts < 1:
            raise ConfigurationError("max_save_attempts must be at least 1")
        self.max_save_attempts = max_save_attempts
        #: Bytes of serialized data a session may hold (``None``: no cap); a save over it stores nothing.
        self.max_session_size = check_size(max_session_size)
        self.serializer = serializer or JSONSerializer()
        self._json_payloads = type(self.serializer) is JSONSerializer
        # Store outages are logged once when they start and once when they end, not per request.
        self._outage = OutageLog()
        check_clock(clock)
        self.clock = clock
        #: At login, the user's oldest sessions beyond this many end (``None``: no cap). See core/devices.py.
        self.max_sessions_per_user = check_cap(max_sessions_per_user)
        #: What a login records for the device list: the User-Agent (truncated) and the client IP (personal data).
        self.record_user_agent = bool(record_user_agent)
        self.record_ip = bool(record_ip)
        # Lifecycle events (core/events.py): nothing is built while nobody listens.
        self._events = EventHub(self._now)
        self._outage.on_change = self._events.outage
        #: Dependency: the request's :class:`Session` (needs ``SessionMiddleware``).
        self.session = session_dependency(frontend)
        #: Dependency: the logged-in user id; 401 when there is none.
        self.user = user_dependency(frontend)
        #: Dependency: the logged-in user id or ``None``.
        self.optional_user = optional_user_dependency(frontend)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        secret_key: SecretKey | Sequence[SecretKey] | None = None,
        frontend: Frontend | None = None,
        backend_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Self:
        """A manager on the backend ``url`` names, with a :class:`SessionFrontend` by default.

        ``SessionManager.from_url("redis://localhost/0", secret_key="...")``.
        ``backend_options`` go to the backend's factory, other keyword options
        to the manager. A secret key is required unless ``frontend`` is given,
        except for ``memory://``: its data dies with the process, so a random
        per-process key is generated.
        """
        from ..frontends.cookie import SessionFrontend  # the default frontend; core imports no frontend up front

        check_manager_options(cls, options)
        if frontend is None:
            if secret_key is None:
                if not is_memory(url):
                    raise ConfigurationError(
                        "a secret key is required: pass secret_key=... or set FASTAPI_SESSIONS_SECRET_KEY"
                    )
                secret_key = secrets.token_urlsafe(32)
            frontend = SessionFrontend(secret_key)
        elif secret_key is not None:
            raise ConfigurationError("pass either secret_key or frontend, not both")
        backend_options = dict(backend_options or {})
        # One clock: the backend judges direct calls (without ``now``) by the manager's clock too.
        if "clock" in options and "clock" not in backend_options and takes_clock(url):
            backend_options["clock"] = options["clock"]
        return cls(backend_from_url(url, **backend_options), frontend, **options)

    @classmethod
    def from_settings(cls, settings: SessionSettings | None = None, **options: Any) -> Self:
        """A manager configured from :class:`SessionSettings` (by default, the environment)."""
        from ..frontends.cookie import SessionFrontend  # as in from_url
        from .settings import SessionSettings

        settings = settings or SessionSettings()
        keys: list[str] = settings.keys()
        if not keys:
            if not is_memory(settings.url):
                raise ConfigurationError(f"FASTAPI_SESSIONS_SECRET_KEY is required for {mask_url(settings.url)}")
            keys = [secrets.token_urlsafe(32)]  # memory:// data dies with the process; so may its key
        frontend = SessionFrontend(
            keys,
            cookie_name=settings.cookie_name,
            secure=settings.cookie_secure,
            samesite=settings.cookie_samesite,
            domain=settings.cookie_domain,
            path=settings.cookie_path,
            partitioned=settings.cookie_partitioned,
            persistent=settings.cookie_persistent,
        )
        options.setdefault("idle_timeout", settings.idle_timeout)
        options.setdefault("absolute_timeout", settings.absolute_timeout)
        options.setdefault("max_session_size", settings.max_session_size)
        options.setdefault("max_sessions_per_user", settings.max_sessions_per_user)
        options.setdefault("record_user_agent", settings.record_user_agent)
        options.setdefault("record_ip", settings.record_ip)
        return cls.from_url(settings.url, frontend=frontend, **options)

    def model(self, model: type[M]) -> Callable[..., Awaitable[M]]:
        """Dependency: the session data validated as ``model`` (422 when it does not fit)."""
        return model_dependency(self.frontend, model)

    # -- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Deliver pending events (for up to 5 s), then close the backend's connections."""
        await self._events.drain(5.0)
        await self.backend.aclose()

    @overload
    def lifespan(self, app: Any, /, *, purge_every: timedelta | float | None = None,
                 wraps: AppLifespan | None = None) -> AbstractAsyncContextManager[Any]: ...

    @overload
    def lifespan(self, *, purge_every: timedelta | float | None = None,
                 wraps: AppLifespan | None = None) -> SessionLifespan: ...

    def lifespan(self, app: Any = None, *, purge_every: timedelta | float | None = None,
                 wraps: AppLifespan | None = None) -> AbstractAsyncContextManager[Any] | SessionLifespan:
        """The app's lifespan: closes the backend on shutdown; ``purge_every`` also purges periodically.

        ``FastAPI(lifespan=manager.lifespan)`` as it is, or configured:
        ``FastAPI(lifespan=manager.lifespan(purge_every=timedelta(hours=1), wraps=app_lifespan))``, where
        ``wraps`` is the application's own lifespan, run inside (its state is passed on). The purge
        runs at startup and then every period in a background task; a failure is logged and tried
        again the next period; the task stops before the backend closes.
        """
        configured = SessionLifespan(self, purge_every=purge_every, wraps=wraps)
        return configured if app is None else configured(app)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- events -----------------------------------------------------------------------------

    def add_listener(self, listener: EventListener, *, sample_loaded: float = 0.0, timeout: float = 5.0) -> None:
        """Call the async ``listener`` with every lifecycle :class:`SessionEvent` from now on.

        Events are delivered in order, in tasks the manager tracks, so a listener
        never delays a response; each call is cut off after ``timeout`` seconds, and
        an exception is logged, never raised. ``loaded`` events (one per request
        with a session) are off unless ``sample_loaded`` gives the fraction of
        loads to report (``1.0``: all). :meth:`aclose` delivers what is pending.
        """
        self._events.add(listener, sample_loaded=sample_loaded, timeout=timeout)

    def remove_listener(self, listener: EventListener) -> None:
        """Stop calling ``listener`` (events already fired are still delivered); no error if absent."""
        self._events.remove(listener)

    async def drain_events(self, grace: float = 5.0) -> int:
        """Wait up to ``grace`` seconds for listeners to handle the events fired so far.

        Events still undelivered then are dropped; returns how many.
        """
        return await self._events.drain(grace)

    # -- load: the middleware's first call (commit, its second, is in core/saving.py) -------

    async def load(self, token: str | None) -> Session:
        """The session for a verified ``token``; an empty new session if it is unknown.

        One store read (a second one only to follow a regenerated token within its
        grace window). A token whose session is gone is never adopted.
        """
        if token is None:
            return Session()
        key = cached_storage_key(token)
        now = self._now()
        if self._read_and_touch is not None:
            record, _ = await self._read_and_touch(
                key,
                now=now,
                idle_timeout=self.idle_timeout,
                absolute_timeout=self.absolute_timeout,
                refresh_interval=self.idle_refresh_interval,
            )
            fused = True
        else:
            record = await self.backend.read(key, now=now)
            fused = False
        marker = None if record is None else read_marker(record.payload)
        if record is None or record.expires_at <= now or (marker is not None and marker.over(now)):
            return await self._dead(key, now)  # strict mode: an unknown token is never adopted
        if marker is not None:
            for _ in range(MAX_HOPS):  # within a grace window, through every plain regeneration since
                if not marker.followable(now):
                    break
                assert marker.target is not None
                successor = await self.backend.read(marker.target, now=now)
                if successor is None:
                    break
                marker = read_marker(successor.payload)
                if marker is None:
                    return self._loaded(successor, token, now, fused=True)
            retired = Session()
            retired._superseded = True
            return retired
        return self._loaded(record, token, now, fused=fused)

    async def _dead(self, key: str, now: datetime) -> Session:
        """A session for a validly signed token whose session is gone (a second read, rare by nature)."""
        session = Session()
        marker = await self.backend.read(retired_key(key), now=now)
        if marker is not None and (found := read_marker(marker.payload)) is not None and not found.over(now):
            session._superseded = True  # a fresh session already replaced it: leave the cookie alone
        else:
            session._dead_key = key
            if self._events.on:  # the manager sees an expiry only when the token comes back
                self._events.fire(EventKind.ENDED, key, None, "expired")
        return session

    def _loaded(self, record: SessionRecord, token: str, now: datetime, *, fused: bool) -> Session:
        try:
            data = self.serializer.loads(record.payload)
        except SerializationError:
            logger.warning("discarding session %s…: payload cannot be decoded", record.key[:8])
            return Session()
        # The default serializer writes keys verbatim, so a payload without the reserved prefix has no metadata.
        data, meta = split_stored(data, record.payload if self._json_payloads else None)
        session = Session(data, record=record, token=token)
        if meta is not None:
            session._meta = meta
        # Without a fused read, the idle extension is a touch at save time, only when due.
        if not fused and now + self._touch_slack >= record.expires_at:
            target = self._deadline(record.created_at, now)
            if target - record.expires_at >= self.idle_refresh_interval:
                session._touch_to = target
        if self._events.loads:
            self._events.loaded(record.key, record.user_id)
        return session
