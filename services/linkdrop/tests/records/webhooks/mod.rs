//! Merchant webhooks: endpoints, deliveries enqueued by the outbox and claimed by the
//! dispatcher, attempts, failing and disabled endpoints, dead letters, redelivery and
//! retention — and the real dispatcher, woken by the writers, delivers signed webhooks on
//! either backend.

mod deliveries;
mod dispatcher;
mod endpoints;
mod health;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use linkdrop_domain::model::DeliveryState;
use linkdrop_domain::webhook_secrets::SealingKey;
use linkdrop_domain::webhook_signature::generate_secret;
use linkdrop_records::db::Db;
use linkdrop_records::webhooks::deliveries::{self as records, Claimed, Delivery, Moved};
use linkdrop_records::webhooks::endpoints::{self as stored_endpoints, NewEndpoint};
use linkdrop_records::webhooks::outbox::{MerchantEvent, enqueue};
use linkdrop_webhooks::Settings;
use linkdrop_webhooks::dispatcher::Attempt;
use linkdrop_webhooks::guard::Guard;
use serde_json::json;

use crate::support::WEBHOOK_SECRET_KEY;

const MERCHANT: &str = "m_hooks";
const T0: i64 = 1_700_000_000_000;
const DAY_MS: i64 = 24 * 3_600_000;

fn sealing() -> SealingKey {
    SealingKey::parse(WEBHOOK_SECRET_KEY).unwrap()
}

/// Stores an endpoint of `merchant_id` for `events` with a fresh secret (sealed); the
/// secret as the merchant sees it.
async fn endpoint(
    db: &Db,
    id: &str,
    merchant_id: &str,
    url: &str,
    events: &[&str],
    created_at_ms: i64,
) -> String {
    let secret = generate_secret();
    let events: Vec<String> = events.iter().map(|e| e.to_string()).collect();
    stored_endpoints::insert(
        db,
        &NewEndpoint {
            id,
            merchant_id,
            url,
            events: &events,
            sealed_secret: &sealing().seal(&secret, id),
            created_at_ms,
        },
    )
    .await
    .unwrap();
    secret.expose().to_string()
}

/// Writes one event of [`MERCHANT`] to the outbox, as the writers do, in a transaction.
async fn event(db: &Db, subject: &str, event_type: &'static str, at_ms: i64) -> MerchantEvent {
    let event = MerchantEvent::new(
        subject,
        MERCHANT,
        event_type,
        &json!({"order_id": subject}),
        at_ms,
    );
    let mut tx = db.begin().await.unwrap();
    enqueue(&mut tx, std::slice::from_ref(&event), at_ms)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    event
}

fn answered(status: u16) -> Attempt {
    Attempt {
        status_code: Some(status),
        error: None,
        duration_ms: 12,
        response_body: Some(format!("answered {status}")),
        retry_after_ms: None,
    }
}

/// Logs `attempt` for `delivery` and moves the delivery on, in one transaction.
async fn record(db: &Db, delivery: &Claimed, attempt: Attempt, at_ms: i64, moved: Moved<'_>) {
    let mut tx = db.begin().await.unwrap();
    records::log_attempts(&mut tx, at_ms, &[attempt.logged(delivery)])
        .await
        .unwrap();
    records::move_on(&mut tx, &[moved]).await.unwrap();
    tx.commit().await.unwrap();
}

/// The latest deliveries to an endpoint (in `state` only, if given).
async fn deliveries_to(db: &Db, endpoint_id: &str, state: Option<DeliveryState>) -> Vec<Delivery> {
    records::list(db, endpoint_id, state, 100).await.unwrap()
}

/// The status codes of the attempts at an endpoint, newest first.
async fn attempt_codes(db: &Db, endpoint_id: &str) -> Vec<Option<i32>> {
    records::list_attempts(db, endpoint_id, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.status_code)
        .collect()
}

fn settings() -> Settings {
    Settings {
        timeout: Duration::from_secs(5),
        disable_after_ms: 3 * DAY_MS,
        attempts_retention_ms: 7 * DAY_MS,
        sealing: sealing(),
    }
}

fn guard() -> Guard {
    Guard::new(vec!["127.0.0.0/8".parse().unwrap()], false)
}

/// A receiver that answers every webhook with `status`; how many it received.
async fn answering(status: u16) -> (String, Arc<AtomicUsize>) {
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}
