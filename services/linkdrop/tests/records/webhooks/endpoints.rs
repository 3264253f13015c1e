//! Endpoints are stored, listed, enabled and deleted with what they own.

use linkdrop_domain::events::merchant_event::{DROP_CLOSED, ORDER_CREATED};
use linkdrop_records::webhooks::deliveries as records;
use linkdrop_records::webhooks::endpoints::{self, Endpoint};

use super::*;
use crate::support::both_record_stores as both;

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
        let view = |id: &str, url: &str, events: &[&str], created_at_ms| Endpoint {
            id: id.into(),
            url: url.into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            disabled_at_ms: None,
            disabled_reason: None,
            created_at_ms,
        };
        assert_eq!(
            endpoints::list(&db, MERCHANT).await.unwrap(),
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
            endpoints::owner(&db, "we_c").await.unwrap().as_deref(),
            Some("m_other")
        );
        assert_eq!(endpoints::owner(&db, "we_x").await.unwrap(), None);

        // Enabling an endpoint that is enabled changes nothing; an unknown one is not found.
        assert_eq!(
            endpoints::enable(&db, "we_b").await.unwrap(),
            view("we_b", "https://b.example/hook", &[ORDER_CREATED], T0)
        );
        assert!(matches!(
            endpoints::enable(&db, "we_x").await,
            Err(sqlx::Error::RowNotFound)
        ));

        // Deleting takes the endpoint's deliveries and attempts with it.
        let message = event(&db, "ord_1", ORDER_CREATED, T0).await;
        let claimed = records::claim(&db, T0, 10, 1_000).await.unwrap();
        assert_eq!(claimed.len(), 2, "{db:?}");
        let to_b = claimed.iter().find(|c| c.endpoint_id == "we_b").unwrap();
        let moved = Moved {
            message_id: &message.id,
            endpoint_id: "we_b",
            state: DeliveryState::Pending,
            attempts: 1,
            next_attempt_at_ms: T0 + 5_000,
        };
        record(&db, to_b, answered(500), T0, moved).await;
        assert!(endpoints::delete(&db, "we_b").await.unwrap());
        assert!(!endpoints::delete(&db, "we_b").await.unwrap());
        assert_eq!(
            endpoints::list(&db, MERCHANT)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>(),
            ["we_a"]
        );
        assert_eq!(deliveries_to(&db, "we_b", None).await, vec![], "{db:?}");
        assert_eq!(attempt_codes(&db, "we_b").await, vec![], "{db:?}");
        assert_eq!(deliveries_to(&db, "we_a", None).await.len(), 1);
    }
}
