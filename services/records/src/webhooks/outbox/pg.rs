//! The outbox on PostgreSQL: a batch of events in two statements over arrays.

use sqlx::PgConnection;

use super::MerchantEvent;

pub(super) async fn enqueue(
    tx: &mut PgConnection,
    events: &[MerchantEvent],
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    let merchants: Vec<String> = events.iter().map(|e| e.merchant_id.clone()).collect();
    let types: Vec<String> = events.iter().map(|e| e.event_type.to_string()).collect();
    let bodies: Vec<String> = events.iter().map(|e| e.body.clone()).collect();
    let traces: Vec<Option<String>> = events.iter().map(|e| e.traceparent.clone()).collect();
    sqlx::query!(
        "INSERT INTO webhook_messages (id, merchant_id, event_type, body, created_at_ms,
                                       traceparent)
         SELECT m.id, m.merchant_id, m.event_type, m.body, $5, m.traceparent
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $6::text[])
              AS m(id, merchant_id, event_type, body, traceparent)
         ON CONFLICT (id) DO NOTHING",
        &ids,
        &merchants,
        &types,
        &bodies,
        now_ms,
        &traces as &[Option<String>]
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
    Ok(())
}
