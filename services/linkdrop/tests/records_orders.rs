//! Settlement, the order queries and the lottery's record behave the same on PostgreSQL (the
//! stack) and SQLite (the embedded backend): every check runs against both.

mod support;

use futures::FutureExt;
use linkdrop_domain::events::{
    DropSoldOut, OrderAccepted, OrderDrawn, OrderEvent, OrderExpired, OrderPaid,
};
use linkdrop_domain::model::{OrderStatus, Room};
use linkdrop_orders::store::{self, DrawFigures, OrderFilter};
use linkdrop_records::db::{Db, rooms, webhook_due};
use linkdrop_records::settlement::{SettleError, Settled, settle_batch};
use serde_json::Value;
use support::both_record_stores as both;

const FCFS: &str = "drp_fcfs";
const LOTTERY: &str = "drp_lottery";
const OTHER: &str = "drp_other";
const ADMITTED: i64 = 1_700_000_000_000;

/// Runs `sql` (no binds: the same text works in both dialects).
async fn exec(db: &Db, sql: &str) {
    match db {
        Db::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        Db::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e} ({db:?})"));
}

/// The rows `sql` selects (integer columns cast to BIGINT, which is 64-bit on both).
async fn rows<T>(db: &Db, sql: &str) -> Vec<T>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + Send
        + Unpin,
{
    match db {
        Db::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await,
        Db::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await,
    }
    .unwrap_or_else(|e| panic!("{sql}: {e} ({db:?})"))
}

/// A room, three drops (two of merchant `m_1`, one of `m_2`) and two endpoints of `m_1`:
/// one subscribed to everything, one to `order.paid` only, and a disabled one.
async fn seed(db: &Db) {
    rooms::insert(
        db,
        &Room {
            id: "room_1".into(),
            title: "Room".into(),
            merchant_id: "m_1".into(),
            created_at_ms: ADMITTED,
        },
    )
    .await
    .unwrap();
    for (id, merchant, policy) in [
        (FCFS, "m_1", "fcfs"),
        (LOTTERY, "m_1", "lottery"),
        (OTHER, "m_2", "fcfs"),
    ] {
        exec(
            db,
            &format!(
                "INSERT INTO drops (id, room_id, merchant_id, sku, title, image_url, price_cents,
                                    currency, stock, max_per_user, policy, pay_within_s,
                                    created_at_ms)
                 VALUES ('{id}', 'room_1', '{merchant}', 'sku', 'Drop', 'https://img', 1000,
                         'EUR', 10, 3, '{policy}', 600, {ADMITTED})"
            ),
        )
        .await;
    }
    let events = |list: &[&str]| match db {
        Db::Postgres(_) => format!("ARRAY[{}]", quoted(list)),
        Db::Sqlite(_) => format!("'{}'", serde_json::to_string(list).unwrap()),
    };
    let all = events(&linkdrop_domain::events::merchant_event::ALL);
    let paid = events(&["order.paid"]);
    for (id, events, disabled) in [
        ("wh_all", &all, "NULL"),
        ("wh_paid", &paid, "NULL"),
        ("wh_off", &all, "1"),
    ] {
        exec(
            db,
            &format!(
                "INSERT INTO webhook_endpoints (id, merchant_id, url, events, secret,
                                                disabled_at_ms, created_at_ms)
                 VALUES ('{id}', 'm_1', 'https://hooks', {events}, 'sealed', {disabled},
                         {ADMITTED})"
            ),
        )
        .await;
    }
}

