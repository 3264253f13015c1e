//! `/healthz`, `/readyz` and `/metrics`, served by every role. `/metrics` runs the checks
//! of `/readyz` too and exports their outcome as `linkdrop_ready`, so that a process that
//! answers but cannot reach a backend shows in Prometheus as well.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::backends::Probe;
use crate::telemetry::{collect_process_metrics, metrics_handle, record_readiness};

/// What `/readyz` checks and reports.
#[derive(Clone)]
pub struct Ops {
    probes: Arc<Vec<Probe>>,
    /// Which kind of backends this process runs on, e.g. `redis+kafka+postgres`.
    backend: &'static str,
    roles: Arc<Vec<&'static str>>,
}

impl Ops {
    pub fn new(probes: Vec<Probe>, backend: &'static str, roles: Vec<&'static str>) -> Self {
        Self {
            probes: Arc::new(probes),
            backend,
            roles: Arc::new(roles),
        }
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self)
    }
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(ops): State<Ops>) -> impl IntoResponse {
    let results = probe_all(&ops.probes).await;
    let ready = results.iter().all(|(_, r)| r.is_ok());
    record_readiness(&ops.roles, ready);
    let checks: Map<String, Value> = results
        .into_iter()
        .map(|(name, result)| {
            let value = match result {
                Ok(()) => json!("ok"),
                Err(e) => json!(format!("error: {e}")),
            };
            (name.to_string(), value)
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "backend": ops.backend,
        "roles": *ops.roles,
        "checks": checks,
    });
    (status, Json(body))
}

async fn probe_all(probes: &[Probe]) -> Vec<(&'static str, Result<(), String>)> {
    let mut set = tokio::task::JoinSet::new();
    for (i, probe) in probes.iter().cloned().enumerate() {
        set.spawn(async move { (i, probe.name(), probe.check().await) });
    }
    let mut results = set.join_all().await;
    results.sort_by_key(|(i, _, _)| *i);
    results.into_iter().map(|(_, n, r)| (n, r)).collect()
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    let ready = probe_all(&ops.probes).await.iter().all(|(_, r)| r.is_ok());
    record_readiness(&ops.roles, ready);
    collect_process_metrics();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics_handle().render(),
    )
}
