-- pierhead: retention of one workspace, by its owner (docs/storage.md, "Redis").
--
-- KEYS[1] meta hash, KEYS[2] chunk stream, KEYS[3] owner string (as in _redis_commit.lua)
-- ARGV[1] epoch, ARGV[2] the writing node's token
-- ARGV[3] the new first offset: events before it go. Whole chunks before it are removed; a
--         chunk the cut falls inside stays whole, and readers skip its events before ``first``
--         (a stream entry cannot be rewritten in place: its id would be below the top).
--
-- Reply: {'trimmed', first}, or {'owner', holder}, {'epoch', current} when the workspace is
-- not this node's to trim any more (nothing is changed then).

local meta, chunks, owner = KEYS[1], KEYS[2], KEYS[3]
local holder = redis.call('GET', owner)
if holder ~= ARGV[2] then
  return {'owner', holder or ''}
end
local current = redis.call('HMGET', meta, 'epoch', 'first')
if current[1] ~= ARGV[1] then
  return {'epoch', current[1] or ''}
end
local first = tonumber(ARGV[3])
if first <= tonumber(current[2]) then
  return {'trimmed', tonumber(current[2])}
end
-- Entries are keyed by their last offset: every one below first - 1 ends before first.
redis.call('XTRIM', chunks, 'MINID', string.format('%d-0', first))
redis.call('HSET', meta, 'first', ARGV[3])
return {'trimmed', first}
