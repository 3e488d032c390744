"""The stored session string and the compare-and-set's control argument, each defined once (private).

A session is one Redis string: a fixed-width ASCII header (``HEADER``), then
the user id (UTF-8, lone surrogates passed through), then the payload::

    created  expires  version  u  user length  user id  payload
    16       16       16       1  10           ...      ...

``HEADER`` and ``CONTROL`` below are the only place that knows where a field
sits. The Python encoder and decoder here read them, and so do the Lua
scripts: ``_scripts.py`` writes its ``string.sub``, ``GETRANGE`` and
``SETRANGE`` positions as ``$name`` placeholders that :func:`lua_positions`
fills in when the module loads. Sessions already in Redis must stay
readable, so tests/test_redis_layout.py pins the bytes.

Numbers are zero-padded decimal digits: fixed-width digit strings compare like
the numbers they spell, which the scripts rely on. Times are integer
microseconds since the Unix epoch, below 2**53, so Lua's doubles hold them
exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ..._core.records import SessionRecord

__all__ = [
    "CONTROL",
    "CREATED",
    "EPOCH",
    "EXPIRES",
    "HASUSER",
    "HEADER",
    "HEADER_SIZE",
    "US",
    "USER_LENGTH",
    "VERSION",
    "Field",
    "as_us",
    "cas_control",
    "decode",
    "decode_head",
    "encode",
    "lua_positions",
    "ttl_ms",
    "user_bytes",
    "user_tag",
]


@dataclass(frozen=True, slots=True)
class Field:
    """``width`` bytes from ``offset`` (0-based): zero-padded digits, or one byte when ``digits`` is false."""

    name: str
    offset: int
    width: int
    meaning: str
    digits: bool = True

    @property
    def end(self) -> int:
        return self.offset + self.width

    def at(self, start: int = 0) -> slice:
        """Where the field is in a string whose header begins at ``start``."""
        return slice(start + self.offset, start + self.end)

    @property
    def format(self) -> bytes:
        return b"%%0%dd" % self.width if self.digits else b"%c"


CREATED = Field("created", 0, 16, "created_at, microseconds since the epoch")
EXPIRES = Field("expires", 16, 16, "expires_at, microseconds since the epoch")
VERSION = Field("version", 32, 16, "the record's version, counted by the compare-and-set")
HASUSER = Field("has_user", 48, 1, "'u' if the session has a user, '-' if not", digits=False)
USER_LENGTH = Field("user_length", 49, 10, "the user id's length in bytes; the user id follows the header")
HEADER = (CREATED, EXPIRES, VERSION, HASUSER, USER_LENGTH)

# UPDATE's first argument: the expected version and now compare as digits with the stored ones,
# so they have their widths. The TTL in milliseconds follows, as many digits as it takes.
CONTROL = (
    Field("control_version", 0, VERSION.width, "the version the caller read"),
    Field("control_now", 16, EXPIRES.width, "the caller's now, microseconds since the epoch"),
    Field("control_ready", 32, 1, "'1' when the new user's index entry is written, else '0'"),
)


def _size(fields: tuple[Field, ...]) -> int:
    """The fields' total width, checking that each starts where the one before it ends."""
    end = 0
    for field in fields:
        if field.offset != end:
            raise AssertionError(f"layout: {field.name} starts at {field.offset}, not at {end}")
        end = field.end
    return end


HEADER_SIZE = _size(HEADER)
_CONTROL_SIZE = _size(CONTROL)
# The encoder fills the header in the table's order; the user tag (has_user and user_length, as
# DELETE_IFUSER compares it with the header's tail) must end the header.
assert [f.name for f in HEADER] == ["created", "expires", "version", "has_user", "user_length"]

_HEADER_FORMAT = b"".join(field.format for field in HEADER)
USER_TAG_FORMAT = HASUSER.format + USER_LENGTH.format
_CONTROL_FORMAT = b"".join(field.format for field in CONTROL) + b"%d"
_U, _NO_U = ord("u"), ord("-")
# Plain ints for the decoder, which runs on every read.
_HASUSER_AT, _LENGTH_AT, _LENGTH_END = HASUSER.offset, USER_LENGTH.offset, USER_LENGTH.end
_CREATED_AT, _CREATED_END, _EXPIRES_AT, _EXPIRES_END = CREATED.offset, CREATED.end, EXPIRES.offset, EXPIRES.end
_VERSION_AT, _VERSION_END = VERSION.offset, VERSION.end


