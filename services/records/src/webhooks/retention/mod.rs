//! How long the attempts log keeps an attempt: the dispatcher deletes those older than
//! its retention.

#[cfg(postgres)]
mod pg;
#[cfg(sqlite)]
mod sqlite;

use crate::db::{Db, dispatch};

/// Deletes the attempts made before `before_ms`; how many.
pub async fn purge_attempts(db: &Db, before_ms: i64) -> Result<u64, sqlx::Error> {
    dispatch!(db, purge_attempts(before_ms))
}
