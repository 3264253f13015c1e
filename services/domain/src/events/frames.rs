//! The WebSocket frames that are not room events (API.md, "WebSocket"): `hello`, `resync`,
//! `pong`, `room.viewers` and `order.result`. Room events are [`RoomEvent`], numbered by the
//! room bus; these are made by one gateway node for its viewers (or, for `order.result`,
//! by the lottery drawer for one shopper) and carry no `seq` of their own.
//!
//! Each frame serializes to exactly the text the gateway has always sent: members in
//! alphabetical order, `type` among them (the order `serde_json::json!` gave them). Fields
//! are therefore declared alphabetically, and `type` is a field of a unit type that
//! serializes as the frame's name ([`wire_type!`]). schemas/ws/ holds their JSON Schemas.
//!
//! [`RoomEvent`]: super::RoomEvent

use serde::{Deserialize, Serialize};

use super::DropCard;
use crate::model::{DropState, OrderStatus};

/// Declares a unit type that serializes as the string `$wire` and deserializes only from
/// it: the `type` member of one kind of frame.
macro_rules! wire_type {
    ($(#[$doc:meta])* $name:ident = $wire:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name;

        impl $name {
            /// The frame's `type` on the wire.
            pub const NAME: &'static str = $wire;
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str($wire)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
                if name == $wire {
                    Ok($name)
                } else {
                    Err(serde::de::Error::invalid_value(
                        serde::de::Unexpected::Str(&name),
                        &$wire,
                    ))
                }
            }
        }
    };
}

wire_type!(
    /// `"hello"`.
    HelloType = "hello"
);
wire_type!(
    /// `"resync"`.
    ResyncType = "resync"
);
wire_type!(
    /// `"pong"`.
    PongType = "pong"
);
wire_type!(
    /// `"room.viewers"`.
    ViewersType = "room.viewers"
);
wire_type!(
    /// `"order.result"`.
    OrderResultType = "order.result"
);

/// A frame a server sends on its own (not a room event).
pub trait Frame: Serialize {
    /// The frame's JSON text, as sent.
    fn to_text(&self) -> String {
        serde_json::to_string(self).expect("frames always serialize")
    }
}

impl Frame for Hello {}
impl Frame for Resync {}
impl Frame for Pong {}
impl Frame for RoomViewers {}
impl Frame for OrderResult {}

/// `hello`: the first frame of every session, right after the upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub room_id: String,
    /// The room's latest `seq` when the viewer joined (0 before its first event); the next
    /// room event has `seq + 1`.
    pub seq: u64,
    /// Server clock when the frame was made, for clock sync.
    pub server_time_ms: i64,
    /// This connection's id (`ses_…`).
    pub session_id: String,
    #[serde(rename = "type")]
    pub kind: HelloType,
    /// Approximate viewers of the room over all gateway nodes.
    pub viewers: u64,
}

/// `resync`: the current state of the room's launched, not closed drops, sent instead of
/// missed events that the room's history no longer holds (and to a new viewer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resync {
    /// By opening time.
    pub drops: Vec<ResyncDrop>,
    /// The room's latest `seq` this state reflects; events after it follow.
    pub seq: u64,
    /// Server clock when the snapshot was made.
    pub ts_ms: i64,
    #[serde(rename = "type")]
    pub kind: ResyncType,
}

/// One drop of a `resync`: its `drop.countdown` (without `type`) plus its live figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResyncDrop {
    pub drop: DropCard,
    pub drop_id: String,
    pub opens_at_ms: i64,
    pub order_url: String,
    /// Lottery drops only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_hash: Option<String>,
    /// `countdown`, `open` or `sold_out` (closed drops are left out).
    pub state: DropState,
    pub stock: i64,
    pub stock_left: i64,
}

/// `pong`: the answer to a client's clock `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    /// Server clock when the pong was made.
    pub server_time_ms: i64,
    /// Echo of the client's `t` (null when its ping had none).
    pub t: Option<serde_json::Number>,
    #[serde(rename = "type")]
    pub kind: PongType,
}

/// `room.viewers`: the room's approximate viewers over all gateway nodes, when it changed
/// (at most once a second). A per-node notice: no `seq`, not kept in the room's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomViewers {
    /// Gateway node clock when the total was computed.
    pub ts_ms: i64,
    #[serde(rename = "type")]
    pub kind: ViewersType,
    pub viewers: u64,
}

/// `order.result`: the outcome of a shopper's lottery entry, to that shopper's connections
/// only. Built by [`OrderResult::won`] or [`OrderResult::lost`], so that `pay_by_ms` comes
/// with `reserved` and only with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderResult {
    pub drop_id: String,
    pub order_id: String,
    /// The payment deadline of a won entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pay_by_ms: Option<i64>,
    /// `reserved` (won) or `lost`.
    pub status: OrderStatus,
    #[serde(rename = "type")]
    pub kind: OrderResultType,
}

impl OrderResult {
    /// The entry won: its units are held until `pay_by_ms`.
    pub fn won(order_id: &str, drop_id: &str, pay_by_ms: i64) -> Self {
        Self {
            drop_id: drop_id.to_string(),
            order_id: order_id.to_string(),
            pay_by_ms: Some(pay_by_ms),
            status: OrderStatus::Reserved,
            kind: OrderResultType,
        }
    }

