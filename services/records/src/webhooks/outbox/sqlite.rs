//! The outbox on SQLite: one event at a time (no arrays); an endpoint's `events` is a JSON
//! array.

use sqlx::SqliteConnection;

use super::MerchantEvent;

pub(super) async fn enqueue(
    tx: &mut SqliteConnection,
    events: &[MerchantEvent],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    for event in events {
        sqlx::query!(
            "INSERT INTO webhook_messages (id, merchant_id, event_type, body, created_at_ms,
                                           traceparent)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
            event.id,
            event.merchant_id,
            event.event_type,
            event.body,
            now_ms,
            event.traceparent
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO webhook_deliveries (message_id, endpoint_id, next_attempt_at_ms)
             SELECT ?1, e.id, ?4 FROM webhook_endpoints e
             WHERE e.merchant_id = ?2 AND e.disabled_at_ms IS NULL
               AND EXISTS (SELECT 1 FROM json_each(e.events) WHERE json_each.value = ?3)
             ON CONFLICT DO NOTHING",
            event.id,
            event.merchant_id,
            event.event_type,
            now_ms
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
