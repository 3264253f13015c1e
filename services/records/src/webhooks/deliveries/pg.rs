//! Deliveries and attempts on PostgreSQL: batches as arrays, claims with `FOR UPDATE SKIP
//! LOCKED`.

use sqlx::{PgConnection, PgPool};

use super::{Claimed, DeliveryRow, LoggedAttempt, Moved, NewAttempt};

pub(super) async fn list(
    pool: &PgPool,
    endpoint_id: &str,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    sqlx::query_as!(
        DeliveryRow,
        "SELECT d.message_id, m.event_type, d.state, d.attempts, d.next_attempt_at_ms,
                m.created_at_ms
         FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id
         WHERE d.endpoint_id = $1 AND ($2::text IS NULL OR d.state = $2)
         ORDER BY m.created_at_ms DESC, d.message_id DESC LIMIT $3",
        endpoint_id,
        state,
        limit
    )
    .fetch_all(pool)
    .await
}

pub(super) async fn message_owner(
    pool: &PgPool,
    message_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT merchant_id FROM webhook_messages WHERE id = $1",
        message_id
    )
    .fetch_optional(pool)
    .await
}

pub(super) async fn redeliver(
    pool: &PgPool,
    message_id: &str,
    now_ms: i64,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, next_attempt_at_ms)
         SELECT m.id, e.id, $2
         FROM webhook_messages m
         JOIN webhook_endpoints e
           ON e.merchant_id = m.merchant_id AND e.disabled_at_ms IS NULL
          AND m.event_type = ANY(e.events)
         WHERE m.id = $1
         ON CONFLICT (message_id, endpoint_id) DO UPDATE
         SET state = 'pending', attempts = 0, next_attempt_at_ms = $2, locked_until_ms = NULL",
        message_id,
        now_ms
    )
    .execute(pool)
    .await?
    .rows_affected())
}

pub(super) async fn claim(
    pool: &PgPool,
    now: i64,
    batch: i64,
    lock_ms: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    sqlx::query_as!(
        Claimed,
        r#"WITH due AS (
                   SELECT d.message_id, d.endpoint_id
                   FROM webhook_deliveries d
                   JOIN webhook_endpoints e ON e.id = d.endpoint_id
                   WHERE d.state = 'pending' AND d.next_attempt_at_ms <= $1
                     AND (d.locked_until_ms IS NULL OR d.locked_until_ms < $1)
                     AND e.disabled_at_ms IS NULL
                   ORDER BY d.next_attempt_at_ms
                   LIMIT $2
                   FOR UPDATE OF d SKIP LOCKED
               ), claimed AS (
                   UPDATE webhook_deliveries d SET locked_until_ms = $1 + $3
                   FROM due
                   WHERE d.message_id = due.message_id AND d.endpoint_id = due.endpoint_id
                   RETURNING d.message_id, d.endpoint_id, d.attempts
               )
               SELECT c.message_id AS "message_id!", c.endpoint_id AS "endpoint_id!",
                      c.attempts AS "attempts!", m.body, e.url, e.secret,
                      e.previous_secret, e.previous_secret_until_ms, m.traceparent
               FROM claimed c
               JOIN webhook_messages m ON m.id = c.message_id
               JOIN webhook_endpoints e ON e.id = c.endpoint_id"#,
        now,
        batch,
        lock_ms
    )
    .fetch_all(pool)
    .await
}

pub(super) async fn move_on(tx: &mut PgConnection, moves: &[Moved<'_>]) -> Result<(), sqlx::Error> {
    let message_ids: Vec<String> = moves.iter().map(|m| m.message_id.into()).collect();
    let endpoint_ids: Vec<String> = moves.iter().map(|m| m.endpoint_id.into()).collect();
    let states: Vec<String> = moves.iter().map(|m| m.state.as_str().into()).collect();
    let attempts: Vec<i32> = moves.iter().map(|m| m.attempts).collect();
    let next: Vec<i64> = moves.iter().map(|m| m.next_attempt_at_ms).collect();
    sqlx::query!(
        "UPDATE webhook_deliveries d
             SET state = u.state, attempts = u.attempts, next_attempt_at_ms = u.next,
                 locked_until_ms = NULL
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::int8[])
                  AS u(message_id, endpoint_id, state, attempts, next)
             WHERE d.message_id = u.message_id AND d.endpoint_id = u.endpoint_id",
        &message_ids,
        &endpoint_ids,
        &states,
        &attempts,
        &next
    )
    .execute(tx)
    .await?;
    Ok(())
}

pub(super) async fn log_attempts(
    tx: &mut PgConnection,
    attempted_at_ms: i64,
    attempts: &[NewAttempt<'_>],
) -> Result<(), sqlx::Error> {
    let message_ids: Vec<String> = attempts.iter().map(|a| a.message_id.into()).collect();
    let endpoint_ids: Vec<String> = attempts.iter().map(|a| a.endpoint_id.into()).collect();
    let status_codes: Vec<Option<i32>> = attempts.iter().map(|a| a.status_code).collect();
    let errors: Vec<Option<String>> = attempts.iter().map(|a| a.error.map(Into::into)).collect();
    let durations: Vec<i32> = attempts.iter().map(|a| a.duration_ms).collect();
    let bodies: Vec<Option<String>> = attempts
        .iter()
        .map(|a| a.response_body.map(Into::into))
        .collect();
    sqlx::query!(
        "INSERT INTO webhook_attempts (message_id, endpoint_id, attempted_at_ms, status_code,
                                           error, duration_ms, response_body)
             SELECT a.message_id, a.endpoint_id, $3, a.status_code, a.error, a.duration_ms,
                    a.response_body
             FROM UNNEST($1::text[], $2::text[], $4::int4[], $5::text[], $6::int4[], $7::text[])
                  AS a(message_id, endpoint_id, status_code, error, duration_ms, response_body)",
        &message_ids,
        &endpoint_ids,
        attempted_at_ms,
        &status_codes as &[Option<i32>],
        &errors as &[Option<String>],
        &durations,
        &bodies as &[Option<String>]
    )
    .execute(tx)
    .await?;
    Ok(())
}

pub(super) async fn list_attempts(
    pool: &PgPool,
    endpoint_id: &str,
    limit: i64,
) -> Result<Vec<LoggedAttempt>, sqlx::Error> {
    sqlx::query_as!(
        LoggedAttempt,
        "SELECT message_id, attempted_at_ms, status_code, error, duration_ms, response_body
         FROM webhook_attempts WHERE endpoint_id = $1 ORDER BY id DESC LIMIT $2",
        endpoint_id,
        limit
    )
    .fetch_all(pool)
    .await
}
