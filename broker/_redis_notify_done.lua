-- pierhead: remove delivered notifications from a sink's queue, by the holder of the sink's
-- sender lease only (docs/storage.md, "Notifications").
--
-- KEYS[1] lease string, KEYS[2] queue stream, KEYS[3] keys hash (as in
--         _redis_notify_queue.lua and _redis_notify_lease.lua)
-- ARGV[1] the sender's token, ARGV[2..] the ids to remove (an id not queued is skipped)
--
-- Reply: 1 when removed, 0 when the token does not hold the lease (nothing is removed).

local lease, queue, queued_keys = KEYS[1], KEYS[2], KEYS[3]
if redis.call('GET', lease) ~= ARGV[1] then
  return 0
end
for i = 2, #ARGV do
  local id = ARGV[i] .. '-0'
  local entry = redis.call('XRANGE', queue, id, id)[1]
  if entry then
    -- Fields as _redis_notify_queue.lua writes them: k, its value, d, its value.
    redis.call('HDEL', queued_keys, entry[2][2])
    redis.call('XDEL', queue, id)
  end
end
return 1
