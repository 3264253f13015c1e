//! Deliveries and attempts on SQLite: one statement per row in the transaction; a claim
//! is one write transaction (`BEGIN IMMEDIATE`), so dispatchers take turns.

use sqlx::{SqliteConnection, SqlitePool};

use super::{Claimed, DeliveryRow, LoggedAttempt, Moved, NewAttempt};

pub(super) async fn list(
    pool: &SqlitePool,
    endpoint_id: &str,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, sqlx::Error> {
    sqlx::query_as!(
        DeliveryRow,
        r#"SELECT d.message_id, m.event_type, d.state, d.attempts AS "attempts: i32",
                  d.next_attempt_at_ms, m.created_at_ms
           FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id
           WHERE d.endpoint_id = ?1 AND (?2 IS NULL OR d.state = ?2)
           ORDER BY m.created_at_ms DESC, d.message_id DESC LIMIT ?3"#,
        endpoint_id,
        state,
        limit
    )
    .fetch_all(pool)
    .await
}

pub(super) async fn message_owner(
    pool: &SqlitePool,
    message_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT merchant_id FROM webhook_messages WHERE id = ?",
        message_id
    )
    .fetch_optional(pool)
    .await
}

pub(super) async fn redeliver(
    pool: &SqlitePool,
    message_id: &str,
    now_ms: i64,
) -> Result<u64, sqlx::Error> {
    // The WHERE clause also keeps SQLite from reading `ON CONFLICT` as a join's.
    Ok(sqlx::query!(
        "INSERT INTO webhook_deliveries (message_id, endpoint_id, next_attempt_at_ms)
         SELECT m.id, e.id, ?2
         FROM webhook_messages m
         JOIN webhook_endpoints e
           ON e.merchant_id = m.merchant_id AND e.disabled_at_ms IS NULL
          AND EXISTS (SELECT 1 FROM json_each(e.events) WHERE json_each.value = m.event_type)
         WHERE m.id = ?1
         ON CONFLICT (message_id, endpoint_id) DO UPDATE
         SET state = 'pending', attempts = 0, next_attempt_at_ms = ?2, locked_until_ms = NULL",
        message_id,
        now_ms
    )
    .execute(pool)
    .await?
    .rows_affected())
}

pub(super) async fn claim(
    pool: &SqlitePool,
    now: i64,
    batch: i64,
    lock_ms: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let due = sqlx::query_as!(
        Claimed,
        r#"SELECT d.message_id, d.endpoint_id, d.attempts AS "attempts: i32", m.body, e.url,
                  e.secret, e.previous_secret, e.previous_secret_until_ms, m.traceparent
           FROM webhook_deliveries d
           JOIN webhook_endpoints e ON e.id = d.endpoint_id
           JOIN webhook_messages m ON m.id = d.message_id
           WHERE d.state = 'pending' AND d.next_attempt_at_ms <= ?1
             AND (d.locked_until_ms IS NULL OR d.locked_until_ms < ?1)
             AND e.disabled_at_ms IS NULL
           ORDER BY d.next_attempt_at_ms
           LIMIT ?2"#,
        now,
        batch
    )
    .fetch_all(&mut *tx)
    .await?;
    let locked_until_ms = now + lock_ms;
    for delivery in &due {
        sqlx::query!(
            "UPDATE webhook_deliveries SET locked_until_ms = ?
             WHERE message_id = ? AND endpoint_id = ?",
            locked_until_ms,
            delivery.message_id,
            delivery.endpoint_id
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(due)
}

pub(super) async fn move_on(
    tx: &mut SqliteConnection,
    moves: &[Moved<'_>],
) -> Result<(), sqlx::Error> {
    for m in moves {
        let state = m.state.as_str();
        sqlx::query!(
            "UPDATE webhook_deliveries
             SET state = ?, attempts = ?, next_attempt_at_ms = ?, locked_until_ms = NULL
             WHERE message_id = ? AND endpoint_id = ?",
            state,
            m.attempts,
            m.next_attempt_at_ms,
            m.message_id,
            m.endpoint_id
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

pub(super) async fn log_attempts(
    tx: &mut SqliteConnection,
    attempted_at_ms: i64,
    attempts: &[NewAttempt<'_>],
) -> Result<(), sqlx::Error> {
    for attempt in attempts {
        sqlx::query!(
            "INSERT INTO webhook_attempts (message_id, endpoint_id, attempted_at_ms,
                                           status_code, error, duration_ms, response_body)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            attempt.message_id,
            attempt.endpoint_id,
            attempted_at_ms,
            attempt.status_code,
            attempt.error,
            attempt.duration_ms,
            attempt.response_body
        )
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

pub(super) async fn list_attempts(
    pool: &SqlitePool,
    endpoint_id: &str,
    limit: i64,
) -> Result<Vec<LoggedAttempt>, sqlx::Error> {
    sqlx::query_as!(
        LoggedAttempt,
        r#"SELECT message_id, attempted_at_ms, status_code AS "status_code: i32", error,
                  duration_ms AS "duration_ms: i32", response_body
           FROM webhook_attempts WHERE endpoint_id = ? ORDER BY id DESC LIMIT ?"#,
        endpoint_id,
        limit
    )
    .fetch_all(pool)
    .await
}
