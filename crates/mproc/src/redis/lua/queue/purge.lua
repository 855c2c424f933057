-- KEYS ready meta unfinished joined space got → messages discarded (counted as taken)
local n = redis.call('LLEN', KEYS[1])
local eof = n > 0 and redis.call('LINDEX', KEYS[1], -1) == 'E'
if eof then n = n - 1 end
redis.call('DEL', KEYS[1])
if eof then redis.call('RPUSH', KEYS[1], 'E') end
if n > 0 then
  redis.call('INCRBY', KEYS[6], n)
  local u = tonumber(redis.call('GET', KEYS[3]) or '0') - n
  if u <= 0 then
    redis.call('SET', KEYS[3], 0); redis.call('DEL', KEYS[4]); redis.call('RPUSH', KEYS[4], 'J')
  else
    redis.call('SET', KEYS[3], u)
  end
  redis.call('DEL', KEYS[5]); redis.call('RPUSH', KEYS[5], '1')
end
return n
