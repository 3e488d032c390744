"""The session object routes see: a ``dict`` that remembers what happened to it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from starlette.middleware.sessions import Session as _StarletteSession

from .records import SessionRecord

__all__ = ["LOGIN_SCOPED_META", "META_PREFIX", "Session", "adopt_stored", "split_stored", "stored_mapping"]

#: Keys of the stored mapping that hold the library's own state for a session (device metadata,
#: the CSRF token, flash messages) beside the application's data. Reserved: data keys must not
#: start with it. Kept as top-level keys so a concurrent save merges them one by one, like data.
META_PREFIX = "__fastapi_sessions."
_META_MARK = META_PREFIX.encode()
#: Metadata that belongs to one login (the CSRF token, the device it was made on): a change of user drops it.
LOGIN_SCOPED_META = frozenset({"csrf", "device"})


class Session(_StarletteSession):
    """Session data plus state; behaves exactly like Starlette 1.x's session.

    It is a ``dict`` (so it serializes anywhere a dict does). Every mutating
    method marks it ``modified``; reading it through ``request.session`` marks it
    ``accessed``. A modified session is saved before the response headers go
    out; clearing it ends the session. Values must be JSON types.

    Besides the dict, a session has a user (``user_id``; assigning it logs in:
    the token is regenerated and the per-user index updated) and can be
    :meth:`regenerate`-d or :meth:`invalidate`-d.
    """

    # Plain attributes, not properties: the hot path reads them on every request.
    # Class-level defaults, so a loaded session only sets what differs.
    _record: SessionRecord | None = None
    _token: str | None = None
    _user_id: str | None = None
    _regenerate: bool = False
    _invalidated: bool = False
    _touch_to: datetime | None = None
    # The request's token was validly signed but its session is gone: the storage key it had.
    _dead_key: str | None = None
    # The request's token was retired (regenerated, logged out, replaced): no session, no cookie, no writes.
    _superseded: bool = False
    # The library's own per-session state (names without META_PREFIX); None when there is none.
    _meta: dict[str, Any] | None = None

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        *,
        record: SessionRecord | None = None,
        token: str | None = None,
    ) -> None:
        if data:
            dict.update(self, data)
        if record is not None:
            self._record = record
            self._token = token
            self._user_id = record.user_id

    # -- state -------------------------------------------------------------------------------

    @property
    def data(self) -> Session:
        """The session itself, for code that prefers ``session.data["key"]``."""
        return self

    @property
    def is_new(self) -> bool:
        """``True`` until the session has been stored."""
        return self._record is None

    @property
    def key(self) -> str | None:
        """The storage key (a hash of the token), or ``None`` for a new session."""
        return self._record.key if self._record is not None else None

    @property
    def created_at(self) -> datetime | None:
        return self._record.created_at if self._record is not None else None

    @property
    def expires_at(self) -> datetime | None:
        return self._record.expires_at if self._record is not None else None

    @property
    def user_id(self) -> str | None:
        """The logged-in user, or ``None``."""
        return self._user_id

    @user_id.setter
    def user_id(self, value: str | None) -> None:
        """Log in (or out): a change of user regenerates the token at save time."""
        if value is not None and not isinstance(value, str):
            raise TypeError("user_id must be a str or None")
        if value != self._user_id:
            self._user_id = value
            self._regenerate = True
            if self._meta:
                for name in LOGIN_SCOPED_META & self._meta.keys():
                    del self._meta[name]
            self.mark_modified()

    # -- actions -----------------------------------------------------------------------------

    def regenerate(self) -> None:
        """Issue a new token at save time, keep the data, and retire the old token."""
        self._regenerate = True
        self.mark_modified()

    def invalidate(self) -> None:
        """End the session: clear the data; at save time its record is retired and the cookie cleared."""
        super().clear()
        self._meta = None
        self._user_id = None
        self._invalidated = True
        self.mark_modified()

    def clear(self) -> None:
        """Clearing a session ends it, as with Starlette's."""
        self.invalidate()

    # -- the library's own state, apart from the data ------------------------------------------

    def get_meta(self, name: str, default: Any = None) -> Any:
        """A value the library (or an extension) keeps with this session, outside its data."""
        meta = self._meta
        return default if meta is None else meta.get(name, default)

    def set_meta(self, name: str, value: Any) -> None:
        """Keep ``value`` (a JSON type) with the session under ``name``; saved like a data change."""
        if self._meta is None:
            self._meta = {}
        self._meta[name] = value
        self.mark_modified()

    def pop_meta(self, name: str, default: Any = None) -> Any:
        """Remove and return ``name``; a session without it is left unmodified."""
        meta = self._meta
        if meta is None or name not in meta:
            return default
        value = meta.pop(name)
        self.mark_modified()
        return value

    def __repr__(self) -> str:  # never the token, never the data (it may be secret)
        state = "new" if self._record is None else f"key={self._record.key[:8]}..."
        return f"<Session {state} keys={len(self)} modified={self.modified}>"


def stored_mapping(session: Session) -> Mapping[str, Any]:
    """What is serialized for ``session``: its data plus its metadata under :data:`META_PREFIX`."""
    meta = session._meta
    if not meta:
        return session
    mapping = dict(session)
    mapping.update({META_PREFIX + name: value for name, value in meta.items()})
    return mapping


def split_stored(mapping: dict[str, Any], payload: bytes | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A decoded payload as (data, metadata). ``payload``: its bytes, to skip the scan when no key is reserved."""
    if payload is not None and _META_MARK not in payload:
        return mapping, None
    cut = len(META_PREFIX)
    meta = {key[cut:]: mapping.pop(key) for key in [k for k in mapping if k.startswith(META_PREFIX)]}
    return mapping, meta or None


def adopt_stored(session: Session, mapping: Mapping[str, Any]) -> None:
    """Make ``session`` hold ``mapping`` (a stored mapping, e.g. after a merge) as data and metadata."""
    data, meta = split_stored(dict(mapping))
    dict.clear(session)
    dict.update(session, data)
    session._meta = meta
