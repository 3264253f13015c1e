-- Closes a drop: no order is admitted after this script has run, and every orders process
-- is told (drop news). (drop_news.lua is in front of this text.)
--
-- KEYS[1]  drop meta hash (field names: services/domain/src/drop_meta.rs)
-- ARGV[1]  drop news channel
-- ARGV[2]  drop id
-- ARGV[3..] field, value, ... of the drop's initial state (used only when the hash does
--           not exist, so that a draft whose state Redis lost can still be closed)
-- Returns  { 'closed', closed_at_ms } when this call closed it, { 'already_closed',
--          closed_at_ms } when it was closed before.
local closed_at = redis.call('HGET', KEYS[1], 'closed_at_ms')
if closed_at then
  return { 'already_closed', closed_at }
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 3))
end
local now = redis.call('TIME')
local now_ms = string.format('%.0f', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
redis.call('HSET', KEYS[1], 'phase', 'closed', 'closed_at_ms', now_ms)
publish_drop_change(KEYS[1], ARGV[1], ARGV[2], '')
return { 'closed', now_ms }
