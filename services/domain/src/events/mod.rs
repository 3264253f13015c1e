//! Messages that cross process boundaries: room events (room bus → gateway → WebSocket),
//! the other WebSocket frames ([`frames`]: `hello`, `resync`, `pong`, `room.viewers`,
//! `order.result`) and order events (outbox → Kafka → settlement). schemas/ holds their
//! JSON Schemas.

pub mod frames;

pub use frames::*;

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
    /// The lottery draw is done: the seed (whose hash was published at launch) and how
    /// many entries won.
    #[serde(rename = "drop.draw")]
    Draw {
        drop_id: String,
        seed: String,
        winners: u64,
        cutoff_rank: Option<String>,
    },
}

/// A change to an order, as the outbox and the orders topic carry it. The topic is keyed by
/// drop, so the events of one drop (and so of one order) arrive in the order they happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OrderEvent {
    /// Admitted by the script: `reserved` (first come, first served) or `entered` (lottery).
    Accepted(OrderAccepted),
    /// A lottery entry was drawn: `reserved` (it won) or `lost`.
    Drawn(OrderDrawn),
    /// A reserved order was paid before its deadline.
    Paid(OrderPaid),
    /// A reserved order passed its deadline unpaid; its units went back to the stock.
    Expired(OrderExpired),
    /// The drop's last unit was taken (it may sell out again after expiries).
    SoldOut(DropSoldOut),
}

impl OrderEvent {
    /// The order changed; `None` for events of the whole drop.
    pub fn order_id(&self) -> Option<&str> {
        match self {
            Self::Accepted(e) => Some(&e.order_id),
            Self::Drawn(e) => Some(&e.order_id),
            Self::Paid(e) => Some(&e.order_id),
            Self::Expired(e) => Some(&e.order_id),
            Self::SoldOut(_) => None,
        }
    }

    pub fn drop_id(&self) -> &str {
        match self {
            Self::Accepted(e) => &e.drop_id,
            Self::Drawn(e) => &e.drop_id,
            Self::Paid(e) => &e.drop_id,
            Self::Expired(e) => &e.drop_id,
            Self::SoldOut(e) => &e.drop_id,
        }
    }

    /// Redis server time at which the change was decided.
    pub fn decided_at_ms(&self) -> i64 {
        match self {
            Self::Accepted(e) => e.admitted_at_ms,
            Self::Drawn(e) => e.drawn_at_ms,
            Self::Paid(e) => e.paid_at_ms,
            Self::Expired(e) => e.expired_at_ms,
            Self::SoldOut(e) => e.sold_out_at_ms,
        }
    }
}

/// An order the admission script accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAccepted {
    pub order_id: String,
    pub drop_id: String,
    pub user_id: String,
    pub qty: u32,
    /// `reserved` or `entered`.
    pub status: OrderStatus,
    /// Redis server time at which the script accepted the order.
    pub admitted_at_ms: i64,
    /// Deadline of payment of a reserved order; unpaid orders expire after it. `None` for a
    /// lottery entry until it is drawn.
    pub pay_by_ms: Option<i64>,
    pub idempotency_key: String,
}

/// The outcome of a lottery entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDrawn {
    pub order_id: String,
    pub drop_id: String,
    pub user_id: String,
    /// `reserved` (won) or `lost`.
    pub status: OrderStatus,
    pub drawn_at_ms: i64,
    /// Deadline of payment when the entry won.
    pub pay_by_ms: Option<i64>,
}

/// A payment of a reserved order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPaid {
    pub order_id: String,
    pub drop_id: String,
    pub user_id: String,
    pub paid_at_ms: i64,
    pub payment_ref: String,
}

/// A reserved order that was not paid in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderExpired {
    pub order_id: String,
    pub drop_id: String,
    pub user_id: String,
    /// Units returned to the stock.
    pub qty: u32,
    pub expired_at_ms: i64,
}

/// The moment a drop's stock ran out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropSoldOut {
    pub drop_id: String,
    pub sold_out_at_ms: i64,
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
    fn order_events_carry_their_kind() {
        let event = OrderEvent::Drawn(OrderDrawn {
            order_id: "ord_1".into(),
            drop_id: "drp_1".into(),
            user_id: "u".into(),
            status: OrderStatus::Lost,
            drawn_at_ms: 5,
            pay_by_ms: None,
        });
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"], "drawn");
        assert_eq!(json["status"], "lost");
        assert_eq!(serde_json::from_value::<OrderEvent>(json).unwrap(), event);
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
