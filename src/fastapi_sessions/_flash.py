"""Flash messages: notes for the next page ("Saved", "You have been signed out"), shown once.

They are kept in the session's metadata (``"flash"``), beside the data and
outside the dict the application sees, so they cost no write of their own: a
flash is saved with the request's other changes, and reading them writes only
when a message was there to consume. Unlike the CSRF token they survive a
login; a flash added after ``session.clear()`` (a logout) starts the fresh
anonymous session that carries it to the next page.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal, overload

from starlette.requests import HTTPConnection

from ._core.dependencies import session_of

__all__ = ["FLASH_META", "flash", "get_flashed_messages"]

#: The session metadata name of the pending messages: a list of ``[category, message]`` pairs.
FLASH_META: Final = "flash"
# What this request has already taken from the session: a second call in one request (a base
# template and a page, say) sees the same messages again, as in Flask.
_TAKEN: Final = "fastapi_sessions.flashed"


def flash(request: HTTPConnection, message: str, category: str = "info") -> None:
    """Keep ``message`` for the next :func:`get_flashed_messages` of this client (usually the next page)."""
    if not isinstance(message, str) or not isinstance(category, str):
        raise TypeError("a flash message and its category must be str")
    session = session_of(request)
    pending = session.get_meta(FLASH_META)
    queue = [*pending] if isinstance(pending, list) else []
    queue.append([category, message])
    session.set_meta(FLASH_META, queue)


@overload
def get_flashed_messages(
    request: HTTPConnection, with_categories: Literal[False] = False, category_filter: Iterable[str] = ()
) -> list[str]: ...


@overload
def get_flashed_messages(
    request: HTTPConnection, with_categories: Literal[True], category_filter: Iterable[str] = ()
) -> list[tuple[str, str]]: ...


def get_flashed_messages(
    request: HTTPConnection, with_categories: bool = False, category_filter: Iterable[str] = ()
) -> list[str] | list[tuple[str, str]]:
    """The pending messages, oldest first, removed from the session (shown once).

    ``with_categories=True`` gives ``(category, message)`` pairs. With a
    ``category_filter``, only messages of those categories are returned and
    consumed; the others wait for a later call. When there are none, the
    session is left unmodified (a read-only page writes nothing).
    """
    wanted = frozenset((category_filter,) if isinstance(category_filter, str) else category_filter)
    session = session_of(request)
    scope = request.scope
    taken: list[tuple[str, str]] = scope.get(_TAKEN, [])
    pending = session.get_meta(FLASH_META)
    if isinstance(pending, list) and pending:
        valid = [(str(item[0]), str(item[1])) for item in pending if isinstance(item, list | tuple) and len(item) == 2]
        take = [item for item in valid if not wanted or item[0] in wanted]
        keep = [[category, message] for category, message in valid if wanted and category not in wanted]
        if len(keep) != len(pending):  # something was taken (or malformed): else nothing is written
            if keep:
                session.set_meta(FLASH_META, keep)
            else:
                session.pop_meta(FLASH_META)
        if take:
            taken = [*taken, *take]
            scope[_TAKEN] = taken
    shown = [item for item in taken if not wanted or item[0] in wanted]
    return shown if with_categories else [message for _, message in shown]
