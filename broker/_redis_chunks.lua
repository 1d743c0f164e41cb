-- pierhead: append stored chunks to a read script's reply.
--
-- Not a script of its own: its text is put before each script that returns chunks
-- (_redis_read.lua, _redis_follow.lua), which call append_chunks(reply, entries) with the
-- entries of an XRANGE over a workspace's chunk stream. Each entry adds two items to the
-- reply: the chunk's first offset and its MessagePack array of events.

local function append_chunks(reply, entries)
  for _, entry in ipairs(entries) do
    local fields = entry[2]
    local first, body
    for k = 1, #fields, 2 do
      if fields[k] == 'f' then
        first = tonumber(fields[k + 1])
      elseif fields[k] == 'd' then
        body = fields[k + 1]
      end
    end
    reply[#reply + 1] = first
    reply[#reply + 1] = body
  end
end

