"""Time sources. Everything that judges expiry takes a clock, so tests never sleep."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["Clock", "ManualClock", "utc_now"]

#: A clock is any callable returning an aware UTC ``datetime``.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The system clock, in UTC."""
    return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to; for tests.

    >>> clock = ManualClock()
    >>> clock.advance(minutes=5)
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")
        self._now = start or datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | None = None, /, **kwargs: float) -> datetime:
        """Move forward by ``delta`` or by ``timedelta(**kwargs)``; return the new time."""
        self._now += delta if delta is not None else timedelta(**kwargs)
        return self._now
