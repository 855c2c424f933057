-- KEYS ready proc — the end marker was taken by BLMOVE: put it back.
redis.call('LREM', KEYS[2], -1, 'E')
if redis.call('LINDEX', KEYS[1], -1) ~= 'E' then redis.call('RPUSH', KEYS[1], 'E') end
return 1
