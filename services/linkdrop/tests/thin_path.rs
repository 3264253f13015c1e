//! One drop through every component, on the real stack, through the public API only:
//! room and drop → a viewer gets `hello` and the countdown → an early order is refused →
//! an order after opening is admitted by the Redis script, relayed to Kafka, settled into
//! PostgreSQL exactly once, and announced to the merchant by a signed webhook.

use linkdrop_testkit as support;

use linkdrop_domain::keys::Keys;
use serde_json::json;
use support::{WebhookReceiver, spawn_app, verify_with_reference_library, wait_until_ms};

#[tokio::test(flavor = "multi_thread")]
async fn a_drop_travels_from_launch_to_a_verified_webhook() {
    let app = spawn_app().await;
    let mut receiver = WebhookReceiver::start().await;
    let merchant = "m_thin";
    let room_id = app.create_room(merchant).await;
    let endpoint = app
        .admin_post(
            "/v1/webhook-endpoints",
            json!({"url": receiver.url, "events": ["order.created"], "merchant_id": merchant}),
        )
        .await;
    assert_eq!(endpoint.status, 201, "{endpoint:?}");
    let secret = endpoint.body["secret"].as_str().unwrap().to_string();
    let drop_id = app.create_drop(&room_id, 5, 1).await;

    let shopper = app.token("shopper-1");
    let mut viewer = app.viewer(&room_id, &shopper).await;
    let hello = viewer.next_json().await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["room_id"], room_id.as_str());
    assert!(hello["server_time_ms"].as_i64().unwrap() > 0);

    let opens_at_ms = app.launch(&drop_id, 1500).await;
    let countdown = viewer.next_of_type("drop.countdown").await;
    assert_eq!(countdown["opens_at_ms"], opens_at_ms);
    assert_eq!(countdown["drop"]["id"], drop_id.as_str());
    assert_eq!(countdown["seq"], hello["seq"].as_u64().unwrap() + 1);
    assert!(
        countdown["order_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/v1/drops/{drop_id}/orders"))
    );

    let early = app.order(&drop_id, &shopper, "early-1", 1).await;
    assert_eq!(early.status, 425, "{early:?}");
    assert_eq!(early.body["code"], "not_open");
    assert_eq!(early.body["opens_at_ms"], opens_at_ms);

    wait_until_ms(opens_at_ms).await;
    let order = app.order(&drop_id, &shopper, "buy-1", 1).await;
    assert_eq!(order.status, 201, "{order:?}");
    assert_eq!(order.body["status"], "reserved");
    let order_id = order.body["order_id"].as_str().unwrap().to_string();
    let again = app.order(&drop_id, &shopper, "buy-1", 1).await;
    assert_eq!(
        (again.status, &again.body),
        (201, &order.body),
        "a retry gets the same answer"
    );

    let delivery = receiver.next().await;
    let event: serde_json::Value = serde_json::from_str(&delivery.body).unwrap();
    assert_eq!(event["type"], "order.created");
    assert_eq!(event["data"]["order_id"], order_id.as_str());
    verify_with_reference_library(&secret, &delivery)
        .await
        .expect("the signature verifies with the standardwebhooks library");

    // The webhook is written in the same transaction as the order, so the order is there.
    let rows = app
        .count("SELECT count(*) FROM orders WHERE drop_id = $1", &drop_id)
        .await;
    assert_eq!(rows, 1, "the order is in the records exactly once");
    let status = app
        .text("SELECT status FROM orders WHERE order_id = $1", &order_id)
        .await;
    assert_eq!(status, "reserved");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drop_whose_outbox_cannot_be_read_does_not_hold_up_the_others() {
    let app = spawn_app().await;
    // A drop the relay must watch whose outbox key holds a string: every stream command on
    // it fails, as it would for a drop on a Redis Cluster node that is down.
    let keys = Keys::new(&app.namespace);
    let mut redis = app.redis();
    let broken = "drp_broken";
    let _: () = redis::cmd("SET")
        .arg(keys.drop_outbox(broken))
        .arg("not a stream")
        .query_async(&mut redis)
        .await
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg(keys.outboxes())
        .arg(broken)
        .query_async(&mut redis)
        .await
        .unwrap();

    let mut receiver = WebhookReceiver::start().await;
    app.subscribe("m_other", &receiver.url, &["order.created"])
        .await;
    let room_id = app.create_room("m_other").await;
    let drop_id = app.create_drop(&room_id, 5, 1).await;
    app.launch(&drop_id, 0).await;
    let order = app
        .order(&drop_id, &app.token("shopper-1"), "buy-1", 1)
        .await;
    assert_eq!(order.status, 201, "{order:?}");
    let delivery = receiver.next().await;
    let event: serde_json::Value = serde_json::from_str(&delivery.body).unwrap();
    assert_eq!(event["data"]["order_id"], order.body["order_id"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_webhook_does_not_verify() {
    // The verifier used above must be able to fail.
    let delivery = support::Delivery {
        headers: [
            ("webhook-id", "msg_1"),
            (
                "webhook-timestamp",
                &linkdrop_domain::clock::now_ms().to_string()[..10],
            ),
            (
                "webhook-signature",
                "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        body: "{}".into(),
    };
    let secret = linkdrop_domain::webhook_signature::generate_secret();
    assert!(
        verify_with_reference_library(secret.expose(), &delivery)
            .await
            .is_err()
    );
}
