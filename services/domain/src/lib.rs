//! The domain of linkdrop: what every role must agree on, with no web, database, Redis or
//! Kafka in it.
//!
//! - [`analytics`]: the host's figures: audience curve, drop funnels, retention, advice;
//! - [`model`]: rooms, drops, orders, their validation ([`model::InputError`]);
//! - [`ids`]: identifiers and their shapes;
//! - [`events`]: every message that crosses a process boundary — WebSocket frames, the
//!   room bus, Kafka order events, merchant webhooks;
//! - [`keys`]: the names of every Redis key, channel, Kafka topic and group;
//! - [`drop_meta`]: the fields of a drop's live state, named once for Rust and Lua;
//! - [`drop_news`]: what every orders process is told about a live drop (edge answers);
//! - [`lottery`]: the draw's mathematics (seed, ranks, winners);
//! - [`tokens`]: shopper tokens (HS256 JWTs, and RS256/ES256/EdDSA of an identity provider);
//! - [`webhook_signature`], [`webhook_secrets`]: Standard Webhooks signatures and the
//!   sealing of signing secrets at rest;
//! - [`clock`], [`secret`]: time in milliseconds, values that never print;
//! - [`stored`]: the error of a stored value that is missing or does not parse.
//!
//! The infrastructure the roles share (configuration, connections, the room bus, HTTP
//! errors, credentials, telemetry) is `linkdrop-infra`; the records (PostgreSQL and SQLite)
//! are `linkdrop-records`.

pub mod analytics;
pub mod clock;
pub mod drop_meta;
pub mod drop_news;
pub mod events;
pub mod ids;
pub mod keys;
pub mod lottery;
pub mod model;
pub mod secret;
pub mod stored;
pub mod tokens;
pub mod webhook_secrets;
pub mod webhook_signature;