    /// The entry did not win.
    pub fn lost(order_id: &str, drop_id: &str) -> Self {
        Self {
            drop_id: drop_id.to_string(),
            order_id: order_id.to_string(),
            pay_by_ms: None,
            status: OrderStatus::Lost,
            kind: OrderResultType,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Fairness;
    use serde_json::json;

    /// What the gateway sent before these types existed: `json!` objects, whose members
    /// serde_json writes in alphabetical order.
    fn as_json_macro_wrote(value: serde_json::Value) -> String {
        value.to_string()
    }

    #[test]
    fn hello_is_the_text_it_always_was() {
        let hello = Hello {
            room_id: "room_1".into(),
            seq: 7,
            server_time_ms: 1_700_000_000_000,
            session_id: "ses_1".into(),
            kind: HelloType,
            viewers: 3,
        };
        let text = hello.to_text();
        assert_eq!(
            text,
            as_json_macro_wrote(json!({
                "type": "hello", "session_id": "ses_1", "room_id": "room_1",
                "server_time_ms": 1_700_000_000_000_i64, "seq": 7, "viewers": 3,
            }))
        );
        assert_eq!(
            text,
            r#"{"room_id":"room_1","seq":7,"server_time_ms":1700000000000,"session_id":"ses_1","type":"hello","viewers":3}"#
        );
        assert_eq!(serde_json::from_str::<Hello>(&text).unwrap(), hello);
    }

    #[test]
    fn pong_echoes_t_or_null() {
        let pong = Pong {
            server_time_ms: 5,
            t: Some(12345.into()),
            kind: PongType,
        };
        assert_eq!(
            pong.to_text(),
            as_json_macro_wrote(json!({"type": "pong", "t": 12345, "server_time_ms": 5}))
        );
        let pong = Pong { t: None, ..pong };
        assert_eq!(
            pong.to_text(),
            r#"{"server_time_ms":5,"t":null,"type":"pong"}"#
        );
    }

    #[test]
    fn room_viewers_is_the_text_it_always_was() {
        let frame = RoomViewers {
            ts_ms: 9,
            kind: ViewersType,
            viewers: 2,
        };
        assert_eq!(
            frame.to_text(),
            as_json_macro_wrote(json!({"type": "room.viewers", "viewers": 2, "ts_ms": 9}))
        );
    }

    #[test]
    fn order_result_has_a_deadline_only_when_won() {
        assert_eq!(
            OrderResult::won("ord_1", "drp_1", 99).to_text(),
            as_json_macro_wrote(json!({"type": "order.result", "order_id": "ord_1",
                "drop_id": "drp_1", "status": "reserved", "pay_by_ms": 99}))
        );
        assert_eq!(
            OrderResult::lost("ord_1", "drp_1").to_text(),
            as_json_macro_wrote(json!({"type": "order.result", "order_id": "ord_1",
                "drop_id": "drp_1", "status": "lost"}))
        );
    }

    #[test]
    fn resync_lists_drops_with_their_card_and_figures() {
        let card = DropCard {
            id: "drp_1".into(),
            sku: "SKU-1".into(),
            title: "Tea".into(),
            image_url: "https://img.example/t.png".into(),
            price_cents: 990,
            currency: "CNY".into(),
            max_per_user: 1,
            fairness: Fairness::Lottery { window_ms: 2000 },
        };
        let frame = Resync {
            drops: vec![ResyncDrop {
                drop: card.clone(),
                drop_id: "drp_1".into(),
                opens_at_ms: 100,
                order_url: "http://x/v1/drops/drp_1/orders".into(),
                seed_hash: Some("ab".into()),
                state: DropState::Countdown,
                stock: 10,
                stock_left: 10,
            }],
            seq: 4,
            ts_ms: 50,
            kind: ResyncType,
        };
        let text = frame.to_text();
        // The members of the frame and of each drop are as before; the card is written as
        // `drop.countdown` writes it.
        assert!(
            text.starts_with(r#"{"drops":[{"drop":{"id":"drp_1","sku":"SKU-1","title":"Tea","#),
            "{text}"
        );
        assert!(
            text.ends_with(
                r#""drop_id":"drp_1","opens_at_ms":100,"order_url":"http://x/v1/drops/drp_1/orders","seed_hash":"ab","state":"countdown","stock":10,"stock_left":10}],"seq":4,"ts_ms":50,"type":"resync"}"#
            ),
            "{text}"
        );
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value["drops"][0]["drop"],
            serde_json::to_value(&card).unwrap()
        );
        assert_eq!(serde_json::from_str::<Resync>(&text).unwrap(), frame);
    }

    #[test]
    fn a_frame_of_another_type_does_not_parse_as_this_one() {
        let pong = r#"{"server_time_ms":5,"t":null,"type":"ping"}"#;
        assert!(serde_json::from_str::<Pong>(pong).is_err());
        assert_eq!(HelloType::NAME, "hello");
    }
}
