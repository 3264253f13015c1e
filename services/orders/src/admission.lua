-- Admits a batch of order requests for one drop, in arrival order, as one atomic step:
-- each request gets the answer it would get alone at its place in the order (idempotency,
-- opening time on the Redis server clock, per-user limit, stock), and the batch pays the
-- call, the reads of the drop and the writes once. On success the stock is taken, the
-- user's count raised, the answer recorded under the Idempotency-Key and the order appended
-- to the drop's outbox stream, all in this one script: a request can never oversell,
-- undersell or be lost between two steps. A refusal that may change (sold out, not open,
-- closed) records nothing. (drop_news.lua is in front of this text.)
--
-- Lottery drops: within window_ms after opening a request is an entry (one per user, no
-- stock taken); the draw (draw.lua) decides later. After the draw, what stock is left is
-- sold first come, first served by the same path as fcfs drops.
--
-- KEYS[1]  drop meta hash (phase, opens_at_ms, stock_left, max_per_user, pay_within_ms,
--          policy, window_ms, drawn, sold_out_at_ms, version; field names:
--          services/domain/src/drop_meta.rs)
-- KEYS[2]  holders hash: user id -> units held
-- KEYS[3]  idempotency hash: "<user id> <key>" -> "<fingerprint>\n<answer>"
-- KEYS[4]  outbox stream of order events
-- KEYS[5]  entries hash (lottery): user id -> "<order id>\t<qty>"
-- KEYS[6]  orders hash: order id -> "<status>\t<user>\t<qty>\t<pay_by_ms>" (live state)
-- KEYS[7]  deadlines sorted set: reserved order ids scored by pay_by_ms
-- ARGV[1]  drop news channel
-- ARGV[2]  drop id
-- ARGV[3..] six per request, in arrival order:
--          user id (visible ASCII, no spaces), Idempotency-Key (visible ASCII, no spaces),
--          fingerprint of the request body (same key + other fingerprint = conflict),
--          qty requested (>= 1), order id to use if the order is accepted, the request's
--          trace context (a W3C traceparent, kept in the outbox entry as `tp`; "" when
--          the request is not traced)
--
-- Returns { news, reply, reply, ... }: news is the line published when the batch changed
-- the drop (units taken, answers recorded), "" otherwise; one reply per request:
--   { 'fresh', answer, stock_left, sold_out_at_ms } a final answer decided now and
--       recorded; sold_out_at_ms is 0 unless this request took the last unit
--   { 'replay', answer }                           the answer recorded for this key before
--   { 'reject', code, number }                     refused, nothing recorded; code is
--       not_found | idempotency_conflict | not_open (number = opens_at_ms, -1 if unknown)
--       | closed | sold_out | invalid_qty (number = max_per_user) | draw_pending (number =
--       draw time)
-- where answer is "reserved\t<order id>\t<qty>\t<pay_by_ms>",
-- "entered\t<order id>\t<qty>\t<draw_at_ms>" or "limit_reached\t<max>".

