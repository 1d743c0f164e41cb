-- pierhead: a workspace's current epoch and positions, creating a new epoch when there is none.
--
-- KEYS[1] meta hash, KEYS[2] chunk stream, KEYS[3] runs hash (as in _redis_commit.lua)
-- ARGV[1] the lowest acceptable new epoch (decimal string; '0' for no bound): the caller passes
--         one more than any epoch of this workspace it has seen, so a new epoch never repeats
--         one a reader may hold, even if the server's clock went back
--
-- Reply: {epoch, first_offset, last_offset, created (1 or 0)}
--
-- A missing meta hash means the workspace is new, or its data was lost (FLUSHALL, a restart
-- without the AOF, a failover to a replica that never had it): a new epoch starts, and whatever
-- chunks or run positions survived without their meta hash belong to the lost epoch and go.

local meta, chunks, runs = KEYS[1], KEYS[2], KEYS[3]
local current = redis.call('HMGET', meta, 'epoch', 'first', 'last')
if current[1] then
  return {current[1], tonumber(current[2]), tonumber(current[3]), 0}
end

-- Server time in microseconds: one clock for every node, so epochs made by different nodes
-- still grow with time.
local time = redis.call('TIME')
local epoch = tonumber(time[1]) * 1000000 + tonumber(time[2])
local floor = tonumber(ARGV[1])
if floor > epoch then
  epoch = floor
end
local text = string.format('%d', epoch)
redis.call('DEL', chunks, runs)
redis.call('HSET', meta, 'epoch', text, 'first', '1', 'last', '0', 'fence', '0', 'holder', '')
return {text, 1, 0, 1}
