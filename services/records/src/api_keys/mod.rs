//! API keys of hosts and merchants: only a key's SHA-256 is stored; the key itself is
//! shown once, when it is made.

#[cfg(postgres)]
mod pg;
#[cfg(sqlite)]
mod sqlite;

use crate::db::{Db, dispatch};

/// A key to store: only its hash.
pub struct NewKey<'a> {
    pub id: &'a str,
    pub key_hash: &'a str,
    /// `host` or `merchant`.
    pub role: &'a str,
    pub merchant_id: &'a str,
    pub created_at_ms: i64,
}

/// A stored key that is not revoked: its role and merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveKey {
    pub role: String,
    pub merchant_id: String,
}

/// Stores a key; an error if its id or hash is stored already, or its role is not
/// `host` or `merchant`.
pub async fn insert(db: &Db, key: &NewKey<'_>) -> Result<(), sqlx::Error> {
    dispatch!(db, insert(key))
}

/// The key with this hash, unless it is unknown or revoked.
pub async fn find_active(db: &Db, key_hash: &str) -> Result<Option<ActiveKey>, sqlx::Error> {
    dispatch!(db, find_active(key_hash))
}
