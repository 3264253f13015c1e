//! Webhook endpoints on PostgreSQL, where `events` is a `text[]`.

use sqlx::PgPool;

use super::{Endpoint, NewEndpoint};

pub(super) async fn insert(pool: &PgPool, endpoint: &NewEndpoint<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO webhook_endpoints (id, merchant_id, url, events, secret, created_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6)",
        endpoint.id,
        endpoint.merchant_id,
        endpoint.url,
        endpoint.events,
        endpoint.sealed_secret,
        endpoint.created_at_ms
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn list(pool: &PgPool, merchant_id: &str) -> Result<Vec<Endpoint>, sqlx::Error> {
    sqlx::query_as!(
        Endpoint,
        "SELECT id, url, events, disabled_at_ms, disabled_reason, created_at_ms
         FROM webhook_endpoints WHERE merchant_id = $1 ORDER BY id",
        merchant_id
    )
    .fetch_all(pool)
    .await
}

pub(super) async fn owner(pool: &PgPool, endpoint_id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT merchant_id FROM webhook_endpoints WHERE id = $1",
        endpoint_id
    )
    .fetch_optional(pool)
    .await
}

/// How many endpoints were deleted.
pub(super) async fn delete(pool: &PgPool, endpoint_id: &str) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query!("DELETE FROM webhook_endpoints WHERE id = $1", endpoint_id)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

pub(super) async fn rotate_secret(
    pool: &PgPool,
    endpoint_id: &str,
    sealed_secret: &str,
    previous_until_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE webhook_endpoints
         SET previous_secret = secret, previous_secret_until_ms = $3, secret = $2
         WHERE id = $1",
        endpoint_id,
        sealed_secret,
        previous_until_ms
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn enable(pool: &PgPool, endpoint_id: &str) -> Result<Endpoint, sqlx::Error> {
    sqlx::query_as!(
        Endpoint,
        "UPDATE webhook_endpoints
         SET disabled_at_ms = NULL, disabled_reason = NULL, failing_since_ms = NULL
         WHERE id = $1
         RETURNING id, url, events, disabled_at_ms, disabled_reason, created_at_ms",
        endpoint_id
    )
    .fetch_one(pool)
    .await
}
