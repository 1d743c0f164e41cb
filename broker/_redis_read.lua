#!lua flags=no-writes
-- pierhead: stored chunks of a workspace epoch from an offset on, with the positions they
-- were read at (one snapshot: a script runs alone).
--
-- KEYS[1] meta hash, KEYS[2] chunk stream (as in _redis_commit.lua)
-- ARGV[1] epoch, ARGV[2] the first offset wanted, ARGV[3] the most chunks to return
--
-- Reply: {'ok', first_offset, last_offset, f1, d1, f2, d2, ...}: each chunk's first offset and
-- its MessagePack array of events, oldest first, starting at the chunk that holds the offset
-- asked for (entries are keyed by their last offset, so that is a plain range). A chunk may
-- begin before ARGV[2] and before first_offset (retention cuts inside a chunk logically):
-- the caller drops those events.
-- {'epoch', current_epoch or ''} when the workspace is not in that epoch.

local meta, chunks = KEYS[1], KEYS[2]
local current = redis.call('HMGET', meta, 'epoch', 'first', 'last')
if current[1] ~= ARGV[1] then
  return {'epoch', current[1] or ''}
end
local reply = {'ok', tonumber(current[2]), tonumber(current[3])}
local entries = redis.call('XRANGE', chunks, ARGV[2] .. '-0', '+', 'COUNT', ARGV[3])
append_chunks(reply, entries)
return reply
