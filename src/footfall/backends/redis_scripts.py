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

APPLY_STATS = """#!lua
-- Acknowledge a batch of entries for a consumer group and apply the stats of each entry
-- whose acknowledgement was the first, so a redelivered entry changes nothing.
-- KEYS[1] stream      the event log
-- KEYS[2] string      the rebuild flag: while it exists nothing is applied or acknowledged
-- KEYS[3] set         every site that has stats
-- KEYS[4 + 4*(s-1) .. 7 + 4*(s-1)] the keys of site number s: visitors (sorted set),
--                     last_visit (hash), latest (sorted set), totals (hash)
-- ARGV[1] group; ARGV[2] latest-visits capacity; ARGV[3] number of sites S;
-- ARGV[4 .. 3+S] the site names; then 5 values per entry: entry id, site number, visitor IP,
-- time in ms, latest-visits member (the visit as JSON).
-- Returns the number of entries applied, or -1 when a rebuild is in progress.
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
for position = 4 + site_count, #ARGV, 5 do
  if redis.call('XACK', KEYS[1], group, ARGV[position]) == 1 then
    local first_key = 4 + 4 * (tonumber(ARGV[position + 1]) - 1)
    local ip = ARGV[position + 2]
    local time_ms = tonumber(ARGV[position + 3])
    redis.call('ZINCRBY', KEYS[first_key], -1, ip)
    local last_ms = tonumber(redis.call('HGET', KEYS[first_key + 1], ip) or '0')
    if time_ms > last_ms then
      redis.call('HSET', KEYS[first_key + 1], ip, time_ms)
    end
    redis.call('ZADD', KEYS[first_key + 2], time_ms, ARGV[position + 4])
    redis.call('ZREMRANGEBYRANK', KEYS[first_key + 2], 0, -(capacity + 1))
    redis.call('HINCRBY', KEYS[first_key + 3], 'visits', 1)
    applied = applied + 1
  end
end
return applied
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
