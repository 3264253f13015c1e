//! The room bus: how a room event gets its `seq` and reaches every gateway node.
//!
//! Publishing runs one script (`publish_event.lua`) that numbers the event, keeps it in the
//! room's capped history stream and publishes it on the room's channel. Gateways subscribe
//! to the channels; a reconnecting client's missed events come from the history stream.
//! The frame is serialized once here, and gateways forward those exact bytes.

use std::sync::Arc;

use crate::backends::RedisConn;
use crate::trace::Trace;

use linkdrop_domain::events::RoomEvent;
use linkdrop_domain::keys::Keys;

/// Events kept per room for clients that reconnect (approximate: Redis trims lazily).
pub const HISTORY_CAP: usize = 1000;

/// A published event: its place in the room and the exact text clients receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub seq: u64,
    pub frame: String,
}

/// Publishes room events for one namespace.
#[derive(Clone)]
pub struct RoomBus {
    redis: RedisConn,
    keys: Keys,
    /// Shared: a script holds its source text, and a bus is cloned for every viewer.
    script: Arc<redis::Script>,
}

impl RoomBus {
    pub fn new(redis: RedisConn, keys: Keys) -> Self {
        Self {
            redis,
            keys,
            script: Arc::new(redis::Script::new(include_str!("publish_event.lua"))),
        }
    }

    /// Numbers `event`, records it in the room's history and publishes it to every gateway.
    pub async fn publish(
        &self,
        room_id: &str,
        event: &RoomEvent,
    ) -> Result<Published, redis::RedisError> {
        let body = serde_json::to_string(event).expect("room events always serialize");
        let (seq, frame): (u64, String) = self
            .script
            .key(self.keys.room_seq(room_id))
            .key(self.keys.room_history(room_id))
            .arg(self.keys.room_channel(room_id))
            .arg(body)
            .arg(HISTORY_CAP)
            .arg("")
            .invoke_async(&mut self.redis.clone())
            .await?;
        metrics::counter!("linkdrop_room_events_published_total").increment(1);
        Ok(Published { seq, frame })
    }

    /// Publishes `event` as [`RoomBus::publish`] does, and keeps it in the room's drops hash
    /// under `drop_id` (what viewers joining later are shown) — unless it is there already:
    /// then nothing is published (`None`). A launch retried after a failure calls this
    /// again; viewers get one countdown. With `trace`, the gateways' fan-out of it joins
    /// that trace.
    pub async fn publish_drop_once(
        &self,
        room_id: &str,
        drop_id: &str,
        event: &RoomEvent,
        trace: Option<&Trace>,
    ) -> Result<Option<Published>, redis::RedisError> {
        let body = serde_json::to_string(event).expect("room events always serialize");
        let (seq, frame): (u64, String) = self
            .script
            .key(self.keys.room_seq(room_id))
            .key(self.keys.room_history(room_id))
            .key(self.keys.room_drops(room_id))
            .arg(self.keys.room_channel(room_id))
            .arg(body)
            .arg(HISTORY_CAP)
            .arg(trace.map(Trace::traceparent).unwrap_or_default())
            .arg(drop_id)
            .invoke_async(&mut self.redis.clone())
            .await?;
        if seq == 0 {
            return Ok(None);
        }
        metrics::counter!("linkdrop_room_events_published_total").increment(1);
        Ok(Some(Published { seq, frame }))
    }

    /// Sends `frame` (an `order.result`) to every connection of `user_id`, on any node.
    /// Not numbered and not kept: the same result is always readable from the order.
    pub async fn notify_user(&self, user_id: &str, frame: &str) -> Result<(), redis::RedisError> {
        redis::cmd("PUBLISH")
            .arg(self.keys.user_channel(user_id))
            .arg(frame)
            .query_async::<()>(&mut self.redis.clone())
            .await
    }

    /// The frames of events `after + 1 ..= until` still in the room's history, in order
    /// (fewer than asked when older ones were trimmed).
    pub async fn history(
        &self,
        room_id: &str,
        after: u64,
        until: u64,
    ) -> Result<Vec<String>, redis::RedisError> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.keys.room_history(room_id))
            .arg(format!("{}-0", after + 1))
            .arg(format!("{until}-0"))
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(reply
            .ids
            .iter()
            .filter_map(|entry| entry.get::<String>("e"))
            .collect())
    }

    /// The room's latest `seq`, 0 before its first event.
    pub async fn latest_seq(&self, room_id: &str) -> Result<u64, redis::RedisError> {
        let seq: Option<u64> = redis::cmd("GET")
            .arg(self.keys.room_seq(room_id))
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(seq.unwrap_or(0))
    }
}

/// A message heard on a room channel: the publisher's trace context, when it sent one,
/// and the frame (see `publish_event.lua`).
pub fn split_trace(message: &str) -> (Option<&str>, &str) {
    match message
        .strip_prefix("tp:")
        .and_then(|rest| rest.split_once('\n'))
    {
        Some((traceparent, frame)) => (Some(traceparent), frame),
        None => (None, message),
    }
}

/// The `seq` at the start of a frame made by the publish script (`{"seq":N,...`).
pub fn frame_seq(frame: &str) -> Option<u64> {
    let rest = frame.strip_prefix("{\"seq\":")?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_seq_reads_the_leading_number() {
        assert_eq!(frame_seq(r#"{"seq":42,"ts_ms":1,"type":"x"}"#), Some(42));
        assert_eq!(frame_seq(r#"{"type":"hello"}"#), None);
        assert_eq!(frame_seq(r#"{"seq":}"#), None);
    }

    #[test]
    fn a_traced_message_splits_into_context_and_frame() {
        let frame = r#"{"seq":1,"type":"x"}"#;
        assert_eq!(split_trace(frame), (None, frame));
        let traced = format!("tp:00-aa-bb-01\n{frame}");
        assert_eq!(split_trace(&traced), (Some("00-aa-bb-01"), frame));
    }
}
