"""The save half of the manager: what ``commit`` writes for a request's session, and what the client gets.

Every store write is a compare-and-set on the record's version or an insert.
A save that loses a round re-reads the record (through the forward a
concurrent regeneration left, see core/markers.py), merges this request's
key-level changes into it (core/merge.py) and tries again, at most
``max_save_attempts`` rounds. A session that ended elsewhere meanwhile drops
this request's changes (``GONE``), never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from ..errors import SessionConflict, SessionExists, SessionNotFound, SessionTooLarge
from .clock import Clock
from .commit import Commit, CommitOutcome
from .contract import SessionBackend
from .events import EventHub, EventKind
from .markers import Marker, marker_record, read_marker, retired_key
from .merge import ConflictPolicy, merge
from .records import SessionRecord, deadline
from .serializers import Serializer
from .session import Session, adopt_stored, stored_mapping
from .tokens import new_token, storage_key

__all__ = ["IN_FLIGHT", "MAX_HOPS", "SaveMachinery"]

logger = logging.getLogger("fastapi_sessions")


_UNCHANGED = Commit(CommitOutcome.UNCHANGED)
_TOUCHED = Commit(CommitOutcome.TOUCHED)
_SAVED = Commit(CommitOutcome.SAVED)
_GONE = Commit(CommitOutcome.GONE)
#: How long a retired token is recognized as retired: requests that loaded its session
#: before it was retired save through its marker within this time (see core/markers.py).
IN_FLIGHT = timedelta(minutes=1)
#: Forwards followed at most this many times in one load or save (a chain of logins racing).
MAX_HOPS = 8


class SaveMachinery:
    """Commit, save, end, regenerate: the part of :class:`SessionManager` that writes.

    Only ``SessionManager`` uses it, as its base: its ``__init__`` sets (and
    checks) the options declared here.
    """

    backend: SessionBackend
    serializer: Serializer
    clock: Clock
    idle_timeout: timedelta
    absolute_timeout: timedelta
    regenerate_grace: timedelta
    conflict_policy: ConflictPolicy
    max_save_attempts: int
    max_session_size: int | None
    _events: EventHub

    # -- deadlines ---------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.clock()

    def _deadline(self, created_at: datetime, now: datetime) -> datetime:
        return deadline(created_at, now, idle_timeout=self.idle_timeout, absolute_timeout=self.absolute_timeout)

    def _cookie_max_age(self, created_at: datetime, now: datetime) -> int:
        """The cookie lives until the absolute deadline, so no idle extension ever needs a new one."""
        return max(int((created_at + self.absolute_timeout - now).total_seconds()), 0)

    def _marker(self, key: str, marker: Marker, now: datetime, version: int = 1) -> SessionRecord:
        lifetime = max(IN_FLIGHT, self.regenerate_grace)
        return marker_record(key, marker, now=now, lifetime=lifetime, absolute_timeout=self.absolute_timeout,
                             version=version)

    # -- commit: one decision, one method per outcome -----------------------------------------

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
            if session.modified and (session._regenerate or session or session._meta or session._user_id is not None):
                raise SessionConflict("the session's token was replaced by a newer one; retry with it",
                                      operation="update")
            return _UNCHANGED
        if record is None:
            if session.modified and (session or session._meta or session._user_id is not None):
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
            if session or session._meta or session._user_id is not None:
                return await self._end_then_start(session, record, now)
            return await self._end(session, record, now)
        if session._regenerate:
            return await self._regenerate(session, record, now)
        if session or session._meta or session._user_id is not None:
            # The common write, kept inline (it runs on every modifying request): one compare-and-set.
            new = self._next(record, self._dumps(stored_mapping(session), record.key), record.user_id, now)
            try:
                version = await self.backend.update(new, record.version, now=now)
            except SessionConflict:
                return await self._save_after_conflict(session, record, now, lost=True)
            except SessionNotFound:
                return self._gone(session, record)
            self._stored(session, new, version)
            if self._events.on:
                self._events.fire(EventKind.SAVED, new.key, new.user_id)
            return _SAVED
        return await self._save_after_conflict(session, record, now, lost=False)  # emptied: see there

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

    @staticmethod
    def _forget(session: Session) -> None:
        dict.clear(session)
        session._meta = None
        session._record = session._token = session._touch_to = None
        session._user_id = None
        session._regenerate = False
        session.modified = False

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
        return SessionRecord(key=record.key, payload=payload, user_id=user_id, created_at=record.created_at,
                             expires_at=self._deadline(record.created_at, now), version=record.version + 1)

    # -- creating ----------------------------------------------------------------------------

    async def _create_fresh(self, session: Session, now: datetime) -> Commit:
        """A first save: a new record, and (for a dead token) a marker so stale tabs leave the cookie alone."""
        payload = self._dumps(stored_mapping(session), None)  # before the marker: a refused save leaves no trace
        if session._dead_key is not None:
            try:
                await self.backend.create(self._marker(retired_key(session._dead_key), Marker(None), now), now=now)
            except SessionExists:
                # Another request with the same dead token started a session first: its cookie stands.
                raise SessionConflict("a concurrent request started a new session for this client",
                                      key=session._dead_key, operation="create") from None
        token = await self._insert(session, payload, session._user_id, now, now)
        if self._events.on:
            self._events.fire(EventKind.CREATED, session.key, session._user_id)
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
        raise SessionExists("could not find a free session key", operation="create")

    # -- the compare-and-set rounds ----------------------------------------------------------

    async def _fresh(self, key: str, now: datetime) -> SessionRecord | None:
        """The live session data behind ``key``, through forwards; ``None`` if it ended."""
        for _ in range(MAX_HOPS):
            record = await self.backend.read(key, now=now)
            if record is None:
                return None
            marker = read_marker(record.payload)
            if marker is None:
                return record
            if marker.target is None or marker.over(now):
                return None  # retired (ended on purpose), or a forward past its in-flight window
            key = marker.target
        raise SessionConflict("too many concurrent regenerations of one session", key=key, operation="update")

    async def _retire(
        self, session: Session, current: SessionRecord, loaded: SessionRecord, now: datetime
    ) -> Commit | None:
        """End the session: compare-and-set ``current`` to a "retired" marker.

        ``None`` when a concurrent save won this round (the caller re-reads and decides again).
        """
        retired = self._marker(current.key, Marker(None), now, current.version + 1)
        try:
            await self.backend.update(retired, current.version, now=now)
        except SessionConflict:
            return None
        except SessionNotFound:
            return self._gone(session, loaded)
        if self._events.on:
            self._events.fire(EventKind.ENDED, current.key, current.user_id,
                              "logout" if session._invalidated else "emptied")
        session._invalidated = False
        self._forget(session)
        return Commit(CommitOutcome.ENDED)

    async def _save_after_conflict(
        self, session: Session, loaded: SessionRecord, now: datetime, *, lost: bool
    ) -> Commit:
        """Re-read (through a forward, if the session was regenerated meanwhile), re-apply this
        request's key-level changes, and compare-and-set again. Also decides whether an emptied
        session ends: only if it is still empty once the concurrent changes are in.

        ``lost``: a compare-and-set on ``loaded`` has already failed, so start by re-reading.
        """
        ours = dict(stored_mapping(session))
        original = self.serializer.loads(loaded.payload)
        current: SessionRecord | None = loaded
        merged = ours
        for attempt in range(int(lost), self.max_save_attempts):  # the failed one counts as a round
            if attempt:
                current = await self._fresh(loaded.key if current is None else current.key, now)
                if current is None:
                    return self._gone(session, loaded)
                merged = merge(original, ours, self.serializer.loads(current.payload),
                               policy=self.conflict_policy, key=current.key)
            assert current is not None
            if not merged and current.user_id is None:
                # Everything was popped: the session ends, as with Starlette's.
                if (ended := await self._retire(session, current, loaded, now)) is not None:
                    return ended
                continue
            new = self._next(current, self._dumps(merged, current.key), current.user_id, now)
            try:
                version = await self.backend.update(new, current.version, now=now)
            except SessionConflict:
                continue
            except SessionNotFound:
                return self._gone(session, loaded)
            adopt_stored(session, merged)
            self._stored(session, new, version)
            if self._events.on:
                if attempt:  # a round was lost: the concurrent changes were merged in
                    self._events.fire(EventKind.CONFLICT, new.key, new.user_id, "merged")
                self._events.fire(EventKind.SAVED, new.key, new.user_id)
            return _SAVED
        raise SessionConflict(f"save lost {self.max_save_attempts} compare-and-set rounds",
                              key=loaded.key, operation="update")

    async def _end(self, session: Session, loaded: SessionRecord, now: datetime) -> Commit:
        """Logout: the record becomes "retired", through any forward (a login that raced this logout)."""
        current: SessionRecord | None = loaded
        for attempt in range(self.max_save_attempts):
            if attempt:
                current = await self._fresh(current.key if current is not None else loaded.key, now)
            if current is None:
                return self._gone(session, loaded)
            if (ended := await self._retire(session, current, loaded, now)) is not None:
                return ended
        raise SessionConflict(f"logout lost {self.max_save_attempts} compare-and-set rounds",
                              key=loaded.key, operation="update")

    async def _end_then_start(self, session: Session, loaded: SessionRecord, now: datetime) -> Commit:
        """A logout followed, in the same request, by writes (a flash saying "You have been signed out"):
        the old session ends as in :meth:`_end`, and what was written after it starts a fresh one."""
        after, user_id = dict(stored_mapping(session)), session._user_id
        payload = self._dumps(after, None)  # before the logout: a refused save changes nothing
        await self._end(session, loaded, now)
        adopt_stored(session, after)
        session._user_id = user_id
        token = await self._insert(session, payload, user_id, now, now)
        if self._events.on:
            self._events.fire(EventKind.CREATED, session.key, user_id)
        return Commit(CommitOutcome.CREATED, token, self._cookie_max_age(now, now))

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
        ours = dict(stored_mapping(session))
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
                    raise SessionConflict("a concurrent request regenerated this session first",
                                          key=current.key, operation="update") from None
                original = original if original is not None else self.serializer.loads(loaded.payload)
                merged = merge(original, ours, self.serializer.loads(fresh.payload),
                               policy=self.conflict_policy, key=current.key)
                try:
                    payload = self._dumps(merged, loaded.key)
                except SessionTooLarge:
                    await self.backend.delete(new.key, now=now)  # nobody has its token yet
                    session._record, session._token = loaded, token_before  # as if never tried
                    session._regenerate = session.modified = True
                    raise
                replacement = replace(new, payload=payload, version=new.version + 1)
                try:
                    version = await self.backend.update(replacement, new.version, now=now)
                except (SessionConflict, SessionNotFound):
                    raise SessionConflict("the regenerated session changed before it was handed out",
                                          key=new.key, operation="update") from None
                new = replace(replacement, version=version)
                adopt_stored(session, merged)
                current = fresh
                continue
            session._record = new
            if self._events.on:
                if original is not None:  # a concurrent save was merged into the new record
                    self._events.fire(EventKind.CONFLICT, new.key, user_id, "merged")
                reason = "regenerate" if not login else "login" if user_id is not None else "logout"
                self._events.fire(EventKind.REGENERATED, new.key, user_id or loaded.user_id, reason,
                                  previous_key=loaded.key)
            return Commit(CommitOutcome.REGENERATED, token, self._cookie_max_age(created_at, now))
        await self.backend.delete(new.key, now=now)
        raise SessionConflict(f"regeneration lost {self.max_save_attempts} compare-and-set rounds",
                              key=loaded.key, operation="update")
