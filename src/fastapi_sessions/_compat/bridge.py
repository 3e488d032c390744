"""``BridgeBackend``: the 0.3.2 backend contract on top of any backend from the registry.

A 0.3.2 application keeps its cookie, verifier and routes and changes one line::

    backend = InMemoryBackend[UUID, SessionData]()
    # becomes
    backend = BridgeBackend[UUID, SessionData]("redis://localhost:6379/0", ttl=timedelta(days=14))

How 0.3.2 calls map onto the storage contract (:mod:`fastapi_sessions._core.contract`):

- the record key is the SHA-256 of a prefixed ``session_id`` (``uuid.hex`` for a
  UUID), so the store never holds an id a client could present, and bridge
  records can share a store with manager sessions without ever colliding;
- the payload is the model's ``model_dump(mode="json")`` through the JSON
  serializer the manager uses: never pickle;
- ``expires_at`` is creation time plus ``ttl``; ``update`` keeps it (like the
  0.3.2 cookie, whose age counts from signing), and an expired session reads
  as ``None``, so the verifier answers with its ``auth_http_exception``;
- ``update`` is a compare-and-set retried on conflicts, i.e. the last writer
  wins as in 0.3.2; it never resurrects an expired or deleted session;
- ``delete`` is idempotent; a stored payload that no longer validates against
  the model reads as ``None`` (the user logs in again) and is logged;
- liveness is judged by the bridge's ``clock``, passed to the store as ``now``
  on every call (or by the ``now=`` a caller passes), never by the store's own.

Store failures are raised as ``StoreError`` / ``StoreUnavailable`` (defined
with the other exceptions in :mod:`fastapi_sessions.errors`), which are
both the 0.3.2 ``BackendError`` and the new ``BackendError`` /
``BackendUnavailable``, so handlers of either kind catch them; they carry the
store's ``backend``, ``operation`` and ``suggestion``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self, TypeVar, get_args, get_origin
from uuid import UUID

from pydantic import BaseModel, ValidationError

from .._core.clock import Clock, utc_now
from .._core.contract import SessionBackend as Store
from .._core.records import SessionRecord
from .._core.registry import from_url as store_from_url
from .._core.serializers import JSONSerializer, Serializer
from .._core.tokens import storage_key
from ..errors import (
    BackendError,
    BackendUnavailable,
    ConfigurationError,
    LegacyBackendError,
    SerializationError,
    SessionConflict,
    SessionExists,
    SessionNotFound,
    StoreError,
    StoreUnavailable,
    public_path,
)
from .backend import LegacySessionBackend, SessionModel
from .frontend import ID

__all__ = ["DEFAULT_TTL", "BridgeBackend"]

logger = logging.getLogger("fastapi_sessions")

#: 0.3.2's default cookie ``max_age``: a session lives as long as its cookie can.
DEFAULT_TTL = timedelta(days=14)
_KEY_PREFIX = "fastapi-sessions/0.3:"  # a separate key space from manager tokens
_UPDATE_ATTEMPTS = 16
T = TypeVar("T")


def _canonical(session_id: object) -> str:
    return session_id.hex if isinstance(session_id, UUID) else str(session_id)


@public_path("fastapi_sessions.backends.implementations.bridge.BridgeBackend")
class BridgeBackend(LegacySessionBackend[ID, SessionModel]):
    """A 0.3.2 ``SessionBackend`` whose data lives in a new-style backend, with expiry.

    ``store`` is a backend object or a URL for :func:`fastapi_sessions.backends.from_url`.
    The session model comes from ``model=`` or from the subscription:
    ``BridgeBackend[UUID, SessionData](...)`` needs no ``model``.
    """

    def __init__(
        self,
        store: Store | str,
        *,
        model: type[SessionModel] | None = None,
        ttl: timedelta | float = DEFAULT_TTL,
        serializer: Serializer | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.ttl = ttl if isinstance(ttl, timedelta) else timedelta(seconds=ttl)
        if self.ttl <= timedelta(0):
            raise ConfigurationError("ttl must be positive")
        self.store: Store = store_from_url(store) if isinstance(store, str) else store
        self._model = model
        self.serializer: Serializer = serializer or JSONSerializer()
        self.clock = clock

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        model: type[SessionModel] | None = None,
        ttl: timedelta | float = DEFAULT_TTL,
        serializer: Serializer | None = None,
        clock: Clock = utc_now,
        **options: Any,
    ) -> BridgeBackend[Any, SessionModel]:
        """``BridgeBackend(from_url(url, **options), model=..., ttl=...)``."""
        return cls(store_from_url(url, **options), model=model, ttl=ttl, serializer=serializer, clock=clock)

    @property
    def model(self) -> type[SessionModel]:
        """The pydantic model sessions are read back as."""
        if self._model is None:
            self._model = self._infer_model()
        return self._model

    def _infer_model(self) -> type[SessionModel]:
        # typing sets __orig_class__ on instances made through BridgeBackend[ID, Model](...)
        # (after __init__, hence lazily); subclasses carry theirs in __orig_bases__.
        candidates = [getattr(self, "__orig_class__", None)]
        for klass in type(self).__mro__:
            candidates.extend(getattr(klass, "__orig_bases__", ()))
        for alias in candidates:
            origin = get_origin(alias)
            args = get_args(alias)
            if isinstance(origin, type) and issubclass(origin, LegacySessionBackend) and len(args) == 2:
                model = args[1]
                if isinstance(model, type) and issubclass(model, BaseModel):
                    return model  # type: ignore[return-value]
        raise ConfigurationError(
            "BridgeBackend needs the session model: write BridgeBackend[UUID, SessionData](...) "
            "or pass model=SessionData"
        )

    def _key(self, session_id: ID) -> str:
        return storage_key(_KEY_PREFIX + _canonical(session_id))

    async def _call(self, operation: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        try:
            return await operation(*args, **kwargs)
        except BackendError as exc:
            if isinstance(exc, StoreError):
                raise
            wrapper = StoreUnavailable if isinstance(exc, BackendUnavailable) else StoreError
            raise wrapper(str(exc), backend=exc.backend, operation=exc.operation, suggestion=exc.suggestion) from exc

    def _payload(self, data: SessionModel) -> bytes:
        return self.serializer.dumps(data.model_dump(mode="json"))

    async def _live(self, key: str, now: datetime) -> SessionRecord | None:
        record = await self._call(self.store.read, key, now=now)
        if record is None or record.expires_at <= now:
            return None
        return record

    # -- the 0.3.2 contract ------------------------------------------------------------------
    # Each method also takes ``now`` (keyword-only, default the bridge's clock), like the storage contract.

    async def create(self, session_id: ID, data: SessionModel, *, now: datetime | None = None) -> None:
        now = now or self.clock()
        record = SessionRecord(
            self._key(session_id), self._payload(data), user_id=None, created_at=now, expires_at=now + self.ttl
        )
        try:
            await self._call(self.store.create, record, now=now)
        except SessionExists:
            raise LegacyBackendError("create can't overwrite an existing session") from None

    async def read(self, session_id: ID, *, now: datetime | None = None) -> SessionModel | None:
        record = await self._live(self._key(session_id), now or self.clock())
        if record is None:
            return None
        try:
            return self.model.model_validate(self.serializer.loads(record.payload))
        except (SerializationError, ValidationError):
            # Like the manager: a payload the app can no longer read ends the session, not the request.
            logger.warning("discarding session %s…: payload does not match %s", record.key[:8], self.model.__name__)
            return None

    async def update(self, session_id: ID, data: SessionModel, *, now: datetime | None = None) -> None:
        key = self._key(session_id)
        payload = self._payload(data)
        now = now or self.clock()
        for _ in range(_UPDATE_ATTEMPTS):
            current = await self._live(key, now)
            if current is None:
                break
            record = dataclasses.replace(current, payload=payload, version=current.version + 1)
            try:
                await self._call(self.store.update, record, current.version, now=now)
                return
            except SessionConflict:
                continue  # another request wrote in between: re-read, then last writer wins
            except SessionNotFound:
                break
        else:
            raise StoreError("session update lost too many concurrent writes", operation="update")
        raise LegacyBackendError("session does not exist, cannot update")

    async def delete(self, session_id: ID, *, now: datetime | None = None) -> None:
        await self._call(self.store.delete, self._key(session_id), now=now or self.clock())

    # -- what 0.3.2 never had ----------------------------------------------------------------

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        """Remove expired records, for stores without native expiry (memory, SQL)."""
        return await self._call(self.store.purge_expired, now=now or self.clock())

    async def aclose(self) -> None:
        """Release the store's connections."""
        await self._call(self.store.aclose)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
