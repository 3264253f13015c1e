//! Merchants' webhook endpoints: where to send which events, the sealed signing secret
//! (and the previous one during a rotation), and whether the endpoint is disabled.

#[cfg(postgres)]
mod pg;
#[cfg(sqlite)]
mod sqlite;

use serde::Serialize;

use crate::db::{Db, dispatch};

/// An endpoint to store; its secret sealed already.
#[derive(Debug, Clone)]
pub struct NewEndpoint<'a> {
    pub id: &'a str,
    pub merchant_id: &'a str,
    pub url: &'a str,
    pub events: &'a [String],
    pub sealed_secret: &'a str,
    pub created_at_ms: i64,
}

/// An endpoint as its merchant sees it (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    /// The event types it is subscribed to.
    pub events: Vec<String>,
    pub disabled_at_ms: Option<i64>,
    pub disabled_reason: Option<String>,
    pub created_at_ms: i64,
}

pub async fn insert(db: &Db, endpoint: &NewEndpoint<'_>) -> Result<(), sqlx::Error> {
    dispatch!(db, insert(endpoint))
}

/// A merchant's endpoints, by id.
pub async fn list(db: &Db, merchant_id: &str) -> Result<Vec<Endpoint>, sqlx::Error> {
    dispatch!(db, list(merchant_id))
}

/// The merchant an endpoint belongs to, if it exists.
pub async fn owner(db: &Db, endpoint_id: &str) -> Result<Option<String>, sqlx::Error> {
    dispatch!(db, owner(endpoint_id))
}

/// Deletes an endpoint with its deliveries and attempts (cascade); whether it existed.
pub async fn delete(db: &Db, endpoint_id: &str) -> Result<bool, sqlx::Error> {
    Ok(dispatch!(db, delete(endpoint_id))? == 1)
}

/// Makes `sealed_secret` the endpoint's secret; the current one becomes the previous
/// secret, which keeps signing until `previous_until_ms`.
pub async fn rotate_secret(
    db: &Db,
    endpoint_id: &str,
    sealed_secret: &str,
    previous_until_ms: i64,
) -> Result<(), sqlx::Error> {
    dispatch!(
        db,
        rotate_secret(endpoint_id, sealed_secret, previous_until_ms)
    )
}

/// Enables an endpoint again (clearing its failing streak); the endpoint as it is now.
/// `RowNotFound` if there is no such endpoint.
pub async fn enable(db: &Db, endpoint_id: &str) -> Result<Endpoint, sqlx::Error> {
    dispatch!(db, enable(endpoint_id))
}
