//! Merchant webhooks against PostgreSQL and a local receiver: the retry schedule driven by a
//! manual clock (no waiting through it), 410 and long failure disabling an endpoint, dead
//! letters and replay, secret rotation verified with the Standard Webhooks reference
//! library, sealed secrets, attempts retention and the SSRF guard at registration.

use linkdrop_testkit as support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use linkdrop::startup::Role;
use linkdrop_domain::clock::{Clock, ManualClock, now_ms};
use linkdrop_domain::webhook_secrets::SealingKey;
use linkdrop_records::webhooks::outbox::{MerchantEvent, enqueue};
use linkdrop_webhooks::guard::Guard;
use linkdrop_webhooks::schedule::{MAX_ATTEMPTS, RETRY_DELAYS_MS};
use linkdrop_webhooks::{Dispatcher, Settings};
use serde_json::json;
use support::{Delivery, TestApp, WEBHOOK_SECRET_KEY, spawn_roles, verify_with_reference_library};

const MERCHANT: &str = "m_hooks";
const DISABLE_AFTER_MS: i64 = 3 * 24 * 3_600_000;
const RETENTION_MS: i64 = 7 * 24 * 3_600_000;

/// A receiver that answers the statuses it is given, in order, then 200; it keeps every
/// delivery with the status it answered.
#[derive(Clone, Default)]
struct ScriptedReceiver {
    script: Arc<Mutex<VecDeque<u16>>>,
    received: Arc<Mutex<Vec<(u16, Delivery)>>>,
}

impl ScriptedReceiver {
    async fn start(script: &[u16]) -> (Self, String) {
        let receiver = Self {
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            ..Self::default()
        };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let state = state.clone();
                async move {
                    let status = state.script.lock().unwrap().pop_front().unwrap_or(200);
                    let headers = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                        .collect();
                    state
                        .received
                        .lock()
                        .unwrap()
                        .push((status, Delivery { headers, body }));
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn statuses(&self) -> Vec<u16> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(s, _)| *s)
            .collect()
    }

    fn last(&self) -> Delivery {
        self.received.lock().unwrap().last().unwrap().1.clone()
    }
}

/// The API (control role only, no dispatcher of its own) and a dispatcher on a manual clock.
struct Harness {
    app: TestApp,
    clock: Arc<ManualClock>,
    dispatcher: Dispatcher,
}

impl Harness {
    async fn start() -> Self {
        let app = spawn_roles(&[Role::Control], &[]).await;
        let clock = Arc::new(ManualClock::starting_at(now_ms()));
        let settings = Settings {
            timeout: Duration::from_secs(5),
            disable_after_ms: DISABLE_AFTER_MS,
            attempts_retention_ms: RETENTION_MS,
            sealing: SealingKey::parse(WEBHOOK_SECRET_KEY).unwrap(),
        };
        let guard = Guard::new(vec!["127.0.0.0/8".parse().unwrap()], false);
        let dispatcher = Dispatcher::new(app.db.clone(), guard, settings, clock.clone());
        Self {
            app,
            clock,
            dispatcher,
        }
    }

    /// Registers an endpoint for `order.created`; its id and secret.
    async fn endpoint(&self, url: &str) -> (String, String) {
        let answer = self
            .app
            .admin_post(
                "/v1/webhook-endpoints",
                json!({"url": url, "events": ["order.created"], "merchant_id": MERCHANT}),
            )
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        let id = answer.body["id"].as_str().unwrap().to_string();
        (id, answer.body["secret"].as_str().unwrap().to_string())
    }

    /// Writes one merchant event to the outbox as settlement does; its message id.
    async fn event(&self, order: &str) -> String {
        let event = MerchantEvent::new(
            order,
            MERCHANT,
            "order.created",
            &json!({"order_id": order}),
            self.clock.now_ms(),
        );
        let mut tx = self.app.db.clone().begin().await.unwrap();
        enqueue(&mut tx, std::slice::from_ref(&event), self.clock.now_ms())
            .await
            .unwrap();
        tx.commit().await.unwrap();
        event.id
    }

