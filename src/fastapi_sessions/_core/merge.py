"""The key-level three-way merge a save falls back on when its compare-and-set lost."""

from __future__ import annotations

from typing import Any, Literal

from ..errors import SessionConflict

__all__ = ["ConflictPolicy", "merge"]

ConflictPolicy = Literal["last_writer_wins", "raise"]
_MISSING: Any = object()


def merge(
    original: dict[str, Any],
    ours: dict[str, Any],
    theirs: dict[str, Any],
    *,
    policy: ConflictPolicy,
    key: str | None = None,
) -> dict[str, Any]:
    """Re-apply this request's key-level changes (``original`` to ``ours``) on top of the stored ``theirs``.

    Under ``policy="raise"``, a key this request changed that a concurrent
    request changed too since this request's read is a conflict, whatever the
    values. ``key`` is the storage key of the record being saved, for the error.
    """
    merged = dict(theirs)
    for name in ours.keys() | original.keys():
        mine = ours.get(name, _MISSING)
        before = original.get(name, _MISSING)
        if mine == before:
            continue  # we did not touch this entry; keep theirs
        if policy == "raise" and theirs.get(name, _MISSING) != before:
            raise SessionConflict(f"the session entry {name!r} was changed by a concurrent request",
                                  key=key, operation="update")
        if mine is _MISSING:
            merged.pop(name, None)
        else:
            merged[name] = mine
    return merged
