//! The infrastructure every role of linkdrop shares, on top of the domain crate:
//!
//! - [`config`]: the one configuration, in sections per role, layered from defaults, `linkdrop.toml` and
//!   `LINKDROP_*` variables, validated so that a bad value names its key;
//! - [`backends`]: connections to the live state (Redis, a Redis Cluster, or the embedded
//!   engine), PostgreSQL and Kafka, and their readiness probes;
//! - [`room_bus`], [`bus_listener`], [`viewers`], [`drop_meta`]: publishing room events,
//!   listening to published messages, viewer counts, reading a drop's live state;
//! - [`problem`], [`json`], [`auth`]: the HTTP boundary — problem+json errors, the JSON
//!   extractor, credentials (shopper tokens and API keys) as extractors;
//! - [`analytics`]: the host's figures each process counts in memory and writes in batches;
//! - [`ops`], [`role`], [`telemetry`], [`failpoint`]: `/healthz` `/readyz` `/metrics`, what a
//!   started role yields, logs and metrics, fault injection for tests.
//!
//! It must never hold role logic: admission lives in `linkdrop-orders`, fan-out in
//! `linkdrop-gateway`, and so on.

pub mod analytics;
pub mod auth;
pub mod backends;
pub mod bus_listener;
pub mod config;
pub mod drop_meta;
pub mod failpoint;
pub mod json;
pub mod jwks;
pub mod ops;
pub mod problem;
pub mod role;
pub mod room_bus;
pub mod telemetry;
pub mod trace;
pub mod viewers;

pub use problem::ApiError;
