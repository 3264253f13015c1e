-- Drop news: what every orders process is told about a drop so that it can answer at the
-- edge (services/domain/src/drop_news.rs parses it; its field list is the one definition).
-- This text is put in front of every script that changes those facts (launch, close,
-- admission, expiry, draw) and of the one that reads them (drop_state.lua).
--
-- A piece of news is one line of tab-separated fields:
--   kind (change | snapshot), drop id, version, phase, opens_at_ms, stock_left, policy,
--   window_ms, drawn, max_per_user, users
-- where version is the drop meta's `version` field (raised by one with every change, so a
-- process that sees a jump knows it missed news), absent fields are empty, and users is
-- the space-separated list of shoppers whose answer was recorded by this change (user ids
-- are visible ASCII without spaces).
--
-- The meta hash's field names are defined once, in services/domain/src/drop_meta.rs
-- (DropMetaField); Lua cannot import them, so they are spelt here as there.

local function drop_news(meta_key, drop_id, kind, users)
  local m = redis.call('HMGET', meta_key, 'version', 'phase', 'opens_at_ms', 'stock_left',
    'policy', 'window_ms', 'drawn', 'max_per_user')
  return table.concat({ kind, drop_id, m[1] or '0', m[2] or '', m[3] or '', m[4] or '',
    m[5] or '', m[6] or '', m[7] or '', m[8] or '', users }, '\t')
end

-- Raises the drop's version and publishes the news of this change on `channel`; returns it.
local function publish_drop_change(meta_key, channel, drop_id, users)
  redis.call('HINCRBY', meta_key, 'version', 1)
  local news = drop_news(meta_key, drop_id, 'change', users)
  redis.call('PUBLISH', channel, news)
  return news
end

