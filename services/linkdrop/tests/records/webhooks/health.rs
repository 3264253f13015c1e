//! Failing endpoints are disabled after the period, gone ones at once, and enabled again.

use linkdrop_domain::events::merchant_event::{DROP_CLOSED, ORDER_CREATED};
use linkdrop_records::webhooks::{deliveries, endpoints, health};

use super::*;
use crate::support::both_record_stores as both;

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
                let disabled = health::failed(&mut tx, "we_1", at, PERIOD, false)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                disabled
            }
        };
        let disabled_of = |id: &'static str| {
            let db = db.clone();
            async move {
                let view = endpoints::list(&db, MERCHANT)
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
        health::answered(&mut tx, "we_1").await.unwrap();
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
        let unknown = health::failed(&mut tx, "we_x", T0, PERIOD, false)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(unknown, None);

        // A disabled endpoint's deliveries wait, and it gets no new ones.
        assert_eq!(
            deliveries::claim(&db, T0 + 3_000, 10, 1_000).await.unwrap(),
            vec![]
        );
        let later = event(&db, "ord_1", ORDER_CREATED, T0 + 2_500).await;
        assert_eq!(
            deliveries_to(&db, "we_1", None)
                .await
                .into_iter()
                .map(|d| d.message_id)
                .collect::<Vec<_>>(),
            [waiting.id.as_str()],
            "{db:?}"
        );
        assert_eq!(
            deliveries::redeliver(&db, &later.id, T0 + 3_000)
                .await
                .unwrap(),
            0
        );

        // Enabled again, what waited is claimed, a replay reaches it, and its failing
        // streak starts over.
        let enabled = endpoints::enable(&db, "we_1").await.unwrap();
        assert_eq!(
            (enabled.disabled_at_ms, enabled.disabled_reason),
            (None, None)
        );
        let claimed = deliveries::claim(&db, T0 + 3_000, 10, 1_000).await.unwrap();
        assert_eq!(claimed.len(), 1, "{db:?}");
        assert_eq!(claimed[0].message_id, waiting.id);
        assert_eq!(
            deliveries::redeliver(&db, &later.id, T0 + 3_000)
                .await
                .unwrap(),
            1
        );
        let claimed = deliveries::claim(&db, T0 + 3_000, 10, 1_000).await.unwrap();
        assert_eq!(claimed.len(), 1, "{db:?}");
        assert_eq!(claimed[0].message_id, later.id);
        assert_eq!(failed(T0 + 4_000).await, Some(false), "{db:?}");

        // 410 Gone disables at once.
        let mut tx = db.begin().await.unwrap();
        let gone = health::failed(&mut tx, "we_2", T0 + 5_000, PERIOD, true)
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
        assert_eq!(deliveries_to(&db, "we_2", None).await, vec![]);
        assert_eq!(
            deliveries::redeliver(&db, &closed.id, T0 + 6_000)
                .await
                .unwrap(),
            0
        );
    }
}
