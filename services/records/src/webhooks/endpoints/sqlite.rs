//! Webhook endpoints on SQLite, where `events` is a JSON array of event types.

use sqlx::SqlitePool;

use super::{Endpoint, NewEndpoint};
use crate::db::undecodable;

/// A row of `webhook_endpoints` as SQLite stores it.
struct EndpointRow {
    id: String,
    url: String,
    events: String,
    disabled_at_ms: Option<i64>,
    disabled_reason: Option<String>,
    created_at_ms: i64,
}

impl TryFrom<EndpointRow> for Endpoint {
    type Error = sqlx::Error;

    fn try_from(row: EndpointRow) -> Result<Self, sqlx::Error> {
        Ok(Endpoint {
            events: serde_json::from_str(&row.events)
                .map_err(|e| undecodable("webhook_endpoints.events", e))?,
            id: row.id,
            url: row.url,
            disabled_at_ms: row.disabled_at_ms,
            disabled_reason: row.disabled_reason,
            created_at_ms: row.created_at_ms,
        })
    }
}

pub(super) async fn insert(
    pool: &SqlitePool,
    endpoint: &NewEndpoint<'_>,
) -> Result<(), sqlx::Error> {
    let events =
        serde_json::to_string(endpoint.events).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query!(
        "INSERT INTO webhook_endpoints (id, merchant_id, url, events, secret, created_at_ms)
         VALUES (?, ?, ?, ?, ?, ?)",
        endpoint.id,
        endpoint.merchant_id,
        endpoint.url,
        events,
        endpoint.sealed_secret,
        endpoint.created_at_ms
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn list(
    pool: &SqlitePool,
    merchant_id: &str,
) -> Result<Vec<Endpoint>, sqlx::Error> {
    sqlx::query_as!(
        EndpointRow,
        r#"SELECT id AS "id!", url, events, disabled_at_ms, disabled_reason, created_at_ms
           FROM webhook_endpoints WHERE merchant_id = ? ORDER BY id"#,
        merchant_id
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(Endpoint::try_from)
    .collect()
}

pub(super) async fn owner(
    pool: &SqlitePool,
    endpoint_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT merchant_id FROM webhook_endpoints WHERE id = ?",
        endpoint_id
    )
    .fetch_optional(pool)
    .await
}

/// How many endpoints were deleted.
pub(super) async fn delete(pool: &SqlitePool, endpoint_id: &str) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query!("DELETE FROM webhook_endpoints WHERE id = ?", endpoint_id)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

pub(super) async fn rotate_secret(
    pool: &SqlitePool,
    endpoint_id: &str,
    sealed_secret: &str,
    previous_until_ms: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE webhook_endpoints
         SET previous_secret = secret, previous_secret_until_ms = ?3, secret = ?2
         WHERE id = ?1",
        endpoint_id,
        sealed_secret,
        previous_until_ms
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn enable(pool: &SqlitePool, endpoint_id: &str) -> Result<Endpoint, sqlx::Error> {
    sqlx::query_as!(
        EndpointRow,
        r#"UPDATE webhook_endpoints
           SET disabled_at_ms = NULL, disabled_reason = NULL, failing_since_ms = NULL
           WHERE id = ?
           RETURNING id AS "id!", url, events, disabled_at_ms, disabled_reason, created_at_ms"#,
        endpoint_id
    )
    .fetch_one(pool)
    .await?
    .try_into()
}
