//! The records of linkdrop — the system of record — on PostgreSQL or, on the embedded
//! backend, SQLite: one interface per area, the dispatch between the two in one place
//! ([`db::Db`], [`db::Tx`]).
//!
//! - [`db`]: the connection, transactions, migrations, API keys and rooms;
//! - [`webhook_outbox`]: merchant events queued for delivery in the transaction that makes
//!   them;
//! - [`settlement`]: accepted orders and their changes written in batches, with their
//!   merchant events (used by settlement from Kafka, and by the relay on the embedded
//!   backend).

pub mod db;
pub mod settlement;
pub mod webhook_outbox;
