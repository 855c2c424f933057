-- KEYS hb proc ready consumers deliveries dead unfinished joined requeued
-- ARGV cid max_deliveries force → elements taken back (0 if still alive)
local force = ARGV[3] == '1'
if not force and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local n = 0
while true do
  local v = redis.call('RPOP', KEYS[2])
  if not v then break end
  if v == 'E' then
    if redis.call('LINDEX', KEYS[3], -1) ~= 'E' then redis.call('RPUSH', KEYS[3], 'E') end
  else
    local d = 0
    if not force then d = redis.call('HINCRBY', KEYS[5], v, 1) end
    if not force and tonumber(ARGV[2]) > 0 and d >= tonumber(ARGV[2]) then
      redis.call('RPUSH', KEYS[6], v)
      redis.call('HDEL', KEYS[5], v)
      local u = redis.call('DECR', KEYS[7])
      if u <= 0 then redis.call('SET', KEYS[7], 0); redis.call('DEL', KEYS[8]); redis.call('RPUSH', KEYS[8], 'J') end
    else
      redis.call('LPUSH', KEYS[3], v)
      if not force then redis.call('INCR', KEYS[9]) end
    end
    n = n + 1
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[4], ARGV[1])
return n
