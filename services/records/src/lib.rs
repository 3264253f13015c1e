//! The records of linkdrop — the system of record — on PostgreSQL or, on the embedded
//! backend, SQLite. One module per area, each with the interface the roles call
//! (`mod.rs`: functions taking a [`db::Db`], or a [`db::Tx`] when they must commit
//! together with other writes, and named rows in the domain's terms), its PostgreSQL
//! queries (`pg.rs`) and its SQLite queries (`sqlite.rs`), every one checked at compile
//! time against `.sqlx/` (scripts/sqlx-prepare). The dialect is chosen in one place,
//! [`db::dispatch!`](crate::db).
//!
//! - [`analytics`]: the host's figures (viewers per second, taps, countdown reach) added
//!   in batches, and the reads of the post-live report;
//! - [`db`]: the connection, transactions and the wake-ups they send once committed;
//! - [`api_keys`], [`rooms`], [`drops`]: hosts' and merchants' keys, rooms, drops;
//! - [`orders`]: settled orders as the orders API reads them, and lottery draw figures;
//! - [`settlement`]: accepted orders and their changes written in batches, with their
//!   merchant events (used by settlement from Kafka, and by the relay on the embedded
//!   backend);
//! - [`webhooks`]: the outbox of merchant events, endpoints, deliveries and attempts,
//!   endpoint health, retention.
//!
//! Never a silent default: a stored value that does not parse (an order status, a
//! delivery state) is an error naming its column.

#![cfg_attr(not(all(postgres, sqlite)), allow(dead_code, unused_imports))]

pub mod analytics;
pub mod api_keys;
pub mod db;
pub mod drops;
pub mod orders;
pub mod rooms;
pub mod settlement;
pub mod webhooks;