fn quoted(list: &[&str]) -> String {
    list.iter()
        .map(|e| format!("'{e}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn accepted(order_id: &str, drop_id: &str, status: OrderStatus, qty: u32) -> OrderEvent {
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

fn drawn(order_id: &str, status: OrderStatus) -> OrderEvent {
    OrderEvent::Drawn(OrderDrawn {
        order_id: order_id.into(),
        drop_id: LOTTERY.into(),
        user_id: format!("user_{order_id}"),
        status,
        drawn_at_ms: ADMITTED + 60_000,
        pay_by_ms: (status == OrderStatus::Reserved).then_some(ADMITTED + 660_000),
    })
}

fn paid(order_id: &str, drop_id: &str) -> OrderEvent {
    OrderEvent::Paid(OrderPaid {
        order_id: order_id.into(),
        drop_id: drop_id.into(),
        user_id: format!("user_{order_id}"),
        paid_at_ms: ADMITTED + 30_000,
        payment_ref: format!("pay_{order_id}"),
    })
}

fn expired(order_id: &str, drop_id: &str) -> OrderEvent {
    OrderEvent::Expired(OrderExpired {
        order_id: order_id.into(),
        drop_id: drop_id.into(),
        user_id: format!("user_{order_id}"),
        qty: 1,
        expired_at_ms: ADMITTED + 600_001,
    })
}

fn settled(inserted: usize, drawn: usize, paid: usize, expired: usize, dup: usize) -> Settled {
    Settled {
        inserted,
        drawn,
        paid,
        expired,
        duplicates: dup,
    }
}

type OrderRow = (
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

/// Every order: id, merchant, status, qty, pay-by, paid-at, payment reference.
async fn orders(db: &Db) -> Vec<OrderRow> {
    rows(
        db,
        "SELECT order_id, merchant_id, status, CAST(qty AS BIGINT), pay_by_ms, paid_at_ms,
                payment_ref
         FROM orders ORDER BY order_id",
    )
    .await
}

/// Every webhook message: id, merchant, type.
async fn messages(db: &Db) -> Vec<(String, String, String)> {
    rows(
        db,
        "SELECT id, merchant_id, event_type FROM webhook_messages ORDER BY id",
    )
    .await
}

/// Every delivery: message, endpoint, state.
async fn deliveries(db: &Db) -> Vec<(String, String, String)> {
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

/// On SQLite the committed transaction wakes the in-process dispatcher (a permit waits on
/// the notify when nobody listens); drains it and says whether it was there.
fn dispatcher_woken() -> bool {
    webhook_due().notified().now_or_never().is_some()
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
        dispatcher_woken();
        assert_eq!(
            settle_batch(&db, &first, || ()).await.unwrap(),
            settled(4, 0, 0, 0, 1),
            "{db:?}"
        );
        if matches!(db, Db::Sqlite(_)) {
            assert!(dispatcher_woken(), "deliveries were queued on SQLite");
        }
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

#[tokio::test]
async fn orders_are_found_and_listed_by_id_on_both_backends() {
    for db in both().await {
        seed(&db).await;
        let batch = vec![
            accepted("ord_1", FCFS, OrderStatus::Reserved, 3),
            accepted("ord_2", OTHER, OrderStatus::Reserved, 1),
            accepted("ord_3", LOTTERY, OrderStatus::Entered, 1),
            accepted("ord_4", FCFS, OrderStatus::Reserved, 1),
            accepted("ord_5", FCFS, OrderStatus::Reserved, 1),
            paid("ord_4", FCFS),
        ];
        settle_batch(&db, &batch, || ()).await.unwrap();

        let found = store::find_order(&db, "ord_4").await.unwrap().unwrap();
        assert_eq!(found.merchant_id, "m_1", "{db:?}");
        assert_eq!(
            serde_json::to_value(&found).unwrap(),
            serde_json::json!({
                "order_id": "ord_4", "drop_id": FCFS, "user_id": "user_ord_4", "qty": 1,
                "status": "paid", "admitted_at_ms": ADMITTED,
                "pay_by_ms": ADMITTED + 600_000, "paid_at_ms": ADMITTED + 30_000,
            }),
            "{db:?}"
        );
        let entry = store::find_order(&db, "ord_3").await.unwrap().unwrap();
        assert_eq!(
            (
                entry.qty,
                entry.status.as_str(),
                entry.pay_by_ms,
                entry.paid_at_ms
            ),
            (1, "entered", None, None),
            "{db:?}"
        );
        assert!(store::find_order(&db, "ord_9").await.unwrap().is_none());

        let all = OrderFilter {
            merchant_id: None,
            drop_id: None,
            status: None,
            after: None,
            limit: 50,
        };
        let ids = |orders: Vec<linkdrop_orders::queries::OrderView>| {
            orders.into_iter().map(|o| o.order_id).collect::<Vec<_>>()
        };
        let list = |filter: OrderFilter<'static>| {
            let db = db.clone();
            async move { ids(store::list_orders(&db, &filter).await.unwrap()) }
        };
        assert_eq!(
            list(all).await,
            ["ord_1", "ord_2", "ord_3", "ord_4", "ord_5"],
            "{db:?}"
        );
        let m1 = OrderFilter {
            merchant_id: Some("m_1"),
            ..all
        };
        assert_eq!(list(m1).await, ["ord_1", "ord_3", "ord_4", "ord_5"]);
        assert_eq!(
            list(OrderFilter {
                drop_id: Some(FCFS),
                ..m1
            })
            .await,
            ["ord_1", "ord_4", "ord_5"]
        );
        assert_eq!(
            list(OrderFilter {
                status: Some("reserved"),
                ..m1
            })
            .await,
            ["ord_1", "ord_5"]
        );
        assert_eq!(
            list(OrderFilter { limit: 2, ..m1 }).await,
            ["ord_1", "ord_3"]
        );
        assert_eq!(
            list(OrderFilter {
                after: Some("ord_3"),
                limit: 2,
                ..m1
            })
            .await,
            ["ord_4", "ord_5"]
        );
        assert!(
            list(OrderFilter {
                merchant_id: Some("m_9"),
                ..all
            })
            .await
            .is_empty()
        );
        let listed = store::list_orders(&db, &m1).await.unwrap();
        assert_eq!(
            (
                listed[0].qty,
                listed[0].admitted_at_ms,
                &listed[0].merchant_id
            ),
            (3, Some(ADMITTED), &"m_1".to_string()),
            "{db:?}"
        );
    }
}

#[tokio::test]
async fn a_draw_is_recorded_on_its_drop_on_both_backends() {
    for db in both().await {
        seed(&db).await;
        let figures = DrawFigures {
            seed: "ab12",
            cutoff_rank: Some("7f00"),
            entries: 120,
            winners: 10,
            drawn_at_ms: ADMITTED + 60_000,
        };
        store::record_draw(&db, LOTTERY, &figures).await.unwrap();
        store::record_draw(
            &db,
            OTHER,
            &DrawFigures {
                cutoff_rank: None,
                winners: 0,
                ..figures
            },
        )
        .await
        .unwrap();
        type Draw = (
            String,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        let drawn: Vec<Draw> = rows(
            &db,
            "SELECT id, seed, cutoff_rank, CAST(draw_entries AS BIGINT),
                    CAST(draw_winners AS BIGINT), drawn_at_ms
             FROM drops ORDER BY id",
        )
        .await;
        let at = Some(ADMITTED + 60_000);
        assert_eq!(
            drawn,
            [
                (FCFS.into(), None, None, None, None, None),
                (
                    LOTTERY.into(),
                    Some("ab12".into()),
                    Some("7f00".into()),
                    Some(120),
                    Some(10),
                    at
                ),
                (
                    OTHER.into(),
                    Some("ab12".into()),
                    None,
                    Some(120),
                    Some(0),
                    at
                ),
            ],
            "{db:?}"
        );
    }
}
