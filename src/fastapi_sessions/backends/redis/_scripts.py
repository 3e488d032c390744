"""Lua scripts of the Redis backend (private).

Each script touches only the keys it is given, and every key given to one
script lives in one hash slot, so each runs atomically on Redis Cluster too.

A session is one string: a fixed-width ASCII header, the user id, the
payload (``_layout.py``). The scripts never spell a position: ``$expires`` is
the expiry's ``first, last`` for ``string.sub``, ``$expires_range`` the same
for ``GETRANGE``, and so on (:func:`._layout.lua_positions` lists them), filled
in from the layout table when this module loads. Times are integer
microseconds since the epoch: below 2**53, so Lua's doubles hold them exactly;
numbers written back are formatted with ``%.0f`` (Lua's ``tostring`` would
round them). The whole record is one bulk string, so a read is one GET and its
reply the cheapest Redis has; the expiry is rewritten in place with SETRANGE,
never the payload.

"now" in every script is the caller's (the manager's clock), and every native
expiry is relative to it (``PX``, ``PEXPIRE``): a key lives as long as its
record has left at that ``now``, by the server's own clock, so a caller's clock
hours away from the server's neither kills live records nor keeps dead ones.
The header's expiry, compared with ``now``, decides liveness; the TTL only
frees memory.

A user's index expires (and its bucket's purge queue with it) at the start of
the second UTC day after its latest entry's score (``$index_step``), so it never
outlives its sessions by more than two days, purged or not. The session scripts
cannot raise it (another slot): a session with a user is never extended into a
later UTC day in one script call; the script answers "index first" instead, and
the client raises the index's expiry with INDEX_ADD and calls again, so a live
session never outlives its user's index.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from string import Template

from ._layout import lua_positions

__all__ = [
    "CREATE",
    "DELETE",
    "DELETE_IF_USER",
    "HEAD",
    "INDEX_ADD",
    "INDEX_STEP",
    "INDEX_SWEEP",
    "READ_AND_TOUCH",
    "TOUCH",
    "UPDATE",
    "Script",
]

#: Microseconds of one UTC day: an index expires at the start of the second day after its latest score.
INDEX_STEP = 86_400_000_000

_POSITIONS = lua_positions({"index_step": INDEX_STEP})


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script, how many of its arguments are keys, and its SHA1 (hex, as bytes) for EVALSHA."""

    source: bytes
    keys: int = 1
    sha: bytes = field(init=False)
    numkeys: bytes = field(init=False)  # as EVAL takes it, encoded once

    def __post_init__(self) -> None:
        digest = hashlib.sha1(self.source, usedforsecurity=False).hexdigest()
        object.__setattr__(self, "sha", digest.encode())
        object.__setattr__(self, "numkeys", b"%d" % self.keys)


def _script(template: str, keys: int = 1) -> Script:
    return Script(Template(template.strip()).substitute(_POSITIONS).encode(), keys)


#: KEYS: session. ARGV: now, value, TTL in ms. Returns 1 when stored, 0 when a live record holds the key.
CREATE = _script("""
local e = redis.call('GETRANGE', KEYS[1], $expires_range)
if e ~= '' and tonumber(e) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
""")

#: The compare-and-set. KEYS: session. ARGV: control, new value (built with the new
#: version). Control (``_layout.CONTROL``): expected version and now, as wide as the
#: header's, index-ready ('0' or '1'), TTL in ms; one argument, as each argument costs
#: the client an encoding step.
#: Returns the new version; -1 gone or expired; -2 version mismatch; -3 the new
#: user's index entry must be written first, because the user changes or the expiry
#: moves into a later UTC day (nothing changed). The stored creation time is kept
#: whatever the new value says. Fixed-width digit strings compare like the numbers
#: they spell, so no tonumber is needed but for the day.
UPDATE = _script("""
local c, new = ARGV[1], ARGV[2]
local check = string.sub(c, $control_ready) == '0' and string.sub(new, $has_user) == 'u'
local ulen = check and tonumber(string.sub(new, $user_length)) or 0
local h = redis.call('GETRANGE', KEYS[1], 0, $header_last + ulen)
if h == '' or string.sub(h, $expires) <= string.sub(c, $control_now) then return -1 end
if string.sub(h, $version) ~= string.sub(c, $control_version) then return -2 end
if check and (string.sub(h, $has_user_at, $header_size + ulen) ~= string.sub(new, $has_user_at, $header_size + ulen)
    or math.floor(tonumber(string.sub(new, $expires)) / $index_step)
      > math.floor(tonumber(string.sub(h, $expires)) / $index_step)) then return -3 end
redis.call('SET', KEYS[1], new, 'PX', string.sub(c, $control_after))
local created = string.sub(h, $created)
if created ~= string.sub(new, $created) then redis.call('SETRANGE', KEYS[1], $created_offset, created) end
return tonumber(string.sub(new, $version))
""")

