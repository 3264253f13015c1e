//! The shared domain of linkdrop.
//!
//! Every role crate (gateway, orders, relay, settle, webhooks, control) builds on this one.
//! It owns what more than one role must agree on:
//!
//! - [`config`]: the one configuration struct, layered from defaults, `linkdrop.toml` and
//!   `LINKDROP_*` variables, validated so that a bad value names its key;
//! - [`model`]: rooms, drops, orders and their validation;
//! - [`problem`]: the error type of every HTTP boundary, rendered as problem+json;
//! - [`auth`]: shopper tokens (JWT) and API keys (hosts, merchants, admin);
//! - [`keys`]: the names of every Redis key and Kafka topic, so no two roles spell one
//!   differently;
//! - [`room_bus`]: publishing room events with a per-room `seq` (Redis pub/sub plus a capped
//!   history stream);
//! - [`events`]: the messages that cross process boundaries (Kafka, the room bus, WebSocket);
//! - [`drop_news`]: what every orders process is told about a live drop (edge answers);
//! - [`bus_listener`]: subscriptions to published messages (room bus, drop news);
//! - [`webhook_signature`]: Standard Webhooks signing;
//! - [`backends`], [`ops`], [`telemetry`]: connections to Redis/PostgreSQL/Kafka, the
//!   `/healthz` `/readyz` `/metrics` routes, logs and metrics.
//!
//! It must never hold role-specific logic: admission lives in `linkdrop-orders`, fan-out in
//! `linkdrop-gateway`, and so on.

pub mod auth;
pub mod backends;
pub mod bus_listener;
pub mod clock;
pub mod config;
pub mod db;
pub mod drop_news;
pub mod events;
pub mod failpoint;
pub mod hash_fields;
pub mod ids;
pub mod json;
pub mod keys;
pub mod model;
pub mod ops;
pub mod problem;
pub mod role;
pub mod room_bus;
pub mod secret;
pub mod telemetry;
pub mod viewers;
pub mod webhook_outbox;
pub mod webhook_secrets;
pub mod webhook_signature;

pub use problem::ApiError;
