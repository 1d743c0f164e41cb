#!lua flags=no-writes
-- pierhead: what a node that follows a workspace needs after a commit elsewhere, in one round
-- trip: the head, the state at that head and, when the caller is a little behind in the same
-- epoch, the chunks it has not read (one snapshot: a script runs alone).
--
-- KEYS[1] meta hash, KEYS[2] chunk stream (as in _redis_commit.lua)
-- ARGV[1] the epoch the caller mirrors ('' for none), ARGV[2] the first offset it lacks,
-- ARGV[3] the most events it reads (more behind than that, it reads none and jumps),
-- ARGV[4] the most chunks one reply holds (chunks are up to about a MiB each)
--
-- Reply: {} when the workspace is not stored; else {epoch, first_offset, last_offset, state,
-- f1, d1, f2, d2, ...}: the chunks, as in _redis_read.lua, only when the stored epoch is
-- ARGV[1] and 1 to ARGV[3] events follow ARGV[2] - 1, at most ARGV[4] of them (the caller
-- reads the rest as a reader does). The first chunk may begin before ARGV[2]: the caller drops
-- those events.

local meta, chunks = KEYS[1], KEYS[2]
local current = redis.call('HMGET', meta, 'epoch', 'first', 'last', 'state')
if not current[1] or not current[4] then
  return {}
end
local reply = {current[1], current[2], current[3], current[4]}
if current[1] == ARGV[1] then
  local wanted, last = tonumber(ARGV[2]), tonumber(current[3])
  local behind = last - wanted + 1
  if behind >= 1 and behind <= tonumber(ARGV[3]) then
    -- Entries are keyed by their last offset: these are exactly the chunks holding
    -- wanted..last.
    local entries = redis.call('XRANGE', chunks, ARGV[2] .. '-0', current[3] .. '-0', 'COUNT', ARGV[4])
    append_chunks(reply, entries)
  end
end
return reply
