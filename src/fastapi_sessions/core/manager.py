"""SessionManager: the session rules, identical on every backend."""

from __future__ import annotations

import enum
import inspect
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

from pydantic import BaseModel

from ..frontends.base import Frontend
from .clock import Clock, utc_now
from .contract import SessionBackend, SupportsReadAndTouch
from .dependencies import model_dependency, session_dependency, user_dependency
from .errors import (
    ConfigurationError,
    SerializationError,
    SessionConflict,
    SessionExists,
    SessionNotFound,
    SessionTooLarge,
)
from .markers import Marker, marker_record, read_marker, retired_key
from .outage import OutageLog
from .records import SessionInfo, SessionRecord
from .registry import mask_url
from .serializers import JSONSerializer, Serializer
from .session import Session
from .tokens import SecretKey, cached_storage_key, new_token, storage_key

if TYPE_CHECKING:
    from .settings import SessionSettings

__all__ = ["Commit", "CommitOutcome", "ConflictPolicy", "SessionManager"]

logger = logging.getLogger("fastapi_sessions")

M = TypeVar("M", bound=BaseModel)
ConflictPolicy = Literal["last_writer_wins", "raise"]
_MISSING: Any = object()
#: The default cap on a session's serialized data, in bytes.
DEFAULT_MAX_SESSION_SIZE = 64 * 1024


def _as_timedelta(value: timedelta | float, name: str) -> timedelta:
    delta = value if isinstance(value, timedelta) else timedelta(seconds=value)
    if delta <= timedelta(0):
        raise ConfigurationError(f"{name} must be positive")
    return delta


