-- pierhead: notifications of a workspace, queued without events of it (the stall detector's,
-- or another epoch's), by the node that writes the workspace (docs/storage.md, "Redis").
-- _redis_notify_queue.lua is put before this text.
--
-- KEYS[1] owner string ph:{<workspace>}:owner, KEYS[2..] as queue_notifications(2, 2)
-- ARGV[1] the writing node's token, ARGV[2..] as queue_notifications(2, 2)
--
-- Replies: {'stored', ''}, or {'owner', holder} (nothing queued): another node writes it.

-- A claim is this node's when it is this process's, or an earlier process's of the same node
-- (the part of the token before '/'): a node restarted on its data directory takes it back.
local function mine(holder, token)
  return holder == token or holder:match('^[^/]*') == token:match('^[^/]*')
end

local holder = redis.call('GET', KEYS[1])
if holder and not mine(holder, ARGV[1]) then
  return {'owner', holder}
end
queue_notifications(2, 2)
return {'stored', ''}
