//! Endpoint health on PostgreSQL.

use sqlx::PgConnection;

pub(super) async fn answered(tx: &mut PgConnection, endpoint_id: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE webhook_endpoints SET failing_since_ms = NULL
                 WHERE id = $1 AND failing_since_ms IS NOT NULL",
        endpoint_id
    )
    .execute(tx)
    .await?;
    Ok(())
}

pub(super) async fn failed(
    tx: &mut PgConnection,
    endpoint_id: &str,
    now: i64,
    disable_after_ms: i64,
    gone: bool,
) -> Result<Option<bool>, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE webhook_endpoints
             SET failing_since_ms = coalesce(failing_since_ms, $2),
                 disabled_at_ms = CASE
                     WHEN $4 OR coalesce(failing_since_ms, $2) <= $2 - $3 THEN $2
                     ELSE disabled_at_ms END,
                 disabled_reason = CASE
                     WHEN $4 THEN 'the endpoint answered 410 Gone'
                     WHEN coalesce(failing_since_ms, $2) <= $2 - $3
                         THEN 'every attempt failed for too long'
                     ELSE disabled_reason END
             WHERE id = $1 AND disabled_at_ms IS NULL
             RETURNING disabled_at_ms IS NOT NULL AS \"disabled!\"",
        endpoint_id,
        now,
        disable_after_ms,
        gone
    )
    .fetch_optional(tx)
    .await
}
