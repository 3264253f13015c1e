//! The webhooks role's records behave the same on PostgreSQL (the stack) and SQLite (the
//! embedded backend): endpoints, deliveries enqueued by the outbox and claimed by the
//! dispatcher, attempts, failing and disabled endpoints, dead letters, redelivery and
//! retention — and the real dispatcher, woken by the writers, delivers signed webhooks on
//! either.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use linkdrop_domain::clock::{Clock, ManualClock, now_ms};
use linkdrop_domain::events::merchant_event::{DROP_CLOSED, ORDER_CREATED};
use linkdrop_domain::webhook_secrets::SealingKey;
use linkdrop_domain::webhook_signature::generate_secret;
use linkdrop_records::db::Db;
use linkdrop_records::webhook_outbox::{MerchantEvent, enqueue};
use linkdrop_webhooks::dispatcher::Attempt;
use linkdrop_webhooks::guard::Guard;
use linkdrop_webhooks::schedule::MAX_ATTEMPTS;
use linkdrop_webhooks::store::{self, Claimed, DeliveryView, EndpointView, Moved};
use linkdrop_webhooks::{Dispatcher, DispatcherDeps, Settings};
use serde_json::json;
use support::{WEBHOOK_SECRET_KEY, WebhookReceiver, both_record_stores as both};
use tokio_util::sync::CancellationToken;

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
    store::insert_endpoint(
        db,
        &store::NewEndpoint {
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
    store::log_attempts(&mut tx, at_ms, &[(delivery.clone(), attempt)])
        .await
        .unwrap();
    store::move_deliveries(&mut tx, &[moved]).await.unwrap();
    tx.commit().await.unwrap();
}

async fn deliveries(db: &Db, endpoint_id: &str, state: Option<&str>) -> Vec<DeliveryView> {
    store::list_deliveries(db, endpoint_id, state, 100)
        .await
        .unwrap()
}

async fn attempt_codes(db: &Db, endpoint_id: &str) -> Vec<Option<i32>> {
    store::list_attempts(db, endpoint_id, 100)
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

#[tokio::test]
async fn endpoints_are_stored_listed_enabled_and_deleted_on_both_backends() {
    for db in both().await {
        endpoint(
            &db,
            "we_b",
            MERCHANT,
            "https://b.example/hook",
            &[ORDER_CREATED],
            T0,
        )
        .await;
        endpoint(
            &db,
            "we_a",
            MERCHANT,
            "https://a.example/hook",
            &[ORDER_CREATED, DROP_CLOSED],
            T0 + 1,
        )
        .await;
        endpoint(
            &db,
            "we_c",
            "m_other",
            "https://c.example/hook",
            &[DROP_CLOSED],
            T0,
        )
        .await;
        let view = |id: &str, url: &str, events: &[&str], created_at_ms| EndpointView {
            id: id.into(),
            url: url.into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            disabled_at_ms: None,
            disabled_reason: None,
            created_at_ms,
        };
        assert_eq!(
            store::list_endpoints(&db, MERCHANT).await.unwrap(),
            vec![
                view(
                    "we_a",
                    "https://a.example/hook",
                    &[ORDER_CREATED, DROP_CLOSED],
                    T0 + 1
                ),
                view("we_b", "https://b.example/hook", &[ORDER_CREATED], T0),
            ],
            "{db:?}"
        );
        assert_eq!(
            store::endpoint_owner(&db, "we_c").await.unwrap().as_deref(),
            Some("m_other")
        );
        assert_eq!(store::endpoint_owner(&db, "we_x").await.unwrap(), None);

        // Enabling an endpoint that is enabled changes nothing; an unknown one is not found.
        assert_eq!(
            store::enable_endpoint(&db, "we_b").await.unwrap(),
            view("we_b", "https://b.example/hook", &[ORDER_CREATED], T0)
        );
        assert!(matches!(
            store::enable_endpoint(&db, "we_x").await,
            Err(sqlx::Error::RowNotFound)
        ));

        // Deleting takes the endpoint's deliveries and attempts with it.
        let message = event(&db, "ord_1", ORDER_CREATED, T0).await;
        let claimed = store::claim(&db, T0, 10, 1_000).await.unwrap();
        assert_eq!(claimed.len(), 2, "{db:?}");
        let to_b = claimed.iter().find(|c| c.endpoint_id == "we_b").unwrap();
        let moved = Moved {
            message_id: &message.id,
            endpoint_id: "we_b",
            state: "pending",
            attempts: 1,
            next_attempt_at_ms: T0 + 5_000,
        };
        record(&db, to_b, answered(500), T0, moved).await;
        assert!(store::delete_endpoint(&db, "we_b").await.unwrap());
        assert!(!store::delete_endpoint(&db, "we_b").await.unwrap());
        assert_eq!(
            store::list_endpoints(&db, MERCHANT)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>(),
            ["we_a"]
        );
        assert_eq!(deliveries(&db, "we_b", None).await, vec![], "{db:?}");
        assert_eq!(attempt_codes(&db, "we_b").await, vec![], "{db:?}");
        assert_eq!(deliveries(&db, "we_a", None).await.len(), 1);
    }
}

#[tokio::test]
async fn an_enqueued_message_becomes_a_delivery_that_the_dispatcher_claims_on_both_backends() {
    for db in both().await {
        let secret = endpoint(
            &db,
            "we_1",
            MERCHANT,
            "http://127.0.0.1:9/hook",
            &[ORDER_CREATED],
            T0,
        )
        .await;
        endpoint(
            &db,
            "we_2",
            MERCHANT,
            "http://127.0.0.1:9/other",
            &[DROP_CLOSED],
            T0,
        )
        .await;
        endpoint(
            &db,
            "we_3",
            "m_other",
            "http://127.0.0.1:9/third",
            &[ORDER_CREATED],
            T0,
        )
        .await;
        let message = event(&db, "ord_1", ORDER_CREATED, T0).await;
        // The same event again (a redelivered Kafka record) is stored once.
        event(&db, "ord_1", ORDER_CREATED, T0 + 5).await;
        assert_eq!(
            store::message_owner(&db, &message.id)
                .await
                .unwrap()
                .as_deref(),
            Some(MERCHANT)
        );
        assert_eq!(store::message_owner(&db, "msg_x").await.unwrap(), None);

        let pending = DeliveryView {
            message_id: message.id.clone(),
            event_type: ORDER_CREATED.into(),
            state: "pending".into(),
            attempts: 0,
            next_attempt_at_ms: T0,
            created_at_ms: T0,
        };
        assert_eq!(
            deliveries(&db, "we_1", None).await,
            vec![pending.clone()],
            "{db:?}"
        );
        assert_eq!(deliveries(&db, "we_1", Some("pending")).await.len(), 1);
        assert_eq!(deliveries(&db, "we_1", Some("delivered")).await, vec![]);
        assert_eq!(
            deliveries(&db, "we_2", None).await,
            vec![],
            "not subscribed"
        );
        assert_eq!(
            deliveries(&db, "we_3", None).await,
            vec![],
            "another merchant"
        );

        // Not before it is due.
        assert_eq!(store::claim(&db, T0 - 1, 10, 1_000).await.unwrap(), vec![]);
        let claimed = store::claim(&db, T0, 10, 1_000).await.unwrap();
        assert_eq!(claimed.len(), 1, "{db:?}");
        let claim = &claimed[0];
        assert_eq!(
            (
                claim.message_id.as_str(),
                claim.endpoint_id.as_str(),
                claim.attempts
            ),
            (message.id.as_str(), "we_1", 0)
        );
        assert_eq!(claim.body, message.body);
        assert_eq!(claim.url, "http://127.0.0.1:9/hook");
        assert_eq!(
            sealing().open(&claim.secret, "we_1").unwrap().expose(),
            secret
        );
        assert_eq!(
            (&claim.previous_secret, claim.previous_secret_until_ms),
            (&None, None)
        );
        // Claimed, it is locked until the lock expires.
        assert_eq!(
            store::claim(&db, T0 + 1_000, 10, 1_000).await.unwrap(),
            vec![]
        );

        // A rotated secret is claimed with the previous one next to it.
        store::rotate_secret(
            &db,
            "we_1",
            &sealing().seal(&generate_secret(), "we_1"),
            T0 + DAY_MS,
        )
        .await
        .unwrap();
        let again = store::claim(&db, T0 + 1_001, 10, 1_000).await.unwrap();
        assert_eq!(again.len(), 1, "the lock expired ({db:?})");
        assert_ne!(again[0].secret, claim.secret);
        assert_eq!(again[0].previous_secret.as_ref(), Some(&claim.secret));
        assert_eq!(again[0].previous_secret_until_ms, Some(T0 + DAY_MS));

        // At most a batch, earliest due first.
        event(&db, "ord_2", ORDER_CREATED, T0 + 10).await;
        event(&db, "ord_3", ORDER_CREATED, T0 + 20).await;
        let batch = store::claim(&db, T0 + 5_000, 2, 1_000).await.unwrap();
        assert_eq!(
            batch
                .iter()
                .map(|c| c.message_id.as_str())
                .collect::<Vec<_>>(),
            [message.id.as_str(), "msg_ord_2_order_created"],
            "{db:?}"
        );
    }
}

#[tokio::test]
async fn attempts_are_logged_and_deliveries_move_on_on_both_backends() {
    for db in both().await {
        endpoint(
            &db,
            "we_1",
            MERCHANT,
            "http://127.0.0.1:9/hook",
            &[ORDER_CREATED],
            T0,
        )
        .await;
        let message = event(&db, "ord_1", ORDER_CREATED, T0).await;
        let claim = store::claim(&db, T0, 10, 60_000).await.unwrap().remove(0);
        let retry = Moved {
            message_id: &message.id,
            endpoint_id: "we_1",
            state: "pending",
            attempts: 1,
            next_attempt_at_ms: T0 + 5_000,
        };

        // Nothing is kept of a transaction that is not committed.
        let mut tx = db.begin().await.unwrap();
        store::log_attempts(&mut tx, T0, &[(claim.clone(), answered(500))])
            .await
            .unwrap();
        store::move_deliveries(&mut tx, std::slice::from_ref(&retry))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(attempt_codes(&db, "we_1").await, vec![], "{db:?}");
        assert_eq!(deliveries(&db, "we_1", None).await[0].attempts, 0);

        let failed = Attempt {
            status_code: None,
            error: Some("connection refused".into()),
            duration_ms: 3,
            response_body: None,
            retry_after_ms: None,
        };
        record(&db, &claim, failed, T0 + 1, retry.clone()).await;
        assert_eq!(
            store::list_attempts(&db, "we_1", 100).await.unwrap(),
            vec![store::AttemptView {
                message_id: message.id.clone(),
                attempted_at_ms: T0 + 1,
                status_code: None,
                error: Some("connection refused".into()),
                duration_ms: 3,
                response_body: None,
            }],
            "{db:?}"
        );
        let view = deliveries(&db, "we_1", None).await.remove(0);
        assert_eq!(
            (view.state.as_str(), view.attempts, view.next_attempt_at_ms),
            ("pending", 1, T0 + 5_000)
        );
        // The move released the claim: due again at the retry, not before.
        assert_eq!(
            store::claim(&db, T0 + 4_999, 10, 60_000).await.unwrap(),
            vec![]
        );
        let second = store::claim(&db, T0 + 5_000, 10, 60_000)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(second.attempts, 1);

        let done = Moved {
            state: "delivered",
            attempts: 2,
            next_attempt_at_ms: T0 + 5_000,
            ..retry
        };
        record(&db, &second, answered(204), T0 + 5_000, done).await;
        assert_eq!(
            attempt_codes(&db, "we_1").await,
            vec![Some(204), None],
            "newest first"
        );
        let attempts = store::list_attempts(&db, "we_1", 1).await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].response_body.as_deref(), Some("answered 204"));
        assert_eq!(attempts[0].duration_ms, 12);
        assert_eq!(
            deliveries(&db, "we_1", Some("delivered")).await[0].attempts,
            2,
            "{db:?}"
        );
        assert_eq!(deliveries(&db, "we_1", Some("pending")).await, vec![]);
        assert_eq!(
            store::claim(&db, T0 + DAY_MS, 10, 60_000).await.unwrap(),
            vec![]
        );
    }
}

