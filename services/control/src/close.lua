-- Closes a drop: no order is admitted after this script has run.
--
-- KEYS[1]  drop meta hash
-- ARGV[1..] field, value, ... of the drop's initial state (used only when the hash does
--           not exist, so that a draft whose state Redis lost can still be closed)
-- Returns  { 'closed', closed_at_ms } when this call closed it, { 'already_closed',
--          closed_at_ms } when it was closed before.
local closed_at = redis.call('HGET', KEYS[1], 'closed_at_ms')
if closed_at then
  return { 'already_closed', closed_at }
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV))
end
local now = redis.call('TIME')
local now_ms = string.format('%.0f', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
redis.call('HSET', KEYS[1], 'phase', 'closed', 'closed_at_ms', now_ms)
return { 'closed', now_ms }
