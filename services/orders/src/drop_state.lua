-- Reads what an orders process needs to answer requests for one drop at the edge: the news
-- of the drop's current version and, unless the process already knows them, every shopper
-- with a recorded answer (they are never refused at the edge: their key may replay).
-- Writes nothing. (drop_news.lua is in front of this text.)
--
-- KEYS[1]  drop meta hash (field names: services/domain/src/drop_meta.rs)
-- KEYS[2]  idempotency hash: "<user id> <key>" -> recorded answer
-- ARGV[1]  drop id
-- ARGV[2]  the version whose answered shoppers the caller holds, or -1
-- ARGV[3]  most recorded answers worth listing
-- Returns  { 'missing' } when the drop has no live state;
--          { news, 'known' } when the version is ARGV[2];
--          { news, 'too_many' } when there are more recorded answers than ARGV[3];
--          { news, 'answers', field, field, ... } otherwise, each field "<user id> <key>"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return { 'missing' }
end
local news = drop_news(KEYS[1], ARGV[1], 'snapshot', '')
local version = redis.call('HGET', KEYS[1], 'version') or '0'
if version == ARGV[2] then
  return { news, 'known' }
end
if redis.call('HLEN', KEYS[2]) > tonumber(ARGV[3]) then
  return { news, 'too_many' }
end
local reply = { news, 'answers' }
for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do
  reply[#reply + 1] = field
end
return reply
