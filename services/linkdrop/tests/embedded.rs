//! The embedded backend survives its process being killed: `linkdrop all` with no servers
//! configured takes a rush of orders, is killed with SIGKILL in the middle of it, and is
//! started again on the same data directory. Every order answered 201 (before the kill, or
//! after it for a request whose answer was lost) is in the records exactly once and was
//! announced to the merchant; the stock adds up; nothing was sold twice. A third start, on
//! the journal the second one compacted, still knows every order.

use linkdrop_testkit as support;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;
use support::processes::Process;
use support::rush;
use support::{TestApp, WebhookReceiver, embedded_env, fresh_data_dir, fresh_namespace};

const STOCK: u32 = 40;
const SHOPPERS: usize = 80;
/// Orders acknowledged before the process is killed.
const BEFORE_KILL: usize = 15;

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_orders_survive_a_sigkill_of_the_embedded_process() {
    let data_dir = fresh_data_dir();
    let env = embedded_env(&data_dir, &fresh_namespace());
    let mut first = Process::start(&["all"], &env).await;
    let app = Arc::new(TestApp::external_embedded(&first.addr, &data_dir).await);
    let ready = app.admin_get("/readyz").await;
    assert_eq!(ready.body["backend"], "embedded", "{ready:?}");

    let mut receiver = WebhookReceiver::start().await;
    let merchant = "m_restart";
    app.subscribe(merchant, &receiver.url, &["order.created"])
        .await;
    let room_id = app.create_room(merchant).await;
    let drop_id = app.create_drop(&room_id, STOCK, 1).await;
    app.launch(&drop_id, 0).await;

    let (rush, midway) = rush::start(app.clone(), &drop_id, SHOPPERS, BEFORE_KILL);
    midway.notified().await;
    first.kill().await;
    let rush = rush.await.unwrap();
    assert!(rush.acknowledged.len() >= BEFORE_KILL);
    assert!(
        !rush.unknown.is_empty(),
        "the kill cut the rush short (some requests went unanswered)"
    );

    let mut second = Process::start(&["all"], &env).await;
    let app = TestApp::external_embedded(&second.addr, &data_dir).await;
    // A careful client sends an unanswered request again with the same key.
    let mut acknowledged = rush.acknowledged.clone();
    acknowledged.extend(rush::resolve_unknown(&app, &drop_id, &rush.unknown).await);
    // An order answered before the kill is answered the same after it.
    let replay = app.order(&drop_id, &app.token("rusher-0"), "k", 1).await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.body["order_id"], rush.acknowledged[0].as_str());

    let acknowledged: BTreeSet<String> = acknowledged.into_iter().collect();
    assert_eq!(
        acknowledged.len(),
        STOCK as usize,
        "more shoppers than units: the whole stock sells, once"
    );
    let mut announced = BTreeSet::new();
    while !acknowledged.is_subset(&announced) {
        let delivery = receiver.next().await;
        let event: Value = serde_json::from_str(&delivery.body).unwrap();
        announced.insert(event["data"]["order_id"].as_str().unwrap().to_string());
    }
    assert_eq!(
        announced, acknowledged,
        "the merchant heard of exactly these"
    );
    let settled = app
        .count("SELECT count(*) FROM orders WHERE drop_id = $1", &drop_id)
        .await;
    assert_eq!(
        settled,
        i64::from(STOCK),
        "each order is in the records once"
    );
    let drop = app.admin_get(&format!("/v1/drops/{drop_id}")).await;
    assert_eq!(drop.body["stock_left"], 0, "{drop:?}");
    assert_eq!(drop.body["reserved"], STOCK, "{drop:?}");

    // Once more: the second start compacted the journal; the state it rebuilt holds.
    second.kill().await;
    let third = Process::start(&["all"], &env).await;
    let app = TestApp::external_embedded(&third.addr, &data_dir).await;
    let replay = app.order(&drop_id, &app.token("rusher-0"), "k", 1).await;
    assert_eq!(replay.body["order_id"], rush.acknowledged[0].as_str());
    let late = app.order(&drop_id, &app.token("late-comer"), "k", 1).await;
    assert_eq!(late.status, 409, "still sold out: {late:?}");
    let drop = app.admin_get(&format!("/v1/drops/{drop_id}")).await;
    assert_eq!(
        (&drop.body["stock_left"], &drop.body["reserved"]),
        (&0.into(), &STOCK.into()),
        "{drop:?}"
    );
}

#[tokio::test]
async fn a_single_role_without_servers_is_refused_with_the_keys_to_set() {
    let env = embedded_env(&fresh_data_dir(), &fresh_namespace());
    let config = linkdrop_infra::config::Config::from_sources(None, &env).unwrap();
    let refused = linkdrop::startup::Application::build(config, &[linkdrop::startup::Role::Orders])
        .await
        .err()
        .expect("one role alone cannot run on the embedded backend");
    let message = format!("{refused:#}");
    assert!(
        message.contains("LINKDROP_REDIS_URL") && message.contains("linkdrop all"),
        "{message}"
    );
}
