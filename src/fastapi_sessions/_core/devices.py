"""Device lists: what a login records about the client, and the per-user operations built on it.

Nothing here adds a store write to a request. The device (user agent, and the
client IP when enabled) is session metadata (``Session.set_meta("device", ...)``)
set just before the login's own save, so it is written with it; ``last_seen``
is derived from the record's expiry, which the idle extension already moves at
most once per ``idle_refresh_interval``. The listing decodes the payloads that
``list_by_user`` already returns: one store call for the whole device page.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import BackendError, SerializationError
from .commit import Commit, CommitOutcome
from .markers import read_marker
from .records import SessionInfo, SessionRecord
from .session import Session, split_stored

if TYPE_CHECKING:
    from starlette.types import Scope

    from .direct import DirectAPI

__all__ = [
    "DEVICE_META",
    "USER_AGENT_LIMIT",
    "after_login",
    "device_infos",
    "end_over_cap",
    "is_login",
    "last_seen",
    "note_login",
    "revoke_others",
    "revoke_owned",
]

logger = logging.getLogger("fastapi_sessions")

#: The metadata name the device is kept under (login-scoped: a change of user drops it).
DEVICE_META = "device"
#: Characters of the User-Agent header kept; browsers send about 120, a hostile client any amount.
USER_AGENT_LIMIT = 256
#: Deletes in flight at once when several sessions end together (revoke_others, the cap).
_PARALLEL_DELETES = 16
_LOGIN_OUTCOMES = frozenset({CommitOutcome.CREATED, CommitOutcome.REGENERATED})


# -- recording, at login ---------------------------------------------------------------------


def is_login(session: Session) -> bool:
    """Whether committing ``session`` logs a user in: a user is set and it is not the stored one."""
    if session._user_id is None or session._invalidated or session._superseded:
        return False
    record = session._record
    return record is None or record.user_id != session._user_id


def note_login(manager: DirectAPI, session: Session, scope: Scope) -> bool:
    """Before a commit: if it is a login, record the device in the session's metadata; say whether it is.

    The middleware calls it only for a session due for regeneration (a change of
    user always is one), so the common request pays one attribute test.
    """
    if not is_login(session):
        return False
    device: dict[str, Any] = {}
    if manager.record_user_agent:
        for name, value in scope.get("headers") or ():
            if name.lower() == b"user-agent":
                device["user_agent"] = value.decode("latin-1")[:USER_AGENT_LIMIT]
                break
    if manager.record_ip:
        client = scope.get("client")
        if client:
            device["ip"] = str(client[0])
    if device:
        stored = session.get_meta(DEVICE_META)
        if isinstance(stored, dict):  # what the application set after the login wins
            device.update(stored)
        session.set_meta(DEVICE_META, device)
    return True


async def after_login(manager: DirectAPI, session: Session, result: Commit) -> None:
    """After a login's commit: end the user's sessions beyond ``max_sessions_per_user``, if set."""
    if manager.max_sessions_per_user is None or result.outcome not in _LOGIN_OUTCOMES:
        return
    if session._user_id is not None and session._record is not None:
        await end_over_cap(manager, session._user_id, session._record.key)


async def end_over_cap(manager: DirectAPI, user_id: str, keep: str) -> int:
    """End ``user_id``'s oldest sessions beyond the cap; never ``keep`` (the login's own). Return how many.

    The newest ``max_sessions_per_user`` (by login time, then key) stay, and
    ``keep`` always does, so two logins racing agree on which ones go and the
    count settles at the cap by the next login at the latest. A store failure
    is logged and leaves the extra sessions: the login it follows has already
    succeeded, and ending other devices is not worth failing it for.
    """
    cap = manager.max_sessions_per_user
    if cap is None:
        return 0
    now = manager._now()
    try:
        live = _live(await manager.backend.list_by_user(user_id, now=now), now)
        live.sort(key=lambda r: (r.created_at, r.key), reverse=True)
        count = await _delete_each(manager, [r.key for r in live[cap:] if r.key != keep], now)
        manager._events.revoked("max_sessions_per_user", user_id=user_id, count=count)
        return count
    except BackendError as exc:
        logger.warning("max_sessions_per_user not enforced at this login: %s", type(exc).__name__)
        return 0


# -- the device list ---------------------------------------------------------------------------


def last_seen(record: SessionRecord, now: datetime, idle_timeout: timedelta) -> datetime:
    """When the session was last used, derived from its expiry (no write of its own).

    Every use moves ``expires_at`` to ``min(created_at + absolute, now + idle)``,
    at most once per refresh interval, so while the idle deadline governs this
    is exact to that interval (it lags by up to one); once the absolute
    deadline caps the expiry it is a lower bound.
    """
    return max(record.created_at, min(record.expires_at - idle_timeout, now))


def device_infos(
    manager: DirectAPI, records: Iterable[SessionRecord], now: datetime, current: Session | None
) -> list[SessionInfo]:
    """The live sessions among ``records`` as infos with their device and ``last_seen``, oldest first."""
    current_key = current.key if current is not None else None
    infos = []
    for record in _live(records, now):
        device = _device_of(manager, record)
        infos.append(replace(
            SessionInfo.of(record),
            user_agent=_text(device.get("user_agent")),
            ip=_text(device.get("ip")),
            last_seen=last_seen(record, now, manager.idle_timeout),
            current=record.key == current_key,
        ))
    return sorted(infos, key=lambda info: (info.created_at, info.key))


def _device_of(manager: DirectAPI, record: SessionRecord) -> dict[str, Any]:
    try:
        data = manager.serializer.loads(record.payload)
    except SerializationError:
        return {}
    if not isinstance(data, dict):
        return {}
    _, meta = split_stored(data, record.payload if manager._json_payloads else None)
    device = (meta or {}).get(DEVICE_META)
    return device if isinstance(device, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# -- revocation --------------------------------------------------------------------------------


async def revoke_owned(manager: DirectAPI, key: str, user_id: str) -> bool:
    """End ``key``'s session only if it is ``user_id``'s; ``False`` alike for a stranger's and an unknown key.

    A read, then a delete: a key never changes owner (a login or a logout gives
    the session a new key), so nothing can make the read's answer stale.
    """
    if not isinstance(key, str) or not isinstance(user_id, str):
        return False
    now = manager._now()
    record = await manager.backend.read(key, now=now)
    if record is None or record.user_id != user_id or record.expires_at <= now:
        return False
    if read_marker(record.payload) is not None:
        return False
    return await manager.backend.delete(key, now=now)


async def revoke_others(manager: DirectAPI, session: Session) -> int:
    """End every session of ``session``'s user except ``session`` itself; return how many ended."""
    user_id = session.user_id
    if user_id is None:
        return 0
    now = manager._now()
    own = session.key
    records = _live(await manager.backend.list_by_user(user_id, now=now), now)
    return await _delete_each(manager, [r.key for r in records if r.key != own], now)


# -- helpers -----------------------------------------------------------------------------------


def _live(records: Iterable[SessionRecord], now: datetime) -> list[SessionRecord]:
    """Sessions proper: live at ``now`` and not the markers retired tokens leave behind."""
    return [r for r in records if r.expires_at > now and read_marker(r.payload) is None]


async def _delete_each(manager: DirectAPI, keys: Sequence[str], now: datetime) -> int:
    """Delete ``keys``, a bounded number at a time; return how many were live. Every delete settles first."""
    ended = 0
    delete: Callable[..., Awaitable[bool]] = manager.backend.delete
    for start in range(0, len(keys), _PARALLEL_DELETES):
        batch = keys[start:start + _PARALLEL_DELETES]
        results = await asyncio.gather(*(delete(key, now=now) for key in batch), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        ended += sum(1 for result in results if result is True)
    return ended
