//! The outbox makes deliveries; dispatchers claim them, log attempts and move them on;
//! old attempts are deleted.

use std::sync::Arc;

use linkdrop_domain::clock::ManualClock;
use linkdrop_domain::events::merchant_event::{DROP_CLOSED, ORDER_CREATED};
use linkdrop_records::webhooks::deliveries::{self, LoggedAttempt};
use linkdrop_records::webhooks::{endpoints, retention};
use linkdrop_webhooks::Dispatcher;

use super::*;
use crate::support::both_record_stores as both;

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
            deliveries::message_owner(&db, &message.id)
                .await
                .unwrap()
                .as_deref(),
            Some(MERCHANT)
        );
        assert_eq!(deliveries::message_owner(&db, "msg_x").await.unwrap(), None);

        let pending = Delivery {
            message_id: message.id.clone(),
            event_type: ORDER_CREATED.into(),
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at_ms: T0,
            created_at_ms: T0,
        };
        assert_eq!(
            deliveries_to(&db, "we_1", None).await,
            vec![pending.clone()],
            "{db:?}"
        );
        assert_eq!(
            deliveries_to(&db, "we_1", Some(DeliveryState::Pending))
                .await
                .len(),
            1
        );
        assert_eq!(
            deliveries_to(&db, "we_1", Some(DeliveryState::Delivered)).await,
            vec![]
        );
        assert_eq!(
            deliveries_to(&db, "we_2", None).await,
            vec![],
            "not subscribed"
        );
        assert_eq!(
            deliveries_to(&db, "we_3", None).await,
            vec![],
            "another merchant"
        );

        // Not before it is due.
        assert_eq!(
            deliveries::claim(&db, T0 - 1, 10, 1_000).await.unwrap(),
            vec![]
        );
        let claimed = deliveries::claim(&db, T0, 10, 1_000).await.unwrap();
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
            deliveries::claim(&db, T0 + 1_000, 10, 1_000).await.unwrap(),
            vec![]
        );

        // A rotated secret is claimed with the previous one next to it.
        endpoints::rotate_secret(
            &db,
            "we_1",
            &sealing().seal(&generate_secret(), "we_1"),
            T0 + DAY_MS,
        )
        .await
        .unwrap();
        let again = deliveries::claim(&db, T0 + 1_001, 10, 1_000).await.unwrap();
        assert_eq!(again.len(), 1, "the lock expired ({db:?})");
        assert_ne!(again[0].secret, claim.secret);
        assert_eq!(again[0].previous_secret.as_ref(), Some(&claim.secret));
        assert_eq!(again[0].previous_secret_until_ms, Some(T0 + DAY_MS));

        // At most a batch, earliest due first.
        event(&db, "ord_2", ORDER_CREATED, T0 + 10).await;
        event(&db, "ord_3", ORDER_CREATED, T0 + 20).await;
        let batch = deliveries::claim(&db, T0 + 5_000, 2, 1_000).await.unwrap();
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
        let claim = deliveries::claim(&db, T0, 10, 60_000)
            .await
            .unwrap()
            .remove(0);
        let retry = Moved {
            message_id: &message.id,
            endpoint_id: "we_1",
            state: DeliveryState::Pending,
            attempts: 1,
            next_attempt_at_ms: T0 + 5_000,
        };

        // Nothing is kept of a transaction that is not committed.
        let mut tx = db.begin().await.unwrap();
        deliveries::log_attempts(&mut tx, T0, &[answered(500).logged(&claim)])
            .await
            .unwrap();
        deliveries::move_on(&mut tx, std::slice::from_ref(&retry))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(attempt_codes(&db, "we_1").await, vec![], "{db:?}");
        assert_eq!(deliveries_to(&db, "we_1", None).await[0].attempts, 0);

        let failed = Attempt {
            status_code: None,
            error: Some("connection refused".into()),
            duration_ms: 3,
            response_body: None,
            retry_after_ms: None,
        };
        record(&db, &claim, failed, T0 + 1, retry.clone()).await;
        assert_eq!(
            deliveries::list_attempts(&db, "we_1", 100).await.unwrap(),
            vec![LoggedAttempt {
                message_id: message.id.clone(),
                attempted_at_ms: T0 + 1,
                status_code: None,
                error: Some("connection refused".into()),
                duration_ms: 3,
                response_body: None,
            }],
            "{db:?}"
        );
        let view = deliveries_to(&db, "we_1", None).await.remove(0);
        assert_eq!(
            (view.state, view.attempts, view.next_attempt_at_ms),
            (DeliveryState::Pending, 1, T0 + 5_000)
        );
        // The move released the claim: due again at the retry, not before.
        assert_eq!(
            deliveries::claim(&db, T0 + 4_999, 10, 60_000)
                .await
                .unwrap(),
            vec![]
        );
        let second = deliveries::claim(&db, T0 + 5_000, 10, 60_000)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(second.attempts, 1);

        let done = Moved {
            state: DeliveryState::Delivered,
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
        let attempts = deliveries::list_attempts(&db, "we_1", 1).await.unwrap();
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].response_body.as_deref(), Some("answered 204"));
        assert_eq!(attempts[0].duration_ms, 12);
        assert_eq!(
            deliveries_to(&db, "we_1", Some(DeliveryState::Delivered)).await[0].attempts,
            2,
            "{db:?}"
        );
        assert_eq!(
            deliveries_to(&db, "we_1", Some(DeliveryState::Pending)).await,
            vec![]
        );
        assert_eq!(
            deliveries::claim(&db, T0 + DAY_MS, 10, 60_000)
                .await
                .unwrap(),
            vec![]
        );
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
        let claim = deliveries::claim(&db, T0, 10, 60_000)
            .await
            .unwrap()
            .remove(0);
        let mut tx = db.begin().await.unwrap();
        for (at, status) in [(T0, 500), (T0 + 1_000, 502), (T0 + 8 * DAY_MS, 200)] {
            deliveries::log_attempts(&mut tx, at, &[answered(status).logged(&claim)])
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        assert_eq!(
            retention::purge_attempts(&db, T0 + 1).await.unwrap(),
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
        deliveries::log_attempts(&mut tx, T0, &[answered(503).logged(&claim)])
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
            deliveries_to(&db, "we_1", None).await[0].message_id,
            message.id
        );
    }
}