#[tokio::test]
async fn failing_endpoints_are_disabled_after_the_period_and_gone_ones_at_once_on_both_backends() {
    const PERIOD: i64 = 500;
    for db in both().await {
        endpoint(
            &db,
            "we_1",
            MERCHANT,
            "http://127.0.0.1:9/hook",
            &[ORDER_CREATED],
            T0,
        )
        .await;
        endpoint(
            &db,
            "we_2",
            MERCHANT,
            "http://127.0.0.1:9/gone",
            &[DROP_CLOSED],
            T0,
        )
        .await;
        let failed = |at: i64| {
            let db = db.clone();
            async move {
                let mut tx = db.begin().await.unwrap();
                let disabled = store::endpoint_failed(&mut tx, "we_1", at, PERIOD, false)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                disabled
            }
        };
        let disabled_of = |id: &'static str| {
            let db = db.clone();
            async move {
                let view = store::list_endpoints(&db, MERCHANT)
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|e| e.id == id)
                    .unwrap();
                (view.disabled_at_ms, view.disabled_reason)
            }
        };
        let waiting = event(&db, "ord_0", ORDER_CREATED, T0).await;
        assert_eq!(failed(T0 + 1_000).await, Some(false), "{db:?}");
        assert_eq!(failed(T0 + 1_499).await, Some(false), "the streak is young");
        // An answer ends the streak; a new one starts with the next failure.
        let mut tx = db.begin().await.unwrap();
        store::endpoint_answered(&mut tx, "we_1").await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(failed(T0 + 1_600).await, Some(false), "{db:?}");
        assert_eq!(disabled_of("we_1").await, (None, None));
        assert_eq!(failed(T0 + 2_100).await, Some(true), "{db:?}");
        assert_eq!(
            disabled_of("we_1").await,
            (
                Some(T0 + 2_100),
                Some("every attempt failed for too long".into())
            )
        );
        assert_eq!(failed(T0 + 3_000).await, None, "disabled already");
        let mut tx = db.begin().await.unwrap();
        let unknown = store::endpoint_failed(&mut tx, "we_x", T0, PERIOD, false)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(unknown, None);

        // A disabled endpoint's deliveries wait, and it gets no new ones.
        assert_eq!(
            store::claim(&db, T0 + 3_000, 10, 1_000).await.unwrap(),
            vec![]
        );
        let later = event(&db, "ord_1", ORDER_CREATED, T0 + 2_500).await;
        assert_eq!(
            deliveries(&db, "we_1", None)
                .await
                .into_iter()
                .map(|d| d.message_id)
                .collect::<Vec<_>>(),
            [waiting.id.as_str()],
            "{db:?}"
        );
        assert_eq!(
            store::redeliver(&db, &later.id, T0 + 3_000).await.unwrap(),
            0
        );

        // Enabled again, what waited is claimed, a replay reaches it, and its failing
        // streak starts over.
        let enabled = store::enable_endpoint(&db, "we_1").await.unwrap();
        assert_eq!(
            (enabled.disabled_at_ms, enabled.disabled_reason),
            (None, None)
        );
        let claimed = store::claim(&db, T0 + 3_000, 10, 1_000).await.unwrap();
        assert_eq!(claimed.len(), 1, "{db:?}");
        assert_eq!(claimed[0].message_id, waiting.id);
        assert_eq!(
            store::redeliver(&db, &later.id, T0 + 3_000).await.unwrap(),
            1
        );
        let claimed = store::claim(&db, T0 + 3_000, 10, 1_000).await.unwrap();
        assert_eq!(claimed.len(), 1, "{db:?}");
        assert_eq!(claimed[0].message_id, later.id);
        assert_eq!(failed(T0 + 4_000).await, Some(false), "{db:?}");

        // 410 Gone disables at once.
        let mut tx = db.begin().await.unwrap();
        let gone = store::endpoint_failed(&mut tx, "we_2", T0 + 5_000, PERIOD, true)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(gone, Some(true), "{db:?}");
        assert_eq!(
            disabled_of("we_2").await,
            (
                Some(T0 + 5_000),
                Some("the endpoint answered 410 Gone".into())
            )
        );
        let closed = event(&db, "drop_1", DROP_CLOSED, T0 + 6_000).await;
        assert_eq!(deliveries(&db, "we_2", None).await, vec![]);
        assert_eq!(
            store::redeliver(&db, &closed.id, T0 + 6_000).await.unwrap(),
            0
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_is_dead_lettered_after_the_schedule_and_redelivered_on_both_backends() {
    for db in both().await {
        let (url, received) = answering(500).await;
        endpoint(&db, "we_1", MERCHANT, &url, &[ORDER_CREATED], T0).await;
        let clock = Arc::new(ManualClock::starting_at(now_ms()));
        let dispatcher = Dispatcher::new(db.clone(), guard(), settings(), clock.clone());
        let message = event(&db, "ord_1", ORDER_CREATED, clock.now_ms()).await;
        for attempt in 1..=MAX_ATTEMPTS {
            assert_eq!(
                dispatcher.run_once().await.unwrap(),
                1,
                "attempt {attempt} ({db:?})"
            );
            let view = deliveries(&db, "we_1", None).await.remove(0);
            assert_eq!(view.attempts, attempt);
            if attempt < MAX_ATTEMPTS {
                assert_eq!(view.state, "pending");
                assert!(view.next_attempt_at_ms > clock.now_ms());
                assert_eq!(dispatcher.run_once().await.unwrap(), 0, "not due yet");
                clock.advance(view.next_attempt_at_ms - clock.now_ms());
            } else {
                assert_eq!(view.state, "dead", "{db:?}");
            }
        }
        assert_eq!(received.load(Ordering::SeqCst), MAX_ATTEMPTS as usize);
        assert_eq!(
            attempt_codes(&db, "we_1").await,
            vec![Some(500); MAX_ATTEMPTS as usize]
        );
        let dead = deliveries(&db, "we_1", Some("dead")).await;
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].message_id, message.id);
        clock.advance(DAY_MS);
        assert_eq!(
            dispatcher.run_once().await.unwrap(),
            0,
            "a dead letter rests"
        );
        let still = store::list_endpoints(&db, MERCHANT).await.unwrap();
        assert_eq!(
            still[0].disabled_at_ms, None,
            "failing for less than the period"
        );

        // Redelivery: the dead letter, and a first delivery to an endpoint added since.
        endpoint(&db, "we_2", MERCHANT, &url, &[ORDER_CREATED], T0).await;
        assert_eq!(
            store::redeliver(&db, &message.id, clock.now_ms())
                .await
                .unwrap(),
            2,
            "{db:?}"
        );
        assert_eq!(
            store::redeliver(&db, "msg_x", clock.now_ms())
                .await
                .unwrap(),
            0
        );
        for endpoint_id in ["we_1", "we_2"] {
            let view = deliveries(&db, endpoint_id, None).await.remove(0);
            assert_eq!(
                (view.state.as_str(), view.attempts, view.next_attempt_at_ms),
                ("pending", 0, clock.now_ms()),
                "{endpoint_id} ({db:?})"
            );
        }
        assert_eq!(dispatcher.run_once().await.unwrap(), 2);
        assert_eq!(received.load(Ordering::SeqCst), MAX_ATTEMPTS as usize + 2);
        assert_eq!(deliveries(&db, "we_1", None).await[0].attempts, 1);
    }
}

