-- Publishes one room event. In one atomic step it gives the event the room's next seq and
-- the Redis server time, appends it to the room's capped history stream (entry id
-- <seq>-0, so a reconnecting client's `since` maps to a stream range) and publishes it
-- on the room channel. Because it is one script, seq order is publication order.
--
-- KEYS[1]  room seq counter
-- KEYS[2]  room history stream
-- ARGV[1]  pub/sub channel of the room
-- ARGV[2]  the event as a JSON object without seq and ts_ms; must start with '{"'
-- ARGV[3]  history cap (approximate MAXLEN of the stream)
-- Returns  { seq, frame }: frame is the JSON text sent to clients.
local seq = redis.call('INCR', KEYS[1])
local now = redis.call('TIME')
local ts_ms = string.format('%.0f', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
local frame = '{"seq":' .. string.format('%.0f', seq) .. ',"ts_ms":' .. ts_ms .. ',' .. string.sub(ARGV[2], 2)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], string.format('%.0f', seq) .. '-0', 'e', frame)
redis.call('PUBLISH', ARGV[1], frame)
return { seq, frame }
