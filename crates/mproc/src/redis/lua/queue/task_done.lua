-- KEYS proc unfinished joined deliveries   ARGV [element]
-- → unfinished left, -1 element already taken back (its redelivery will
-- count), -2 nothing outstanding
if ARGV[1] then
  if redis.call('LREM', KEYS[1], -1, ARGV[1]) == 0 then return -1 end
  redis.call('HDEL', KEYS[4], ARGV[1])
end
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
if n <= 0 then return -2 end
n = redis.call('DECR', KEYS[2])
if n == 0 then redis.call('DEL', KEYS[3]); redis.call('RPUSH', KEYS[3], 'J') end
return n
