"""The manager's calls for code outside a request: the direct API and the per-user index.

``SessionManager`` inherits them; they build on its load (core/manager.py) and
its commit (core/saving.py), and on the device helpers of core/devices.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..errors import SessionConflict
from .contract import Frontend
from .devices import device_infos, end_over_cap, is_login, revoke_others, revoke_owned
from .events import EventKind
from .records import SessionInfo
from .saving import SaveMachinery
from .session import Session, stored_mapping
from .tokens import storage_key

__all__ = ["DirectAPI"]


class DirectAPI(SaveMachinery):
    """Sessions by public id, and a user's sessions by user id; each call judged by the manager's clock.

    Only ``SessionManager`` uses it, as its base: its ``__init__`` sets the
    options declared here and defines :meth:`load`.
    """

    frontend: Frontend
    max_sessions_per_user: int | None
    record_user_agent: bool
    record_ip: bool
    _json_payloads: bool

    async def load(self, token: str | None) -> Session:
        raise NotImplementedError  # SessionManager's

    # -- direct API (no middleware) ----------------------------------------------------------

    async def create_session(
        self, data: dict[str, Any] | None = None, *, user_id: str | None = None
    ) -> str:
        """Store a new session now and return its public session id (a signed token)."""
        session = Session(data)
        session._user_id = user_id
        now = self._now()
        token = await self._insert(session, self._dumps(stored_mapping(session), None), user_id, now, now)
        if user_id is not None and self.max_sessions_per_user is not None and session._record is not None:
            await end_over_cap(self, user_id, session._record.key)
        if self._events.on:
            self._events.fire(EventKind.CREATED, session.key, user_id)
        return self.frontend.sign(token)

    async def get_session(
        self, session_id: str) -> Session | None:
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

    async def save_session(
        self, session: Session) -> str | None:
        """Persist ``session``; return its public id (new after regeneration), or ``None``.

        ``None`` means the session holds nothing or has ended.
        """
        login = is_login(session)
        try:
            result = await self.commit(session)
        except SessionConflict:
            if self._events.on:
                self._events.fire(EventKind.CONFLICT, session.key, session.user_id, "raised")
            raise
        if login and self.max_sessions_per_user is not None and result.token is not None:
            assert session._user_id is not None and session._record is not None
            await end_over_cap(self, session._user_id, session._record.key)
        return self.frontend.sign(session._token) if session._token is not None else None

    async def delete_session(
        self, session_id: str) -> bool:
        """End the session behind a public session id. Idempotent."""
        token = self.frontend.unsign(session_id)
        if token is None:
            return False
        key = storage_key(token)
        deleted = await self.backend.delete(key, now=self._now())
        if deleted and self._events.on:
            self._events.fire(EventKind.ENDED, key, None, "logout")
        return deleted

    # -- per-user index ----------------------------------------------------------------------

    async def list_sessions(
        self, user_id: str, *, current: Session | None = None) -> list[SessionInfo]:
        """The user's live sessions (metadata only, never data or token), oldest first.

        Each carries the device recorded at its login and ``last_seen`` (derived
        from its expiry: exact to ``idle_refresh_interval``, a lower bound once
        the absolute deadline caps it); the one whose key is ``current``'s (pass
        ``request.session``) has ``current=True``. One store call
        (``list_by_user``, whose records carry their payloads), no write.
        """
        now = self._now()
        return device_infos(self, await self.backend.list_by_user(user_id, now=now), now, current)

    async def revoke(
        self, key: str, *, user_id: str | None = None) -> bool:
        """End one session by its storage key (from :meth:`list_sessions`).

        With ``user_id`` (do pass it when the key comes from a client), only a
        session of that user ends: ``False`` for another user's session and for
        an unknown key alike, so the answer reveals nothing about other users.
        """
        if user_id is not None:
            deleted = await revoke_owned(self, key, user_id)
        else:
            deleted = await self.backend.delete(key, now=self._now())
        self._events.revoked("revoke", key=key, count=int(deleted))
        return deleted

    async def revoke_others(
        self, session: Session) -> int:
        """End every session of ``session``'s user except ``session`` itself ("sign out the others").

        Returns how many ended; 0 without a user. One listing and one delete per other session.
        """
        count = await revoke_others(self, session)
        self._events.revoked("revoke_others", user_id=session.user_id, count=count)
        return count

    async def revoke_user(
        self, user_id: str) -> int:
        """End every session of ``user_id`` ("log out everywhere"); return how many ended."""
        ended = await self.backend.delete_by_user(user_id, now=self._now())
        self._events.revoked("revoke_user", user_id=user_id, count=ended)
        return ended

    async def purge_expired(self) -> int:
        """Remove expired records from the store; return how many went."""
        return await self.backend.purge_expired(now=self._now())
