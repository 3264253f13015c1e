//! The webhooks role: merchants' endpoints API ([`endpoints`]) and the dispatcher that
//! delivers the webhook outbox ([`dispatcher`]) with Standard Webhooks signatures, a retry
//! schedule ([`schedule`]) and an SSRF guard ([`guard`]). Their records are
//! [`linkdrop_records::webhooks`], on PostgreSQL or SQLite.

pub mod dispatcher;
pub mod endpoints;
pub mod guard;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{delete, get, post};
use linkdrop_domain::clock::SystemClock;
use linkdrop_domain::webhook_secrets::SealingKey;
use linkdrop_infra::auth::Auth;
use linkdrop_infra::config::WebhooksConfig;
use linkdrop_infra::role::RoleHandle;
use linkdrop_records::db::Db;
use tokio_util::sync::CancellationToken;

pub use crate::dispatcher::{Dispatcher, Settings};
use crate::guard::Guard;

/// What the endpoints API shares.
#[derive(Clone)]
pub struct WebhooksState {
    pub db: Db,
    pub auth: Auth,
    pub guard: Guard,
    pub sealing: SealingKey,
}

impl FromRef<WebhooksState> for Auth {
    fn from_ref(state: &WebhooksState) -> Auth {
        state.auth.clone()
    }
}

/// The merchant's endpoints API; served by the control role.
pub fn endpoints_router(state: WebhooksState) -> Router {
    Router::new()
        .route(
            "/v1/webhook-endpoints",
            post(endpoints::create).get(endpoints::list),
        )
        .route(
            "/v1/webhook-endpoints/{endpoint_id}",
            delete(endpoints::delete),
        )
        .route(
            "/v1/webhook-endpoints/{endpoint_id}/attempts",
            get(endpoints::attempts),
        )
        .route(
            "/v1/webhook-endpoints/{endpoint_id}/deliveries",
            get(endpoints::deliveries),
        )
        .route(
            "/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
            post(endpoints::rotate_secret),
        )
        .route(
            "/v1/webhook-endpoints/{endpoint_id}/enable",
            post(endpoints::enable),
        )
        .route(
            "/v1/webhook-messages/{message_id}/replay",
            post(endpoints::replay),
        )
        .with_state(state)
}

/// What one dispatcher needs.
pub struct DispatcherDeps {
    pub db: Db,
    pub guard: Guard,
    pub poll: Duration,
    pub settings: Settings,
}

impl DispatcherDeps {
    /// A dispatcher on `db` as the webhooks section of the configuration says, opening
    /// signing secrets with `sealing`.
    pub fn new(db: Db, config: &WebhooksConfig, sealing: SealingKey) -> Self {
        Self {
            db,
            guard: Guard::from_config(config),
            poll: Duration::from_millis(config.poll_ms),
            settings: Settings::new(config, sealing),
        }
    }
}

/// Declares the dispatcher's metrics, at zero, so that they are exported from the start.
pub fn register_metrics() {
    use linkdrop_infra::telemetry::declare_counter;
    metrics::describe_counter!(
        "linkdrop_webhook_attempts_total",
        "Delivery attempts, by result (delivered, failed)"
    );
    for result in ["delivered", "failed"] {
        metrics::counter!("linkdrop_webhook_attempts_total", "result" => result).increment(0);
    }
    declare_counter(
        "linkdrop_webhook_dead_total",
        "Messages that failed their last attempt: dead letters",
    );
    declare_counter(
        "linkdrop_webhook_endpoints_disabled_total",
        "Endpoints disabled (410, or failing for LINKDROP_WEBHOOK_DISABLE_AFTER_MS)",
    );
}

/// Starts the dispatcher (the webhooks role).
pub fn start(deps: DispatcherDeps, shutdown: CancellationToken) -> RoleHandle {
    let dispatcher = Dispatcher::new(deps.db, deps.guard, deps.settings, Arc::new(SystemClock));
    RoleHandle::new("webhooks").with_task(tokio::spawn(dispatcher.run(deps.poll, shutdown)))
}
