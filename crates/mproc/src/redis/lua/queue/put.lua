-- KEYS meta ready seq unfinished joined putters
-- ARGV maxsize waited will_wait msg...
-- → n put (≥ 0), -1 closed, -2 the queue is gone. A producer that will
-- wait when the queue is full is counted in `putters` (until its next call)
-- so that consumers know to wake it.
if ARGV[2] == '1' and tonumber(redis.call('GET', KEYS[6]) or '0') > 0 then
  redis.call('DECR', KEYS[6])
end
local m = redis.call('HMGET', KEYS[1], 'kind', 'closed')
if m[1] ~= 'queue' then return -2 end
if m[2] == '1' then return -1 end
local max = tonumber(ARGV[1])
local n = #ARGV - 3
if max > 0 then
  local room = max - redis.call('LLEN', KEYS[2])
  if room < n then n = room end
  if n <= 0 then
    if ARGV[3] == '1' then
      redis.call('INCR', KEYS[6])
      redis.call('PEXPIRE', KEYS[6], 10000)
    end
    return 0
  end
end
local first = redis.call('INCRBY', KEYS[3], n) - n
local frames = {}
for i = 1, n do frames[i] = 'D' .. (first + i) .. ':' .. ARGV[i + 3] end
redis.call('RPUSH', KEYS[2], unpack(frames))
if redis.call('INCRBY', KEYS[4], n) == n then redis.call('DEL', KEYS[5]) end
return n