def lua_positions(extra: dict[str, int]) -> dict[str, str]:
    """The placeholders the Lua templates use, from ``HEADER`` and ``CONTROL`` (and ``extra``).

    Per field ``f`` (``string.sub`` counts from 1, ``GETRANGE``/``SETRANGE`` from 0):
    ``$f`` is ``first, last`` for ``string.sub``; ``$f_at`` its first position and
    ``$f_after`` the one after it, for ``string.sub``; ``$f_offset`` its 0-based
    offset and ``$f_range`` ``first, last`` 0-based; ``$f_width`` its width.
    Per table: ``$header_size``, ``$header_last`` (0-based last byte), ``$control_after``.
    """
    names = {name: str(value) for name, value in extra.items()}
    for field in (*HEADER, *CONTROL):
        first, last = field.offset + 1, field.end
        names |= {
            field.name: f"{first}, {last}",
            f"{field.name}_at": str(first),
            f"{field.name}_after": str(last + 1),
            f"{field.name}_offset": str(field.offset),
            f"{field.name}_range": f"{field.offset}, {field.end - 1}",
            f"{field.name}_width": str(field.width),
        }
    names |= {"header_size": str(HEADER_SIZE), "header_last": str(HEADER_SIZE - 1),
              "control_after": str(_CONTROL_SIZE + 1)}
    return names


# -- times ------------------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


def as_us(value: datetime) -> int:
    """``value`` in microseconds since the epoch, as the header stores it."""
    return (value - EPOCH) // US


def ttl_ms(expires_us: int, now_us: int) -> int:
    """The key's native TTL: the time left at ``now``, so the server's own clock never judges liveness.

    Rounded up, so the key outlives its logical expiry by under a millisecond, never the
    reverse; at least 1 ms, so a record already expired at ``now`` goes at once.
    """
    return max(1, -(-(expires_us - now_us) // 1000))


# Decoded timestamps by their stored digits: a session's are the same on most requests,
# and a dict hit is several times cheaper than building the datetime. Bounded by clearing.
_DATETIMES: dict[bytes, datetime] = {}


def _at(digits: bytes) -> datetime:
    if len(_DATETIMES) >= 4096:
        _DATETIMES.clear()
    value = _DATETIMES[digits] = EPOCH + timedelta(microseconds=int(digits))
    return value


# -- the record -------------------------------------------------------------------------------


def user_bytes(user_id: str) -> bytes:
    return user_id.encode("utf-8", "surrogatepass")


def user_tag(user: bytes) -> bytes:
    """The header's tail for ``user``: ``u`` and its byte length."""
    return USER_TAG_FORMAT % (_U, len(user))


def encode(record: SessionRecord, version: int, expires_us: int) -> bytes:
    """``record`` as the stored string, with ``version`` and ``expires_us`` in place of its own."""
    created = as_us(record.created_at)
    if record.user_id is None:
        return _HEADER_FORMAT % (created, expires_us, version, _NO_U, 0) + record.payload
    user = user_bytes(record.user_id)
    return _HEADER_FORMAT % (created, expires_us, version, _U, len(user)) + user + record.payload


def decode(key: str, value: bytes, start: int = 0) -> SessionRecord:
    """The record stored as ``value[start:]`` (a script's reply puts a status byte before it)."""
    body = start + HEADER_SIZE
    if value[start + _HASUSER_AT] == _U:
        end = body + int(value[start + _LENGTH_AT:start + _LENGTH_END])
        user: str | None = value[body:end].decode("utf-8", "surrogatepass")
    else:
        end, user = body, None
    created = value[start + _CREATED_AT:start + _CREATED_END]
    expires = value[start + _EXPIRES_AT:start + _EXPIRES_END]
    return SessionRecord(
        key,
        value[end:],
        user,
        _DATETIMES.get(created) or _at(created),
        _DATETIMES.get(expires) or _at(expires),
        int(value[start + _VERSION_AT:start + _VERSION_END]),
    )


def decode_head(value: bytes) -> tuple[int, str | None]:
    """Expiry (µs) and user id from a header followed by the user id (the HEAD script's reply)."""
    user = value[HEADER_SIZE:].decode("utf-8", "surrogatepass") if value[_HASUSER_AT] == _U else None
    return int(value[_EXPIRES_AT:_EXPIRES_END]), user


def cas_control(expected_version: int, now_us: int, expires_us: int, index_ready: bool) -> bytes:
    """UPDATE's control argument (``CONTROL``, then the TTL in ms): one argument, one encoding step."""
    return _CONTROL_FORMAT % (expected_version, now_us, index_ready, ttl_ms(expires_us, now_us))
