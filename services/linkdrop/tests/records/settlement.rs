//! Settlement writes each event of a batch once, with its merchant events and their
//! deliveries, and wakes the dispatchers when it commits.

use linkdrop_domain::events::{
    DropSoldOut, OrderAccepted, OrderDrawn, OrderEvent, OrderExpired, OrderPaid,
};
use linkdrop_domain::model::OrderStatus;
use linkdrop_records::db::Db;
use linkdrop_records::settlement::{SettleError, Settled, settle_batch};
use linkdrop_records::webhooks::outbox;
use serde_json::Value;

use crate::common::{ADMITTED, FCFS, LOTTERY, rows, seed};
use crate::support::{PATIENCE, both_record_stores as both};

pub(crate) fn accepted(order_id: &str, drop_id: &str, status: OrderStatus, qty: u32) -> OrderEvent {
    OrderEvent::Accepted(OrderAccepted {
        order_id: order_id.into(),
        drop_id: drop_id.into(),
        user_id: format!("user_{order_id}"),
        qty,
        status,
        admitted_at_ms: ADMITTED,
        pay_by_ms: (status == OrderStatus::Reserved).then_some(ADMITTED + 600_000),
        idempotency_key: format!("key_{order_id}"),
    })
}

pub(crate) fn drawn(order_id: &str, status: OrderStatus) -> OrderEvent {
    OrderEvent::Drawn(OrderDrawn {
        order_id: order_id.into(),
        drop_id: LOTTERY.into(),
        user_id: format!("user_{order_id}"),
        status,
        drawn_at_ms: ADMITTED + 60_000,
        pay_by_ms: (status == OrderStatus::Reserved).then_some(ADMITTED + 660_000),
    })
}

pub(crate) fn paid(order_id: &str, drop_id: &str) -> OrderEvent {
    OrderEvent::Paid(OrderPaid {
        order_id: order_id.into(),
        drop_id: drop_id.into(),
        user_id: format!("user_{order_id}"),
        paid_at_ms: ADMITTED + 30_000,
        payment_ref: format!("pay_{order_id}"),
    })
}

pub(crate) fn expired(order_id: &str, drop_id: &str) -> OrderEvent {
    OrderEvent::Expired(OrderExpired {
        order_id: order_id.into(),
        drop_id: drop_id.into(),
        user_id: format!("user_{order_id}"),
        qty: 1,
        expired_at_ms: ADMITTED + 600_001,
    })
}

pub(crate) fn settled(
    inserted: usize,
    drawn: usize,
    paid: usize,
    expired: usize,
    dup: usize,
) -> Settled {
    Settled {
        inserted,
        drawn,
        paid,
        expired,
        duplicates: dup,
    }
}

