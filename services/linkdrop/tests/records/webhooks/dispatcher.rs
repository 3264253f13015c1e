//! The dispatcher over the records: dead letters after the schedule, redelivery, and the
//! wake-ups that follow the writers' commits.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use linkdrop_domain::clock::{Clock, ManualClock, now_ms};
use linkdrop_domain::events::merchant_event::ORDER_CREATED;
use linkdrop_records::webhooks::{deliveries, endpoints, outbox};
use linkdrop_webhooks::schedule::MAX_ATTEMPTS;
use linkdrop_webhooks::{Dispatcher, DispatcherDeps};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::support::{PATIENCE, WebhookReceiver, both_record_stores as both};

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
            let view = deliveries_to(&db, "we_1", None).await.remove(0);
            assert_eq!(view.attempts, attempt);
            if attempt < MAX_ATTEMPTS {
                assert_eq!(view.state, DeliveryState::Pending);
                assert!(view.next_attempt_at_ms > clock.now_ms());
                assert_eq!(dispatcher.run_once().await.unwrap(), 0, "not due yet");
                clock.advance(view.next_attempt_at_ms - clock.now_ms());
            } else {
                assert_eq!(view.state, DeliveryState::Dead, "{db:?}");
            }
        }
        assert_eq!(received.load(Ordering::SeqCst), MAX_ATTEMPTS as usize);
        assert_eq!(
            attempt_codes(&db, "we_1").await,
            vec![Some(500); MAX_ATTEMPTS as usize]
        );
        let dead = deliveries_to(&db, "we_1", Some(DeliveryState::Dead)).await;
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].message_id, message.id);
        clock.advance(DAY_MS);
        assert_eq!(
            dispatcher.run_once().await.unwrap(),
            0,
            "a dead letter rests"
        );
        let still = endpoints::list(&db, MERCHANT).await.unwrap();
        assert_eq!(
            still[0].disabled_at_ms, None,
            "failing for less than the period"
        );

        // Redelivery: the dead letter, and a first delivery to an endpoint added since.
        endpoint(&db, "we_2", MERCHANT, &url, &[ORDER_CREATED], T0).await;
        assert_eq!(
            deliveries::redeliver(&db, &message.id, clock.now_ms())
                .await
                .unwrap(),
            2,
            "{db:?}"
        );
        assert_eq!(
            deliveries::redeliver(&db, "msg_x", clock.now_ms())
                .await
                .unwrap(),
            0
        );
        for endpoint_id in ["we_1", "we_2"] {
            let view = deliveries_to(&db, endpoint_id, None).await.remove(0);
            assert_eq!(
                (view.state, view.attempts, view.next_attempt_at_ms),
                (DeliveryState::Pending, 0, clock.now_ms()),
                "{endpoint_id} ({db:?})"
            );
        }
        assert_eq!(dispatcher.run_once().await.unwrap(), 2);
        assert_eq!(received.load(Ordering::SeqCst), MAX_ATTEMPTS as usize + 2);
        assert_eq!(deliveries_to(&db, "we_1", None).await[0].attempts, 1);
    }
}

#[tokio::test]
async fn waking_the_dispatchers_notifies_their_listeners_on_both_backends() {
    for db in both().await {
        let mut listener = db.listen(outbox::DUE).await.unwrap();
        // On PostgreSQL it is `NOTIFY webhook_due`, which dispatchers of other processes hear.
        let mut other_process = match &db {
            Db::Postgres(pool) => {
                let mut raw = sqlx::postgres::PgListener::connect_with(pool)
                    .await
                    .unwrap();
                raw.listen("webhook_due").await.unwrap();
                Some(raw)
            }
            Db::Sqlite(_) => None,
        };
        outbox::wake_dispatchers(&db).await.unwrap();
        tokio::time::timeout(PATIENCE, listener.notified())
            .await
            .unwrap_or_else(|_| panic!("notified in time ({db:?})"));
        if let Some(raw) = &mut other_process {
            let heard = tokio::time::timeout(PATIENCE, raw.recv())
                .await
                .expect("notified in time")
                .unwrap();
            assert_eq!(heard.channel(), "webhook_due");
        }
    }
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
        crate::support::verify_with_reference_library(&secret, &delivery)
            .await
            .unwrap();

        // Written after the first arrived, so the dispatcher may be waiting: the writer's
        // commit wakes it.
        let second = event(&db, "ord_2", ORDER_CREATED, now_ms()).await;
        let delivery = receiver.next().await;
        assert_eq!(delivery.headers["webhook-id"], second.id, "{db:?}");
        crate::support::verify_with_reference_library(&secret, &delivery)
            .await
            .unwrap();

        // The first was recorded before the second was claimed; a replay is woken too.
        assert_eq!(
            deliveries::redeliver(&db, &first.id, now_ms())
                .await
                .unwrap(),
            1
        );
        outbox::wake_dispatchers(&db).await.unwrap();
        let delivery = receiver.next().await;
        assert_eq!(delivery.headers["webhook-id"], first.id, "{db:?}");

        // Stopping lets a round under way finish: everything is recorded by then.
        shutdown.cancel();
        for task in role.tasks {
            task.await.unwrap();
        }
        let delivered = deliveries_to(&db, "we_1", Some(DeliveryState::Delivered)).await;
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
