//! Drops: stored and read back, listed, launched, closed (and the close announced once).

use linkdrop_domain::events::{merchant_event, merchant_event_id};
use linkdrop_domain::model::{Fairness, Room};
use linkdrop_records::db::Db;
use linkdrop_records::drops::{self, DropRecord};
use linkdrop_records::rooms;
use serde_json::Value;

use crate::support::both_record_stores as both;

const CREATED_AT_MS: i64 = 1_700_000_000_000;

async fn room(db: &Db, id: &str) {
    rooms::insert(
        db,
        &Room {
            id: id.into(),
            title: format!("Room {id}"),
            merchant_id: "m_1".into(),
            created_at_ms: CREATED_AT_MS,
        },
    )
    .await
    .unwrap();
}

/// A draft first-come drop of `room_id`.
fn fcfs(id: &str, room_id: &str) -> DropRecord {
    DropRecord {
        id: id.into(),
        room_id: room_id.into(),
        merchant_id: "m_1".into(),
        sku: format!("sku-{id}"),
        title: format!("Drop {id}"),
        image_url: "https://img.example/1.png".into(),
        price_cents: 12_999_000_000, // more than an i32 holds: the column is bigint
        currency: "EUR".into(),
        stock: 100,
        max_per_user: 2,
        fairness: Fairness::Fcfs,
        pay_within_s: 600,
        phase: "draft".into(),
        opens_at_ms: None,
        closed_at_ms: None,
        seed_hash: None,
        created_at_ms: CREATED_AT_MS,
    }
}

/// A draft lottery drop of `room_id`.
fn lottery(id: &str, room_id: &str) -> DropRecord {
    DropRecord {
        fairness: Fairness::Lottery { window_ms: 30_000 },
        stock: 5,
        max_per_user: 1,
        pay_within_s: 120,
        ..fcfs(id, room_id)
    }
}

/// One integer (a count) from a query without binds, on either backend.
async fn count(db: &Db, sql: &str) -> i64 {
    match db {
        Db::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
    }
}

/// The stored webhook message `id`: its type and body.
async fn message(db: &Db, id: &str) -> (String, String) {
    let sql = "SELECT event_type, body FROM webhook_messages WHERE id = ";
    match db {
        Db::Postgres(pool) => sqlx::query_as(&format!("{sql}$1"))
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap(),
        Db::Sqlite(pool) => sqlx::query_as(&format!("{sql}?"))
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap(),
    }
}

/// An enabled endpoint of merchant `m_1` subscribed to `drop.closed`, and one of another
/// merchant: only the first gets a delivery.
async fn endpoints(db: &Db) {
    match db {
        Db::Postgres(pool) => {
            sqlx::query(
                "INSERT INTO webhook_endpoints (id, merchant_id, url, events, secret, created_at_ms)
                 VALUES ('we_1', 'm_1', 'https://hooks.example/1', ARRAY['drop.closed'], 's', 1),
                        ('we_2', 'm_2', 'https://hooks.example/2', ARRAY['drop.closed'], 's', 1)",
            )
            .execute(pool)
            .await
            .unwrap();
        }
        Db::Sqlite(pool) => {
            sqlx::query(
                "INSERT INTO webhook_endpoints (id, merchant_id, url, events, secret, created_at_ms)
                 VALUES ('we_1', 'm_1', 'https://hooks.example/1', '[\"drop.closed\"]', 's', 1),
                        ('we_2', 'm_2', 'https://hooks.example/2', '[\"drop.closed\"]', 's', 1)",
            )
            .execute(pool)
            .await
            .unwrap();
        }
    }
}

#[tokio::test]
async fn drops_are_stored_and_read_back_equal_on_both_backends() {
    for db in both().await {
        room(&db, "room_1").await;
        let plain = fcfs("drop_1", "room_1");
        let drawn = lottery("drop_2", "room_1");
        drops::insert(&db, &plain).await.unwrap();
        drops::insert(&db, &drawn).await.unwrap();
        assert_eq!(
            drops::find(&db, "drop_1").await.unwrap(),
            Some(plain.clone()),
            "{db:?}"
        );
        assert_eq!(
            drops::find(&db, "drop_2").await.unwrap(),
            Some(drawn),
            "{db:?}"
        );
        assert_eq!(drops::find(&db, "drop_x").await.unwrap(), None, "{db:?}");
        assert!(
            drops::insert(&db, &plain).await.is_err(),
            "a drop is stored once ({db:?})"
        );
        assert!(
            drops::insert(&db, &fcfs("drop_3", "room_unknown"))
                .await
                .is_err(),
            "a drop belongs to a stored room ({db:?})"
        );
    }
}