pub(crate) type OrderRow = (
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

/// Every order: id, merchant, status, qty, pay-by, paid-at, payment reference.
pub(crate) async fn orders(db: &Db) -> Vec<OrderRow> {
    rows(
        db,
        "SELECT order_id, merchant_id, status, CAST(qty AS BIGINT), pay_by_ms, paid_at_ms,
                payment_ref
         FROM orders ORDER BY order_id",
    )
    .await
}

/// Every webhook message: id, merchant, type.
pub(crate) async fn messages(db: &Db) -> Vec<(String, String, String)> {
    rows(
        db,
        "SELECT id, merchant_id, event_type FROM webhook_messages ORDER BY id",
    )
    .await
}

/// Every delivery: message, endpoint, state.
pub(crate) async fn deliveries(db: &Db) -> Vec<(String, String, String)> {
    rows(
        db,
        "SELECT message_id, endpoint_id, state FROM webhook_deliveries
         ORDER BY endpoint_id, message_id",
    )
    .await
}

/// The `data` of a stored message.
async fn message_data(db: &Db, id: &str) -> Value {
    let body: Vec<(String,)> = rows(
        db,
        &format!("SELECT body FROM webhook_messages WHERE id = '{id}'"),
    )
    .await;
    let body: Value = serde_json::from_str(&body[0].0).unwrap();
    body["data"].clone()
}

fn message(subject: &str, event: &str) -> (String, String, String) {
    (
        format!("msg_{subject}_{}", event.replace('.', "_")),
        "m_1".to_string(),
        event.to_string(),
    )
}

fn delivery(subject: &str, event: &str, endpoint: &str) -> (String, String, String) {
    (
        message(subject, event).0,
        endpoint.to_string(),
        "pending".to_string(),
    )
}

#[tokio::test]
async fn settlement_applies_each_event_once_and_queues_its_webhooks_on_both_backends() {
    for db in both().await {
        seed(&db).await;
        let first = vec![
            accepted("ord_a1", FCFS, OrderStatus::Reserved, 2),
            accepted("ord_a1", FCFS, OrderStatus::Reserved, 2),
            accepted("ord_a2", FCFS, OrderStatus::Reserved, 1),
            accepted("ord_e1", LOTTERY, OrderStatus::Entered, 1),
            accepted("ord_e2", LOTTERY, OrderStatus::Entered, 1),
            OrderEvent::SoldOut(DropSoldOut {
                drop_id: FCFS.into(),
                sold_out_at_ms: ADMITTED + 5,
            }),
        ];
        let mut dispatchers = db.listen(outbox::DUE).await.unwrap();
        assert_eq!(
            settle_batch(&db, &first, || ()).await.unwrap(),
            settled(4, 0, 0, 0, 1),
            "{db:?}"
        );
        tokio::time::timeout(PATIENCE, dispatchers.notified())
            .await
            .unwrap_or_else(|_| panic!("the commit woke the dispatchers ({db:?})"));
        let pay_by = Some(ADMITTED + 600_000);
        let order = |id: &str, status: &str, qty: i64, pay_by_ms: Option<i64>| -> OrderRow {
            (
                id.into(),
                "m_1".into(),
                status.into(),
                qty,
                pay_by_ms,
                None,
                None,
            )
        };
        assert_eq!(
            orders(&db).await,
            [
                order("ord_a1", "reserved", 2, pay_by),
                order("ord_a2", "reserved", 1, pay_by),
                order("ord_e1", "entered", 1, None),
                order("ord_e2", "entered", 1, None),
            ],
            "{db:?}"
        );
        let sold_out = format!("{FCFS}_{}", ADMITTED + 5);
        assert_eq!(
            messages(&db).await,
            [
                message(&sold_out, "drop.sold_out"),
                message("ord_a1", "order.created"),
                message("ord_a2", "order.created"),
            ],
            "lottery entries are not orders yet ({db:?})"
        );
        assert_eq!(
            deliveries(&db).await,
            [
                delivery(&sold_out, "drop.sold_out", "wh_all"),
                delivery("ord_a1", "order.created", "wh_all"),
                delivery("ord_a2", "order.created", "wh_all"),
            ],
            "only enabled endpoints subscribed to the type ({db:?})"
        );
        let created = message_data(&db, "msg_ord_a1_order_created").await;
        assert_eq!(
            (&created["qty"], &created["status"], &created["pay_by_ms"]),
            (
                &Value::from(2),
                &Value::from("reserved"),
                &Value::from(ADMITTED + 600_000)
            )
        );

        // Redelivered: nothing changes; the sold-out event is stored once by its id.
        assert_eq!(
            settle_batch(&db, &first, || ()).await.unwrap(),
            settled(0, 0, 0, 0, 5),
            "{db:?}"
        );
        assert_eq!(messages(&db).await.len(), 3, "{db:?}");
        assert_eq!(deliveries(&db).await.len(), 3, "{db:?}");

        let second = vec![
            drawn("ord_e1", OrderStatus::Reserved),
            drawn("ord_e2", OrderStatus::Lost),
            paid("ord_a1", FCFS),
            expired("ord_a2", FCFS),
            // A lost entry cannot be paid.
            paid("ord_e2", LOTTERY),
        ];
        assert_eq!(
            settle_batch(&db, &second, || ()).await.unwrap(),
            settled(0, 2, 1, 1, 1),
            "{db:?}"
        );
        let mut paid_a1 = order("ord_a1", "paid", 2, pay_by);
        paid_a1.5 = Some(ADMITTED + 30_000);
        paid_a1.6 = Some("pay_ord_a1".into());
        assert_eq!(
            orders(&db).await,
            [
                paid_a1,
                order("ord_a2", "expired", 1, pay_by),
                order("ord_e1", "reserved", 1, Some(ADMITTED + 660_000)),
                order("ord_e2", "lost", 1, None),
            ],
            "{db:?}"
        );
        assert_eq!(
            messages(&db).await,
            [
                message(&sold_out, "drop.sold_out"),
                message("ord_a1", "order.created"),
                message("ord_a1", "order.paid"),
                message("ord_a2", "order.created"),
                message("ord_a2", "order.expired"),
                message("ord_e1", "order.created"),
            ],
            "{db:?}"
        );
        assert_eq!(
            deliveries(&db).await,
            [
                delivery(&sold_out, "drop.sold_out", "wh_all"),
                delivery("ord_a1", "order.created", "wh_all"),
                delivery("ord_a1", "order.paid", "wh_all"),
                delivery("ord_a2", "order.created", "wh_all"),
                delivery("ord_a2", "order.expired", "wh_all"),
                delivery("ord_e1", "order.created", "wh_all"),
                delivery("ord_a1", "order.paid", "wh_paid"),
            ],
            "{db:?}"
        );
        let paid_data = message_data(&db, "msg_ord_a1_order_paid").await;
        assert_eq!(
            (
                &paid_data["qty"],
                &paid_data["payment_ref"],
                &paid_data["paid_at_ms"],
                &paid_data["merchant_id"]
            ),
            (
                &Value::from(2),
                &Value::from("pay_ord_a1"),
                &Value::from(ADMITTED + 30_000),
                &Value::from("m_1")
            )
        );
        let expired_data = message_data(&db, "msg_ord_a2_order_expired").await;
        assert_eq!(
            (&expired_data["expired_at_ms"], &expired_data["pay_by_ms"]),
            (
                &Value::from(ADMITTED + 600_001),
                &Value::from(ADMITTED + 600_000)
            )
        );
        let won = message_data(&db, "msg_ord_e1_order_created").await;
        assert_eq!(won["pay_by_ms"], Value::from(ADMITTED + 660_000));

        // Redelivered: every outcome was applied already.
        assert_eq!(
            settle_batch(&db, &second, || ()).await.unwrap(),
            settled(0, 0, 0, 0, 5),
            "{db:?}"
        );
        assert_eq!(messages(&db).await.len(), 6, "{db:?}");

        // An order's whole life in one batch applies kind by kind.
        let life = vec![
            paid("ord_a3", FCFS),
            accepted("ord_a3", FCFS, OrderStatus::Reserved, 1),
        ];
        assert_eq!(
            settle_batch(&db, &life, || ()).await.unwrap(),
            settled(1, 0, 1, 0, 0),
            "{db:?}"
        );
        assert_eq!(orders(&db).await[2].2, "paid", "{db:?}");
    }
}

#[tokio::test]
async fn settlement_of_an_unknown_drop_writes_nothing_on_both_backends() {
    for db in both().await {
        seed(&db).await;
        let batch = vec![
            accepted("ord_a1", FCFS, OrderStatus::Reserved, 1),
            accepted("ord_x1", "drp_unknown", OrderStatus::Reserved, 1),
        ];
        match settle_batch(&db, &batch, || ()).await {
            Err(SettleError::UnknownDrops(drops)) => assert_eq!(drops, ["drp_unknown"]),
            other => panic!("{other:?} ({db:?})"),
        }
        assert!(orders(&db).await.is_empty(), "{db:?}");
        assert!(messages(&db).await.is_empty(), "{db:?}");
    }
}
