//! The webhook outbox: merchant events written in the same transaction as the record they
//! report, plus one delivery per subscribed endpoint for the dispatcher to claim; the
//! dispatchers wake when that transaction commits. Every role that changes an order or a
//! drop enqueues its events through here.

#[cfg(postgres)]
mod pg;
#[cfg(sqlite)]
mod sqlite;

use linkdrop_domain::events::{merchant_event_body, merchant_event_id};
use serde_json::Value;

use crate::db::{Db, Tx, dispatch};

/// The channel on which dispatchers wait for due deliveries ([`Db::listen`]).
pub const DUE: &str = "webhook_due";

/// One merchant event, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantEvent {
    pub id: String,
    pub merchant_id: String,
    pub event_type: &'static str,
    /// The exact text that is signed and sent.
    pub body: String,
    /// The trace its delivery attempts join (`traceparent`), when what it reports was
    /// traced.
    pub traceparent: Option<String>,
}

impl MerchantEvent {
    /// The event `event_type` about `subject` (an order or drop id), with its stable id.
    pub fn new(
        subject: &str,
        merchant_id: &str,
        event_type: &'static str,
        data: &Value,
        at_ms: i64,
    ) -> Self {
        Self {
            id: merchant_event_id(subject, event_type),
            merchant_id: merchant_id.to_string(),
            event_type,
            body: merchant_event_body(event_type, data, at_ms),
            traceparent: None,
        }
    }

    /// The same event, joining the trace `traceparent` names.
    pub fn traced(self, traceparent: Option<&String>) -> Self {
        Self {
            traceparent: traceparent.cloned(),
            ..self
        }
    }
}

/// Stores `events` (once each, by id) and a due delivery for every enabled endpoint of
/// their merchant subscribed to their type; the dispatchers wake when `tx` commits. Call
/// inside the transaction that writes the records the events report.
pub async fn enqueue(
    tx: &mut Tx,
    events: &[MerchantEvent],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    dispatch!(tx, enqueue(events, now_ms))?;
    tx.notify_after_commit(DUE);
    Ok(())
}

/// Wakes the dispatchers now: deliveries may be due (after a replay, or an endpoint
/// enabled again).
pub async fn wake_dispatchers(db: &Db) -> Result<(), sqlx::Error> {
    db.notify(DUE).await
}
