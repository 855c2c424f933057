-- KEYS meta ready space → 1 closed now, 0 already closed, -2 gone
local m = redis.call('HMGET', KEYS[1], 'kind', 'closed')
if m[1] ~= 'queue' then return -2 end
if m[2] == '1' then return 0 end
redis.call('HSET', KEYS[1], 'closed', '1')
redis.call('RPUSH', KEYS[2], 'E')
redis.call('DEL', KEYS[3])
redis.call('RPUSH', KEYS[3], '1')
return 1