#: KEYS: session. ARGV: now, idle, absolute, refresh (all microseconds)[, '1': the index is raised].
#: Returns nil, or '1' (extended) or '0' followed by the stored value; or '2' followed by
#: it when the user's index must be raised to the new expiry first (nothing changed).
READ_AND_TOUCH = _script("""
local r = redis.call('GET', KEYS[1])
if not r then return false end
local now = tonumber(ARGV[1])
local e = tonumber(string.sub(r, $expires))
if e <= now then return false end
local idle, refresh = tonumber(ARGV[2]), tonumber(ARGV[4])
-- target <= now + idle, so this cheap test settles the common case: not due.
if now + idle - e < refresh then return '0' .. r end
local target = math.min(tonumber(string.sub(r, $created)) + tonumber(ARGV[3]), now + idle)
if target - e < refresh then return '0' .. r end
if not ARGV[5] and string.sub(r, $has_user) == 'u'
    and math.floor(target / $index_step) > math.floor(e / $index_step) then return '2' .. r end
local t = string.format('%0${expires_width}.0f', target)
redis.call('SETRANGE', KEYS[1], $expires_offset, t)
redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.max(1, math.ceil((target - now) / 1000))))
return '1' .. string.sub(r, 1, $expires_offset) .. t .. string.sub(r, $expires_after)
""")

#: KEYS: session. ARGV: now, expires (the header's digits), TTL in ms[, '1': the index is raised].
#: Returns 1 if set, 0 if gone, or the user id when the user's index must be raised to the
#: new expiry first (nothing changed).
TOUCH = _script("""
local h = redis.call('GETRANGE', KEYS[1], 0, $header_last)
if h == '' or tonumber(string.sub(h, $expires)) <= tonumber(ARGV[1]) then return 0 end
if not ARGV[4] and string.sub(h, $has_user) == 'u'
    and math.floor(tonumber(ARGV[2]) / $index_step) > math.floor(tonumber(string.sub(h, $expires)) / $index_step) then
  return redis.call('GETRANGE', KEYS[1], $header_size, $header_last + tonumber(string.sub(h, $user_length)))
end
redis.call('SETRANGE', KEYS[1], $expires_offset, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
""")

#: KEYS: session. Returns the header followed by the user id (no payload), or nil.
HEAD = _script("""
local h = redis.call('GETRANGE', KEYS[1], 0, $header_last)
if h == '' then return false end
if string.sub(h, $has_user) ~= 'u' then return h end
return h .. redis.call('GETRANGE', KEYS[1], $header_size, $header_last + tonumber(string.sub(h, $user_length)))
""")

#: KEYS: session. ARGV: now. Returns nil if absent, else {live (0 or 1), user or nil}.
DELETE = _script("""
local h = redis.call('GETRANGE', KEYS[1], 0, $header_last)
if h == '' then return false end
local user = false
if string.sub(h, $has_user) == 'u' then
  user = redis.call('GETRANGE', KEYS[1], $header_size, $header_last + tonumber(string.sub(h, $user_length)))
end
redis.call('DEL', KEYS[1])
if tonumber(string.sub(h, $expires)) > tonumber(ARGV[1]) then return {1, user} end
return {0, user}
""")

#: KEYS: session. ARGV: now, the user's header tail (``_layout.user_tag``) and user id.
#: Deletes the record only if it is that user's. Returns 1 (a live one went), 2 (an
#: expired one went) or 0 (absent, or another user's).
DELETE_IF_USER = _script("""
local h = redis.call('GETRANGE', KEYS[1], 0, $header_last + #ARGV[3])
if h == '' or string.sub(h, $has_user_at) ~= ARGV[2] .. ARGV[3] then return 0 end
redis.call('DEL', KEYS[1])
if tonumber(string.sub(h, $expires)) > tonumber(ARGV[1]) then return 1 end
return 2
""")

#: KEYS: user index, bucket queue (one slot). ARGV: score, session key, index key name, now.
#: The queue keeps, per index, a lower bound of its earliest score (LT only lowers it).
#: Both keys then expire no earlier than the start of the second UTC day after the score (in
#: the caller's time, like the score: the TTL set is that instant minus now);
#: a key that already existed without an expiry (written by a version whose indexes did
#: not expire) keeps none. Queue entries due for two days are dropped first: purge_expired()
#: has not run, and the indexes they name have expired or are found again by their next entry.
INDEX_ADD = _script("""
local at = (math.floor(tonumber(ARGV[1]) / $index_step) + 2) * $index_step
local now = tonumber(ARGV[4])
local kept = {redis.call('PTTL', KEYS[1]) == -1, redis.call('PTTL', KEYS[2]) == -1}
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('(%.0f', now - 2 * $index_step))
redis.call('ZADD', KEYS[2], 'LT', ARGV[1], ARGV[3])
for i = 1, 2 do
  if not kept[i] then
    local left = redis.call('PTTL', KEYS[i])
    if left == -1 or left < (at - now) / 1000 then
      redis.call('PEXPIRE', KEYS[i], string.format('%.0f', math.ceil((at - now) / 1000)))
    end
  end
end
return 1
""", keys=2)

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
  local fresh = redis.call('EXISTS', KEYS[2]) == 0
  redis.call('ZADD', KEYS[2], first[2], ARGV[2])
  local left = redis.call('PTTL', KEYS[1])
  -- A queue that emptied meanwhile comes back with its index's expiry.
  if fresh and left > 0 then redis.call('PEXPIRE', KEYS[2], left) end
else
  redis.call('ZREM', KEYS[2], ARGV[2])
end
return dropped
""", keys=2)
