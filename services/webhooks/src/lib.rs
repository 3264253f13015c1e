//! The webhooks role: merchants' endpoints API ([`endpoints`]) and the dispatcher that
//! delivers the webhook outbox ([`dispatcher`]) with Standard Webhooks signatures, a retry
//! schedule ([`schedule`]) and an SSRF guard ([`guard`]).

pub mod dispatcher;
pub mod endpoints;
pub mod guard;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::{delete, get, post};
use linkdrop_domain::auth::Auth;
use linkdrop_domain::clock::SystemClock;
use linkdrop_domain::role::RoleHandle;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::dispatcher::Dispatcher;
use crate::guard::Guard;

/// What the endpoints API shares.
#[derive(Clone)]
pub struct WebhooksState {
    pub db: PgPool,
    pub auth: Auth,
    pub guard: Guard,
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
        .with_state(state)
}

/// Settings of one dispatcher.
pub struct DispatcherDeps {
    pub db: PgPool,
    pub guard: Guard,
    pub poll: Duration,
    pub timeout: Duration,
}

/// Starts the dispatcher (the webhooks role).
pub fn start(deps: DispatcherDeps, shutdown: CancellationToken) -> RoleHandle {
    let dispatcher = Dispatcher::new(deps.db, deps.guard, deps.timeout, Arc::new(SystemClock));
    RoleHandle::new("webhooks").with_task(tokio::spawn(dispatcher.run(deps.poll, shutdown)))
}
