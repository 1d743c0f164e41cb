-- pierhead: a new epoch for a workspace whose stream went back (docs/storage.md, "Epochs").
--
-- KEYS[1] meta hash (as in _redis_commit.lua)
-- ARGV[1] the epoch the caller saw, ARGV[2] the last offset it saw stored in that epoch
--
-- After a failover to a replica that lacked the latest commits, the meta hash is there with an
-- older `last`: offsets after it were seen by readers and will be given again to new events.
-- Whoever notices (a node whose copy went further than the store) moves the workspace to a new
-- epoch, atomically and only if the store is still behind what it saw, so every reader of the
-- old epoch is told it did not recover instead of skipping the reused offsets. The events that
-- survived stay, under the new epoch; the writer's next commit meets the new epoch and stops.
--
-- Reply: {'renewed', new epoch}, or {'unchanged', current epoch or ''}.

local current = redis.call('HMGET', KEYS[1], 'epoch', 'last')
if current[1] ~= ARGV[1] or tonumber(current[2]) >= tonumber(ARGV[2]) then
  return {'unchanged', current[1] or ''}
end
local time = redis.call('TIME')
local epoch = tonumber(time[1]) * 1000000 + tonumber(time[2])
if epoch <= tonumber(ARGV[1]) then
  epoch = tonumber(ARGV[1]) + 1
end
local text = string.format('%d', epoch)
redis.call('HSET', KEYS[1], 'epoch', text)
return {'renewed', text}
