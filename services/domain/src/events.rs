//! Messages that cross process boundaries: room events (room bus → gateway → WebSocket) and
//! order events (outbox → Kafka → settlement). schemas/ holds their JSON Schemas.

use serde::{Deserialize, Serialize};

use crate::model::{DropSpec, Fairness, OrderStatus};

/// What viewers see of a drop in `drop.countdown`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCard {
    pub id: String,
    pub sku: String,
    pub title: String,
    pub image_url: String,
    pub price_cents: i64,
    pub currency: String,
    pub max_per_user: u32,
    pub fairness: Fairness,
}

impl DropCard {
    pub fn new(id: &str, spec: &DropSpec) -> Self {
        Self {
            id: id.to_string(),
            sku: spec.sku.clone(),
            title: spec.title.clone(),
            image_url: spec.image_url.clone(),
            price_cents: spec.price_cents,
            currency: spec.currency.clone(),
            max_per_user: spec.max_per_user,
            fairness: spec.fairness,
        }
    }
}

/// An event of a room, before the room bus gives it its `seq` and `ts_ms`.
/// Serialized as `{"type": "drop.countdown", ...}` (API.md, WebSocket).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum RoomEvent {
    #[serde(rename = "drop.countdown")]
    Countdown {
        drop: DropCard,
        opens_at_ms: i64,
        order_url: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        seed_hash: Option<String>,
    },
    #[serde(rename = "drop.stock")]
    Stock {
        drop_id: String,
        stock_left: i64,
        stock: i64,
    },
    #[serde(rename = "drop.sold_out")]
    SoldOut {
        drop_id: String,
        sold_out_at_ms: i64,
    },
    #[serde(rename = "drop.closed")]
    Closed { drop_id: String },
}

/// An order the admission script accepted, as the relay puts it on the orders topic
/// (keyed by `drop_id`) and settlement writes it to PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAccepted {
    pub order_id: String,
    pub drop_id: String,
    pub user_id: String,
    pub qty: u32,
    pub status: OrderStatus,
    /// Redis server time at which the script accepted the order.
    pub admitted_at_ms: i64,
    /// Deadline of payment; unpaid orders expire after it.
    pub pay_by_ms: i64,
    pub idempotency_key: String,
}

/// The events merchants can subscribe to (API.md, "Merchant").
pub mod merchant_event {
    pub const ORDER_CREATED: &str = "order.created";
    pub const ORDER_PAID: &str = "order.paid";
    pub const ORDER_EXPIRED: &str = "order.expired";
    pub const DROP_SOLD_OUT: &str = "drop.sold_out";
    pub const DROP_CLOSED: &str = "drop.closed";
    pub const ALL: [&str; 5] = [
        ORDER_CREATED,
        ORDER_PAID,
        ORDER_EXPIRED,
        DROP_SOLD_OUT,
        DROP_CLOSED,
    ];
}

/// The stable id of the merchant event `event_type` about `subject` (an order or drop id):
/// the same event always has the same id, so receivers can deduplicate.
pub fn merchant_event_id(subject: &str, event_type: &str) -> String {
    format!("msg_{subject}_{}", event_type.replace('.', "_"))
}

/// The body of a merchant event: `{"type", "timestamp", "data"}`, the exact text signed.
pub fn merchant_event_body(event_type: &str, data: &serde_json::Value, at_ms: i64) -> String {
    serde_json::json!({
        "type": event_type,
        "timestamp": crate::clock::rfc3339_ms(at_ms),
        "data": data,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_events_serialize_with_their_wire_type() {
        let event = RoomEvent::Closed {
            drop_id: "drp_1".into(),
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(json, r#"{"type":"drop.closed","drop_id":"drp_1"}"#);
        let back: RoomEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn merchant_event_ids_are_stable_per_subject_and_type() {
        assert_eq!(
            merchant_event_id("ord_1", merchant_event::ORDER_CREATED),
            "msg_ord_1_order_created"
        );
        let body = merchant_event_body("order.created", &serde_json::json!({"a": 1}), 0);
        assert_eq!(
            body,
            r#"{"data":{"a":1},"timestamp":"1970-01-01T00:00:00.000Z","type":"order.created"}"#
        );
    }
}
