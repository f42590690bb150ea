"""The Lua scripts footfall runs in Redis. Each header lists every key, its type and meaning.

All scripts start with `#!lua`, so Redis checks `maxmemory` before a script runs and never
stops one halfway for lack of memory: each script's writes happen whole or not at all.
"""

APPEND_ONCE = """#!lua
-- Append a visit unless its client event id was appended within the dedup window.
-- KEYS[1] stream  the event log
-- KEYS[2] string  footfall:{log}:seen:<event_id>, set when the visit is appended
-- ARGV[1] the visit as JSON; ARGV[2] the dedup window in seconds
-- Returns the new entry id, or false when the event id was already appended.
if redis.call('EXISTS', KEYS[2]) == 1 then
  return false
end
local entry_id = redis.call('XADD', KEYS[1], '*', 'v', ARGV[1])
redis.call('SET', KEYS[2], entry_id, 'EX', ARGV[2])
return entry_id
"""

_STREAM_ID_FUNCTIONS = """
local function id_parts(entry_id)
  local millis, sequence = string.match(entry_id, '^(%d+)-(%d+)$')
  return tonumber(millis), tonumber(sequence)
end
local function at_or_before(entry_id, boundary_id)
  local millis, sequence = id_parts(entry_id)
  local boundary_millis, boundary_sequence = id_parts(boundary_id)
  return millis < boundary_millis or (millis == boundary_millis and sequence <= boundary_sequence)
end
"""

APPLY_STATS = (
    """#!lua
-- Acknowledge a batch of entries for a consumer group and apply the stats of each entry
-- whose acknowledgement was the first, so a redelivered entry changes nothing. An entry of
-- an erased visitor, appended before the erasure, is acknowledged but not applied.
-- KEYS[1] stream      the event log
-- KEYS[2] string      the rebuild flag: while it exists nothing is applied or acknowledged
-- KEYS[3] set         every site that has stats
-- KEYS[4] hash        erased IP or e-mail form -> id of the last entry the erasure covers
-- KEYS[5 + 4*(s-1) .. 8 + 4*(s-1)] the keys of site number s: visitors (sorted set),
--                     last_visit (hash), latest (sorted set), totals (hash)
-- ARGV[1] group; ARGV[2] latest-visits capacity; ARGV[3] number of sites S;
-- ARGV[4 .. 3+S] the site names; then 6 values per entry: entry id, site number, visitor IP,
-- e-mail ('' when none), time in ms, latest-visits member (the visit as JSON).
-- Returns the number of entries applied, or -1 when a rebuild is in progress.
"""
    + _STREAM_ID_FUNCTIONS
    + """
local function erased(form, entry_id)
  if form == '' then
    return false
  end
  local through = redis.call('HGET', KEYS[4], form)
  return through and at_or_before(entry_id, through)
end

if redis.call('EXISTS', KEYS[2]) == 1 then
  return -1
end
local group = ARGV[1]
local capacity = tonumber(ARGV[2])
local site_count = tonumber(ARGV[3])
for s = 1, site_count do
  redis.call('SADD', KEYS[3], ARGV[3 + s])
end
local applied = 0
for position = 4 + site_count, #ARGV, 6 do
  local entry_id = ARGV[position]
  local ip = ARGV[position + 2]
  local email = ARGV[position + 3]
  if redis.call('XACK', KEYS[1], group, entry_id) == 1
      and not erased(ip, entry_id) and not erased(email, entry_id) then
    local first_key = 5 + 4 * (tonumber(ARGV[position + 1]) - 1)
    local time_ms = tonumber(ARGV[position + 4])
    redis.call('ZINCRBY', KEYS[first_key], -1, ip)
    local last_ms = tonumber(redis.call('HGET', KEYS[first_key + 1], ip) or '0')
    if time_ms > last_ms then
      redis.call('HSET', KEYS[first_key + 1], ip, time_ms)
    end
    redis.call('ZADD', KEYS[first_key + 2], time_ms, ARGV[position + 5])
    redis.call('ZREMRANGEBYRANK', KEYS[first_key + 2], 0, -(capacity + 1))
    redis.call('HINCRBY', KEYS[first_key + 3], 'visits', 1)
    applied = applied + 1
  end
end
return applied
"""
)

