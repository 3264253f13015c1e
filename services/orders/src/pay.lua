-- Pays one reserved order before its deadline (Redis server time), once: marks it paid,
-- counts its units as paid, takes it off the deadlines and appends the change to the
-- outbox. Paying a paid order answers as the first payment did. An order past its
-- deadline is reported `past_due` and left for expire.lua, so a late payment can never
-- bring back units that were (or are about to be) returned to the stock.
--
-- KEYS[1]  drop meta hash (field names: services/domain/src/drop_meta.rs)
-- KEYS[2]  orders hash: order id -> "<status>\t<user>\t<qty>\t<pay_by_ms>[\t<paid_at_ms>\t<ref>]"
-- KEYS[3]  outbox stream of order events
-- KEYS[4]  deadlines sorted set: order id scored by pay_by_ms
-- ARGV[1]  order id
-- ARGV[2]  user id of the payer (must be the order's shopper)
-- ARGV[3]  payment reference (visible ASCII, no tabs)
-- Returns  { 'paid', paid_at_ms, payment_ref, qty } | { 'expired' } | { 'past_due' }
--        | { 'not_reserved', status } | { 'not_found' }
local state = redis.call('HGET', KEYS[2], ARGV[1])
if not state then
  return { 'not_found' }
end
local status, user, qty, pay_by, paid_at, ref =
  string.match(state, '^([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t?([^\t]*)\t?([^\t]*)')
if user ~= ARGV[2] then
  return { 'not_found' }
end
if status == 'paid' then
  return { 'paid', paid_at, ref, qty }
end
if status == 'expired' then
  return { 'expired' }
end
if status ~= 'reserved' then
  return { 'not_reserved', status }
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if now_ms > tonumber(pay_by) then
  return { 'past_due' }
end
local at = string.format('%.0f', now_ms)
redis.call('HSET', KEYS[2], ARGV[1], 'paid\t' .. user .. '\t' .. qty .. '\t' .. pay_by .. '\t' .. at .. '\t' .. ARGV[3])
redis.call('HINCRBY', KEYS[1], 'paid', tonumber(qty))
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('XADD', KEYS[3], '*', 'kind', 'paid', 'status', 'paid', 'order_id', ARGV[1],
  'user_id', user, 'qty', qty, 'at_ms', at, 'payment_ref', ARGV[3])
return { 'paid', at, ARGV[3], qty }