local n = (#ARGV - 2) / 6
local function arg(i, k)
  return ARGV[2 + (i - 1) * 6 + k]
end
-- Appends request i's accepted order (its field-value list) to the outbox, with its trace
-- context when it has one.
local function outbox_order(i, entry)
  local tp = arg(i, 6)
  if tp ~= '' then
    entry[#entry + 1] = 'tp'
    entry[#entry + 1] = tp
  end
  redis.call('XADD', KEYS[4], '*', unpack(entry))
end
local replies = { '' }

local meta = redis.call('HMGET', KEYS[1], 'phase', 'opens_at_ms', 'stock_left', 'max_per_user',
  'pay_within_ms', 'policy', 'window_ms', 'drawn')
local phase = meta[1]
if not phase then
  for i = 1, n do
    replies[i + 1] = { 'reject', 'not_found', 0 }
  end
  return replies
end

local fields, users = {}, {}
for i = 1, n do
  users[i] = arg(i, 1)
  fields[i] = users[i] .. ' ' .. arg(i, 2)
end
local recorded = redis.call('HMGET', KEYS[3], unpack(fields))

local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local at_ms = string.format('%.0f', now_ms)
local opens_at_ms = tonumber(meta[2])
local max_per_user = tonumber(meta[4])
local stock_left = tonumber(meta[3])
local lottery_window = meta[6] == 'lottery' and meta[8] ~= '1'
local pay_by_ms = string.format('%.0f', now_ms + tonumber(meta[5] or '0'))

-- What this batch writes, collected and written once at the end.
local records, record_pairs = {}, {}
local answered, answered_users = {}, {}
local held_now, holder_pairs = {}, {}
local entry_now, entry_pairs = {}, {}
local order_pairs, deadline_pairs = {}, {}
local sold_out_at_ms = nil
local held = nil
local entries = nil

local function record(i, answer)
  local field = fields[i]
  local value = arg(i, 3) .. '\n' .. answer
  if records[field] == nil then
    record_pairs[#record_pairs + 1] = field
    record_pairs[#record_pairs + 1] = ''
  end
  records[field] = value
  if not answered[users[i]] then
    answered[users[i]] = true
    answered_users[#answered_users + 1] = users[i]
  end
end

-- Entries and holdings of the batch's users, read once when the batch needs them.
local function read_all(key)
  local values = redis.call('HMGET', key, unpack(users))
  local by_user = {}
  for i = 1, n do
    by_user[users[i]] = values[i]
  end
  return by_user
end

local function enter(i)
  local draw_at_ms = string.format('%.0f', opens_at_ms + tonumber(meta[7]))
  if now_ms >= opens_at_ms + tonumber(meta[7]) then
    return { 'reject', 'draw_pending', draw_at_ms }
  end
  entries = entries or read_all(KEYS[5])
  local user, qty, order_id = users[i], arg(i, 4), arg(i, 5)
  -- One entry per user: a second key gets the entry the user already has.
  local entry = entry_now[user] or entries[user]
  if not entry then
    entry = order_id .. '\t' .. qty
    entry_now[user] = entry
    entry_pairs[#entry_pairs + 1] = user
    entry_pairs[#entry_pairs + 1] = entry
    order_pairs[#order_pairs + 1] = order_id
    order_pairs[#order_pairs + 1] = 'entered\t' .. user .. '\t' .. qty .. '\t0'
    outbox_order(i, { 'kind', 'accepted', 'status', 'entered',
      'order_id', order_id, 'user_id', user, 'qty', qty,
      'at_ms', at_ms, 'idempotency_key', arg(i, 2) })
  end
  local tab = string.find(entry, '\t', 1, true)
  local answer = 'entered\t' .. string.sub(entry, 1, tab - 1) .. '\t' .. string.sub(entry, tab + 1)
    .. '\t' .. draw_at_ms
  record(i, answer)
  return { 'fresh', answer, stock_left, 0 }
end

local function reserve(i)
  held = held or read_all(KEYS[2])
  local user, qty, order_id = users[i], tonumber(arg(i, 4)), arg(i, 5)
  local has = held_now[user] or tonumber(held[user] or '0')
  if has + qty > max_per_user then
    local answer = 'limit_reached\t' .. max_per_user
    record(i, answer)
    return { 'fresh', answer, stock_left, 0 }
  end
  if stock_left < qty then
    return { 'reject', 'sold_out', 0 }
  end
  stock_left = stock_left - qty
  if held_now[user] == nil then
    holder_pairs[#holder_pairs + 1] = user
    holder_pairs[#holder_pairs + 1] = ''
  end
  held_now[user] = has + qty
  order_pairs[#order_pairs + 1] = order_id
  order_pairs[#order_pairs + 1] = 'reserved\t' .. user .. '\t' .. qty .. '\t' .. pay_by_ms
  deadline_pairs[#deadline_pairs + 1] = pay_by_ms
  deadline_pairs[#deadline_pairs + 1] = order_id
  outbox_order(i, { 'kind', 'accepted', 'status', 'reserved',
    'order_id', order_id, 'user_id', user, 'qty', qty,
    'at_ms', at_ms, 'pay_by_ms', pay_by_ms, 'idempotency_key', arg(i, 2) })
  local sold_out = 0
  if stock_left == 0 then
    redis.call('XADD', KEYS[4], '*', 'kind', 'sold_out', 'at_ms', at_ms)
    sold_out_at_ms = at_ms
    sold_out = at_ms
  end
  local answer = 'reserved\t' .. order_id .. '\t' .. qty .. '\t' .. pay_by_ms
  record(i, answer)
  return { 'fresh', answer, stock_left, sold_out }
end

local function decide(i)
  local earlier = records[fields[i]] or recorded[i]
  -- A refusal recorded by an older version of this script is not an answer to keep.
  if earlier and string.sub(earlier, -9) == '\nsold_out' then
    earlier = nil
  end
  if earlier then
    local sep = string.find(earlier, '\n', 1, true)
    if string.sub(earlier, 1, sep - 1) ~= arg(i, 3) then
      return { 'reject', 'idempotency_conflict', 0 }
    end
    return { 'replay', string.sub(earlier, sep + 1) }
  end
  if phase == 'closed' then
    return { 'reject', 'closed', 0 }
  end
  if phase ~= 'launched' then
    return { 'reject', 'not_open', -1 }
  end
  if now_ms < opens_at_ms then
    return { 'reject', 'not_open', meta[2] }
  end
  if tonumber(arg(i, 4)) > max_per_user then
    return { 'reject', 'invalid_qty', max_per_user }
  end
  if lottery_window then
    return enter(i)
  end
  return reserve(i)
end

for i = 1, n do
  replies[i + 1] = decide(i)
end

if #record_pairs == 0 then
  return replies
end
for j = 1, #record_pairs, 2 do
  record_pairs[j + 1] = records[record_pairs[j]]
end
redis.call('HSET', KEYS[3], unpack(record_pairs))
if #holder_pairs > 0 then
  for j = 1, #holder_pairs, 2 do
    holder_pairs[j + 1] = held_now[holder_pairs[j]]
  end
  redis.call('HSET', KEYS[2], unpack(holder_pairs))
  redis.call('HSET', KEYS[1], 'stock_left', stock_left)
  redis.call('ZADD', KEYS[7], unpack(deadline_pairs))
end
if sold_out_at_ms then
  redis.call('HSET', KEYS[1], 'sold_out_at_ms', sold_out_at_ms)
end
if #entry_pairs > 0 then
  redis.call('HSET', KEYS[5], unpack(entry_pairs))
end
if #order_pairs > 0 then
  redis.call('HSET', KEYS[6], unpack(order_pairs))
end
replies[1] = publish_drop_change(KEYS[1], ARGV[1], ARGV[2], table.concat(answered_users, ' '))
return replies
