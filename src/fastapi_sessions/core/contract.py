"""The storage contract every backend honours.

``SessionBackend`` is a runtime-checkable ``Protocol``: a backend needs to
import nothing from this package to satisfy it. ``BaseSessionBackend`` is an
optional ABC that adds ``async with`` support. What the contract *means* is
pinned down executably by the conformance kit in ``fastapi_sessions.testing``;
``isinstance`` only checks that the methods exist.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from .records import SessionRecord

__all__ = ["BaseSessionBackend", "SessionBackend", "SupportsReadAndTouch"]


@runtime_checkable
class SessionBackend(Protocol):
    """Async storage of :class:`SessionRecord` objects, keyed by ``record.key``.

    Backends see opaque payload bytes and metadata, never session objects and
    never the raw token. All datetimes are aware UTC. A record whose
    ``expires_at`` is not in the future is expired and behaves as absent
    everywhere, whether or not it has been physically removed yet.
    """

    async def create(self, record: SessionRecord) -> None:
        """Insert ``record``; raise ``SessionExists`` if a live record has its key."""
        ...

    async def read(self, key: str) -> SessionRecord | None:
        """Return the live record for ``key`` or ``None``. Never creates anything."""
        ...

    async def update(self, record: SessionRecord, expected_version: int) -> int:
        """Replace the stored record if its version is ``expected_version``.

        Returns the new version (``expected_version + 1``); the stored record
        takes that version whatever ``record.version`` says. Raises
        ``SessionConflict`` on a version mismatch and ``SessionNotFound`` if
        the record is gone or expired: an update never resurrects.
        ``record.key`` and ``record.created_at`` identify, they are not changed.
        """
        ...

    async def touch(self, key: str, expires_at: datetime) -> bool:
        """Set a live record's expiry without rewriting it; ``False`` if gone."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove the record; idempotent. Returns whether a live record was removed."""
        ...

    async def list_by_user(self, user_id: str) -> Sequence[SessionRecord]:
        """The live records whose ``user_id`` is ``user_id``, in no set order."""
        ...

    async def delete_by_user(self, user_id: str) -> int:
        """Remove every record of ``user_id``; return how many live ones went."""
        ...

    async def purge_expired(self) -> int:
        """Physically remove expired records; return how many were removed."""
        ...

    async def aclose(self) -> None:
        """Release connections. Idempotent."""
        ...


@runtime_checkable
class SupportsReadAndTouch(Protocol):
    """Optional: a read that also extends the idle deadline, in one round trip.

    A backend that has this method is used through it on every request that
    carries a token, so idle extension costs no extra round trip.
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
        the payload, not the version). Liveness is judged against ``now``.
        Returns the record as stored afterwards (or ``None`` if there is no
        live record) and whether it was extended.
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
    async def create(self, record: SessionRecord) -> None: ...

    @abstractmethod
    async def read(self, key: str) -> SessionRecord | None: ...

    @abstractmethod
    async def update(self, record: SessionRecord, expected_version: int) -> int: ...

    @abstractmethod
    async def touch(self, key: str, expires_at: datetime) -> bool: ...

    @abstractmethod
    async def delete(self, key: str) -> bool: ...

    @abstractmethod
    async def list_by_user(self, user_id: str) -> Sequence[SessionRecord]: ...

    @abstractmethod
    async def delete_by_user(self, user_id: str) -> int: ...

    @abstractmethod
    async def purge_expired(self) -> int: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release resources; the default has none."""
