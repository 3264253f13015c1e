//! Edge answers across two orders processes of one installation, on either backend: what
//! one process sold, or got back from an expired reservation, the other learns from drop
//! news and answers by itself; a sold-out answer is not recorded, so the same key gets a
//! unit that comes back; and a shopper whose order was recorded is never refused by a
//! process that only heard of the drop.

use linkdrop_testkit as support;

use serde_json::json;
use support::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_that_comes_back_is_sold_by_the_other_orders_process() {
    let app = spawn_app().await;
    let other = app.another_orders().await;
    let room_id = app.create_room("m_edge").await;
    let drop_id = app.create_drop_paid_within(&room_id, 1, 1).await;
    app.launch(&drop_id, 0).await;
    let mut viewer = app.viewer(&room_id, &app.token("watcher")).await;
    let first = app.order(&drop_id, &app.token("forgetful"), "buy", 1).await;
    assert_eq!(first.status, 201, "{first:?}");

    let patient = app.token("patient");
    let refused = other.order(&drop_id, &patient, "buy", 1).await;
    assert_eq!(
        (refused.status, &refused.body["code"]),
        (409, &json!("sold_out"))
    );
    // The reservation expires unpaid and its unit comes back: the room hears it.
    loop {
        let stock = viewer.next_of_type("drop.stock").await;
        if stock["stock_left"] == 1 {
            break;
        }
    }
    // The other process offers it again, to the same key that was told "sold out".
    let bought = other.order(&drop_id, &patient, "buy", 1).await;
    assert_eq!(bought.status, 201, "{bought:?}");
    let again = app.order(&drop_id, &app.token("third"), "buy", 1).await;
    assert_eq!(
        (again.status, &again.body["code"]),
        (409, &json!("sold_out"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_order_is_replayed_by_any_orders_process_after_sell_out_and_close() {
    let app = spawn_app().await;
    let other = app.another_orders().await;
    let room_id = app.create_room("m_edge").await;
    let drop_id = app.create_drop(&room_id, 1, 1).await;
    app.launch(&drop_id, 0).await;
    let buyer = app.token("buyer");
    let order = app.order(&drop_id, &buyer, "mine", 1).await;
    assert_eq!(order.status, 201);
    let late = other.order(&drop_id, &app.token("late"), "k", 1).await;
    assert_eq!((late.status, &late.body["code"]), (409, &json!("sold_out")));

    // The buyer's answer was lost; they ask again through the other process.
    let replay = other.order(&drop_id, &buyer, "mine", 1).await;
    assert_eq!(replay.status, 201, "{replay:?}");
    assert_eq!(replay.body, order.body);
    assert_eq!(replay.headers["idempotent-replayed"], "true");

    let closed = app
        .admin_post(&format!("/v1/drops/{drop_id}/close"), json!({}))
        .await;
    assert_eq!(closed.status, 200);
    let refused = other.order(&drop_id, &app.token("late"), "k", 1).await;
    assert_eq!(
        (refused.status, &refused.body["code"]),
        (410, &json!("closed"))
    );
    let replay = other.order(&drop_id, &buyer, "mine", 1).await;
    assert_eq!((replay.status, &replay.body), (201, &order.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_long_before_the_opening_is_refused_with_the_opening_time() {
    let app = spawn_app().await;
    let other = app.another_orders().await;
    let room_id = app.create_room("m_edge").await;
    let drop_id = app.create_drop(&room_id, 5, 1).await;
    let draft = other.order(&drop_id, &app.token("early"), "k", 1).await;
    assert_eq!(
        (draft.status, &draft.body["code"]),
        (425, &json!("not_open"))
    );
    let opens_at_ms = app.launch(&drop_id, 60_000).await;
    let early = other.order(&drop_id, &app.token("early"), "k", 1).await;
    assert_eq!(
        (early.status, &early.body["code"]),
        (425, &json!("not_open"))
    );
    assert_eq!(early.body["opens_at_ms"], opens_at_ms);
}
