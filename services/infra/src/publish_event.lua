-- Publishes one room event. In one atomic step it gives the event the room's next seq and
-- the Redis server time, appends it to the room's capped history stream (entry id
-- <seq>-0, so a reconnecting client's `since` maps to a stream range) and publishes it
-- on the room channel. Because it is one script, seq order is publication order.
--
-- With KEYS[3], the event is published once: it is kept in that hash under ARGV[5] (a
-- drop's countdown, what late joiners are shown), and not published again while it is
-- there — so a retried launch never shows viewers a second countdown.
--
-- KEYS[1]  room seq counter
-- KEYS[2]  room history stream
-- KEYS[3]  (optional) room drops hash: field -> event, for events published once
-- ARGV[1]  pub/sub channel of the room
-- ARGV[2]  the event as a JSON object without seq and ts_ms; must start with '{"'
-- ARGV[3]  history cap (approximate MAXLEN of the stream)
-- ARGV[4]  the publisher's trace context (a W3C traceparent) or "": when set, the message
--          on the channel is 'tp:<traceparent>' and a newline before the frame, for the
--          gateways' spans; history and clients only ever see the frame
-- ARGV[5]  (with KEYS[3]) the field the event is kept under
-- Returns  { seq, frame }: frame is the JSON text sent to clients; { 0, '' } when the event
--          was published before (KEYS[3] holds ARGV[5]).
if KEYS[3] then
  if redis.call('HGET', KEYS[3], ARGV[5]) then
    return { 0, '' }
  end
  redis.call('HSET', KEYS[3], ARGV[5], ARGV[2])
end
local seq = redis.call('INCR', KEYS[1])
local now = redis.call('TIME')
local ts_ms = string.format('%.0f', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
local frame = '{"seq":' .. string.format('%.0f', seq) .. ',"ts_ms":' .. ts_ms .. ',' .. string.sub(ARGV[2], 2)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], string.format('%.0f', seq) .. '-0', 'e', frame)
if ARGV[4] ~= '' then
  redis.call('PUBLISH', ARGV[1], 'tp:' .. ARGV[4] .. '\n' .. frame)
else
  redis.call('PUBLISH', ARGV[1], frame)
end
return { seq, frame }