    /// One dispatcher round at the clock's time; how many deliveries it attempted.
    async fn round(&self) -> usize {
        self.dispatcher.run_once().await.unwrap()
    }

    async fn delivery_state(&self, message_id: &str) -> (String, i32, i64) {
        sqlx::query_as(
            "SELECT state, attempts, next_attempt_at_ms FROM webhook_deliveries
             WHERE message_id = $1",
        )
        .bind(message_id)
        .fetch_one(self.app.postgres())
        .await
        .unwrap()
    }

    async fn attempts_logged(&self, endpoint: &str) -> Vec<Option<i64>> {
        let answer = self
            .app
            .admin_get(&format!("/v1/webhook-endpoints/{endpoint}/attempts"))
            .await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let mut codes: Vec<Option<i64>> = answer.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["status_code"].as_i64())
            .collect();
        codes.reverse(); // oldest first
        codes
    }

    async fn endpoint_view(&self, endpoint: &str) -> serde_json::Value {
        let answer = self
            .app
            .admin_get(&format!("/v1/webhook-endpoints?merchant_id={MERCHANT}"))
            .await;
        answer.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == endpoint)
            .unwrap()
            .clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_arrives_once_after_failures_on_the_retry_schedule() {
    let h = Harness::start().await;
    let (receiver, url) = ScriptedReceiver::start(&[500, 503, 500]).await;
    let (endpoint, _) = h.endpoint(&url).await;
    let message = h.event("ord_a").await;
    let mut previous_due = h.clock.now_ms();
    for failure in 0..3 {
        assert_eq!(h.round().await, 1, "attempt {} is due", failure + 1);
        let (state, attempts, due) = h.delivery_state(&message).await;
        assert_eq!((state.as_str(), attempts), ("pending", failure + 1));
        let base = RETRY_DELAYS_MS[failure as usize];
        let delay = due - h.clock.now_ms();
        assert!(
            (base * 8 / 10..=base * 12 / 10).contains(&delay),
            "retry {} after {delay} ms, schedule says {base} ± 20 %",
            failure + 1
        );
        // Not a moment before it is due.
        h.clock.advance(due - h.clock.now_ms() - 1);
        assert_eq!(h.round().await, 0, "retry {} is not due yet", failure + 1);
        h.clock.advance(1);
        assert!(due > previous_due);
        previous_due = due;
    }
    assert_eq!(h.round().await, 1);
    assert_eq!(receiver.statuses(), vec![500, 503, 500, 200]);
    assert_eq!(h.delivery_state(&message).await.0, "delivered");
    assert_eq!(
        h.attempts_logged(&endpoint).await,
        vec![Some(500), Some(503), Some(500), Some(200)]
    );
    h.clock.advance(RETRY_DELAYS_MS.iter().sum());
    assert_eq!(h.round().await, 0, "a delivered message is not sent again");
    let ids: Vec<String> = receiver
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, d)| d.headers["webhook-id"].clone())
        .collect();
    assert!(
        ids.iter().all(|id| *id == message),
        "one stable id: {ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn gone_disables_the_endpoint_until_the_merchant_enables_it() {
    let h = Harness::start().await;
    let (receiver, url) = ScriptedReceiver::start(&[410]).await;
    let (endpoint, _) = h.endpoint(&url).await;
    let first = h.event("ord_g1").await;
    assert_eq!(h.round().await, 1);
    assert_eq!(h.delivery_state(&first).await.0, "dead");
    let view = h.endpoint_view(&endpoint).await;
    assert!(view["disabled_at_ms"].is_i64(), "{view}");
    assert_eq!(view["disabled_reason"], "the endpoint answered 410 Gone");

    // While disabled, nothing is sent; new events get no delivery.
    h.event("ord_g2").await;
    h.clock.advance(60_000);
    assert_eq!(h.round().await, 0);
    assert_eq!(receiver.statuses(), vec![410]);

    let enabled = h
        .app
        .admin_post(
            &format!("/v1/webhook-endpoints/{endpoint}/enable"),
            json!({}),
        )
        .await;
    assert_eq!(enabled.status, 200, "{enabled:?}");
    assert!(enabled.body["disabled_at_ms"].is_null());
    let third = h.event("ord_g3").await;
    assert_eq!(h.round().await, 1);
    assert_eq!(h.delivery_state(&third).await.0, "delivered");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_failing_for_the_configured_period_is_disabled() {
    let h = Harness::start().await;
    let (_receiver, url) = ScriptedReceiver::start(&[500; 4096]).await;
    let (endpoint, _) = h.endpoint(&url).await;
    h.event("ord_f1").await;
    assert_eq!(h.round().await, 1);
    assert!(h.endpoint_view(&endpoint).await["disabled_at_ms"].is_null());
    // A new message each hour keeps failing, until the streak is DISABLE_AFTER_MS long.
    let mut hours = 0;
    while h.endpoint_view(&endpoint).await["disabled_at_ms"].is_null() {
        hours += 1;
        assert!(
            hours * 3_600_000 <= DISABLE_AFTER_MS + 3_600_000,
            "never disabled"
        );
        h.clock.advance(3_600_000);
        h.event(&format!("ord_f{}", hours + 1)).await;
        h.round().await;
    }
    assert_eq!(
        hours * 3_600_000,
        DISABLE_AFTER_MS,
        "disabled as soon as the period passed"
    );
    assert_eq!(
        h.endpoint_view(&endpoint).await["disabled_reason"],
        "every attempt failed for too long"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_letter_is_listed_and_replay_sends_it_again() {
    let h = Harness::start().await;
    let (receiver, url) = ScriptedReceiver::start(&[500; MAX_ATTEMPTS as usize]).await;
    let (endpoint, _) = h.endpoint(&url).await;
    let message = h.event("ord_d").await;
    for _ in 0..MAX_ATTEMPTS {
        assert_eq!(h.round().await, 1);
        let (_, _, due) = h.delivery_state(&message).await;
        h.clock.advance((due - h.clock.now_ms()).max(0));
    }
    let (state, attempts, _) = h.delivery_state(&message).await;
    assert_eq!((state.as_str(), attempts), ("dead", MAX_ATTEMPTS));
    h.clock.advance(RETRY_DELAYS_MS.iter().sum());
    assert_eq!(h.round().await, 0, "a dead letter is not retried");
    let dead = h
        .app
        .admin_get(&format!(
            "/v1/webhook-endpoints/{endpoint}/deliveries?state=dead"
        ))
        .await;
    assert_eq!(dead.status, 200, "{dead:?}");
    assert_eq!(dead.body["items"][0]["message_id"], message.as_str());
    assert_eq!(dead.body["items"][0]["attempts"], MAX_ATTEMPTS);

    let replay = h
        .app
        .admin_post(&format!("/v1/webhook-messages/{message}/replay"), json!({}))
        .await;
    assert_eq!(replay.status, 202, "{replay:?}");
    assert_eq!(replay.body["endpoints"], 1);
    assert_eq!(h.round().await, 1);
    assert_eq!(h.delivery_state(&message).await.0, "delivered");
    assert_eq!(receiver.statuses().last(), Some(&200));
    assert_eq!(receiver.last().headers["webhook-id"], message);

    let unknown = h
        .app
        .admin_post("/v1/webhook-messages/msg_nope/replay", json!({}))
        .await;
    assert_eq!(unknown.status, 404, "{unknown:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_secret_signs_next_to_the_old_one_for_a_day() {
    let h = Harness::start().await;
    let (receiver, url) = ScriptedReceiver::start(&[]).await;
    let (endpoint, old) = h.endpoint(&url).await;
    let rotated = h
        .app
        .admin_post(
            &format!("/v1/webhook-endpoints/{endpoint}/rotate-secret"),
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{rotated:?}");
    let new = rotated.body["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(new.starts_with("whsec_"));

    h.event("ord_r1").await;
    assert_eq!(h.round().await, 1);
    let during = receiver.last();
    assert_eq!(during.headers["webhook-signature"].split(' ').count(), 2);
    verify_with_reference_library(&new, &during)
        .await
        .expect("the new secret verifies");
    verify_with_reference_library(&old, &during)
        .await
        .expect("the old secret still verifies");

    h.clock.advance(24 * 3_600_000 + 1_000);
    h.event("ord_r2").await;
    assert_eq!(h.round().await, 1);
    let after = receiver.last();
    assert_eq!(after.headers["webhook-signature"].split(' ').count(), 1);
    // A day later on the manual clock the reference library would refuse the timestamp
    // as too new (it compares with the real clock), so the one signature is compared with
    // the new secret's directly.
    let timestamp: i64 = after.headers["webhook-timestamp"].parse().unwrap();
    let expected = linkdrop_domain::webhook_signature::sign(
        &linkdrop_domain::secret::Secret::new(new.clone()),
        &after.headers["webhook-id"],
        timestamp,
        &after.body,
    )
    .unwrap();
    assert_eq!(
        after.headers["webhook-signature"], expected,
        "only the new secret signs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_stored_sealed() {
    let h = Harness::start().await;
    let (_receiver, url) = ScriptedReceiver::start(&[]).await;
    let (endpoint, secret) = h.endpoint(&url).await;
    let stored: String = sqlx::query_scalar("SELECT secret FROM webhook_endpoints WHERE id = $1")
        .bind(&endpoint)
        .fetch_one(h.app.postgres())
        .await
        .unwrap();
    assert!(stored.starts_with("sealed:v1:"), "{stored}");
    let key_part = secret.trim_start_matches("whsec_");
    assert!(!stored.contains(key_part));
    let opened = SealingKey::parse(WEBHOOK_SECRET_KEY)
        .unwrap()
        .open(&stored, &endpoint)
        .unwrap();
    assert_eq!(opened.expose(), secret);
}

#[tokio::test(flavor = "multi_thread")]
async fn attempts_past_the_retention_are_purged() {
    let h = Harness::start().await;
    let (_receiver, url) = ScriptedReceiver::start(&[]).await;
    let (endpoint, _) = h.endpoint(&url).await;
    h.event("ord_p1").await;
    assert_eq!(h.round().await, 1);
    assert_eq!(h.dispatcher.purge_old_attempts().await.unwrap(), 0);
    h.clock.advance(RETENTION_MS / 2);
    h.event("ord_p2").await;
    assert_eq!(h.round().await, 1);
    assert_eq!(h.attempts_logged(&endpoint).await.len(), 2);
    h.clock.advance(RETENTION_MS / 2 + 1);
    assert_eq!(h.dispatcher.purge_old_attempts().await.unwrap(), 1);
    assert_eq!(h.attempts_logged(&endpoint).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn private_and_loopback_targets_are_refused_without_the_allowlist() {
    let app = spawn_roles(&[Role::Control], &[("LINKDROP_WEBHOOK_ALLOW_NETS", "")]).await;
    for url in [
        "http://127.0.0.1/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost/hook",
        "http://[::1]/hook",
    ] {
        let answer = app
            .admin_post(
                "/v1/webhook-endpoints",
                json!({"url": url, "events": ["order.created"], "merchant_id": MERCHANT}),
            )
            .await;
        assert_eq!(answer.status, 422, "{url}: {answer:?}");
        assert_eq!(answer.body["code"], "invalid");
        assert_eq!(answer.body["errors"][0]["field"], "url", "{url}");
    }
}
