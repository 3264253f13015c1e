//! Merchant webhooks in the records, by concern:
//!
//! - [`outbox`]: merchant events queued in the transaction that makes them, with a due
//!   delivery per subscribed endpoint, and the wake-up of the dispatchers;
//! - [`endpoints`]: the merchants' endpoints and their signing secrets;
//! - [`deliveries`]: where each delivery stands, the dispatchers' claims, the moves after
//!   an attempt, the attempts log, redelivery;
//! - [`health`]: an endpoint's failing streak, and disabling it;
//! - [`retention`]: deleting attempts past their retention.
//!
//! On SQLite an endpoint's `events` is a JSON array, and what PostgreSQL does over arrays
//! (`UNNEST`, `ANY`) is one statement per row inside the same transaction.

pub mod deliveries;
pub mod endpoints;
pub mod health;
pub mod outbox;
pub mod retention;
