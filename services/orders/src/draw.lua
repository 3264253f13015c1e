-- Applies a lottery draw computed outside Redis (the ranks are HMAC-SHA256, which Redis
-- scripts cannot compute), once. It refuses while the entry window is still open by
-- Redis time, and when the entries changed since they were read, so the draw always
-- covers exactly the final set of entries. Winners take their units and get a payment
-- deadline; every entry's outcome is appended to the outbox, and every orders process is
-- told (drop news). (drop_news.lua is in front of this text.)
--
-- KEYS[1]  drop meta hash (field names: services/domain/src/drop_meta.rs)
-- KEYS[2]  holders hash: user id -> units held
-- KEYS[3]  outbox stream of order events
-- KEYS[4]  entries hash: user id -> "<order id>\t<qty>"
-- KEYS[5]  orders hash: order id -> "<status>\t<user>\t<qty>\t<pay_by_ms>" (live state)
-- KEYS[6]  deadlines sorted set: reserved order ids scored by pay_by_ms
-- ARGV[1]  drop news channel
-- ARGV[2]  drop id
-- ARGV[3]  number of entries the draw was computed over
-- ARGV[4]  cutoff rank (hex of the largest winning rank; "" when nobody won)
-- ARGV[5]  number of winners
-- ARGV[6..] per entry: user id, order id, qty, won ("1" or "0")
-- Refuses as 'changed' too when the winners would take more than the stock left.
-- Returns  { 'drawn', stock_left, sold_out_at_ms (0 if not sold out), drawn_at_ms }
--        | { 'already' } | { 'too_early', draw_at_ms } | { 'changed' }
local meta = redis.call('HMGET', KEYS[1], 'drawn', 'opens_at_ms', 'window_ms', 'pay_within_ms', 'stock_left')
if meta[1] == '1' then
  return { 'already' }
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local draw_at_ms = tonumber(meta[2]) + tonumber(meta[3])
if now_ms < draw_at_ms then
  return { 'too_early', string.format('%.0f', draw_at_ms) }
end
if redis.call('HLEN', KEYS[4]) ~= tonumber(ARGV[3]) then
  return { 'changed' }
end

local taken = 0
for i = 6, #ARGV, 4 do
  if ARGV[i + 3] == '1' then
    taken = taken + tonumber(ARGV[i + 2])
  end
end
if taken > tonumber(meta[5]) then
  return { 'changed' }
end

local at = string.format('%.0f', now_ms)
local pay_by_ms = string.format('%.0f', now_ms + tonumber(meta[4]))
local stock_left = tonumber(meta[5])
for i = 6, #ARGV, 4 do
  local user, order_id, qty, won = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  if won == '1' then
    stock_left = redis.call('HINCRBY', KEYS[1], 'stock_left', -qty)
    redis.call('HINCRBY', KEYS[2], user, qty)
    redis.call('HSET', KEYS[5], order_id, 'reserved\t' .. user .. '\t' .. qty .. '\t' .. pay_by_ms)
    redis.call('ZADD', KEYS[6], pay_by_ms, order_id)
    redis.call('XADD', KEYS[3], '*', 'kind', 'drawn', 'status', 'reserved', 'order_id', order_id,
      'user_id', user, 'qty', qty, 'at_ms', at, 'pay_by_ms', pay_by_ms)
  else
    redis.call('HSET', KEYS[5], order_id, 'lost\t' .. user .. '\t' .. qty .. '\t0')
    redis.call('XADD', KEYS[3], '*', 'kind', 'drawn', 'status', 'lost', 'order_id', order_id,
      'user_id', user, 'qty', qty, 'at_ms', at)
  end
end
local sold_out_at_ms = 0
if stock_left == 0 then
  redis.call('HSET', KEYS[1], 'sold_out_at_ms', at)
  redis.call('XADD', KEYS[3], '*', 'kind', 'sold_out', 'at_ms', at)
  sold_out_at_ms = at
end
redis.call('HSET', KEYS[1], 'drawn', '1', 'drawn_at_ms', at, 'cutoff_rank', ARGV[4],
  'draw_entries', ARGV[3], 'draw_winners', ARGV[5])
publish_drop_change(KEYS[1], ARGV[1], ARGV[2], '')
return { 'drawn', stock_left, sold_out_at_ms, at }