#[tokio::test]
async fn attempts_past_their_retention_are_deleted_on_both_backends() {
    for db in both().await {
        endpoint(
            &db,
            "we_1",
            MERCHANT,
            "http://127.0.0.1:9/hook",
            &[ORDER_CREATED],
            T0,
        )
        .await;
        let message = event(&db, "ord_1", ORDER_CREATED, T0).await;
        let claim = store::claim(&db, T0, 10, 60_000).await.unwrap().remove(0);
        let mut tx = db.begin().await.unwrap();
        for (at, status) in [(T0, 500), (T0 + 1_000, 502), (T0 + 8 * DAY_MS, 200)] {
            store::log_attempts(&mut tx, at, &[(claim.clone(), answered(status))])
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        assert_eq!(
            store::purge_attempts(&db, T0 + 1).await.unwrap(),
            1,
            "{db:?}"
        );
        assert_eq!(attempt_codes(&db, "we_1").await, vec![Some(200), Some(502)]);

        // The dispatcher purges what is older than the retention, at most once a minute.
        let clock = Arc::new(ManualClock::starting_at(T0 + 8 * DAY_MS + 1_000));
        let dispatcher = Dispatcher::new(db.clone(), guard(), settings(), clock.clone());
        assert_eq!(dispatcher.purge_old_attempts().await.unwrap(), 1, "{db:?}");
        assert_eq!(attempt_codes(&db, "we_1").await, vec![Some(200)]);
        let mut tx = db.begin().await.unwrap();
        store::log_attempts(&mut tx, T0, &[(claim.clone(), answered(503))])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        clock.advance(59_999);
        assert_eq!(
            dispatcher.purge_old_attempts().await.unwrap(),
            0,
            "not a minute later"
        );
        assert_eq!(attempt_codes(&db, "we_1").await, vec![Some(503), Some(200)]);
        clock.advance(1);
        assert_eq!(dispatcher.purge_old_attempts().await.unwrap(), 1);
        assert_eq!(attempt_codes(&db, "we_1").await, vec![Some(200)]);
        assert_eq!(
            deliveries(&db, "we_1", None).await[0].message_id,
            message.id
        );
    }
}

#[tokio::test]
async fn waking_the_dispatchers_notifies_postgresql_listeners() {
    let db = both().await.remove(0);
    let Db::Postgres(pool) = &db else {
        panic!("PostgreSQL comes first")
    };
    let mut listener = sqlx::postgres::PgListener::connect_with(pool)
        .await
        .unwrap();
    listener.listen("webhook_due").await.unwrap();
    store::wake_dispatchers(&db).await.unwrap();
    let heard = tokio::time::timeout(support::PATIENCE, listener.recv())
        .await
        .expect("notified in time")
        .unwrap();
    assert_eq!(heard.channel(), "webhook_due");
}

/// The real dispatcher, as the webhooks role starts it: woken by the writers (NOTIFY on
/// PostgreSQL, the in-process bell on SQLite; its poll is far away), it delivers signed
/// webhooks to a local receiver and records them delivered.
#[tokio::test(flavor = "multi_thread")]
async fn the_dispatcher_delivers_signed_webhooks_when_woken_on_both_backends() {
    for db in both().await {
        let mut receiver = WebhookReceiver::start().await;
        let secret = endpoint(&db, "we_1", MERCHANT, &receiver.url, &[ORDER_CREATED], T0).await;
        let shutdown = CancellationToken::new();
        let role = linkdrop_webhooks::start(
            DispatcherDeps {
                db: db.clone(),
                guard: guard(),
                poll: Duration::from_secs(3_600),
                settings: settings(),
            },
            shutdown.clone(),
        );

        let first = event(&db, "ord_1", ORDER_CREATED, now_ms()).await;
        let delivery = receiver.next().await;
        assert_eq!(delivery.headers["webhook-id"], first.id, "{db:?}");
        assert_eq!(delivery.body, first.body);
        support::verify_with_reference_library(&secret, &delivery)
            .await
            .unwrap();

        // Written after the first arrived, so the dispatcher may be waiting: the writer's
        // commit wakes it.
        let second = event(&db, "ord_2", ORDER_CREATED, now_ms()).await;
        let delivery = receiver.next().await;
        assert_eq!(delivery.headers["webhook-id"], second.id, "{db:?}");
        support::verify_with_reference_library(&secret, &delivery)
            .await
            .unwrap();

        // The first was recorded before the second was claimed; a replay is woken too.
        assert_eq!(store::redeliver(&db, &first.id, now_ms()).await.unwrap(), 1);
        store::wake_dispatchers(&db).await.unwrap();
        let delivery = receiver.next().await;
        assert_eq!(delivery.headers["webhook-id"], first.id, "{db:?}");

        // Stopping lets a round under way finish: everything is recorded by then.
        shutdown.cancel();
        for task in role.tasks {
            task.await.unwrap();
        }
        let delivered = deliveries(&db, "we_1", Some("delivered")).await;
        assert_eq!(
            delivered
                .iter()
                .map(|d| (d.message_id.as_str(), d.attempts))
                .collect::<Vec<_>>(),
            [(second.id.as_str(), 1), (first.id.as_str(), 1)],
            "{db:?}"
        );
        assert_eq!(
            attempt_codes(&db, "we_1").await,
            vec![Some(200); 3],
            "{db:?}"
        );
    }
}
