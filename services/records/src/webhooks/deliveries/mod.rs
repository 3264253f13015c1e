//! The deliveries of the outbox — one per message and subscribed endpoint — and the
//! attempts log: where each delivery stands, the dispatchers' claims, the move after an
//! attempt (retried later, delivered or dead), redelivery of a message, and the attempts
//! as logged.
//!
//! A claim locks a delivery for a while instead of holding a transaction open across an
//! HTTP call: on PostgreSQL other dispatchers skip the rows being claimed (`FOR UPDATE
//! SKIP LOCKED`); on SQLite the claim is one write transaction, so they wait for it.

#[cfg(postgres)]
mod pg;
#[cfg(sqlite)]
mod sqlite;

use linkdrop_domain::model::DeliveryState;
use serde::Serialize;

use crate::db::{Db, Tx, dispatch, undecodable};

/// Where the delivery of one message to an endpoint stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub message_id: String,
    pub event_type: String,
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at_ms: i64,
    /// When the message was made.
    pub created_at_ms: i64,
}

/// A row of [`list`] as both dialects read it.
struct DeliveryRow {
    message_id: String,
    event_type: String,
    state: String,
    attempts: i32,
    next_attempt_at_ms: i64,
    created_at_ms: i64,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = sqlx::Error;

    fn try_from(row: DeliveryRow) -> Result<Self, sqlx::Error> {
        Ok(Delivery {
            state: DeliveryState::parse(&row.state)
                .map_err(|e| undecodable("webhook_deliveries.state", e))?,
            message_id: row.message_id,
            event_type: row.event_type,
            attempts: row.attempts,
            next_attempt_at_ms: row.next_attempt_at_ms,
            created_at_ms: row.created_at_ms,
        })
    }
}

/// A delivery claimed for one attempt: what to send, where, signed with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub message_id: String,
    pub endpoint_id: String,
    /// Attempts made before this one.
    pub attempts: i32,
    pub body: String,
    pub url: String,
    /// Sealed (see `webhook_secrets`), like the previous secret.
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until_ms: Option<i64>,
    /// The trace the attempt joins (`traceparent`), when the event was traced.
    pub traceparent: Option<String>,
}

/// Where one delivery goes after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved<'a> {
    pub message_id: &'a str,
    pub endpoint_id: &'a str,
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at_ms: i64,
}

/// One attempt to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttempt<'a> {
    pub message_id: &'a str,
    pub endpoint_id: &'a str,
    /// The HTTP status, if the endpoint answered.
    pub status_code: Option<i32>,
    /// Why there was no answer.
    pub error: Option<&'a str>,
    pub duration_ms: i32,
    /// The start of the answer's body.
    pub response_body: Option<&'a str>,
}

/// One logged attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedAttempt {
    pub message_id: String,
    pub attempted_at_ms: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
    pub response_body: Option<String>,
}

/// The latest `limit` deliveries to an endpoint (in `state` only, if given), newest
/// message first.
pub async fn list(
    db: &Db,
    endpoint_id: &str,
    state: Option<DeliveryState>,
    limit: i64,
) -> Result<Vec<Delivery>, sqlx::Error> {
    let state = state.map(|s| s.as_str());
    dispatch!(db, list(endpoint_id, state, limit))?
        .into_iter()
        .map(Delivery::try_from)
        .collect()
}

/// The merchant a message belongs to, if it exists.
pub async fn message_owner(db: &Db, message_id: &str) -> Result<Option<String>, sqlx::Error> {
    dispatch!(db, message_owner(message_id))
}

/// Delivers a message again, due at `now_ms` with its attempts reset, to every enabled
/// endpoint of its merchant subscribed to its type (a new delivery where there was none);
/// how many endpoints. Wake the dispatchers afterwards
/// ([`super::outbox::wake_dispatchers`]).
pub async fn redeliver(db: &Db, message_id: &str, now_ms: i64) -> Result<u64, sqlx::Error> {
    dispatch!(db, redeliver(message_id, now_ms))
}

/// Claims up to `batch` deliveries due at `now` of enabled endpoints (a disabled
/// endpoint's wait for it to be enabled again), earliest first, locking them for
/// `lock_ms`.
pub async fn claim(
    db: &Db,
    now: i64,
    batch: i64,
    lock_ms: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    dispatch!(db, claim(now, batch, lock_ms))
}

/// Moves deliveries on after their attempts, and releases their claims.
pub async fn move_on(tx: &mut Tx, moves: &[Moved<'_>]) -> Result<(), sqlx::Error> {
    if moves.is_empty() {
        return Ok(());
    }
    dispatch!(tx, move_on(moves))
}

/// Logs the attempts made at `attempted_at_ms`.
pub async fn log_attempts(
    tx: &mut Tx,
    attempted_at_ms: i64,
    attempts: &[NewAttempt<'_>],
) -> Result<(), sqlx::Error> {
    if attempts.is_empty() {
        return Ok(());
    }
    dispatch!(tx, log_attempts(attempted_at_ms, attempts))
}

/// The latest `limit` attempts at an endpoint, newest first.
pub async fn list_attempts(
    db: &Db,
    endpoint_id: &str,
    limit: i64,
) -> Result<Vec<LoggedAttempt>, sqlx::Error> {
    dispatch!(db, list_attempts(endpoint_id, limit))
}