MARK_ERASED = (
    """#!lua
-- Mark a visitor's stored forms as erased up to the newest entry now in the stream, so the
-- consumers skip its entries appended before the erasure and count later ones as usual.
-- KEYS[1] stream  the event log
-- KEYS[2] hash    erased IP or e-mail form -> id of the last entry the erasure covers
-- ARGV: the forms. A form already marked keeps the later of its two boundaries.
-- Returns the boundary entry id ('0-0' when the stream is empty).
"""
    + _STREAM_ID_FUNCTIONS
    + """
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local boundary = '0-0'
if #newest > 0 then
  boundary = newest[1][1]
end
for _, form in ipairs(ARGV) do
  local current = redis.call('HGET', KEYS[2], form)
  if not current or at_or_before(current, boundary) then
    redis.call('HSET', KEYS[2], form, boundary)
  end
end
return boundary
"""
)

FORGET_ERASED = (
    """#!lua
-- Delete erasure marks that no stream entry can match any more.
-- KEYS[1] hash  erased IP or e-mail form -> id of the last entry the erasure covers
-- ARGV[1] the id below which every entry is acknowledged by every group and trimmed
-- Returns the number of marks deleted.
"""
    + _STREAM_ID_FUNCTIONS
    + """
local marks = redis.call('HGETALL', KEYS[1])
local deleted = 0
for position = 1, #marks, 2 do
  if at_or_before(marks[position + 1], ARGV[1]) and marks[position + 1] ~= ARGV[1] then
    redis.call('HDEL', KEYS[1], marks[position])
    deleted = deleted + 1
  end
end
return deleted
"""
)

RELEASE_LOCK = """#!lua
-- Delete a lock only if this process still holds it.
-- KEYS[1] string  the lock; ARGV[1] the holder's token
-- Returns 1 when deleted, 0 when the lock expired or another process holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

DEAD_LETTER = """#!lua
-- Move entries that failed too often to the dead-letter stream and acknowledge them.
-- KEYS[1] stream  the event log
-- KEYS[2] stream  the dead-letter stream
-- KEYS[3] hash    the metrics counters
-- ARGV[1] group; ARGV[2] max dead-letter stream length; then pairs of entry id and payload.
-- Returns the number of entries moved; an entry already acknowledged is skipped.
local moved = 0
for position = 3, #ARGV, 2 do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[position]) == 1 then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
      'entry_id', ARGV[position], 'group', ARGV[1], 'v', ARGV[position + 1])
    moved = moved + 1
  end
end
if moved > 0 then
  redis.call('HINCRBY', KEYS[3], 'dead_lettered:' .. ARGV[1], moved)
end
return moved
"""

SWAP_STATS = """#!lua
-- Replace the live stats of every site with the rebuilt keys and end the rebuild.
-- KEYS[1] string  the rebuild flag, deleted at the end
-- KEYS[2] set     every site that has stats, replaced by the rebuilt sites
-- then 8 keys per site: the 4 rebuilt keys followed by the 4 live keys
-- ARGV: the names of the rebuilt sites (those with events)
-- Returns the number of keys renamed.
local renamed = 0
for position = 3, #KEYS, 8 do
  for offset = 0, 3 do
    local rebuilt = KEYS[position + offset]
    local live = KEYS[position + 4 + offset]
    if redis.call('EXISTS', rebuilt) == 1 then
      redis.call('RENAME', rebuilt, live)
      renamed = renamed + 1
    else
      redis.call('DEL', live)
    end
  end
end
redis.call('DEL', KEYS[2])
if #ARGV > 0 then
  redis.call('SADD', KEYS[2], unpack(ARGV))
end
redis.call('DEL', KEYS[1])
return renamed
"""
