//! The one launcher of linkdrop's local processes. It knows three topologies and starts,
//! waits for, stops and kills what they are made of (Redis, PostgreSQL, Kafka and linkdrop
//! roles):
//!
//! - [`stack::Stack`], the single-node stack the tests and `./scripts/run --stack` use
//!   (`scripts/stack`);
//! - [`cluster::Cluster`], linkdrop as a cluster on one machine (`scripts/cluster`);
//! - [`role::App`], one linkdrop process of a benchmark's deployment (`scripts/bench`,
//!   `scripts/load`).
//!
//! The binary `linkdrop-launch` is what the scripts run; the tests use the library. It has
//! no dependencies, so it builds before anything else is installed.

pub mod cluster;
pub mod install;
pub mod kafka;
pub mod postgres;
pub mod proc;
pub mod redis;
pub mod report;
pub mod role;
#[cfg(test)]
mod scratch;
pub mod settings;
pub mod stack;
pub mod topology;

pub use cluster::Cluster;
pub use report::{Failure, Result};
pub use stack::Stack;
