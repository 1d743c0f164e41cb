-- pierhead: claim a workspace for a node, or extend the node's claim (docs/storage.md, "Redis").
--
-- KEYS[1] owner string ph:{<workspace>}:owner
-- ARGV[1] the node's token, ARGV[2] the lease in milliseconds
--
-- Reply: 1 when the node holds the claim now (it was free, lapsed, or its own), else 0.
-- A node's name (before the "/" of its token) holds no "/".

-- A claim is this node's when it is this process's, or an earlier process's of the same node
-- (the part of the token before '/'): a node restarted on its data directory takes it back.
local function mine(holder, token)
  return holder == token or holder:match('^[^/]*') == token:match('^[^/]*')
end

local holder = redis.call('GET', KEYS[1])
if holder and not mine(holder, ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
