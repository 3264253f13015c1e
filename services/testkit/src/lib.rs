//! The test kit of linkdrop's integration tests: start linkdrop on the real stack (Redis,
//! Kafka, PostgreSQL from `scripts/stack`) or the embedded backend, isolated per test by a
//! fresh database and a fresh namespace, and talk to it through its public API only.
//!
//! - [`fixtures`]: where the stack is; fresh databases, namespaces and data directories;
//!   the configuration of a test application.
//! - [`app`]: [`TestApp`], linkdrop started in the test's process, and more processes
//!   of the same installation.
//! - [`http`], [`api`], [`tokens`]: requests and answers, what tests set up through the
//!   API, shopper tokens.
//! - [`ws`]: WebSocket clients of a room.
//! - [`webhooks`]: a webhook receiver and the reference verifier.
//! - [`otlp`]: a trace receiver (OTLP over HTTP) that keeps the spans sent to it.
//! - [`processes`], [`rush`]: real linkdrop processes and a private stack for the crash
//!   tests, and a rush of shoppers through a crash.

pub mod api;
pub mod app;
pub mod fixtures;
pub mod http;
pub mod otlp;
pub mod processes;
pub mod rush;
pub mod tokens;
pub mod webhooks;
pub mod ws;

use std::time::Duration;

pub use app::{TestApp, spawn_app, spawn_app_with, spawn_roles};
pub use fixtures::{
    both_record_stores, embedded, embedded_env, fresh_data_dir, fresh_database, fresh_database_on,
    fresh_namespace, kafka_brokers, redis_target, redis_url, target_tmpdir, test_env,
};
pub use http::Answer;
pub use webhooks::{Delivery, WebhookReceiver, test_python, verify_with_reference_library};
pub use ws::Viewer;

/// How long a test waits for something the system does asynchronously.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef0123";
/// Seals webhook secrets in tests (32 bytes as hex).
pub const WEBHOOK_SECRET_KEY: &str =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Waits until the wall clock passes `at_ms`: for tests of behaviour that is defined by a
/// time the server announced (`opens_at_ms`), not for synchronizing with the system.
pub async fn wait_until_ms(at_ms: i64) {
    let now = linkdrop_domain::clock::now_ms();
    if at_ms > now {
        tokio::time::sleep(Duration::from_millis((at_ms - now) as u64)).await;
    }
}
