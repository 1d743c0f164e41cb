-- pierhead: append notifications to their sinks' queues (docs/storage.md, "Notifications").
--
-- Not a script of its own: its text is put before each script that queues notifications
-- (_redis_commit.lua, _redis_notify.lua), so they are queued in the same call, after the same
-- checks, as what they tell of. Those scripts call queue_notifications(k, a) once every check
-- has passed:
--
-- KEYS[k]        sinks set    ph:notify:sinks           every sink that has had a notification
-- KEYS[k+1..]    per sink, three keys:
--                queue stream ph:notify:{<sink>}:queue  entry id <id>-0; fields k (key), d (body)
--                meta hash    ph:notify:{<sink>}:meta   last (last id given), dropped
--                keys hash    ph:notify:{<sink>}:keys   key -> id of every queued notification
-- ARGV[a..]      per sink, in the order of its keys: sink name, bound, count c, then c times
--                (key, MessagePack of the notification)
--
-- A key already queued is not queued again (a commit sent again after a lost reply). Past
-- the bound the oldest entries are removed, enough that an eighth of the bound is free again,
-- and counted in `dropped`.

local function queue_notifications(k, a)
  for s = k + 1, #KEYS, 3 do
    local queue, meta, queued_keys = KEYS[s], KEYS[s + 1], KEYS[s + 2]
    local sink, bound, count = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    a = a + 3
    for _ = 1, count do
      local key, body = ARGV[a], ARGV[a + 1]
      a = a + 2
      if redis.call('HEXISTS', queued_keys, key) == 0 then
        local id = redis.call('HINCRBY', meta, 'last', 1)
        redis.call('XADD', queue, string.format('%d-0', id), 'k', key, 'd', body)
        redis.call('HSET', queued_keys, key, id)
      end
    end
    redis.call('SADD', KEYS[k], sink)
    -- Past the bound, enough of the oldest go that an eighth of it is free again (as
    -- broker/_notify_queue.py's dropped_past_bound): a full queue drops once per many commits.
    local excess = redis.call('XLEN', queue) - bound
    if excess > 0 then
      excess = excess + math.floor(bound / 8)
      for _, entry in ipairs(redis.call('XRANGE', queue, '-', '+', 'COUNT', excess)) do
        -- Fields as written above: k, its value, d, its value.
        redis.call('HDEL', queued_keys, entry[2][2])
        redis.call('XDEL', queue, entry[1])
      end
      redis.call('HINCRBY', meta, 'dropped', excess)
    end
  end
end

