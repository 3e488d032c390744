"""The contract's rules as the kit names them in its failure messages.

Each kit test checks one or more of these; a failure says which rule broke and
what the backend did, so the author reads the contract, not the kit's source.
The same sentences are in ``SessionBackend``'s docstrings and in
docs/writing-a-backend.md.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from .._core.records import SessionRecord

__all__ = ["RULES", "broke", "show"]

RULES: dict[str, str] = {
    "round-trip": "read() returns exactly what create() stored: every field, aware UTC datetimes",
    "read-never-creates": "read() of an unknown key is None and creates nothing",
    "create-insert-only": "create() raises SessionExists if a record live at `now` has the key, and changes nothing",
    "create-over-expired": "create() replaces a record that is expired at `now`",
    "create-version-one": "create() stores version 1 whatever record.version says",
    "expired-is-absent": "a record with expires_at <= now behaves as absent in every method",
    "keys-independent": "an operation on one key never changes another",
    "one-clock": "liveness is judged by the `now` the caller passes, never by a second clock",
    "native-expiry-relative": "a native expiry is expires_at - now, relative to the passed `now`",
    "own-clock": "a call without `now` is judged by the backend's own clock",
    "update-cas": "update() is a compare-and-set: SessionConflict unless the stored version is expected_version",
    "update-next-version": "update() returns expected_version + 1 and stores that version",
    "update-no-resurrection": "update() of a deleted or expired record raises SessionNotFound and stores nothing",
    "update-keeps-identity": "update() keeps the stored key and created_at, whatever the caller's record says",
    "update-moves-user": "update() that changes user_id moves the record to the new user's index",
    "touch-only-expiry": "touch() changes expires_at only: not the payload, the user or the version",
    "touch-no-revival": "touch() of a deleted or expired record is False and revives nothing",
    "touch-extends-index": "after touch() the record stays listed for its user (and delete_by_user finds it) "
    "until its new expiry",
    "delete-idempotent": "delete() is True only if a record live at `now` was removed; False otherwise",
    "index-exact": "list_by_user() lists exactly that user's records live at `now`",
    "delete-by-user-exact": "delete_by_user() removes exactly that user's records and counts the live ones",
    "user-ids-are-data": "any unicode user id is stored and matched literally",
    "payload-opaque": "payload bytes come back exactly, up to at least 1 MiB",
    "purge": "purge_expired() removes expired records and keeps live ones",
    "purge-count": "purge_expired() returns how many expired records it removed (EXACT_PURGE_COUNT)",
    "purge-batch": "purge_expired_batch(limit) removes at most `limit` records expired at `now`, never a live one, "
    "and returns how many it removed",
    "counts": "count_records() counts the records live at `now` and those stored but expired at `now`",
    "writes-land": "what the backend reports is what the store holds (OUT_OF_BAND_READ)",
    "purge-removes-at-once": "after purge_expired() the store holds no record expired at `now` (IMMEDIATE_PURGE)",
    "errors-mapped": "every method, optional ones included, raises BackendUnavailable when the server is "
    "unreachable: never a driver's exception, never a silent success",
    "aclose-idempotent": "aclose() can be called twice",
    "atomic": "each operation is atomic on its key: concurrent calls end as if run one after another",
    "read-and-touch": "read_and_touch() returns the live record and extends expires_at to "
    "min(created_at + absolute, now + idle) when that is refresh_interval or more later",
    "read-and-touch-deadlines": "read_and_touch() never returns a record expired at `now` and never extends past "
    "created_at + absolute_timeout",
    "read-and-touch-only-expiry": "read_and_touch() changes expires_at only: not the payload, the user or the version",
}


def broke(rule: str, seen: str) -> str:
    """A failure message: the rule by name, what it says, and what the backend did."""
    return f"contract rule {rule!r} broken: {RULES[rule]}.\n  seen: {seen}"


def show(value: Any) -> str:
    """A short ``repr``: payloads are cut, since a kit payload can be a mebibyte."""
    if isinstance(value, SessionRecord):
        parts = []
        for field in fields(value):
            item = getattr(value, field.name)
            if field.name == "payload" and len(item) > 40:
                item_repr = f"{item[:32]!r}...({len(item)} bytes)"
            elif field.name in ("created_at", "expires_at"):
                item_repr = item.isoformat()
            else:
                item_repr = repr(item)
            parts.append(f"{field.name}={item_repr}")
        return f"SessionRecord({', '.join(parts)})"
    if isinstance(value, list | tuple):
        return f"[{', '.join(show(item) for item in value)}]"
    text = repr(value)
    return text if len(text) <= 300 else text[:300] + "..."
