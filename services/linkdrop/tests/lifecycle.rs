//! The life of an order after its 201, on the real stack: payment, expiry that puts units
//! back on sale exactly once, a late payment that loses to expiry, and the merchant events
//! (`order.paid`, `order.expired`, `drop.sold_out`, `drop.closed`) that follow.

use linkdrop_testkit as support;

use std::collections::BTreeMap;

use futures::StreamExt;
use serde_json::{Value, json};
use support::{WebhookReceiver, spawn_app, wait_until_ms};

/// Waits for the next webhook of `kind`, skipping others; its `data`.
async fn next_event(receiver: &mut WebhookReceiver, kind: &str) -> Value {
    events_of(receiver, &[kind]).await.remove(kind).unwrap()
}

/// Waits until a webhook of each of `kinds` arrived (in any order); their `data` by kind.
async fn events_of(receiver: &mut WebhookReceiver, kinds: &[&str]) -> BTreeMap<String, Value> {
    let mut seen = BTreeMap::new();
    while kinds.iter().any(|k| !seen.contains_key(*k)) {
        let delivery = receiver.next().await;
        let event: Value = serde_json::from_str(&delivery.body).unwrap();
        let kind = event["type"].as_str().unwrap().to_string();
        if kinds.contains(&kind.as_str()) {
            seen.insert(kind, event["data"].clone());
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_is_paid_once_and_the_merchant_hears_of_it() {
    let app = spawn_app().await;
    let mut receiver = WebhookReceiver::start().await;
    let merchant = "m_pay";
    app.subscribe(merchant, &receiver.url, &["order.paid", "drop.sold_out"])
        .await;
    let room_id = app.create_room(merchant).await;
    let drop_id = app.create_drop(&room_id, 1, 1).await;
    app.launch(&drop_id, 0).await;
    let shopper = app.token("payer");
    let order = app.order(&drop_id, &shopper, "buy", 1).await;
    assert_eq!(order.status, 201);
    let order_id = order.body["order_id"].as_str().unwrap();

    // Visible at once, from the live state, before settlement.
    let seen = app
        .request(
            reqwest::Method::GET,
            &format!("/v1/orders/{order_id}"),
            &shopper,
            None,
            &[],
        )
        .await;
    assert_eq!(
        (seen.status, &seen.body["status"]),
        (200, &json!("reserved"))
    );

    let stranger = app.pay(order_id, &app.token("stranger"), "pay-x").await;
    assert_eq!(stranger.status, 404, "only the order's shopper pays it");
    let paid = app.pay(order_id, &shopper, "pay-1").await;
    assert_eq!(
        (paid.status, &paid.body["status"]),
        (200, &json!("paid")),
        "{paid:?}"
    );
    let again = app.pay(order_id, &shopper, "pay-2").await;
    assert_eq!(
        again.body, paid.body,
        "paying twice answers as the first payment"
    );

    let events = events_of(&mut receiver, &["drop.sold_out", "order.paid"]).await;
    assert_eq!(events["drop.sold_out"]["drop_id"], drop_id.as_str());
    let event = &events["order.paid"];
    assert_eq!(
        (&event["order_id"], &event["payment_ref"]),
        (&json!(order_id), &json!("pay-1"))
    );
    let status = app
        .text("SELECT status FROM orders WHERE order_id = $1", order_id)
        .await;
    assert_eq!(status, "paid");
    let drop = app.admin_get(&format!("/v1/drops/{drop_id}")).await;
    assert_eq!(
        (
            &drop.body["paid"],
            &drop.body["reserved"],
            &drop.body["stock_left"]
        ),
        (&json!(1), &json!(0), &json!(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_order_expires_and_its_unit_goes_back_on_sale() {
    let app = spawn_app().await;
    let mut receiver = WebhookReceiver::start().await;
    let merchant = "m_expiry";
    app.subscribe(merchant, &receiver.url, &["order.expired"])
        .await;
    let room_id = app.create_room(merchant).await;
    let drop_id = app.create_drop_paid_within(&room_id, 1, 1).await;
    app.launch(&drop_id, 0).await;
    let mut viewer = app.viewer(&room_id, &app.token("watcher")).await;
    let first = app.token("forgetful");
    let order = app.order(&drop_id, &first, "buy", 1).await;
    assert_eq!(order.status, 201);
    let order_id = order.body["order_id"].as_str().unwrap().to_string();
    let sold_out = app.order(&drop_id, &app.token("second"), "buy", 1).await;
    assert_eq!(sold_out.body["code"], "sold_out");

    let expired = next_event(&mut receiver, "order.expired").await;
    assert_eq!(expired["order_id"], order_id.as_str());
    let late = app.pay(&order_id, &first, "too-late").await;
    assert_eq!((late.status, &late.body["code"]), (409, &json!("expired")));
    // The unit is for sale again, the room hears it, and someone else buys it.
    loop {
        let stock = viewer.next_of_type("drop.stock").await;
        if stock["stock_left"] == 1 {
            break;
        }
    }
    let third = app.order(&drop_id, &app.token("third"), "buy", 1).await;
    assert_eq!(third.status, 201, "{third:?}");
    let drop = app.admin_get(&format!("/v1/drops/{drop_id}")).await;
    assert_eq!(
        (&drop.body["reserved"], &drop.body["stock_left"]),
        (&json!(1), &json!(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_races_a_late_payment_and_exactly_one_wins() {
    const ORDERS: usize = 40;
    let app = spawn_app().await;
    let room_id = app.create_room("m_race").await;
    let drop_id = app
        .create_drop_paid_within(&room_id, ORDERS as u32, 1)
        .await;
    app.launch(&drop_id, 0).await;
    let mut orders = Vec::new();
    for i in 0..ORDERS {
        let token = app.token(&format!("racer-{i}"));
        let answer = app.order(&drop_id, &token, "buy", 1).await;
        assert_eq!(answer.status, 201);
        let pay_by = answer.body["pay_by_ms"].as_i64().unwrap();
        orders.push((
            answer.body["order_id"].as_str().unwrap().to_string(),
            token,
            pay_by,
        ));
    }
    // Pay every order right at its deadline, while the expiry worker is at work.
    wait_until_ms(orders[0].2 - 5).await;
    let app = &app;
    let answers: Vec<(String, u16)> = futures::stream::iter(&orders)
        .map(|(order_id, token, _)| async move {
            (
                order_id.clone(),
                app.pay(order_id, token, "at-the-wire").await.status,
            )
        })
        .buffer_unordered(ORDERS)
        .collect()
        .await;
    let mut outcomes = BTreeMap::new();
    for (order_id, status) in &answers {
        assert!(matches!(status, 200 | 409), "{status}");
        let order = app.admin_get(&format!("/v1/orders/{order_id}")).await;
        let final_status = order.body["status"].as_str().unwrap().to_string();
        let expected = if *status == 200 { "paid" } else { "expired" };
        // A 200 means paid for good; a 409 means the expiry won and the unit went back.
        assert_eq!(final_status, expected, "{order_id}");
        *outcomes.entry(final_status).or_insert(0) += 1;
    }
    let drop = app.admin_get(&format!("/v1/drops/{drop_id}")).await;
    let (paid, reserved, left) = (
        drop.body["paid"].as_i64().unwrap(),
        drop.body["reserved"].as_i64().unwrap(),
        drop.body["stock_left"].as_i64().unwrap(),
    );
    let expired = outcomes.get("expired").copied().unwrap_or(0);
    assert_eq!(paid, outcomes.get("paid").copied().unwrap_or(0));
    assert_eq!(left, expired, "every expired unit came back exactly once");
    assert_eq!(paid + reserved + left, ORDERS as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_drop_tells_the_merchant_once() {
    let app = spawn_app().await;
    let mut receiver = WebhookReceiver::start().await;
    let merchant = "m_close";
    app.subscribe(merchant, &receiver.url, &["drop.closed"])
        .await;
    let room_id = app.create_room(merchant).await;
    let drop_id = app.create_drop(&room_id, 5, 1).await;
    app.launch(&drop_id, 0).await;
    for _ in 0..2 {
        let close = app
            .admin_post(&format!("/v1/drops/{drop_id}/close"), json!({}))
            .await;
        assert_eq!(close.status, 200);
    }
    let event = next_event(&mut receiver, "drop.closed").await;
    assert_eq!(event["drop_id"], drop_id.as_str());
    let messages = app
        .count(
            "SELECT count(*) FROM webhook_messages WHERE event_type = $1",
            "drop.closed",
        )
        .await;
    assert_eq!(messages, 1);
}
