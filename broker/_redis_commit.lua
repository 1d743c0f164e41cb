-- pierhead: one publish batch into a workspace stream, atomically (docs/storage.md, "Redis").
--
-- KEYS[1] meta hash    ph:{<workspace>}:meta    epoch, last, first, fence, holder
-- KEYS[2] chunk stream ph:{<workspace>}:chunks  entry id <last offset>-0; f, t, d
-- KEYS[3] runs hash    ph:{<workspace>}:runs    run id -> highest stored seq
-- ARGV[1] epoch the caller commits into (decimal string)
-- ARGV[2] run id, or '' for events the broker made itself (no dedupe)
-- ARGV[3] seq of the first event (ignored without a run id)
-- ARGV[4] mutex fence the run holds, or '0' when it holds none
-- ARGV[5] latest receive time in the batch, integer microseconds (kept per chunk for retention)
-- ARGV[6] channel to PUBLISH the wake-up hint on
-- ARGV[7..] the events, each one MessagePack value, in seq order
--
-- Replies (arrays):
--   {'stored', epoch, first_offset, last_offset, run_seq}  events stored from first_offset
--   {'duplicate', epoch, last_offset, run_seq}   every seq was already stored: nothing written
--   {'epoch', current_epoch or ''}              the workspace is not (or no longer) in that
--                                                epoch: its data was lost or deleted
--   {'fenced', epoch, current_fence, holder}    the fence is not the current grant to this run
-- Only 'stored' writes anything. Dedupe comes before the fence check: a resend of events that
-- are durable is acknowledged even when the sender has since lost the mutex.

local CHUNK_EVENTS = 512
local CHUNK_BYTES = 1048576
local FIRST_EVENT = 7

local meta, chunks, runs = KEYS[1], KEYS[2], KEYS[3]
local epoch, run_id, fence = ARGV[1], ARGV[2], ARGV[4]
local count = #ARGV - FIRST_EVENT + 1

local current = redis.call('HMGET', meta, 'epoch', 'last', 'fence', 'holder')
if current[1] ~= epoch then
  return {'epoch', current[1] or ''}
end
local last = tonumber(current[2])

local skip = 0
local run_seq = 0
if run_id ~= '' then
  local first_seq = tonumber(ARGV[3])
  run_seq = tonumber(redis.call('HGET', runs, run_id) or '0')
  if run_seq >= first_seq then
    skip = run_seq - first_seq + 1
  end
  if skip >= count then
    return {'duplicate', epoch, last, run_seq}
  end
  run_seq = first_seq + count - 1
end

if fence ~= '0' and (current[3] ~= fence or current[4] ~= run_id) then
  return {'fenced', epoch, current[3] or '0', current[4] or ''}
end

-- A MessagePack array header for n <= 65535 elements (a chunk holds at most CHUNK_EVENTS).
local function array_header(n)
  if n < 16 then
    return string.char(0x90 + n)
  end
  return string.char(0xdc, math.floor(n / 256), n % 256)
end

local first_offset = last + 1
local offset = first_offset
local i = FIRST_EVENT + skip
while i <= #ARGV do
  local j = i
  local bytes = 0
  while j <= #ARGV and j - i < CHUNK_EVENTS and (j == i or bytes + #ARGV[j] <= CHUNK_BYTES) do
    bytes = bytes + #ARGV[j]
    j = j + 1
  end
  local n = j - i
  local chunk_last = offset + n - 1
  redis.call('XADD', chunks, string.format('%d-0', chunk_last),
    'f', string.format('%d', offset), 't', ARGV[5],
    'd', array_header(n) .. table.concat(ARGV, '', i, j - 1))
  offset = chunk_last + 1
  i = j
end
last = offset - 1

redis.call('HSET', meta, 'last', string.format('%d', last))
if run_id ~= '' then
  redis.call('HSET', runs, run_id, string.format('%d', run_seq))
end
redis.call('PUBLISH', ARGV[6], epoch .. ' ' .. string.format('%d', last))
return {'stored', epoch, first_offset, last, run_seq}