#[tokio::test]
async fn a_rooms_drops_are_listed_newest_first_on_both_backends() {
    for db in both().await {
        room(&db, "room_1").await;
        room(&db, "room_2").await;
        for (id, room_id) in [
            ("drop_b", "room_1"),
            ("drop_a", "room_1"),
            ("drop_z", "room_2"),
            ("drop_c", "room_1"),
        ] {
            drops::insert(&db, &fcfs(id, room_id)).await.unwrap();
        }
        let listed = drops::list_room(&db, "room_1").await.unwrap();
        let ids: Vec<&str> = listed.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["drop_c", "drop_b", "drop_a"], "{db:?}");
        assert_eq!(listed[0], fcfs("drop_c", "room_1"), "{db:?}");
        assert_eq!(
            drops::list_room(&db, "room_2").await.unwrap(),
            [fcfs("drop_z", "room_2")]
        );
        assert!(drops::list_room(&db, "room_3").await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_launch_records_the_opening_time_and_seed_hash_on_both_backends() {
    for db in both().await {
        room(&db, "room_1").await;
        drops::insert(&db, &fcfs("drop_1", "room_1")).await.unwrap();
        drops::insert(&db, &lottery("drop_2", "room_1"))
            .await
            .unwrap();

        drops::record_launch(&db, "drop_1", CREATED_AT_MS + 3_000, None)
            .await
            .unwrap();
        drops::record_launch(&db, "drop_2", CREATED_AT_MS + 5_000, Some("ab12"))
            .await
            .unwrap();

        let plain = drops::find(&db, "drop_1").await.unwrap().unwrap();
        assert_eq!(
            plain,
            DropRecord {
                phase: "launched".into(),
                opens_at_ms: Some(CREATED_AT_MS + 3_000),
                ..fcfs("drop_1", "room_1")
            },
            "{db:?}"
        );
        let drawn = drops::find(&db, "drop_2").await.unwrap().unwrap();
        assert_eq!(
            drawn,
            DropRecord {
                phase: "launched".into(),
                opens_at_ms: Some(CREATED_AT_MS + 5_000),
                seed_hash: Some("ab12".into()),
                ..lottery("drop_2", "room_1")
            },
            "{db:?}"
        );
    }
}

#[tokio::test]
async fn a_close_is_recorded_and_announced_once_on_both_backends() {
    for db in both().await {
        room(&db, "room_1").await;
        endpoints(&db).await;
        let row = fcfs("drop_1", "room_1");
        drops::insert(&db, &row).await.unwrap();
        drops::insert(&db, &fcfs("drop_2", "room_1")).await.unwrap();
        let closed_at_ms = CREATED_AT_MS + 60_000;

        assert!(
            drops::record_close(&db, &row, closed_at_ms, closed_at_ms + 5)
                .await
                .unwrap(),
            "the first close records it ({db:?})"
        );
        // A retry (with the time Redis answers again) changes nothing and announces nothing.
        assert!(
            !drops::record_close(&db, &row, closed_at_ms + 1_000, closed_at_ms + 1_005)
                .await
                .unwrap(),
            "{db:?}"
        );

        assert_eq!(
            drops::find(&db, "drop_1").await.unwrap(),
            Some(DropRecord {
                phase: "closed".into(),
                closed_at_ms: Some(closed_at_ms),
                ..row.clone()
            }),
            "{db:?}"
        );
        assert_eq!(
            drops::find(&db, "drop_2").await.unwrap().unwrap().phase,
            "draft",
            "only the closed drop changes ({db:?})"
        );

        let id = merchant_event_id("drop_1", merchant_event::DROP_CLOSED);
        assert_eq!(count(&db, "SELECT COUNT(*) FROM webhook_messages").await, 1);
        let (event_type, body) = message(&db, &id).await;
        assert_eq!(event_type, "drop.closed");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["type"], "drop.closed");
        assert_eq!(body["data"]["drop_id"], "drop_1");
        assert_eq!(body["data"]["merchant_id"], "m_1");
        assert_eq!(body["data"]["closed_at_ms"], closed_at_ms);
        // One delivery, to the merchant's endpoint, due at once.
        assert_eq!(
            count(
                &db,
                &format!(
                    "SELECT COUNT(*) FROM webhook_deliveries
                     WHERE message_id = '{id}' AND endpoint_id = 'we_1'
                       AND next_attempt_at_ms = {}",
                    closed_at_ms + 5
                )
            )
            .await,
            1,
            "{db:?}"
        );
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM webhook_deliveries").await,
            1,
            "{db:?}"
        );
    }
}

#[tokio::test]
async fn a_close_of_an_unknown_drop_records_nothing_on_both_backends() {
    for db in both().await {
        let ghost = fcfs("drop_ghost", "room_1");
        assert!(
            !drops::record_close(&db, &ghost, CREATED_AT_MS, CREATED_AT_MS)
                .await
                .unwrap(),
            "{db:?}"
        );
        assert_eq!(count(&db, "SELECT COUNT(*) FROM webhook_messages").await, 0);
    }
}
