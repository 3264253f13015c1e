//! Traces (OpenTelemetry over OTLP, `LINKDROP_OTLP_ENDPOINT`): one order is one trace from
//! the HTTP request through admission, the relay, Kafka and the settlement transaction to
//! the webhook delivery; one launch is one trace from the request through the room bus to
//! the gateway's fan-out. A receiver the test starts collects the spans; the test checks
//! each span's parent. Both backends (on the embedded one the relay settles in process,
//! so settlement follows admission directly).

use linkdrop_testkit as support;

use serde_json::json;
use support::otlp::{self, ReceivedSpan};
use support::{TestApp, WebhookReceiver, spawn_app_with, wait_until_ms};

/// The span of the caller (a shopper's app, a host's tool) that each request continues.
const CALLER_SPAN: &str = "00f067aa0ba902b7";

async fn traced_app() -> TestApp {
    spawn_app_with(&[("LINKDROP_OTLP_ENDPOINT", &otlp::shared().url)]).await
}

fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-{CALLER_SPAN}-01")
}

fn named<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one span {name:?} in {spans:#?}");
    found[0]
}

fn assert_child(child: &ReceivedSpan, parent: &ReceivedSpan) {
    assert_eq!(
        child.parent_span_id, parent.span_id,
        "{:?} is a child of {:?}",
        child.name, parent.name
    );
}

#[tokio::test]
async fn an_order_is_one_trace_from_the_request_to_the_webhook() {
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let app = traced_app().await;
    let mut hook = WebhookReceiver::start().await;
    let room_id = app.create_room("m-traced").await;
    app.subscribe("m-traced", &hook.url, &["order.created"])
        .await;
    let drop_id = app.create_drop(&room_id, 5, 1).await;
    wait_until_ms(app.launch(&drop_id, 0).await).await;

    let answer = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/drops/{drop_id}/orders"),
            &app.token("shopper-1"),
            Some(json!({"qty": 1})),
            &[
                ("Idempotency-Key", "k-1"),
                ("traceparent", &traceparent(trace_id)),
            ],
        )
        .await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let order_id = answer.body["order_id"].as_str().unwrap().to_string();
    let delivery = hook.next().await;
    assert!(
        delivery.headers["traceparent"].contains(trace_id),
        "the merchant's server may continue the trace: {:?}",
        delivery.headers
    );

    let relayed = (!support::embedded()).then_some("orders publish");
    let mut names = vec![
        "POST /v1/drops/{drop_id}/orders",
        "admission",
        "settle",
        "webhook deliver",
    ];
    let spans = otlp::shared().trace_with(trace_id, &names).await;
    let request = named(&spans, names[0]);
    assert_eq!(request.parent_span_id, CALLER_SPAN);
    assert_eq!(request.attributes["http.response.status_code"], "201");
    let admission = named(&spans, "admission");
    assert_child(admission, request);
    assert_eq!(admission.attributes["linkdrop.order_id"], order_id);
    let settle = named(&spans, "settle");
    assert_eq!(settle.attributes["linkdrop.order_id"], order_id);
    match relayed {
        Some(suffix) => {
            let relay = spans
                .iter()
                .find(|s| s.name.ends_with(suffix))
                .unwrap_or_else(|| panic!("a span of the relay's publish in {spans:#?}"));
            assert_child(relay, admission);
            assert_child(settle, relay);
            names.push(&relay.name);
        }
        None => assert_child(settle, admission),
    }
    let webhook = named(&spans, "webhook deliver");
    assert_child(webhook, settle);
    assert_eq!(webhook.attributes["http.response.status_code"], "200");
    assert_eq!(
        spans.len(),
        names.len(),
        "nothing else in the trace: {spans:#?}"
    );
}

#[tokio::test]
async fn a_launch_is_one_trace_through_the_room_bus_to_the_gateway() {
    let trace_id = "5cf92f3577b34da6a3ce929d0e0e4737";
    let app = traced_app().await;
    let room_id = app.create_room("m-traced").await;
    let drop_id = app.create_drop(&room_id, 5, 1).await;
    let mut viewer = app.viewer(&room_id, &app.token("viewer-1")).await;
    viewer.next_of_type("hello").await;

    let answer = app
        .request(
            reqwest::Method::POST,
            &format!("/v1/drops/{drop_id}/launch"),
            support::ADMIN_KEY,
            Some(json!({"countdown_ms": 3000})),
            &[("traceparent", &traceparent(trace_id))],
        )
        .await;
    assert_eq!(answer.status, 202, "{answer:?}");
    let countdown = viewer.next_of_type("drop.countdown").await;
    assert_eq!(countdown["drop"]["id"], drop_id.as_str(), "{countdown}");

    let names = [
        "POST /v1/drops/{drop_id}/launch",
        "room_bus publish",
        "room fanout",
    ];
    let spans = otlp::shared().trace_with(trace_id, &names).await;
    let request = named(&spans, names[0]);
    assert_eq!(request.parent_span_id, CALLER_SPAN);
    let publish = named(&spans, "room_bus publish");
    assert_child(publish, request);
    let fanout = named(&spans, "room fanout");
    assert_child(fanout, publish);
    let reached: u64 = ["linkdrop.viewers_written", "linkdrop.viewers_queued"]
        .map(|name| fanout.attributes[name].parse::<u64>().unwrap())
        .iter()
        .sum();
    assert_eq!(reached, 1, "the one viewer: {:?}", fanout.attributes);
    assert_eq!(
        spans.len(),
        names.len(),
        "nothing else in the trace: {spans:#?}"
    );
}
