//! The contract in schemas/ checked against what linkdrop really sends, on the real stack.
//!
//! One first-come-first-served drop and one lottery drop go through the public API: API
//! keys, a room, drops, viewers' WebSockets with a clock ping, launch, orders with the
//! refusals of API.md, the draw, webhook deliveries. Every HTTP body, WebSocket frame and
//! webhook body seen is written as a sample named as schemas/README.md says, and
//! `schemas/check.py --strict` must accept them all: each against the OpenAPI response of
//! its route and status or the JSON Schema of its message, and nothing sent may still be
//! marked planned.//!
//! One module per route group, each a step of that one sale: [`api_keys`] (and the
//! operations probes), [`rooms`], [`webhook_endpoints`], [`drops`], [`websocket`],
//! [`orders`], [`lottery`], [`kafka`] (the order events), [`errors`] (problems of no
//! operation). [`kit`] holds what the steps share, [`samples`] the samples and the checker.

mod api_keys;
mod drops;
mod errors;
mod kafka;
mod kit;
mod lottery;
mod orders;
mod rooms;
mod samples;
mod webhook_endpoints;
mod websocket;

use serde_json::json;

use kit::Contract;
use samples::{Samples, check};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_linkdrop_sends_matches_the_schemas() {
    let mut t = Contract::start().await;
    let keys = api_keys::probes_and_keys(&mut t).await;
    let room_id = rooms::create_and_read(&mut t, &keys).await;
    let endpoint_id = webhook_endpoints::subscribe(&mut t, &keys).await;
    let drop_ids = drops::create_and_read(&mut t, &keys, &room_id).await;
    let mut watcher = websocket::refuse_then_join(&mut t, &room_id).await;
    let sale = orders::first_come_first_served(&mut t, &keys, &drop_ids, &mut watcher).await;
    let own = orders::read_settled(&mut t, &keys, &drop_ids, &sale).await;
    webhook_endpoints::attempts(&mut t, &keys, &endpoint_id).await;
    drops::close(&mut t, &keys, &drop_ids, &mut watcher).await;
    let lottery = lottery::draw(&mut t, &keys, &room_id, &drop_ids, &mut watcher).await;
    kafka::order_events(&mut t.samples, &drop_ids, &sale, &own, &lottery);
    errors::of_no_operation(&mut t).await;
    webhook_endpoints::manage(&mut t, &keys, &endpoint_id).await;
    let watchers: Vec<_> = std::iter::once(&watcher).chain(&lottery.fans).collect();
    t.finish(&watchers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_rejects_a_sample_that_breaks_a_schema() {
    let mut samples = Samples::new("contract-broken");
    let countdown = json!({
        "type": "drop.countdown", "seq": 3, "ts_ms": 1_795_465_535_159_i64,
        "drop": {
            "id": "drp_1", "sku": "SKU-1", "title": "Lamp",
            "image_url": "https://img.example/lamp.png", "price_cents": 9900,
            "currency": "CNY", "max_per_user": 1, "fairness": {"policy": "fcfs"},
        },
        "opens_at_ms": 1_795_465_538_159_i64,
        "order_url": "http://127.0.0.1:8080/v1/drops/drp_1/orders",
    });
    samples.frames("server", "intact", std::slice::from_ref(&countdown));
    let (passed, printed) = check(&samples.dir).await;
    assert!(passed, "the intact frame passes:\n{printed}");

    let mut broken = countdown.clone();
    broken.as_object_mut().unwrap().remove("opens_at_ms");
    samples.frames("server", "broken", &[broken]);
    let (passed, printed) = check(&samples.dir).await;
    assert!(
        !passed,
        "a countdown without opens_at_ms must fail:\n{printed}"
    );
    assert!(
        printed
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("broken") && l.contains("opens_at_ms")),
        "{printed}"
    );
    samples.finish(&printed);
}
