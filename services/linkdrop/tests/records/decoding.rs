//! A stored value that does not parse is an error naming its column and the value, never a
//! default. The schema's checks keep such values out; a value written past them (by a
//! newer version, or by hand) shows how the records react.

use linkdrop_domain::events::merchant_event::ORDER_CREATED;
use linkdrop_domain::model::OrderStatus;
use linkdrop_records::db::Db;
use linkdrop_records::settlement::settle_batch;
use linkdrop_records::webhooks::outbox::{self, MerchantEvent};
use linkdrop_records::{drops, orders};

use crate::common::{FCFS, exec, seed};
use crate::settlement::accepted;
use crate::support::both_record_stores as both;

/// Runs `update` without the CHECK constraint `constraint` of `table`.
async fn write_unchecked(db: &Db, table: &str, constraint: &str, update: &str) {
    match db {
        Db::Postgres(_) => {
            exec(
                db,
                &format!("ALTER TABLE {table} DROP CONSTRAINT {constraint}"),
            )
            .await;
            exec(db, update).await;
        }
        Db::Sqlite(pool) => {
            // A connection's own setting: set and reset on the one that writes.
            let mut conn = pool.acquire().await.unwrap();
            for sql in [
                "PRAGMA ignore_check_constraints = ON",
                update,
                "PRAGMA ignore_check_constraints = OFF",
            ] {
                sqlx::query(sql).execute(&mut *conn).await.unwrap();
            }
        }
    }
}

fn assert_names(error: sqlx::Error, column: &str, value: &str) {
    let text = error.to_string();
    assert!(
        text.contains(column) && text.contains(value),
        "{text:?} names {column} and {value:?}"
    );
}

#[tokio::test]
async fn an_unknown_order_status_is_an_error_naming_the_column_on_both_backends() {
    for db in both().await {
        seed(&db).await;
        let batch = [accepted("ord_1", FCFS, OrderStatus::Reserved, 1)];
        settle_batch(&db, &batch, || ()).await.unwrap();
        write_unchecked(
            &db,
            "orders",
            "orders_status_check",
            "UPDATE orders SET status = 'refunded'",
        )
        .await;
        assert_names(
            orders::find(&db, "ord_1").await.unwrap_err(),
            "orders.status",
            "refunded",
        );
        let all = orders::OrderFilter {
            merchant_id: None,
            drop_id: None,
            status: None,
            after: None,
            limit: 10,
        };
        assert_names(
            orders::list(&db, &all).await.unwrap_err(),
            "orders.status",
            "refunded",
        );
    }
}

#[tokio::test]
async fn an_unknown_delivery_state_is_an_error_naming_the_column_on_both_backends() {
    use linkdrop_records::webhooks::deliveries;
    for db in both().await {
        seed(&db).await;
        let event = MerchantEvent::new("ord_1", "m_1", ORDER_CREATED, &serde_json::json!({}), 1);
        let mut tx = db.begin().await.unwrap();
        outbox::enqueue(&mut tx, &[event], 1).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            deliveries::list(&db, "wh_all", None, 10)
                .await
                .unwrap()
                .len(),
            1,
            "{db:?}"
        );
        write_unchecked(
            &db,
            "webhook_deliveries",
            "webhook_deliveries_state_check",
            "UPDATE webhook_deliveries SET state = 'bounced'",
        )
        .await;
        assert_names(
            deliveries::list(&db, "wh_all", None, 10).await.unwrap_err(),
            "webhook_deliveries.state",
            "bounced",
        );
    }
}

#[tokio::test]
async fn an_unknown_drop_policy_is_an_error_naming_the_column_on_both_backends() {
    for db in both().await {
        seed(&db).await;
        assert!(drops::find(&db, FCFS).await.unwrap().is_some());
        write_unchecked(
            &db,
            "drops",
            "drops_policy_check",
            "UPDATE drops SET policy = 'auction'",
        )
        .await;
        assert_names(
            drops::find(&db, FCFS).await.unwrap_err(),
            "drops.policy",
            "auction",
        );
    }
}
