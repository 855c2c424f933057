-- KEYS ready → messages in the queue
local n = redis.call('LLEN', KEYS[1])
if n > 0 and redis.call('LINDEX', KEYS[1], -1) == 'E' then n = n - 1 end
return n
