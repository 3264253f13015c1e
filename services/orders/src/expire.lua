-- Expires one reserved order whose payment deadline has passed (Redis server time): marks
-- it expired, returns its units to the stock and to the shopper's allowance, and appends
-- the change to the outbox — exactly once, because only an order still `reserved` is
-- touched. A paid order is never expired, and an expired one never paid. Every orders
-- process is told that units came back (drop news). (drop_news.lua is in front of this.)
--
-- KEYS[1]  drop meta hash (field names: services/domain/src/drop_meta.rs)
-- KEYS[2]  orders hash: order id -> "<status>\t<user>\t<qty>\t<pay_by_ms>[\t…]"
-- KEYS[3]  holders hash: user id -> units held
-- KEYS[4]  outbox stream of order events
-- KEYS[5]  deadlines sorted set: order id scored by pay_by_ms
-- ARGV[1]  drop news channel
-- ARGV[2]  drop id
-- ARGV[3]  order id
-- Returns  { 'expired', stock_left } | { 'not_reserved', status } | { 'not_due', pay_by_ms }
--        | { 'unknown' }
local state = redis.call('HGET', KEYS[2], ARGV[3])
if not state then
  redis.call('ZREM', KEYS[5], ARGV[3])
  return { 'unknown' }
end
local status, user, qty, pay_by = string.match(state, '^([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)')
if status ~= 'reserved' then
  redis.call('ZREM', KEYS[5], ARGV[3])
  return { 'not_reserved', status }
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if now_ms <= tonumber(pay_by) then
  return { 'not_due', pay_by }
end
local at = string.format('%.0f', now_ms)
redis.call('HSET', KEYS[2], ARGV[3], 'expired\t' .. user .. '\t' .. qty .. '\t' .. pay_by)
local stock_left = redis.call('HINCRBY', KEYS[1], 'stock_left', tonumber(qty))
if redis.call('HINCRBY', KEYS[3], user, -tonumber(qty)) <= 0 then
  redis.call('HDEL', KEYS[3], user)
end
redis.call('ZREM', KEYS[5], ARGV[3])
redis.call('XADD', KEYS[4], '*', 'kind', 'expired', 'status', 'expired', 'order_id', ARGV[3],
  'user_id', user, 'qty', qty, 'at_ms', at)
-- Units are back: the drop is on sale again.
redis.call('HDEL', KEYS[1], 'sold_out_at_ms')
publish_drop_change(KEYS[1], ARGV[1], ARGV[2], '')
return { 'expired', stock_left }
