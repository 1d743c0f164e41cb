-- pierhead: one workspace's part of a commit, atomically (docs/storage.md, "Redis").
--
-- KEYS[1] meta hash     ph:{<workspace>}:meta    epoch, first, last, state
-- KEYS[2] chunk stream  ph:{<workspace>}:chunks  entry id <last offset>-0; fields f, t, d
-- KEYS[3] runs hash     ph:{<workspace>}:runs    run id -> highest stored seq
-- KEYS[4] seen hash     ph:{<workspace>}:seen    run id -> when last seen (microseconds)
-- KEYS[5] owner string  ph:{<workspace>}:owner   the token of the node that writes it
-- KEYS[6] index set     ph:workspaces            every workspace name with a meta hash
-- KEYS[7..] only with notifications: the sinks set, then three keys per sink (as in
--           _redis_notify_queue.lua, whose text is put before this script's)
-- ARGV[1] workspace name, ARGV[2] epoch, ARGV[3] the writing node's token
-- ARGV[4] owner lease in milliseconds (a write renews it)
-- ARGV[5] the workspace's folded state after this commit (MessagePack)
-- ARGV[6] its last offset after this commit
-- ARGV[7] number of chunks n, ARGV[8] number of runs m, ARGV[9] channel for the wake-up hint
-- ARGV[10..] n chunks as (first offset, last offset, latest receive time in us, body),
--            then m runs as (run id, seq, seen us),
--            then the notifications per sink, as queue_notifications(7, ...) reads them
--
-- The node's router numbered the events; this script makes sure nobody else writes the
-- workspace (the owner token), and that the stream stays gapless (the chunks continue the
-- stored last offset). A commit the node sends again after losing the reply is recognised
-- (everything up to its last offset is stored already) and changes nothing. The commit's
-- notifications of this workspace are queued only once every check has passed: with the
-- events, or not at all.
--
-- Replies: {'stored', last}  {'owner', current owner or ''}  {'epoch', current epoch}
--          {'gap', stored last}  {'lost', ''}: the meta hash is gone but the commit continues
--          a stream (the server lost the data: a restart without the AOF, a failover)

local meta, chunks, runs, seen, owner, index = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local name, epoch, token, lease_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local state, new_last = ARGV[5], tonumber(ARGV[6])
local n, m, channel = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local FIRST = 10

-- A claim is this node's when it is this process's, or an earlier process's of the same node
-- (the part of the token before '/'): a node restarted on its data directory takes it back.
local function mine(holder, token)
  return holder == token or holder:match('^[^/]*') == token:match('^[^/]*')
end

local holder = redis.call('GET', owner)
if holder and not mine(holder, token) then
  return {'owner', holder}
end

local current = redis.call('HMGET', meta, 'epoch', 'last')
local last
if not current[1] then
  local continues = (n > 0 and tonumber(ARGV[FIRST]) ~= 1) or (n == 0 and new_last ~= 0)
  if continues then
    return {'lost', ''}
  end
  redis.call('DEL', chunks, runs, seen)
  redis.call('HSET', meta, 'epoch', epoch, 'first', '1', 'last', '0')
  redis.call('SADD', index, name)
  last = 0
elseif current[1] ~= epoch then
  return {'epoch', current[1]}
else
  last = tonumber(current[2])
end
redis.call('SET', owner, token, 'PX', lease_ms)

if n > 0 then
  local first = tonumber(ARGV[FIRST])
  if first <= last then
    if new_last <= last then
      return {'stored', last}
    end
    return {'gap', last}
  elseif first ~= last + 1 then
    return {'gap', last}
  end
end

for i = 0, n - 1 do
  local at = FIRST + 4 * i
  redis.call('XADD', chunks, ARGV[at + 1] .. '-0', 'f', ARGV[at], 't', ARGV[at + 2], 'd', ARGV[at + 3])
end
redis.call('HSET', meta, 'last', ARGV[6], 'state', state)

local runs_at = FIRST + 4 * n
for i = 0, m - 1 do
  local at = runs_at + 3 * i
  local run_id, seq = ARGV[at], tonumber(ARGV[at + 1])
  if seq > tonumber(redis.call('HGET', runs, run_id) or '0') then
    redis.call('HSET', runs, run_id, ARGV[at + 1])
  end
  redis.call('HSET', seen, run_id, ARGV[at + 2])
end

queue_notifications(7, runs_at + 3 * m)

if n > 0 then
  redis.call('PUBLISH', channel, epoch .. ' ' .. ARGV[6])
end
return {'stored', new_last}
