-- KEYS consumers   ARGV me → registered consumers other than `me` whose
-- heartbeat key is gone (their keys share the tag of KEYS[1])
local tag = string.sub(KEYS[1], 1, #KEYS[1] - #'consumers')
local out = {}
for _, cid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if cid ~= ARGV[1] and redis.call('EXISTS', tag .. 'hb:' .. cid) == 0 then
    out[#out + 1] = cid
  end
end
return out
