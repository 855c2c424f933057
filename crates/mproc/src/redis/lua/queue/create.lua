-- KEYS meta joined unfinished ready   ARGV maxsize max_bytes max_deliveries
-- → 'created', or the kind of the object of that name that exists
local k = redis.call('HGET', KEYS[1], 'kind')
if k then return k end
redis.call('HSET', KEYS[1], 'kind', 'queue', 'maxsize', ARGV[1], 'max_bytes', ARGV[2],
           'max_deliveries', ARGV[3], 'closed', '0')
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
redis.call('RPUSH', KEYS[2], 'J')
return 'created'
