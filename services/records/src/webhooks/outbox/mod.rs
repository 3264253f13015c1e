//! The webhook outbox: merchant events written in the same transaction as the record they
//! report, plus one delivery per subscribed endpoint for the dispatcher to claim.
//! Every role that changes an order or a drop enqueues its events through here.

use serde_json::Value;

use crate::db::Tx;
use linkdrop_domain::events::{merchant_event_body, merchant_event_id};

/// One merchant event, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantEvent {
    pub id: String,
    pub merchant_id: String,
    pub event_type: &'static str,
    /// The exact text that is signed and sent.
    pub body: String,
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
        }
    }
}

/// Stores `events` (once each, by id) and a due delivery for every enabled endpoint of
/// their merchant subscribed to their type, then wakes the dispatchers. Call inside the
/// transaction that writes the records the events report.
pub async fn enqueue(
    tx: &mut Tx,
    events: &[MerchantEvent],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    match tx {
        Tx::Postgres(tx) => enqueue_postgres(tx, events, now_ms).await,
        Tx::Sqlite {
            tx,
            wake_dispatchers,
        } => {
            enqueue_sqlite(tx, events, now_ms).await?;
            *wake_dispatchers = true;
            Ok(())
        }
    }
}

async fn enqueue_postgres(
    tx: &mut sqlx::PgConnection,
    events: &[MerchantEvent],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let merchants: Vec<String> = events.iter().map(|e| e.merchant_id.clone()).collect();
    let types: Vec<String> = events.iter().map(|e| e.event_type.to_string()).collect();
    let bodies: Vec<String> = events.iter().map(|e| e.body.clone()).collect();
    sqlx::query!(
        "INSERT INTO webhook_messages (id, merchant_id, event_type, body, created_at_ms)
         SELECT m.id, m.merchant_id, m.event_type, m.body, $5
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[])
              AS m(id, merchant_id, event_type, body)
         ON CONFLICT (id) DO NOTHING",
        &ids,
        &merchants,
        &types,
        &bodies,
        now_ms
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, next_attempt_at_ms)
         SELECT m.id, e.id, $4
         FROM UNNEST($1::text[], $2::text[], $3::text[]) AS m(id, merchant_id, event_type)
         JOIN webhook_endpoints e
           ON e.merchant_id = m.merchant_id AND e.disabled_at_ms IS NULL
          AND m.event_type = ANY(e.events)
         ON CONFLICT DO NOTHING",
        &ids,
        &merchants,
        &types,
        now_ms
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("SELECT pg_notify('webhook_due', '')")
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// The same writes, one event at a time (SQLite has no arrays); an endpoint's `events` is a
/// JSON array there.
async fn enqueue_sqlite(
    tx: &mut sqlx::SqliteConnection,
    events: &[MerchantEvent],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    for event in events {
        sqlx::query(
            "INSERT INTO webhook_messages (id, merchant_id, event_type, body, created_at_ms)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&event.id)
        .bind(&event.merchant_id)
        .bind(event.event_type)
        .bind(&event.body)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO webhook_deliveries (message_id, endpoint_id, next_attempt_at_ms)
             SELECT ?1, e.id, ?4 FROM webhook_endpoints e
             WHERE e.merchant_id = ?2 AND e.disabled_at_ms IS NULL
               AND EXISTS (SELECT 1 FROM json_each(e.events) WHERE json_each.value = ?3)
             ON CONFLICT DO NOTHING",
        )
        .bind(&event.id)
        .bind(&event.merchant_id)
        .bind(event.event_type)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
