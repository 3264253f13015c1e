//! Retention on PostgreSQL.

use sqlx::PgPool;

pub(super) async fn purge_attempts(pool: &PgPool, before_ms: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "DELETE FROM webhook_attempts WHERE attempted_at_ms < $1",
        before_ms
    )
    .execute(pool)
    .await?
    .rows_affected())
}
