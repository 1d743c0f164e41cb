-- pierhead: delete one workspace epoch, by the node that writes it (docs/storage.md, "Redis").
--
-- KEYS: meta, chunks, runs, seen, owner (as in _redis_commit.lua), index set
-- ARGV[1] workspace name, ARGV[2] epoch, ARGV[3] the writing node's token
-- ARGV[4] the workspace's channel: '<epoch> deleted' tells the nodes that follow it
--
-- Reply: {'deleted', epoch} (also when it was gone already), or {'owner', holder}.

local meta, chunks, runs, seen, owner, index = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
-- A claim is this node's when it is this process's, or an earlier process's of the same node
-- (the part of the token before '/'): a node restarted on its data directory takes it back.
local function mine(holder, token)
  return holder == token or holder:match('^[^/]*') == token:match('^[^/]*')
end

local holder = redis.call('GET', owner)
if holder and not mine(holder, ARGV[3]) then
  return {'owner', holder}
end
if redis.call('HGET', meta, 'epoch') == ARGV[2] then
  redis.call('DEL', meta, chunks, runs, seen)
  redis.call('SREM', index, ARGV[1])
  redis.call('PUBLISH', ARGV[4], ARGV[2] .. ' deleted')
end
-- The claim stays with this node until it lapses: the name may come back here at once.
return {'deleted', ARGV[2]}
