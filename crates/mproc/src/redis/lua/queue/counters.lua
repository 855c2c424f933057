-- KEYS ready meta seq got unfinished dead requeued consumers
-- → {len, closed, put, got, unfinished, dead, requeued, leased}
local n = redis.call('LLEN', KEYS[1])
if n > 0 and redis.call('LINDEX', KEYS[1], -1) == 'E' then n = n - 1 end
local c = 0
if redis.call('HGET', KEYS[2], 'closed') == '1' then c = 1 end
local leased = 0
local tag = string.sub(KEYS[1], 1, #KEYS[1] - 5)
for _, cid in ipairs(redis.call('SMEMBERS', KEYS[8])) do
  leased = leased + redis.call('LLEN', tag .. 'proc:' .. cid)
end
local function num(k) return tonumber(redis.call('GET', k) or '0') end
return {n, c, num(KEYS[3]), num(KEYS[4]), num(KEYS[5]), redis.call('LLEN', KEYS[6]), num(KEYS[7]), leased}
