//! Settled orders as the orders API reads them, and a lottery's draw figures.

use linkdrop_domain::model::OrderStatus;
use linkdrop_records::orders::{self, DrawFigures, Order, OrderFilter};
use linkdrop_records::settlement::settle_batch;

use crate::common::{ADMITTED, FCFS, LOTTERY, OTHER, rows, seed};
use crate::settlement::{accepted, paid};
use crate::support::both_record_stores as both;

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

        assert_eq!(
            orders::find(&db, "ord_4").await.unwrap(),
            Some(Order {
                order_id: "ord_4".into(),
                drop_id: FCFS.into(),
                merchant_id: "m_1".into(),
                user_id: "user_ord_4".into(),
                qty: 1,
                status: OrderStatus::Paid,
                admitted_at_ms: ADMITTED,
                pay_by_ms: Some(ADMITTED + 600_000),
                paid_at_ms: Some(ADMITTED + 30_000),
            }),
            "{db:?}"
        );
        let entry = orders::find(&db, "ord_3").await.unwrap().unwrap();
        assert_eq!(
            (entry.qty, entry.status, entry.pay_by_ms, entry.paid_at_ms),
            (1, OrderStatus::Entered, None, None),
            "{db:?}"
        );
        assert!(orders::find(&db, "ord_9").await.unwrap().is_none());

        let all = OrderFilter {
            merchant_id: None,
            drop_id: None,
            status: None,
            after: None,
            limit: 50,
        };
        let ids = |orders: Vec<Order>| orders.into_iter().map(|o| o.order_id).collect::<Vec<_>>();
        let list = |filter: OrderFilter<'static>| {
            let db = db.clone();
            async move { ids(orders::list(&db, &filter).await.unwrap()) }
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
                status: Some(OrderStatus::Reserved),
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
        let listed = orders::list(&db, &m1).await.unwrap();
        assert_eq!(
            (
                listed[0].qty,
                listed[0].admitted_at_ms,
                &listed[0].merchant_id
            ),
            (3, ADMITTED, &"m_1".to_string()),
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
        orders::record_draw(&db, LOTTERY, &figures).await.unwrap();
        orders::record_draw(
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
