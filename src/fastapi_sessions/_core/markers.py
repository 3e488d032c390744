"""Records that stand where a retired token's session was: a forward to its successor, or "retired".

When a token stops being the session's (a regeneration, a login, a logout, or a
fresh session started from a token that had died), its record is not simply
deleted: for a short while it is replaced, by the same compare-and-set as any
save, with a marker. Requests that loaded the session before the change find the
marker when they save:

- a **forward** names the successor's storage key, so their key-level changes are
  merged into the new session instead of being lost with the old one;
- a **retired** marker says the session ended on purpose, so they drop their
  changes and leave the cookie alone (the request that ended it sent the cookie).

Requests that load a marker later (a tab that sent the old cookie just before the
new one arrived, or anyone replaying it) get no session: they may not clear or
replace the cookie, and they may not write. Only a forward left by a plain
:meth:`~fastapi_sessions.Session.regenerate` with ``regenerate_grace`` set is
followed by loads, until the grace window closes; a forward left by a login never
is, so a planted token never reaches the session that logged in.

A marker is an ordinary record to the backend (opaque bytes, no user), so every
backend stores it without knowing; the payload starts with a NUL byte, which no
JSON serializer produces. Each op on a marker is a single-key compare-and-set,
so the scheme holds on Redis Cluster.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .records import SessionRecord

__all__ = ["Marker", "marker_record", "read_marker", "retired_key"]

_PREFIX = b"\x00fastapi-sessions:"
_FORWARD = _PREFIX + b"forward:"
_RETIRED = _PREFIX + b"retired:"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Marker:
    """What a marker record says: the successor's key (``None``: retired), until when loads follow
    it, and when the marker itself ends (its record may physically outlive that: a touch by a
    request still in flight can extend it, so the end travels in the payload)."""

    target: str | None
    follow_until: datetime | None = None
    end: datetime | None = None

    def followable(self, now: datetime) -> bool:
        return self.target is not None and self.follow_until is not None and now < self.follow_until

    def over(self, now: datetime) -> bool:
        return self.end is not None and now >= self.end


def _at(us: str) -> datetime | None:
    return None if not us or us == "0" else _EPOCH + int(us) * _US


def _us(at: datetime | None) -> str:
    return "0" if at is None else str((at - _EPOCH) // _US)


def read_marker(payload: bytes) -> Marker | None:
    """The marker a payload holds, or ``None`` for session data."""
    if not payload.startswith(_PREFIX):
        return None
    if payload.startswith(_FORWARD):
        target, _, rest = payload[len(_FORWARD):].decode("ascii").partition(":")
        until, _, end = rest.partition(":")
        return Marker(target, _at(until), _at(end))
    return Marker(None, None, _at(payload[len(_RETIRED):].decode("ascii")))


def retired_key(key: str) -> str:
    """Where a marker for a *dead* token goes: never ``key`` itself.

    A save still in flight from the token's live days holds a version of ``key``'s old
    record; a new record at ``key`` starts at version 1 again and could match it (ABA),
    bringing the dead session back. Nothing saves to this key.
    """
    return hashlib.sha256(b"fastapi-sessions:retired:" + key.encode("ascii")).hexdigest()


def marker_record(
    key: str, marker: Marker, *, now: datetime, lifetime: timedelta, absolute_timeout: timedelta, version: int = 1
) -> SessionRecord:
    """The record that replaces ``key``'s session with ``marker`` until ``now + lifetime``.

    Its ``created_at`` puts the absolute deadline at the marker's end (a backend keeps the
    stored creation time on an update, so this holds for markers that are created).
    """
    end = now + lifetime
    if marker.target is None:
        payload = _RETIRED + _us(end).encode("ascii")
    else:
        payload = _FORWARD + f"{marker.target}:{_us(marker.follow_until)}:{_us(end)}".encode("ascii")
    return SessionRecord(key, payload, None, end - absolute_timeout, end, version)
