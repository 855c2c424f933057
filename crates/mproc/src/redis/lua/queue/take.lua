-- KEYS ready proc got space deliveries putters   ARGV max wake already prev...
-- Completes the previous elements, then takes up to max more without
-- blocking; wakes a waiting producer. → the elements, or {'E'} when only
-- the end marker is left (it is always the last element).
for i = 4, #ARGV do
  if redis.call('LREM', KEYS[2], -1, ARGV[i]) > 0 then redis.call('HDEL', KEYS[5], ARGV[i]) end
end
local out = {}
local max = tonumber(ARGV[1])
while #out < max do
  local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'LEFT', 'RIGHT')
  if not v then break end
  if v == 'E' then
    redis.call('RPOP', KEYS[2])
    redis.call('RPUSH', KEYS[1], 'E')
    if #out == 0 and ARGV[3] == '0' then return {'E'} end
    break
  end
  out[#out + 1] = v
end
local n = #out + tonumber(ARGV[3])
if n > 0 then
  redis.call('INCRBY', KEYS[3], n)
  if ARGV[2] == '1' and tonumber(redis.call('GET', KEYS[6]) or '0') > 0 then
    redis.call('DEL', KEYS[4]); redis.call('RPUSH', KEYS[4], '1')
  end
end
return out
