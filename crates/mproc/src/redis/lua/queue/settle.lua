-- KEYS proc ready deliveries dead unfinished joined requeued
-- ARGV element requeue max_deliveries
-- → 0 acknowledged, 1 given back, 2 given up on, -1 not held
if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return -1 end
if ARGV[2] ~= '1' then
  redis.call('HDEL', KEYS[3], ARGV[1])
  return 0
end
local d = redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
if tonumber(ARGV[3]) > 0 and d >= tonumber(ARGV[3]) then
  redis.call('RPUSH', KEYS[4], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  local u = redis.call('DECR', KEYS[5])
  if u <= 0 then redis.call('SET', KEYS[5], 0); redis.call('DEL', KEYS[6]); redis.call('RPUSH', KEYS[6], 'J') end
  return 2
end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('INCR', KEYS[7])
return 1
