//! Retention on SQLite.

use sqlx::SqlitePool;

pub(super) async fn purge_attempts(pool: &SqlitePool, before_ms: i64) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query!(
        "DELETE FROM webhook_attempts WHERE attempted_at_ms < ?",
        before_ms
    )
    .execute(pool)
    .await?
    .rows_affected())
}
