-- pierhead: give up a node's claim on a workspace as the node stops (docs/storage.md, "Redis").
--
-- KEYS[1] owner string ph:{<workspace>}:owner
-- ARGV[1] the token of the node's process that stops
--
-- Reply: 1 when the claim was this process's and is gone, else 0 (it lapsed, or another node,
-- or a newer process of this node, holds it now).

if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
