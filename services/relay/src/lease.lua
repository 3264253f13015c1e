-- Takes or keeps the lease on one drop's outbox for one relay: while a relay holds it, no
-- other relay produces that drop's events, so they reach Kafka in the order the scripts
-- wrote them. A lease that is not renewed expires, and another relay takes the drop over.
--
-- KEYS[1]  lease key of the drop
-- ARGV[1]  relay consumer name
-- ARGV[2]  lease time in milliseconds; 0 releases the lease if held
-- Returns  2 (acquired now), 1 (renewed), 0 (held by another relay or released)
local owner = redis.call('GET', KEYS[1])
if ARGV[2] == '0' then
  if owner == ARGV[1] then
    redis.call('DEL', KEYS[1])
  end
  return 0
end
if owner and owner ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if owner then
  return 1
end
return 2
