-- Admits one order request as one atomic decision: idempotency, opening time (Redis
-- server clock), per-user limit and stock are checked, and on success the stock is taken,
-- the user's count raised, the answer recorded under the Idempotency-Key and the order
-- appended to the drop's outbox stream, all in this one script. Nothing changes unless an
-- order is accepted or a final answer recorded, so a request can never oversell,
-- undersell or be lost between two steps.
--
-- Lottery drops: within window_ms after opening a request is an entry (one per user, no
-- stock taken); the draw (draw.lua) decides later. After the draw, what stock is left is
-- sold first come, first served by the same path as fcfs drops.
--
-- KEYS[1]  drop meta hash (phase, opens_at_ms, stock_left, max_per_user, pay_within_ms,
--          policy, window_ms, drawn)
-- KEYS[2]  holders hash: user id -> units held
-- KEYS[3]  idempotency hash: "<user id> <key>" -> "<fingerprint>\n<answer>"
-- KEYS[4]  outbox stream of order events
-- KEYS[5]  entries hash (lottery): user id -> "<order id>\t<qty>"
-- KEYS[6]  orders hash: order id -> "<status>\t<user>\t<qty>\t<pay_by_ms>" (live state)
-- KEYS[7]  deadlines sorted set: reserved order ids scored by pay_by_ms
-- ARGV[1]  user id (visible ASCII, no spaces)
-- ARGV[2]  Idempotency-Key (visible ASCII, no spaces)
-- ARGV[3]  fingerprint of the request body (same key + other fingerprint = conflict)
-- ARGV[4]  qty requested (>= 1)
-- ARGV[5]  order id to use if the order is accepted
--
-- Returns one of:
--   { 'fresh', answer, stock_left, sold_out_at_ms } a final answer decided now and
--       recorded; sold_out_at_ms is 0 unless this request took the last unit
--   { 'replay', answer }                           the answer recorded for this key before
--   { 'reject', code, number }                     refused, nothing recorded; code is
--       not_found | idempotency_conflict | not_open (number = opens_at_ms, -1 if unknown)
--       | closed | invalid_qty (number = max_per_user) | draw_pending (number = draw time)
-- where answer is "reserved\t<order id>\t<qty>\t<pay_by_ms>",
-- "entered\t<order id>\t<qty>\t<draw_at_ms>", "sold_out" or "limit_reached\t<max>".

local meta = redis.call('HMGET', KEYS[1], 'phase', 'opens_at_ms', 'stock_left', 'max_per_user',
  'pay_within_ms', 'policy', 'window_ms', 'drawn')
local phase = meta[1]
if not phase then
  return { 'reject', 'not_found', 0 }
end

local user, key, fingerprint = ARGV[1], ARGV[2], ARGV[3]
local qty = tonumber(ARGV[4])
local idem_field = user .. ' ' .. key
local recorded = redis.call('HGET', KEYS[3], idem_field)
if recorded then
  local sep = string.find(recorded, '\n', 1, true)
  if string.sub(recorded, 1, sep - 1) ~= fingerprint then
    return { 'reject', 'idempotency_conflict', 0 }
  end
  return { 'replay', string.sub(recorded, sep + 1) }
end

if phase == 'closed' then
  return { 'reject', 'closed', 0 }
end
if phase ~= 'launched' then
  return { 'reject', 'not_open', -1 }
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local opens_at_ms = tonumber(meta[2])
if now_ms < opens_at_ms then
  return { 'reject', 'not_open', meta[2] }
end

local max_per_user = tonumber(meta[4])
if qty > max_per_user then
  return { 'reject', 'invalid_qty', max_per_user }
end

local stock_left = tonumber(meta[3])
local function record(answer, sold_out_at_ms)
  redis.call('HSET', KEYS[3], idem_field, fingerprint .. '\n' .. answer)
  return { 'fresh', answer, stock_left, sold_out_at_ms }
end
local admitted_at_ms = string.format('%.0f', now_ms)

if meta[6] == 'lottery' and meta[8] ~= '1' then
  local draw_at_ms = string.format('%.0f', opens_at_ms + tonumber(meta[7]))
  if now_ms >= opens_at_ms + tonumber(meta[7]) then
    return { 'reject', 'draw_pending', draw_at_ms }
  end
  -- One entry per user: a second key gets the entry the user already has.
  local entry = redis.call('HGET', KEYS[5], user)
  if entry then
    local tab = string.find(entry, '\t', 1, true)
    return record('entered\t' .. string.sub(entry, 1, tab - 1) .. '\t' .. string.sub(entry, tab + 1) .. '\t' .. draw_at_ms, 0)
  end
  redis.call('HSET', KEYS[5], user, ARGV[5] .. '\t' .. qty)
  redis.call('HSET', KEYS[6], ARGV[5], 'entered\t' .. user .. '\t' .. qty .. '\t0')
  redis.call('XADD', KEYS[4], '*', 'kind', 'accepted', 'status', 'entered',
    'order_id', ARGV[5], 'user_id', user, 'qty', qty,
    'at_ms', admitted_at_ms, 'idempotency_key', key)
  return record('entered\t' .. ARGV[5] .. '\t' .. qty .. '\t' .. draw_at_ms, 0)
end

local held = tonumber(redis.call('HGET', KEYS[2], user) or '0')
if held + qty > max_per_user then
  return record('limit_reached\t' .. max_per_user, 0)
end
if stock_left < qty then
  return record('sold_out', 0)
end

stock_left = redis.call('HINCRBY', KEYS[1], 'stock_left', -qty)
redis.call('HINCRBY', KEYS[2], user, qty)
local pay_by_ms = string.format('%.0f', now_ms + tonumber(meta[5]))
redis.call('HSET', KEYS[6], ARGV[5], 'reserved\t' .. user .. '\t' .. qty .. '\t' .. pay_by_ms)
redis.call('ZADD', KEYS[7], pay_by_ms, ARGV[5])
redis.call('XADD', KEYS[4], '*', 'kind', 'accepted', 'status', 'reserved',
  'order_id', ARGV[5], 'user_id', user, 'qty', qty,
  'at_ms', admitted_at_ms, 'pay_by_ms', pay_by_ms, 'idempotency_key', key)
local sold_out_at_ms = 0
if stock_left == 0 then
  redis.call('HSET', KEYS[1], 'sold_out_at_ms', admitted_at_ms)
  redis.call('XADD', KEYS[4], '*', 'kind', 'sold_out', 'at_ms', admitted_at_ms)
  sold_out_at_ms = admitted_at_ms
end
return record('reserved\t' .. ARGV[5] .. '\t' .. qty .. '\t' .. pay_by_ms, sold_out_at_ms)
