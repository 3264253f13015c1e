-- Launches a drop: moves it from draft to launched with opens_at_ms = Redis server time +
-- countdown, once, and tells every orders process (drop news). If Redis lost the drop's
-- state (or never got it), the configuration passed in ARGV recreates it first, so
-- PostgreSQL's record is enough to launch. A drop launched before answers with its opening
-- time and seed hash, so that a host's retry can complete the steps after this script.
-- (drop_news.lua is in front of this text.)
--
-- KEYS[1]  drop meta hash
-- ARGV[1]  drop news channel
-- ARGV[2]  drop id
-- ARGV[3]  countdown in milliseconds (>= 0)
-- ARGV[4]  lottery seed (hex; secret until the draw) or "" for first come, first served
-- ARGV[5]  hex(SHA-256(seed)), published at launch, or ""
-- ARGV[6..] field, value, field, value, ... of the drop's initial state (used only when
--           the hash does not exist)
-- Returns  { 'launched', opens_at_ms } | { 'already_launched', opens_at_ms, seed_hash or '' }
--        | { 'closed' }
local phase = redis.call('HGET', KEYS[1], 'phase')
if phase == 'launched' then
  local launched = redis.call('HMGET', KEYS[1], 'opens_at_ms', 'seed_hash')
  return { 'already_launched', launched[1], launched[2] or '' }
end
if phase == 'closed' then
  return { 'closed' }
end
if not phase then
  redis.call('HSET', KEYS[1], unpack(ARGV, 6))
end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local opens_at_ms = string.format('%.0f', now_ms + tonumber(ARGV[3]))
redis.call('HSET', KEYS[1], 'phase', 'launched', 'opens_at_ms', opens_at_ms)
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'seed', ARGV[4], 'seed_hash', ARGV[5], 'drawn', '0')
end
publish_drop_change(KEYS[1], ARGV[1], ARGV[2], '')
return { 'launched', opens_at_ms }
