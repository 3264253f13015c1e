//! The orders role: shoppers' `POST /v1/drops/{drop_id}/orders` and the order queries.
//!
//! Owns the admission path — [`edge`] answers what this process knows the script would
//! refuse, [`admission_queue`] sends the rest to [`admission`] in batches per drop, one
//! atomic script call per batch — and the live stock figures it pushes to the room
//! ([`stock`]); payment and expiry ([`lifecycle`]); lottery draws ([`lottery`]), which
//! every orders process schedules when it hears a lottery launched ([`news`]). It never
//! answers 201 before the admission script has appended the order to the drop's outbox:
//! from there the relay carries it to Kafka and settlement to PostgreSQL.

pub mod admission;
pub mod admission_queue;
pub mod edge;
pub mod lifecycle;
pub mod lottery;
pub mod metrics;
pub mod news;
pub mod protection;
pub mod queries;
pub mod routes;
mod start;
pub mod stock;

pub use routes::{OrdersParts, OrdersState, router};
pub use start::{OrdersDeps, start};
