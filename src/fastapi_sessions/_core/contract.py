"""The contracts the manager relies on: storage (``SessionBackend``) and transport (``Frontend``).

``SessionBackend`` is a runtime-checkable ``Protocol``: a backend needs to
import nothing from this package to satisfy it. ``BaseSessionBackend`` is an
optional ABC that adds ``async with`` support. What the contract *means* is
pinned down executably by the conformance kit in ``fastapi_sessions.testing``;
``isinstance`` only checks that the methods exist.

``Frontend`` is the transport contract: how a signed token travels between
client and server. ``BaseFrontend`` is the optional helper the built-in cookie
and header frontends share (signing, verification, the OpenAPI scheme).
Both are exported by ``fastapi_sessions.frontends``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from fastapi.security.base import SecurityBase
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import Scope

from .records import RecordCounts, SessionRecord
from .tokens import SecretKey, TokenSigner

__all__ = [
    "BaseFrontend",
    "BaseSessionBackend",
    "Frontend",
    "SessionBackend",
    "SupportsBatchedPurge",
    "SupportsReadAndTouch",
    "SupportsRecordCounts",
]


@runtime_checkable
class SessionBackend(Protocol):
    """Async storage of :class:`SessionRecord` objects, keyed by ``record.key``.

    Backends see opaque payload bytes and metadata, never session objects and
    never the raw token. All datetimes are aware UTC.

    **One clock decides liveness.** Every method that judges liveness takes a
    keyword-only ``now``: the aware UTC time that decides what is live. A
    record whose ``expires_at <= now`` is expired and behaves as absent
    everywhere, whether or not it has been physically removed yet. The manager
    always passes its own clock's reading. ``None`` means the backend's own
    clock, for direct use (scripts, tests); for the built-in backends that is
    the ``clock`` they were built with, by default the system clock. One call
    never mixes clocks: everything it judges, it judges by that one ``now``.

    **Native expiry is relative to** ``now``. Anything the server expires by
    itself (a Redis key's TTL, the date a MongoDB TTL index reads) is computed
    from ``expires_at - now``: the server removes the record that long after
    the call, by its own clock. So a manager clock hours away from the server's
    neither kills live records nor keeps dead ones readable; reads still judge
    by ``now``, so a record that is physically present but expired at ``now``
    is never returned.

    **Lifecycle rules.** ``create`` starts a record at version 1 whatever
    ``record.version`` says, and ``update`` counts up from there, keeping the
    stored ``key`` and ``created_at``. ``touch`` never revives a deleted or
    expired record, and the per-user index follows it: the record stays listed
    (and ``delete_by_user`` finds it) until its new expiry. ``delete`` says
    ``True`` only for a record live at ``now``. Tombstones or soft-deleted
    rows a store keeps are not records: absent to every method, counted by
    none.

    **Every operation is atomic on its one key**: concurrent calls on a key
    end as if run one after the other. A method that checks in one round trip
    and writes in another breaks this (two creators of one key, a touch that
    brings back a deleted record or overwrites an update); use the store's
    conditional write or a server-side script.

    The conformance kit (``fastapi_sessions.testing``) checks each rule and
    names it when it breaks; docs/writing-a-backend.md lists them.
    """

    async def create(self, record: SessionRecord, *, now: datetime | None = None) -> None:
        """Insert ``record`` at version 1; raise ``SessionExists`` if a record live at ``now`` has its key.

        A record of that key that is expired at ``now`` is replaced.
        """
        ...

    async def read(self, key: str, *, now: datetime | None = None) -> SessionRecord | None:
        """Return the record for ``key`` if it is live at ``now``, else ``None``. Never creates anything."""
        ...

    async def update(self, record: SessionRecord, expected_version: int, *, now: datetime | None = None) -> int:
        """Replace the stored record if its version is ``expected_version``, atomically (a compare-and-set).

        Returns the new version (``expected_version + 1``); the stored record
        takes that version whatever ``record.version`` says. Raises
        ``SessionConflict`` on a version mismatch and ``SessionNotFound`` if
        the record is gone or expired at ``now``: an update never resurrects.
        ``record.key`` and ``record.created_at`` identify, they are not changed:
        the stored ``created_at`` stays, whatever the caller's record says. A
        changed ``user_id`` moves the record to that user's index.
        """
        ...

    async def touch(self, key: str, expires_at: datetime, *, now: datetime | None = None) -> bool:
        """Set the expiry of a record live at ``now`` without rewriting it; ``False`` if gone or expired.

        Never revives a deleted or expired record (also when it races a
        ``delete``), and keeps the per-user index in step: the record stays
        listed for its user, and ``delete_by_user`` finds it, until its new
        expiry. Payload, user and version are not rewritten (also when it races
        an ``update``).
        """
        ...

    async def delete(self, key: str, *, now: datetime | None = None) -> bool:
        """Remove the record; idempotent. Returns whether a record live at ``now`` was removed.

        ``False`` for a key that is unknown, already deleted or expired at ``now``,
        even if an expired leftover is removed physically.
        """
        ...

    async def list_by_user(self, user_id: str, *, now: datetime | None = None) -> Sequence[SessionRecord]:
        """The records live at ``now`` whose ``user_id`` is ``user_id``, whole, in no set order.

        Whole: payload and version as ``read`` gives them (the device list reads each
        session's metadata from the listed payloads rather than one read per session).
        """
        ...

    async def delete_by_user(self, user_id: str, *, now: datetime | None = None) -> int:
        """Remove every record of ``user_id``; return how many of them were live at ``now``."""
        ...

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        """Physically remove records expired at ``now``; return how many were removed."""
        ...

    async def aclose(self) -> None:
        """Release connections. Idempotent."""
        ...


@runtime_checkable
class SupportsReadAndTouch(Protocol):
    """Optional: a read that also extends the idle deadline, in one round trip.

    The manager decides by presence: a backend that has this method is used
    through it on every request that carries a token, so idle extension costs
    no extra round trip; the conformance kit tests it whenever it is there.
    Leave it out rather than implement it in two steps; the manager then uses
    ``read`` and ``touch``. Its errors are mapped like every other method's.
    """

    async def read_and_touch(
        self,
        key: str,
        *,
        now: datetime,
        idle_timeout: timedelta,
        absolute_timeout: timedelta,
        refresh_interval: timedelta,
    ) -> tuple[SessionRecord | None, bool]:
        """Read the live record for ``key`` and extend it if due, atomically.

        With ``target = min(created_at + absolute_timeout, now + idle_timeout)``,
        the stored ``expires_at`` becomes ``target`` when
        ``target - expires_at >= refresh_interval``; nothing else changes (not
        the payload, not the user, not the version), and the per-user index
        follows the new expiry as for ``touch``. ``target`` never passes the
        absolute deadline ``created_at + absolute_timeout``. Liveness is judged
        against ``now``: a record expired at ``now`` (idle or absolute) is
        ``(None, False)``, and a deleted one is never revived. A native expiry
        it sets is relative to ``now`` as in :class:`SessionBackend`.
        Returns the record as stored afterwards (or ``None`` if there is no
        live record) and whether it was extended.
        """
        ...


@runtime_checkable
class SupportsBatchedPurge(Protocol):
    """Optional: a purge step that removes at most ``limit`` expired records, for progress and short transactions.

    Maintenance tools (the ``fastapi-sessions purge`` command) call it in a
    loop with one ``now`` until a step removes fewer than ``limit``; without
    it they make one ``purge_expired`` call. The kit tests it whenever it is there.
    """

    async def purge_expired_batch(self, limit: int, *, now: datetime | None = None) -> int:
        """Physically remove at most ``limit`` records expired at ``now``; return how many were removed.

        Fewer than ``limit`` means none expired at ``now`` was left for this
        call (a concurrent purger may be holding some). Live records are never
        touched; a record is judged by its stored ``expires_at`` at ``now``.
        ``limit`` is at least 1.
        """
        ...


@runtime_checkable
class SupportsRecordCounts(Protocol):
    """Optional: how many records the store holds, live and expired, at ``now``.

    For operators (``fastapi-sessions stats``) and the purge's progress bar;
    never called on a request. Leave it out when the store cannot count
    without visiting every key it holds (a Redis keyspace); tools then say
    "unknown". A store that also removes expired records by itself (a TTL
    index) counts what is still there at the call.
    """

    async def count_records(self, *, now: datetime | None = None) -> RecordCounts:
        """The records live at ``now`` and those stored but expired at ``now`` (awaiting a purge).

        Counts are of records: the manager's short-lived markers (a retired
        token's forward) are records too. Judged by one ``now``, like every
        other method.
        """
        ...


class BaseSessionBackend(ABC):
    """Optional helper base: declares the contract abstractly and adds ``async with``."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @abstractmethod
    async def create(self, record: SessionRecord, *, now: datetime | None = None) -> None: ...

    @abstractmethod
    async def read(self, key: str, *, now: datetime | None = None) -> SessionRecord | None: ...

    @abstractmethod
    async def update(self, record: SessionRecord, expected_version: int, *, now: datetime | None = None) -> int: ...

    @abstractmethod
    async def touch(self, key: str, expires_at: datetime, *, now: datetime | None = None) -> bool: ...

    @abstractmethod
    async def delete(self, key: str, *, now: datetime | None = None) -> bool: ...

    @abstractmethod
    async def list_by_user(self, user_id: str, *, now: datetime | None = None) -> Sequence[SessionRecord]: ...

    @abstractmethod
    async def delete_by_user(self, user_id: str, *, now: datetime | None = None) -> int: ...

    @abstractmethod
    async def purge_expired(self, *, now: datetime | None = None) -> int: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release resources; the default has none."""


# -- transport ---------------------------------------------------------------------------


@runtime_checkable
class Frontend(Protocol):
    """The transport contract the manager and the middleware rely on."""

    def sign(self, token: str) -> str:
        """The public session id for ``token``: what the client carries."""
        ...

    def unsign(self, session_id: str) -> str | None:
        """The token inside a public session id, or ``None`` if it is forged or malformed."""
        ...

    def extract(self, scope: Scope) -> str | None:
        """The verified token a request carries, or ``None``."""
        ...

    def issue(self, headers: MutableHeaders, token: str, max_age: int) -> None:
        """Add to response ``headers`` whatever hands ``token`` to the client."""
        ...

    def clear(self, headers: MutableHeaders) -> None:
        """Add to response ``headers`` whatever tells the client to forget its token."""
        ...

    def __call__(self, request: Request) -> str | None:
        """As a FastAPI dependency: the verified public session id, or ``None``."""
        ...


class BaseFrontend(SecurityBase):
    """Signing plus FastAPI security-scheme plumbing shared by the built-in frontends.

    Being a ``SecurityBase``, a frontend used as a dependency puts its scheme in
    ``/openapi.json``. Called as a dependency it returns the public session id
    the request carries if its signature verifies, else ``None``.
    """

    def __init__(self, secret_key: SecretKey | Sequence[SecretKey], *, salt: str) -> None:
        self._signer = TokenSigner(secret_key, salt=salt)

    def sign(self, token: str) -> str:
        return self._signer.sign(token)

    def unsign(self, session_id: str) -> str | None:
        return self._signer.unsign(session_id)

    def extract(self, scope: Scope) -> str | None:
        """The first value the request carries that verifies, as its token."""
        for value in self.candidates(scope):
            token = self._signer.unsign(value)
            if token is not None:
                return token
        return None

    def find(self, scope: Scope) -> str | None:
        """The first raw (still signed) value the request carries, if any."""
        return next(iter(self.candidates(scope)), None)

    def candidates(self, scope: Scope) -> Iterator[str]:
        """Every raw value the request carries, in order (a browser may send two cookies of one name)."""
        raise NotImplementedError

    def __call__(self, request: Request) -> str | None:
        for value in self.candidates(request.scope):
            if self._signer.unsign(value) is not None:
                return value
        return None
