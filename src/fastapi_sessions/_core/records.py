"""What a backend stores: opaque bytes plus the metadata the manager needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["RecordCounts", "SessionInfo", "SessionRecord", "deadline"]


def deadline(created_at: datetime, now: datetime, *, idle_timeout: timedelta, absolute_timeout: timedelta) -> datetime:
    """The ``expires_at`` a session used at ``now`` gets: the earlier of its two deadlines.

    The absolute one counts from ``created_at`` and never moves; the idle one
    counts from ``now``. The manager, the reference backends and the contract's
    ``read_and_touch`` all mean this formula (the Redis Lua scripts restate it).
    """
    return min(created_at + absolute_timeout, now + idle_timeout)


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One stored session.

    ``key`` is a hash of the public token, never the token itself, so a leaked
    store holds nothing a client could present. ``expires_at`` is the earlier of
    the absolute and the idle deadline, an aware UTC datetime. ``version`` starts
    at 1 and grows by one on every successful ``update``.
    """

    key: str
    payload: bytes
    user_id: str | None
    created_at: datetime
    expires_at: datetime
    version: int = 1


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What the per-user listing tells about a session: metadata, never data or token.

    ``key`` identifies the session for :meth:`SessionManager.revoke` (it is a
    SHA-256 of the token, so it is safe to show the session's owner). The
    fields after ``expires_at`` are filled by :meth:`SessionManager.list_sessions`
    and default to "unknown" for code that builds an info from a record:
    ``user_agent`` and ``ip`` as recorded at login (see the manager's
    ``record_user_agent`` and ``record_ip``), ``last_seen`` derived from the
    expiry (exact to ``idle_refresh_interval`` while the idle deadline governs,
    a lower bound once the absolute deadline caps it), and ``current`` for the
    session passed as ``current=``.
    """

    key: str
    user_id: str | None
    created_at: datetime
    expires_at: datetime
    user_agent: str | None = None
    ip: str | None = None
    last_seen: datetime | None = None
    current: bool = False

    @classmethod
    def of(cls, record: SessionRecord) -> SessionInfo:
        return cls(record.key, record.user_id, record.created_at, record.expires_at)


@dataclass(frozen=True, slots=True)
class RecordCounts:
    """What a backend with ``count_records`` holds at one ``now``: ``live`` records and ``expired`` ones.

    ``expired`` records are still stored but dead: a purge would remove them.
    """

    live: int
    expired: int

    @property
    def total(self) -> int:
        return self.live + self.expired
