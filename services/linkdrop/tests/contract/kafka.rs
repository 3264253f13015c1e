//! The Kafka messages of the sale's orders, as the relay serializes them.

use linkdrop_domain::events::{
    DropSoldOut, OrderAccepted, OrderDrawn, OrderEvent, OrderExpired, OrderPaid,
};
use linkdrop_domain::model::OrderStatus;
use linkdrop_testkit::Answer;

use crate::drops::Drops;
use crate::lottery::Lottery;
use crate::orders::Sale;
use crate::samples::Samples;

/// One message of each kind, from the orders seen: `own` is the first buyer's order.
pub fn order_events(
    samples: &mut Samples,
    drops: &Drops,
    sale: &Sale,
    own: &Answer,
    lottery: &Lottery,
) {
    let (fcfs_id, lottery_id, order_a) = (&drops.fcfs, &drops.lottery, &sale.order_a);
    let Lottery {
        draw,
        winner,
        won,
        loser,
        lost,
        winning_order,
        winners_order,
        ..
    } = lottery;
    let admitted = |order: &Answer| order.body["admitted_at_ms"].as_i64().unwrap();
    let drawn_at_ms = draw.body["drawn_at_ms"].as_i64().unwrap();
    for event in [
        OrderEvent::Accepted(OrderAccepted {
            order_id: order_a.clone(),
            drop_id: fcfs_id.clone(),
            user_id: "buyer-a".into(),
            qty: 1,
            status: OrderStatus::Reserved,
            admitted_at_ms: admitted(own),
            pay_by_ms: own.body["pay_by_ms"].as_i64(),
            idempotency_key: "a1".into(),
        }),
        OrderEvent::Accepted(OrderAccepted {
            order_id: winning_order.clone(),
            drop_id: lottery_id.clone(),
            user_id: winner.clone(),
            qty: 1,
            status: OrderStatus::Entered,
            admitted_at_ms: admitted(winners_order),
            pay_by_ms: None,
            idempotency_key: "e1".into(),
        }),
        OrderEvent::Drawn(OrderDrawn {
            order_id: winning_order.clone(),
            drop_id: lottery_id.clone(),
            user_id: winner.clone(),
            status: OrderStatus::Reserved,
            drawn_at_ms,
            pay_by_ms: won["pay_by_ms"].as_i64(),
        }),
        OrderEvent::Drawn(OrderDrawn {
            order_id: lost["order_id"].as_str().unwrap().to_string(),
            drop_id: lottery_id.clone(),
            user_id: loser.clone(),
            status: OrderStatus::Lost,
            drawn_at_ms,
            pay_by_ms: None,
        }),
        OrderEvent::Paid(OrderPaid {
            order_id: order_a.clone(),
            drop_id: fcfs_id.clone(),
            user_id: "buyer-a".into(),
            paid_at_ms: admitted(own) + 1_000,
            payment_ref: "pay-1".into(),
        }),
        OrderEvent::Expired(OrderExpired {
            order_id: winning_order.clone(),
            drop_id: lottery_id.clone(),
            user_id: winner.clone(),
            qty: 1,
            expired_at_ms: drawn_at_ms + 600_000,
        }),
        OrderEvent::SoldOut(DropSoldOut {
            drop_id: fcfs_id.clone(),
            sold_out_at_ms: admitted(own),
        }),
    ] {
        samples.kafka(&event);
    }
}
