-- pierhead: take or renew a sink's sender lease (docs/storage.md, "Notifications").
--
-- KEYS[1] lease string ph:notify:{<sink>}:lease   the sending node's token, with its lease
-- ARGV[1] the token, ARGV[2] the lease in milliseconds
--
-- Reply: 1 when the token holds the lease now (it was free, lapsed, or this token's), else 0.

local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