def _check_size(value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigurationError(f"max_session_size must be a positive number of bytes or None, not {value!r}")
    return value


def _is_memory(url: str) -> bool:
    return url[:7].lower() == "memory:"


def _check_clock(clock: Clock) -> None:
    """A clock must give aware datetimes: a naive one would make every comparison raise later."""
    try:
        reading = clock()
    except Exception as exc:
        raise ConfigurationError(f"the clock failed when called: {type(exc).__name__}: {exc}") from exc
    if not isinstance(reading, datetime) or reading.utcoffset() is None:
        raise ConfigurationError(
            f"clock must return an aware datetime (e.g. datetime.now(UTC)), not {reading!r}"
        )


def _takes_clock(url: str) -> bool:
    """Whether the backend factory for ``url`` has a ``clock`` parameter of its own."""
    from .registry import _resolve

    try:
        return "clock" in inspect.signature(_resolve(url)).parameters
    except (TypeError, ValueError):  # a factory without a signature to inspect
        return False


def _check_manager_options(cls: type, options: Mapping[str, Any]) -> None:
    """Refuse, before any backend is built, a keyword the manager does not take: most likely a backend's."""
    parameters = inspect.signature(cls).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return  # a subclass that takes anything decides for itself
    own = {name for name, p in parameters.items() if p.kind is not inspect.Parameter.POSITIONAL_ONLY} - {"backend"}
    unexpected = [name for name in options if name not in own]
    if not unexpected:
        return
    # Values only when they cannot be a secret: a password passed here must not show up in the message.
    shown = ", ".join(
        f'"{name}": {options[name]!r}' if options[name] is None or isinstance(options[name], bool | int | float)
        else f'"{name}": ...' for name in unexpected)
    names = ", ".join(repr(name) for name in unexpected)
    valid = ", ".join(sorted(own | {"secret_key", "backend_options"}))
    raise ConfigurationError(
        f"SessionManager got unexpected option{'s' if len(unexpected) > 1 else ''} {names}: options for the "
        f"backend go in backend_options={{{shown}}}; the manager's own options are: {valid}"
    )


class CommitOutcome(enum.Enum):
    """What :meth:`SessionManager.commit` did with a request's session."""

    UNCHANGED = "unchanged"  # nothing to store
    TOUCHED = "touched"  # the idle deadline moved; the cookie already outlives it
    SAVED = "saved"  # the data was stored by compare-and-set (merged into a successor, if it had one)
    CREATED = "created"  # stored for the first time: the cookie is set
    REGENERATED = "regenerated"  # a new token for the same data (a login, say): the cookie is set
    ENDED = "ended"  # logged out or emptied: the cookie is cleared
    GONE = "gone"  # the session ended elsewhere during the request: this request's changes were dropped
    DEAD = "dead"  # the request carried a token whose session is gone: the cookie is cleared


@dataclass(frozen=True, slots=True)
class Commit:
    """The outcome of a save, and what the client must be sent.

    ``token`` is set (with ``max_age``, the seconds until the absolute deadline)
    when the client gets a new token; ``clear`` when it must forget its token.
    Any other outcome sends nothing: the token the client holds is still right.
    """

    outcome: CommitOutcome
    token: str | None = None
    max_age: int = 0

    @property
    def clear(self) -> bool:
        return self.outcome in (CommitOutcome.ENDED, CommitOutcome.DEAD)


_UNCHANGED = Commit(CommitOutcome.UNCHANGED)
_TOUCHED = Commit(CommitOutcome.TOUCHED)
_SAVED = Commit(CommitOutcome.SAVED)
_GONE = Commit(CommitOutcome.GONE)
#: How long a retired token is recognized as retired: requests that loaded its session
#: before it was retired save through its marker within this time (see core/markers.py).
IN_FLIGHT = timedelta(minutes=1)
#: Forwards followed at most this many times in one save (a chain of logins racing).
_MAX_HOPS = 8


class SessionManager:
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
    ) -> None:
        self.backend = backend
        self.frontend = frontend
        self.idle_timeout = _as_timedelta(idle_timeout, "idle_timeout")
        self.absolute_timeout = _as_timedelta(absolute_timeout, "absolute_timeout")
        if idle_refresh_interval is None:
            self.idle_refresh_interval = min(timedelta(minutes=1), self.idle_timeout / 4)
        else:
            self.idle_refresh_interval = _as_timedelta(idle_refresh_interval, "idle_refresh_interval")
        if self.idle_refresh_interval >= self.idle_timeout:
            raise ConfigurationError("idle_refresh_interval must be shorter than idle_timeout")
        # A record is due for an idle extension once now + idle - refresh reaches its expiry.
        self._touch_slack = self.idle_timeout - self.idle_refresh_interval
        # A backend that reads and extends in one round trip is used that way.
        self._fused = isinstance(backend, SupportsReadAndTouch)
        grace = regenerate_grace if isinstance(regenerate_grace, timedelta) else timedelta(
            seconds=regenerate_grace)
        if grace < timedelta(0):
            raise ConfigurationError("regenerate_grace must not be negative")
        self.regenerate_grace = grace
        if conflict_policy not in ("last_writer_wins", "raise"):
            raise ConfigurationError("conflict_policy must be 'last_writer_wins' or 'raise'")
        self.conflict_policy: ConflictPolicy = conflict_policy
        if max_save_attempts < 1:
            raise ConfigurationError("max_save_attempts must be at least 1")
        self.max_save_attempts = max_save_attempts
        #: Bytes of serialized data a session may hold (``None``: no cap); a save over it stores nothing.
        self.max_session_size = _check_size(max_session_size)
        self.serializer: Serializer = serializer or JSONSerializer()
        # Store outages are logged once when they start and once when they end, not per request.
        self._outage = OutageLog()
        _check_clock(clock)
        self.clock = clock
        #: Dependency: the request's :class:`Session` (needs ``SessionMiddleware``).
        self.session = session_dependency(frontend)
        #: Dependency: the logged-in user id; 401 when there is none.
        self.user = user_dependency(frontend, required=True)
        #: Dependency: the logged-in user id or ``None``.
        self.optional_user = user_dependency(frontend, required=False)

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
        from ..frontends.cookie import SessionFrontend
        from .registry import from_url as backend_from_url

        _check_manager_options(cls, options)
        if frontend is None:
            if secret_key is None:
                if not _is_memory(url):
                    raise ConfigurationError(
                        "a secret key is required: pass secret_key=... or set FASTAPI_SESSIONS_SECRET_KEY"
                    )
                secret_key = secrets.token_urlsafe(32)
            frontend = SessionFrontend(secret_key)
        elif secret_key is not None:
            raise ConfigurationError("pass either secret_key or frontend, not both")
        backend_options = dict(backend_options or {})
        # One clock: the backend judges direct calls (without ``now``) by the manager's clock too.
        if "clock" in options and "clock" not in backend_options and _takes_clock(url):
            backend_options["clock"] = options["clock"]
        return cls(backend_from_url(url, **backend_options), frontend, **options)

    @classmethod
    def from_settings(cls, settings: SessionSettings | None = None, **options: Any) -> Self:
        """A manager configured from :class:`SessionSettings` (by default, the environment)."""
        from ..frontends.cookie import SessionFrontend
        from .settings import SessionSettings

        settings = settings or SessionSettings()
        keys: list[str] = settings.keys()
        if not keys:
            if not _is_memory(settings.url):
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
        return cls.from_url(settings.url, frontend=frontend, **options)

    def model(self, model: type[M]) -> Callable[..., Awaitable[M]]:
        """Dependency: the session data validated as ``model`` (422 when it does not fit)."""
        return model_dependency(self.frontend, model)

    # -- lifecycle ---------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the backend's connections."""
        await self.backend.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- deadlines ---------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.clock()

    def _deadline(self, created_at: datetime, now: datetime) -> datetime:
        return min(created_at + self.absolute_timeout, now + self.idle_timeout)

    def _cookie_max_age(self, created_at: datetime, now: datetime) -> int:
        """The cookie lives until the absolute deadline, so no idle extension ever needs a new one."""
        return max(int((created_at + self.absolute_timeout - now).total_seconds()), 0)

    def _marker(self, key: str, marker: Marker, now: datetime, version: int = 1) -> SessionRecord:
        lifetime = max(IN_FLIGHT, self.regenerate_grace)
        return marker_record(key, marker, now=now, lifetime=lifetime, absolute_timeout=self.absolute_timeout,
                             version=version)

    # -- load and save (the middleware's two calls) ------------------------------------------

    async def load(self, token: str | None) -> Session:
        """The session for a verified ``token``; an empty new session if it is unknown.

        One store read (a second one only to follow a regenerated token within its
        grace window). A token whose session is gone is never adopted.
        """
        if token is None:
            return Session()
        key = cached_storage_key(token)
        now = self._now()
        if self._fused:
            record, _ = await self.backend.read_and_touch(  # type: ignore[attr-defined]
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
            for _ in range(_MAX_HOPS):  # within a grace window, through every plain regeneration since
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
        return session

    def _loaded(self, record: SessionRecord, token: str, now: datetime, *, fused: bool) -> Session:
        try:
            data = self.serializer.loads(record.payload)
        except SerializationError:
            logger.warning("discarding session %s…: payload cannot be decoded", record.key[:8])
            return Session()
        session = Session(data, record=record, token=token)
        # Without a fused read, the idle extension is a touch at save time, only when due.
        if not fused and now + self._touch_slack >= record.expires_at:
            target = self._deadline(record.created_at, now)
            if target - record.expires_at >= self.idle_refresh_interval:
                session._touch_to = target
        return session

    async def commit(self, session: Session) -> Commit:
        """Persist what happened to ``session`` and say what the client must be sent.

        Every store write is a compare-and-set or an insert. A session that ended
        elsewhere during the request gives :attr:`CommitOutcome.GONE` (this request's
        changes are dropped, with a log line). Raises ``SessionConflict`` under
        ``conflict_policy="raise"`` when a concurrent request changed a key this
        one changed too, when this request changes a session through a token
        that was retired meanwhile, when a concurrent login or regeneration won,
        or when ``max_save_attempts`` rounds all lost.
        """
        record = session._record
        if session._superseded:
            if session.modified and (session._regenerate or session or session._user_id is not None):
                raise SessionConflict("the session's token was replaced by a newer one; retry with it")
            return _UNCHANGED
        if record is None:
            if session.modified and (session or session._user_id is not None):
                return await self._create_fresh(session, self._now())
            return Commit(CommitOutcome.DEAD) if session._dead_key is not None else _UNCHANGED
        if not session.modified:
            due, session._touch_to = session._touch_to, None
            if due is None:
                return _UNCHANGED
            # The deadline counts from now, not from the load: a write another tab saved meanwhile
            # set now + idle_timeout, and a touch must not pull that back to load + idle_timeout.
            now = self._now()
            to = max(due, self._deadline(record.created_at, now))
            if await self.backend.touch(record.key, to, now=now):
                session._record = replace(record, expires_at=to)
                return _TOUCHED
            return self._gone(session, record)
        now = self._now()
        if session._invalidated:
            return await self._end(session, record, now)
        if session._regenerate:
            return await self._regenerate(session, record, now)
        if session or session._user_id is not None:
            # The common write, kept inline (it runs on every modifying request): one compare-and-set.
            new = self._next(record, self._dumps(session, record.key), record.user_id, now)
            try:
                version = await self.backend.update(new, record.version, now=now)
            except SessionConflict:
                return await self._save_after_conflict(session, record, now, lost=True)
            except SessionNotFound:
                return self._gone(session, record)
            self._stored(session, new, version)
            return _SAVED
        return await self._save_after_conflict(session, record, now, lost=False)  # emptied: see there

    # -- the outcomes ------------------------------------------------------------------------

    def _gone(self, session: Session, record: SessionRecord) -> Commit:
        logger.info("session %s… ended during the request; its changes were dropped", record.key[:8])
        self._forget(session)
        return _GONE

    def _stored(self, session: Session, new: SessionRecord, version: int) -> None:
        if version != new.version:  # a backend numbering versions its own way
            new = replace(new, version=version)
        session._record = new
        session.modified = False
        session._touch_to = None

    def _dumps(self, data: Mapping[str, Any], key: str | None) -> bytes:
        """Serialize ``data``, refusing more than ``max_session_size`` bytes before anything is written."""
        payload = self.serializer.dumps(data)
        limit = self.max_session_size
        if limit is not None and len(payload) > limit:
            logger.warning("%s not saved: %d bytes of data, over max_session_size=%d",
                           f"session {key[:8]}…" if key else "a new session", len(payload), limit)
            raise SessionTooLarge(len(payload), limit)
        return payload

    def _next(self, record: SessionRecord, payload: bytes, user_id: str | None, now: datetime) -> SessionRecord:
        """The record a save writes over ``record``, built with the version the backend will give it."""
        return SessionRecord(record.key, payload, user_id, record.created_at,
                             self._deadline(record.created_at, now), record.version + 1)

    async def _create_fresh(self, session: Session, now: datetime) -> Commit:
        """A first save: a new record, and (for a dead token) a marker so stale tabs leave the cookie alone."""
        payload = self._dumps(session, None)  # before the marker: a refused save leaves no trace
        if session._dead_key is not None:
            try:
                await self.backend.create(self._marker(retired_key(session._dead_key), Marker(None), now), now=now)
            except SessionExists:
                # Another request with the same dead token started a session first: its cookie stands.
                raise SessionConflict("a concurrent request started a new session for this client") from None
        token = await self._insert(session, payload, session._user_id, now, now)
        return Commit(CommitOutcome.CREATED, token, self._cookie_max_age(now, now))

    async def _insert(
        self, session: Session, payload: bytes, user_id: str | None, created_at: datetime, now: datetime
    ) -> str:
        expires_at = self._deadline(created_at, now)
        for _ in range(3):  # a 256-bit collision is not going to happen; a broken RNG might
            token = new_token()
            record = SessionRecord(storage_key(token), payload, user_id, created_at, expires_at, 1)
            try:
                await self.backend.create(record, now=now)
            except SessionExists:
                continue
            session._record, session._token = record, token
            session._dead_key = None
            session._regenerate = False
            session.modified = False
            return token
        raise SessionExists("could not find a free session key")

    async def _fresh(self, key: str, now: datetime) -> SessionRecord | None:
        """The live session data behind ``key``, through forwards; ``None`` if it ended."""
        for _ in range(_MAX_HOPS):
            record = await self.backend.read(key, now=now)
            if record is None:
                return None
            marker = read_marker(record.payload)
            if marker is None:
                return record
            if marker.target is None or marker.over(now):
                return None  # retired (ended on purpose), or a forward past its in-flight window
            key = marker.target
        raise SessionConflict("too many concurrent regenerations of one session")

    async def _save_after_conflict(
        self, session: Session, loaded: SessionRecord, now: datetime, *, lost: bool
    ) -> Commit:
        """Re-read (through a forward, if the session was regenerated meanwhile), re-apply this
        request's key-level changes, and compare-and-set again. Also decides whether an emptied
        session ends: only if it is still empty once the concurrent changes are in.

        ``lost``: a compare-and-set on ``loaded`` has already failed, so start by re-reading.
        """
        ours = dict(session)
        original = self.serializer.loads(loaded.payload)
        current: SessionRecord | None = loaded
        merged = ours
        for attempt in range(int(lost), self.max_save_attempts):  # the failed one counts as a round
            if attempt:
                current = await self._fresh(loaded.key if current is None else current.key, now)
                if current is None:
                    return self._gone(session, loaded)
                merged = self._merge(original, ours, self.serializer.loads(current.payload))
            assert current is not None
            if not merged and current.user_id is None:
                # Everything was popped: the session ends, as with Starlette's.
                retired = self._marker(current.key, Marker(None), now, current.version + 1)
                try:
                    await self.backend.update(retired, current.version, now=now)
                except SessionConflict:
                    continue
                except SessionNotFound:
                    return self._gone(session, loaded)
                self._forget(session)
                return Commit(CommitOutcome.ENDED)
            new = self._next(current, self._dumps(merged, current.key), current.user_id, now)
            try:
                version = await self.backend.update(new, current.version, now=now)
            except SessionConflict:
                continue
            except SessionNotFound:
                return self._gone(session, loaded)
            dict.clear(session)
            dict.update(session, merged)
            self._stored(session, new, version)
            return _SAVED
        raise SessionConflict(f"save lost {self.max_save_attempts} compare-and-set rounds")

    async def _end(self, session: Session, loaded: SessionRecord, now: datetime) -> Commit:
        """Logout: the record becomes "retired", through any forward (a login that raced this logout)."""
        current: SessionRecord | None = loaded
        for attempt in range(self.max_save_attempts):
            if attempt:
                current = await self._fresh(current.key if current is not None else loaded.key, now)
            if current is None:
                return self._gone(session, loaded)
            retired = self._marker(current.key, Marker(None), now, current.version + 1)
            try:
                await self.backend.update(retired, current.version, now=now)
            except SessionConflict:
                continue
            except SessionNotFound:
                return self._gone(session, loaded)
            session._invalidated = False
            self._forget(session)
            return Commit(CommitOutcome.ENDED)
        raise SessionConflict(f"logout lost {self.max_save_attempts} compare-and-set rounds")

    async def _regenerate(self, session: Session, loaded: SessionRecord, now: datetime) -> Commit:
        """A new token for the session's data; the old record becomes a forward to it.

        The new record is inserted first (nobody knows its key yet), then the old
        one is replaced by the forward with a compare-and-set on the version this
        request loaded. If a concurrent save got there first, its changes are merged
        into the new record and the compare-and-set tried again, so nothing is lost.
        """
        user_id = session._user_id
        login = user_id != loaded.user_id
        created_at = now if login else loaded.created_at  # a login starts a fresh absolute clock
        ours = dict(session)
        original: dict[str, Any] | None = None
        token_before = session._token
        token = await self._insert(session, self._dumps(ours, loaded.key), user_id, created_at, now)
        new = session._record
        assert new is not None
        # Loads follow the old token only after a plain regeneration: after a login it may be a planted one.
        until = now + self.regenerate_grace if self.regenerate_grace and not login else None
        current = loaded
        for _ in range(self.max_save_attempts):
            forward = self._marker(current.key, Marker(new.key, until), now, current.version + 1)
            try:
                await self.backend.update(forward, current.version, now=now)
            except SessionNotFound:
                await self.backend.delete(new.key, now=now)
                return self._gone(session, loaded)
            except SessionConflict:
                fresh = await self.backend.read(current.key, now=now)
                marker = None if fresh is None else read_marker(fresh.payload)
                if fresh is None or (marker is not None and (marker.target is None or marker.over(now))):
                    await self.backend.delete(new.key, now=now)
                    return self._gone(session, loaded)
                if marker is not None:  # a concurrent regeneration or login won: its token stands
                    await self.backend.delete(new.key, now=now)
                    if await self._fresh(current.key, now) is None:  # ...unless that session ended too
                        return self._gone(session, loaded)
                    self._forget(session)
                    raise SessionConflict("a concurrent request regenerated this session first") from None
                original = original if original is not None else self.serializer.loads(loaded.payload)
                merged = self._merge(original, ours, self.serializer.loads(fresh.payload))
                try:
                    payload = self._dumps(merged, loaded.key)
                except SessionTooLarge:
                    await self.backend.delete(new.key, now=now)  # nobody has its token yet
                    session._record, session._token = loaded, token_before  # as if never tried
                    session._regenerate = session.modified = True
                    raise
                replacement = SessionRecord(new.key, payload, user_id, created_at, new.expires_at, new.version + 1)
                try:
                    version = await self.backend.update(replacement, new.version, now=now)
                except (SessionConflict, SessionNotFound):
                    raise SessionConflict("the regenerated session changed before it was handed out") from None
                new = replace(replacement, version=version)
                dict.clear(session)
                dict.update(session, merged)
                current = fresh
                continue
            session._record = new
            return Commit(CommitOutcome.REGENERATED, token, self._cookie_max_age(created_at, now))
        await self.backend.delete(new.key, now=now)
        raise SessionConflict(f"regeneration lost {self.max_save_attempts} compare-and-set rounds")

    def _merge(
        self, original: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]
    ) -> dict[str, Any]:
        """Re-apply this request's key-level changes on top of the stored data.

        Under ``conflict_policy="raise"``, a key this request changed that a concurrent
        request changed too since this request's read is a conflict, whatever the values.
        """
        merged = dict(theirs)
        for key in ours.keys() | original.keys():
            mine = ours.get(key, _MISSING)
            before = original.get(key, _MISSING)
            if mine == before:
                continue  # we did not touch this key; keep theirs
            if self.conflict_policy == "raise" and theirs.get(key, _MISSING) != before:
                raise SessionConflict(f"the session entry {key!r} was changed by a concurrent request",
                                      operation="update")
            if mine is _MISSING:
                merged.pop(key, None)
            else:
                merged[key] = mine
        return merged

    @staticmethod
    def _forget(session: Session) -> None:
        dict.clear(session)
        session._record = session._token = session._touch_to = None
        session._user_id = None
        session._regenerate = False
        session.modified = False

    # -- direct API (no middleware) ----------------------------------------------------------

    async def create_session(
        self, data: dict[str, Any] | None = None, *, user_id: str | None = None
    ) -> str:
        """Store a new session now and return its public session id (a signed token)."""
        session = Session(data)
        session._user_id = user_id
        now = self._now()
        token = await self._insert(session, self._dumps(session, None), user_id, now, now)
        return self.frontend.sign(token)

    async def get_session(self, session_id: str) -> Session | None:
        """The live session for a public session id, or ``None``; extends its idle clock."""
        token = self.frontend.unsign(session_id)
        if token is None:
            return None
        session = await self.load(token)
        if session.is_new:
            return None
        record, to = session._record, session._touch_to
        if to is not None and record is not None:
            session._touch_to = None
            if not await self.backend.touch(record.key, to, now=self._now()):
                return None
            session._record = replace(record, expires_at=to)
        return session

    async def save_session(self, session: Session) -> str | None:
        """Persist ``session``; return its public id (new after regeneration), or ``None``.

        ``None`` means the session holds nothing or has ended.
        """
        await self.commit(session)
        return self.frontend.sign(session._token) if session._token is not None else None

    async def delete_session(self, session_id: str) -> bool:
        """End the session behind a public session id. Idempotent."""
        token = self.frontend.unsign(session_id)
        return token is not None and await self.backend.delete(storage_key(token), now=self._now())

    # -- per-user index ----------------------------------------------------------------------

    async def list_sessions(self, user_id: str) -> list[SessionInfo]:
        """The user's live sessions (metadata only), oldest first."""
        now = self._now()
        records = await self.backend.list_by_user(user_id, now=now)
        infos = [SessionInfo.of(r) for r in records if r.expires_at > now and read_marker(r.payload) is None]
        return sorted(infos, key=lambda info: info.created_at)

    async def revoke(self, key: str) -> bool:
        """End one session by its storage key (from :meth:`list_sessions`)."""
        return await self.backend.delete(key, now=self._now())

    async def revoke_user(self, user_id: str) -> int:
        """End every session of ``user_id`` ("log out everywhere"); return how many ended."""
        return await self.backend.delete_by_user(user_id, now=self._now())

    async def purge_expired(self) -> int:
        """Remove expired records from the store; return how many went."""
        return await self.backend.purge_expired(now=self._now())
