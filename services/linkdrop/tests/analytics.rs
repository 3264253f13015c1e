//! The host's analytics (`GET /v1/rooms/{room_id}/report`): a scripted stream with known
//! viewers, joins, leaves, taps, payments and an expiry, and the report checked figure by
//! figure against it. Both backends. The test waits on events only (a viewer's hello, the
//! room's viewer counts, webhooks) and then writes the process's counts at once instead of
//! waiting for the next batch.

use linkdrop_testkit as support;

use serde_json::{Value, json};
use support::{ADMIN_KEY, TestApp, WebhookReceiver, spawn_app, wait_until_ms};

const MERCHANT: &str = "m-analytics";

async fn report(app: &TestApp, room_id: &str) -> Value {
    let answer = app.admin_get(&format!("/v1/rooms/{room_id}/report")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.body
}

async fn csv(app: &TestApp, room_id: &str, table: &str) -> (String, String) {
    let response = app
        .http
        .get(format!(
            "{}/v1/rooms/{room_id}/report?format=csv&table={table}",
            app.base_url
        ))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    (content_type, response.text().await.unwrap())
}

fn drop_of<'a>(report: &'a Value, drop_id: &str) -> &'a Value {
    report["drops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["drop_id"] == drop_id)
        .unwrap_or_else(|| panic!("{drop_id} in {report:#}"))
}

fn total(report: &Value, field: &str) -> i64 {
    report["audience"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[field].as_i64().unwrap())
        .sum()
}

/// An earlier stream of the merchant: shopper-1 watched it and paid for an order there,
/// so in the next one shopper-1 is a returning viewer and a repeat buyer.
async fn earlier_stream(app: &TestApp, hooks: &mut WebhookReceiver) {
    let room_id = app.create_room(MERCHANT).await;
    let _viewer = app.joined_viewer(&room_id, "shopper-1").await;
    let drop_id = app.create_drop(&room_id, 5, 1).await;
    wait_until_ms(app.launch(&drop_id, 0).await).await;
    let order_id = app.reserve(&drop_id, "shopper-1", "earlier-1").await;
    assert_eq!(
        app.pay(&order_id, &app.token("shopper-1"), "pay-0")
            .await
            .status,
        200
    );
    hooks.order_event("order.paid", &order_id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_counts_a_scripted_stream_figure_by_figure() {
    let app = spawn_app().await;
    let mut hooks = WebhookReceiver::start().await;
    app.subscribe(MERCHANT, &hooks.url, &["order.paid", "order.expired"])
        .await;
    earlier_stream(&app, &mut hooks).await;

    // The stream: three viewers join; shopper-1 has watched this merchant before.
    let room_id = app.create_room(MERCHANT).await;
    let mut first = app.joined_viewer(&room_id, "shopper-1").await;
    let second = app.joined_viewer(&room_id, "shopper-2").await;
    let third = app.joined_viewer(&room_id, "shopper-3").await;
    first.until_viewers(3).await;

    // A drop of two units for three viewers: two reservations, one sold out, one retry.
    let scarf = app.create_drop(&room_id, 2, 1).await;
    let opens_at_ms = app.launch(&scarf, 1_500).await;
    first.next_of_type("drop.countdown").await;
    wait_until_ms(opens_at_ms).await;
    let paid_order = app.reserve(&scarf, "shopper-1", "scarf-1").await;
    app.reserve(&scarf, "shopper-2", "scarf-2").await;
    assert_eq!(
        app.order(&scarf, &app.token("shopper-3"), "scarf-3", 1)
            .await
            .status,
        409
    );
    assert_eq!(
        app.reserve(&scarf, "shopper-1", "scarf-1").await,
        paid_order,
        "a retry"
    );
    assert_eq!(
        app.pay(&paid_order, &app.token("shopper-1"), "pay-1")
            .await
            .status,
        200
    );
    hooks.order_event("order.paid", &paid_order).await;

    // A second drop whose one reservation expires unpaid.
    let mug = app.create_drop_paid_within(&room_id, 3, 1).await;
    wait_until_ms(app.launch(&mug, 0).await).await;
    let expiring = app.reserve(&mug, "shopper-2", "mug-2").await;
    hooks.order_event("order.expired", &expiring).await;

    // One viewer leaves.
    drop(third);
    first.until_viewers(2).await;
    app.flush_analytics().await;
    let report = report(&app, &room_id).await;

    let audience = &report["audience"];
    assert_eq!(audience["unique_viewers"], 3, "{report:#}");
    assert_eq!(audience["returning_viewers"], 1, "shopper-1: {report:#}");
    assert_eq!(audience["new_viewers"], 2);
    assert_eq!(audience["peak_viewers"], 3);
    assert_eq!((total(&report, "joins"), total(&report, "leaves")), (3, 1));
    assert_eq!(report["buyers"], json!({"unique": 1, "repeat": 1}));

    let scarf = drop_of(&report, &scarf);
    let figures = |d: &Value, fields: &[&str]| -> Vec<Value> {
        fields.iter().map(|f| d[*f].clone()).collect()
    };
    let funnel = [
        "viewers_at_launch",
        "countdown_reached",
        "taps",
        "reserved",
        "paid",
        "expired",
        "buyers",
        "repeat_buyers",
    ];
    assert_eq!(
        figures(scarf, &funnel),
        [3, 3, 4, 2, 1, 0, 1, 1].map(Value::from),
        "{scarf:#}"
    );
    assert_eq!(
        scarf["rates"],
        json!({"tap": 1.333, "reserve": 0.5, "pay": 0.5, "overall": 0.333})
    );
    assert_eq!(scarf["demand_ratio"], 2.0);
    assert!(scarf["sell_out_ms"].as_i64().unwrap() >= 0, "{scarf:#}");
    assert!(
        scarf["retention"]["viewers_5m"].is_null(),
        "five minutes have not passed"
    );

    let mug = drop_of(&report, &mug);
    assert_eq!(
        figures(mug, &["taps", "reserved", "paid", "expired"]),
        [1, 1, 0, 1].map(Value::from),
        "{mug:#}"
    );
    assert!(report["advice"].is_array());
    drop(second);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_report_downloads_as_csv_and_refuses_what_it_does_not_know() {
    let app = spawn_app().await;
    let room_id = app.create_room(MERCHANT).await;
    let drop_id = app.create_drop(&room_id, 3, 1).await;
    app.launch(&drop_id, 60_000).await;

    let (content_type, drops) = csv(&app, &room_id, "drops").await;
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let lines: Vec<&str> = drops.lines().collect();
    assert!(lines[0].starts_with("drop_id,title,sku,stock"), "{drops}");
    assert_eq!(lines.len(), 2, "{drops}");
    assert!(lines[1].starts_with(&format!("{drop_id},")), "{drops}");
    let (_, audience) = csv(&app, &room_id, "audience").await;
    assert!(
        audience.starts_with("at_ms,viewers,joins,leaves"),
        "{audience}"
    );

    let bad = app
        .admin_get(&format!("/v1/rooms/{room_id}/report?format=xml"))
        .await;
    assert_eq!(
        (bad.status, &bad.body["errors"][0]["field"]),
        (422, &json!("format"))
    );
    let unknown = app.admin_get("/v1/rooms/room_unknown/report").await;
    assert_eq!(unknown.status, 404);
}
