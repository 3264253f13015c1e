//! The name of every Redis key, pub/sub channel, Kafka topic and consumer group.
//!
//! All keys of one drop share the hash tag `{d:<drop_id>}` and all keys of one room the tag
//! `{r:<room_id>}`, so each admission or publish script touches a single Redis Cluster slot.
//! Everything starts with the configured namespace, so installations and test runs that
//! share a Redis or a Kafka never see each other's data.

/// Key names for one namespace.
#[derive(Debug, Clone)]
pub struct Keys {
    ns: String,
}

impl Keys {
    pub fn new(namespace: &str) -> Self {
        Self {
            ns: namespace.to_string(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// Hash: a drop's live state, its fields named by [`crate::drop_meta::DropMetaField`].
    pub fn drop_meta(&self, drop_id: &str) -> String {
        format!("{}:{{d:{drop_id}}}:meta", self.ns)
    }

    /// Hash: user id → units held of the drop.
    pub fn drop_holders(&self, drop_id: &str) -> String {
        format!("{}:{{d:{drop_id}}}:holders", self.ns)
    }

    /// Hash: `<user id> <idempotency key>` → the stored answer.
    pub fn drop_idempotency(&self, drop_id: &str) -> String {
        format!("{}:{{d:{drop_id}}}:idem", self.ns)
    }

    /// Stream: accepted orders of the drop, waiting for the relay.
    pub fn drop_outbox(&self, drop_id: &str) -> String {
        format!("{}:{{d:{drop_id}}}:outbox", self.ns)
    }

    /// Hash: order id → `<status>\t<user>\t<qty>\t<pay_by_ms>[\t<paid_at_ms>\t<ref>]`, the
    /// live state of every order of the drop (what pay and expiry decide on).
    pub fn drop_orders(&self, drop_id: &str) -> String {
        format!("{}:{{d:{drop_id}}}:orders", self.ns)
    }

    /// Sorted set: reserved order ids scored by their payment deadline.
    pub fn drop_deadlines(&self, drop_id: &str) -> String {
        format!("{}:{{d:{drop_id}}}:deadlines", self.ns)
    }

    /// Hash: user id → `<order id>\t<qty>` of the user's lottery entry.
    pub fn drop_entries(&self, drop_id: &str) -> String {
        format!("{}:{{d:{drop_id}}}:entries", self.ns)
    }

    /// String: the orders process announcing the drop's lottery draw now (a lease with a
    /// time to live, so that one process announces and a dead one's turn passes on).
    pub fn draw_announcer(&self, drop_id: &str) -> String {
        format!("{}:{{d:{drop_id}}}:meta:announcing", self.ns)
    }

    /// String: the relay that holds the drop's outbox now (a lease with a time to live).
    pub fn relay_lease(&self, drop_id: &str) -> String {
        format!("{}:{{d:{drop_id}}}:relay", self.ns)
    }

    /// Set: drop ids whose outbox the relay must watch.
    pub fn outboxes(&self) -> String {
        format!("{}:outboxes", self.ns)
    }

    /// Consumer group of the relay on every outbox stream.
    pub fn relay_group(&self) -> &'static str {
        "relay"
    }

    /// Hash: a room's identity, so gateways can refuse unknown rooms without PostgreSQL.
    pub fn room_meta(&self, room_id: &str) -> String {
        format!("{}:{{r:{room_id}}}:meta", self.ns)
    }

    /// Counter: the room's latest event `seq`.
    pub fn room_seq(&self, room_id: &str) -> String {
        format!("{}:{{r:{room_id}}}:seq", self.ns)
    }

    /// Stream: the room's recent events, entry id `<seq>-0`, capped.
    pub fn room_history(&self, room_id: &str) -> String {
        format!("{}:{{r:{room_id}}}:history", self.ns)
    }

    /// Hash: drop id → its `drop.countdown` event (JSON), for every launched drop of the room
    /// that is not closed: what a viewer joining late is shown (`resync`).
    pub fn room_drops(&self, room_id: &str) -> String {
        format!("{}:{{r:{room_id}}}:drops", self.ns)
    }

    /// Hash: gateway node → `<viewers>:<valid until ms>` for the room.
    pub fn room_viewers(&self, room_id: &str) -> String {
        format!("{}:{{r:{room_id}}}:viewers", self.ns)
    }

    /// Pub/sub channel carrying the room's events to every gateway node.
    pub fn room_channel(&self, room_id: &str) -> String {
        format!("{}:bus:room:{room_id}", self.ns)
    }

    /// Pattern matching every room channel.
    pub fn room_channel_pattern(&self) -> String {
        format!("{}:bus:room:*", self.ns)
    }

    /// The room id inside a room channel name.
    pub fn room_of_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(self.ns.as_str())?
            .strip_prefix(":bus:room:")
    }

    /// Pub/sub channel carrying drop news (`crate::drop_news`) to every orders process.
    pub fn drop_news_channel(&self) -> String {
        format!("{}:bus:drops", self.ns)
    }

    /// Pub/sub channel carrying `order.result` to the connections of one shopper.
    pub fn user_channel(&self, user_id: &str) -> String {
        format!("{}:bus:user:{user_id}", self.ns)
    }

    /// Pattern matching every user channel.
    pub fn user_channel_pattern(&self) -> String {
        format!("{}:bus:user:*", self.ns)
    }

    /// The user id inside a user channel name.
    pub fn user_of_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(self.ns.as_str())?
            .strip_prefix(":bus:user:")
    }

    /// Kafka topic of accepted orders, keyed by drop.
    pub fn orders_topic(&self) -> String {
        format!("{}.orders", self.ns)
    }

    /// Kafka consumer group of the settlement workers.
    pub fn settle_group(&self) -> String {
        format!("{}.settle", self.ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_keys_of_a_drop_share_one_hash_tag() {
        let keys = Keys::new("ld");
        for key in [
            keys.drop_meta("drp_1"),
            keys.drop_holders("drp_1"),
            keys.drop_idempotency("drp_1"),
            keys.drop_outbox("drp_1"),
            keys.drop_entries("drp_1"),
            keys.drop_orders("drp_1"),
            keys.drop_deadlines("drp_1"),
            keys.draw_announcer("drp_1"),
            keys.relay_lease("drp_1"),
        ] {
            assert!(key.contains("{d:drp_1}"), "{key}");
        }
    }

    #[test]
    fn room_channels_round_trip_their_room_id() {
        let keys = Keys::new("t1");
        let channel = keys.room_channel("room_9");
        assert_eq!(keys.room_of_channel(&channel), Some("room_9"));
        assert_eq!(Keys::new("t2").room_of_channel(&channel), None);
    }
}
