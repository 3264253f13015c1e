//! API keys on PostgreSQL.

use sqlx::PgPool;

use super::{ActiveKey, NewKey};

pub(super) async fn insert(pool: &PgPool, key: &NewKey<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO api_keys (id, key_hash, role, merchant_id, created_at_ms)
         VALUES ($1, $2, $3, $4, $5)",
        key.id,
        key.key_hash,
        key.role,
        key.merchant_id,
        key.created_at_ms
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn find_active(
    pool: &PgPool,
    key_hash: &str,
) -> Result<Option<ActiveKey>, sqlx::Error> {
    sqlx::query_as!(
        ActiveKey,
        "SELECT role, merchant_id FROM api_keys WHERE key_hash = $1 AND revoked_at_ms IS NULL",
        key_hash
    )
    .fetch_optional(pool)
    .await
}
