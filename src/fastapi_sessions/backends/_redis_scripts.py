"""Lua scripts of the Redis backend (private).

Each script touches only the keys it is given, and every key given to one
script lives in one hash slot, so each runs atomically on Redis Cluster too.

A session is one string: a fixed 59-byte ASCII header, the user id, the
payload. Header: created (16 digits), expires (16 digits), version (16
digits), ``u`` or ``-`` (has a user or not), user id length in bytes (10
digits). Times are integer microseconds since the epoch: below 2**53, so
Lua's doubles hold them exactly; numbers written back are formatted with
``%.0f`` (Lua's ``tostring`` would round them). The whole record is one
bulk string, so a read is one GET and its reply the cheapest Redis has;
the expiry is rewritten in place with SETRANGE, never the payload.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

__all__ = [
    "CREATE",
    "DELETE",
    "DELETE_IF_USER",
    "HEAD",
    "INDEX_ADD",
    "INDEX_SWEEP",
    "READ_AND_TOUCH",
    "TOUCH",
    "UPDATE",
    "Script",
]


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script and its SHA1 (hex, as bytes), for EVALSHA with an EVAL fallback."""

    source: bytes
    sha: bytes = field(init=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.source, usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest.encode())


def _script(source: str) -> Script:
    return Script(source.strip().encode())


#: KEYS: session. ARGV: now, value, expire-at-ms. Returns 1 when stored, 0 when a live record holds the key.
CREATE = _script("""
local e = redis.call('GETRANGE', KEYS[1], 16, 31)
if e ~= '' and tonumber(e) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
return 1
""")

#: The compare-and-set. KEYS: session. ARGV: control, new value (built with the new
#: version). Control: expected version and now (16 digits each), index-ready ('0' or
#: '1'), expire-at-ms; one argument, as each argument costs the client an encoding step.
#: Returns the new version; -1 gone or expired; -2 version mismatch; -3 the user
#: changes and the new user's index entry must be written first (nothing changed).
#: The stored creation time is kept whatever the new value says. Fixed-width digit
#: strings compare like the numbers they spell, so no tonumber is needed.
UPDATE = _script("""
local c, new = ARGV[1], ARGV[2]
local moved = string.sub(c, 33, 33) == '0' and string.sub(new, 49, 49) == 'u'
local ulen = moved and tonumber(string.sub(new, 50, 59)) or 0
local h = redis.call('GETRANGE', KEYS[1], 0, 58 + ulen)
if h == '' or string.sub(h, 17, 32) <= string.sub(c, 17, 32) then return -1 end
if string.sub(h, 33, 48) ~= string.sub(c, 1, 16) then return -2 end
if moved and string.sub(h, 49, 59 + ulen) ~= string.sub(new, 49, 59 + ulen) then return -3 end
redis.call('SET', KEYS[1], new, 'PXAT', string.sub(c, 34))
local created = string.sub(h, 1, 16)
if created ~= string.sub(new, 1, 16) then redis.call('SETRANGE', KEYS[1], 0, created) end
return tonumber(string.sub(new, 33, 48))
""")

#: KEYS: session. ARGV: now, idle, absolute, refresh (all microseconds).
#: Returns nil, or '1' (extended) or '0' followed by the stored value.
READ_AND_TOUCH = _script("""
local r = redis.call('GET', KEYS[1])
if not r then return false end
local now = tonumber(ARGV[1])
local e = tonumber(string.sub(r, 17, 32))
if e <= now then return false end
local idle, refresh = tonumber(ARGV[2]), tonumber(ARGV[4])
-- target <= now + idle, so this cheap test settles the common case: not due.
if now + idle - e < refresh then return '0' .. r end
local target = math.min(tonumber(string.sub(r, 1, 16)) + tonumber(ARGV[3]), now + idle)
if target - e < refresh then return '0' .. r end
local t = string.format('%016.0f', target)
redis.call('SETRANGE', KEYS[1], 16, t)
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.ceil(target / 1000)))
return '1' .. string.sub(r, 1, 16) .. t .. string.sub(r, 33)
""")

#: KEYS: session. ARGV: now, expires (16 digits), expire-at-ms. Returns 1 if set, 0 if gone.
TOUCH = _script("""
local e = redis.call('GETRANGE', KEYS[1], 16, 31)
if e == '' or tonumber(e) <= tonumber(ARGV[1]) then return 0 end
redis.call('SETRANGE', KEYS[1], 16, ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
""")

#: KEYS: session. Returns the header followed by the user id (no payload), or nil.
HEAD = _script("""
local h = redis.call('GETRANGE', KEYS[1], 0, 58)
if h == '' then return false end
if string.sub(h, 49, 49) ~= 'u' then return h end
return h .. redis.call('GETRANGE', KEYS[1], 59, 58 + tonumber(string.sub(h, 50, 59)))
""")

#: KEYS: session. ARGV: now. Returns nil if absent, else {live (0 or 1), user or nil}.
DELETE = _script("""
local h = redis.call('GETRANGE', KEYS[1], 0, 58)
if h == '' then return false end
local user = false
if string.sub(h, 49, 49) == 'u' then
  user = redis.call('GETRANGE', KEYS[1], 59, 58 + tonumber(string.sub(h, 50, 59)))
end
redis.call('DEL', KEYS[1])
if tonumber(string.sub(h, 17, 32)) > tonumber(ARGV[1]) then return {1, user} end
return {0, user}
""")

#: KEYS: session. ARGV: now, the user's header tail ('u' + 10-digit length) and user id.
#: Deletes the record only if it is that user's. Returns 1 (a live one went), 2 (an
#: expired one went) or 0 (absent, or another user's).
DELETE_IF_USER = _script("""
local h = redis.call('GETRANGE', KEYS[1], 0, 58 + #ARGV[3])
if h == '' or string.sub(h, 49) ~= ARGV[2] .. ARGV[3] then return 0 end
redis.call('DEL', KEYS[1])
if tonumber(string.sub(h, 17, 32)) > tonumber(ARGV[1]) then return 1 end
return 2
""")

#: KEYS: user index, bucket queue (one slot). ARGV: score, session key, index key name.
#: The queue keeps, per index, a lower bound of its earliest score (LT only lowers it).
INDEX_ADD = _script("""
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], 'LT', ARGV[1], ARGV[3])
return 1
""")

#: KEYS: user index, bucket queue (one slot). ARGV: now, index key name, then pairs of
#: (session key, new score or '-' to drop). An entry is changed only while its score is
#: still due (<= now): a concurrent INDEX_ADD sets a future score, and that entry stays.
#: Then the index's queue score becomes its earliest score, or the index leaves the queue.
#: Returns how many entries were dropped.
INDEX_SWEEP = _script("""
local now = tonumber(ARGV[1])
local dropped = 0
for i = 3, #ARGV, 2 do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) <= now then
    if ARGV[i + 1] == '-' then
      redis.call('ZREM', KEYS[1], ARGV[i])
      dropped = dropped + 1
    else
      redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
    end
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[1] then
  redis.call('ZADD', KEYS[2], first[2], ARGV[2])
else
  redis.call('ZREM', KEYS[2], ARGV[2])
end
return dropped
""")
