"""SessionManager: the session rules, identical on every backend."""

from __future__ import annotations

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
)
from .records import SessionInfo, SessionRecord
from .registry import mask_url
from .serializers import JSONSerializer, Serializer
from .session import Session
from .tokens import SecretKey, cached_storage_key, new_token, storage_key

if TYPE_CHECKING:
    from .settings import SessionSettings

__all__ = ["ConflictPolicy", "SessionManager", "TokenChange"]

logger = logging.getLogger("fastapi_sessions")

M = TypeVar("M", bound=BaseModel)
ConflictPolicy = Literal["last_writer_wins", "raise"]
_MISSING: Any = object()


def _as_timedelta(value: timedelta | float, name: str) -> timedelta:
    delta = value if isinstance(value, timedelta) else timedelta(seconds=value)
    if delta <= timedelta(0):
        raise ConfigurationError(f"{name} must be positive")
    return delta


def _is_memory(url: str) -> bool:
    return url[:7].lower() == "memory:"


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


@dataclass(frozen=True, slots=True)
class TokenChange:
    """What a save asks the frontend to send: a token to (re)issue, or ``None`` to clear."""

    token: str | None
    max_age: int = 0


class SessionManager:
    """Loads, saves, regenerates and revokes sessions on any backend.

    Tokens are 256-bit, signed by ``frontend`` and stored only as a hash.
    Unknown, expired or forged tokens are never adopted. Two server-side clocks
    apply: ``idle_timeout`` (extended by use, at most once per
    ``idle_refresh_interval``) and ``absolute_timeout`` (counted from login or
    creation, never extended). Nothing is stored until a session holds data,
    and a request that only reads writes nothing. Saves are compare-and-set on
    the record's version; on a conflict this request's key-level changes are
    re-applied to the fresh record, and ``conflict_policy`` decides what happens
    when both sides changed the same key.
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
        self.serializer: Serializer = serializer or JSONSerializer()
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
        return cls(backend_from_url(url, **dict(backend_options or {})), frontend, **options)

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

    def _deadline(self, created_at: datetime, now: datetime) -> datetime:
        return min(created_at + self.absolute_timeout, now + self.idle_timeout)

    @staticmethod
    def _seconds_left(expires_at: datetime, now: datetime) -> int:
        return max(int((expires_at - now).total_seconds()), 0)

    # -- load and save (the middleware's two calls) ------------------------------------------

    async def load(self, token: str | None) -> Session:
        """The session for a verified ``token``; an empty new session if it is unknown."""
        if token is None:
            return Session()
        extended = False
        if self._fused:
            now = self.clock()
            record, extended = await self.backend.read_and_touch(  # type: ignore[attr-defined]
                cached_storage_key(token),
                now=now,
                idle_timeout=self.idle_timeout,
                absolute_timeout=self.absolute_timeout,
                refresh_interval=self.idle_refresh_interval,
            )
        else:
            record = await self.backend.read(cached_storage_key(token))
            now = self.clock()
        if record is None or record.expires_at <= now:
            return Session()  # strict mode: an unknown token is never adopted
        try:
            data = self.serializer.loads(record.payload)
        except SerializationError:
            logger.warning("discarding session %s…: payload cannot be decoded", record.key[:8])
            return Session()
        session = Session(data, record=record, token=token)
        if extended:
            session._extended = True
        # Cheap test first: only near the refresh point is the full deadline worth computing.
        elif not self._fused and now + self._touch_slack >= record.expires_at:
            target = self._deadline(record.created_at, now)
            if target - record.expires_at >= self.idle_refresh_interval:
                session._touch_to = target
        return session

    async def commit(self, session: Session) -> TokenChange | None:
        """Persist what happened to ``session``; say what the client must be sent.

        Raises ``SessionConflict`` only under ``conflict_policy="raise"`` or when
        ``max_save_attempts`` compare-and-set rounds all lost.
        """
        record = session._record
        if not session.modified:
            if session._extended and record is not None:
                session._extended = False
                return TokenChange(session._token, self._seconds_left(record.expires_at, self.clock()))
            if session._touch_to is None or record is None:
                return None
            return await self._touch(session, record, session._touch_to)
        if record is not None and not (session._invalidated or session._regenerate) and (
            session or session._user_id is not None
        ):
            # The common write, kept inline (it runs on every modifying request): one compare-and-set.
            now = self.clock()
            new = self._next(session, record, self.serializer.dumps(session), now)
            try:
                version = await self.backend.update(new, record.version)
            except SessionConflict:
                return await self._save_after_conflict(session, record, now)
            return self._saved(session, new, version, record.expires_at, now)
        now = self.clock()
        ended = False
        if session._invalidated:
            session._invalidated = False
            if record is not None:
                await self.backend.delete(record.key)  # logout: no grace for the old token
                ended = True
            record = session._record = None
            session._token = None
        empty = not session and session._user_id is None
        if record is None:
            change = None if empty else await self._create(session, now, now)
            return change or (TokenChange(None) if ended else None)
        if empty:  # everything was popped: the session ends, as with Starlette's
            await self.backend.delete(record.key)
            self._forget(session)
            return TokenChange(None)
        # What is left is a regeneration: a plain write took the path at the top.
        logged_in = session._user_id != record.user_id
        change = await self._create(session, now, now if logged_in else record.created_at)
        # A token that was someone's login is not left usable after a change of user.
        await self._retire(record.key, now, grace=record.user_id in (None, session._user_id))
        return change

    async def _create(self, session: Session, now: datetime, created_at: datetime) -> TokenChange:
        payload = self.serializer.dumps(session)
        expires_at = self._deadline(created_at, now)
        for _ in range(3):  # a 256-bit collision is not going to happen; a broken RNG might
            token = new_token()
            record = SessionRecord(
                storage_key(token), payload, session._user_id, created_at, expires_at, 1
            )
            try:
                await self.backend.create(record)
            except SessionExists:
                continue
            session._record, session._token = record, token
            session._regenerate = False
            session.modified = False
            return TokenChange(token, self._seconds_left(expires_at, now))
        raise SessionExists("could not find a free session key")

    async def _retire(self, key: str, now: datetime, *, grace: bool = True) -> None:
        """Delete an old key, or let it live for ``regenerate_grace`` for in-flight requests.

        In its grace window the old record is re-stored with its absolute deadline
        pinned to the window's end, so the requests using it cannot extend it.
        """
        old = await self.backend.read(key) if grace and self.regenerate_grace else None
        if not await self.backend.delete(key) or old is None:
            return
        end = min(now + self.regenerate_grace, old.expires_at)
        await self.backend.create(replace(old, created_at=end - self.absolute_timeout, expires_at=end, version=1))

    async def _touch(self, session: Session, record: SessionRecord, to: datetime) -> TokenChange:
        session._touch_to = None
        if not await self.backend.touch(record.key, to):
            self._forget(session)
            return TokenChange(None)
        session._record = SessionRecord(
            record.key, record.payload, record.user_id, record.created_at, to, record.version
        )
        return TokenChange(session._token, self._seconds_left(to, self.clock()))

    def _next(self, session: Session, record: SessionRecord, payload: bytes, now: datetime) -> SessionRecord:
        """The record a save writes: built with the version the backend will give it."""
        expires_at = min(record.created_at + self.absolute_timeout, now + self.idle_timeout)
        return SessionRecord(record.key, payload, session._user_id, record.created_at, expires_at, record.version + 1)

    def _saved(
        self, session: Session, new: SessionRecord, version: int, previous_expiry: datetime, now: datetime
    ) -> TokenChange | None:
        if version != new.version:  # a backend numbering versions its own way
            new = SessionRecord(new.key, new.payload, new.user_id, new.created_at, new.expires_at, version)
        session._record = new
        session.modified = False
        session._touch_to = None
        extended, session._extended = session._extended, False
        # The cookie's Max-Age follows the expiry, re-sent no more often than a touch.
        if not extended and new.expires_at - previous_expiry < self.idle_refresh_interval:
            return None
        return TokenChange(session._token, self._seconds_left(new.expires_at, now))

    async def _save_after_conflict(
        self, session: Session, record: SessionRecord, now: datetime
    ) -> TokenChange | None:
        """Re-read, re-apply this request's key-level changes, and compare-and-set again."""
        ours = dict(session)
        original = self.serializer.loads(record.payload)
        previous_expiry = record.expires_at
        for _ in range(self.max_save_attempts - 1):
            fresh = await self.backend.read(record.key)
            if fresh is None:  # revoked meanwhile: never resurrect it
                logger.info("session %s… ended during the request; changes dropped", record.key[:8])
                self._forget(session)
                return TokenChange(None)
            merged = self._merge(original, ours, self.serializer.loads(fresh.payload))
            dict.clear(session)
            dict.update(session, merged)
            new = self._next(session, fresh, self.serializer.dumps(merged), now)
            try:
                version = await self.backend.update(new, fresh.version)
            except SessionConflict:
                continue
            return self._saved(session, new, version, previous_expiry, now)
        raise SessionConflict(f"save lost {self.max_save_attempts} compare-and-set rounds")

    def _merge(
        self, original: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any]
    ) -> dict[str, Any]:
        """Re-apply this request's key-level changes on top of the stored data."""
        merged = dict(theirs)
        for key in ours.keys() | original.keys():
            mine = ours.get(key, _MISSING)
            before = original.get(key, _MISSING)
            if mine == before:
                continue  # we did not touch this key; keep theirs
            now_stored = theirs.get(key, _MISSING)
            if (self.conflict_policy == "raise" and now_stored != before and now_stored != mine):
                raise SessionConflict(f"session key {key!r} was changed by a concurrent request")
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
        session.modified = False

    # -- direct API (no middleware) ----------------------------------------------------------

    async def create_session(
        self, data: dict[str, Any] | None = None, *, user_id: str | None = None
    ) -> str:
        """Store a new session now and return its public session id (a signed token)."""
        session = Session(data)
        session._user_id = user_id
        change = await self._create(session, self.clock(), self.clock())
        assert change.token is not None
        return self.frontend.sign(change.token)

    async def get_session(self, session_id: str) -> Session | None:
        """The live session for a public session id, or ``None``; extends its idle clock."""
        token = self.frontend.unsign(session_id)
        if token is None:
            return None
        session = await self.load(token)
        if session.is_new:
            return None
        session._extended = False  # no cookie to refresh on this path
        if session._touch_to is not None and session._record is not None:
            change = await self._touch(session, session._record, session._touch_to)
            if change.token is None:
                return None
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
        return token is not None and await self.backend.delete(storage_key(token))

    # -- per-user index ----------------------------------------------------------------------

    async def list_sessions(self, user_id: str) -> list[SessionInfo]:
        """The user's live sessions (metadata only), oldest first."""
        records = await self.backend.list_by_user(user_id)
        now = self.clock()
        infos = [SessionInfo.of(r) for r in records if r.expires_at > now]
        return sorted(infos, key=lambda info: info.created_at)

    async def revoke(self, key: str) -> bool:
        """End one session by its storage key (from :meth:`list_sessions`)."""
        return await self.backend.delete(key)

    async def revoke_user(self, user_id: str) -> int:
        """End every session of ``user_id`` ("log out everywhere"); return how many ended."""
        return await self.backend.delete_by_user(user_id)

    async def purge_expired(self) -> int:
        """Remove expired records from the store; return how many went."""
        return await self.backend.purge_expired()
