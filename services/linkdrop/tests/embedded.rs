//! The embedded backend survives its process being killed: `linkdrop all` with no servers
//! configured takes a rush of orders, is killed with SIGKILL in the middle of it, and is
//! started again on the same data directory. Every order answered 201 (before the kill, or
//! after it for a request whose answer was lost) is in the records exactly once and was
//! announced to the merchant; the stock adds up; nothing was sold twice. A third start, on
//! the journal the second one compacted, still knows every order. The same holds when the
//! process dies in the middle of compacting its journal while serving (failpoints): with a
//! snapshot file written that the journal does not name yet, and with the journal switched
//! to a new snapshot while the previous file is still there.

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

    // More shoppers than units: the whole stock sells, once.
    sold_once(&app, &mut receiver, &drop_id, acknowledged, STOCK).await;

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

/// Journal bytes after which the engine compacts in the crash tests below: a few orders'
/// worth, more than setting up a sale writes.
const COMPACT_AFTER_BYTES: &str = "16384";

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_with_a_snapshot_written_but_not_yet_named_loses_nothing() {
    killed_while_compacting("engine.snapshot_written").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_right_after_the_switch_to_a_new_snapshot_loses_nothing() {
    // The second compaction: the first one's file is still there when the process dies.
    killed_while_compacting("engine.snapshot_switched:2").await;
}

/// A rush on `linkdrop all` that compacts its journal every few orders and dies at
/// `failpoint`; then a start without it.
async fn killed_while_compacting(failpoint: &str) {
    // Enough shoppers that the rush outlasts the compaction's start (its thread is the
    // machine's least urgent, and the other tests keep the cores busy).
    const STOCK: u32 = 600;
    let data_dir = fresh_data_dir();
    let mut env = embedded_env(&data_dir, &fresh_namespace());
    env.insert(
        "LINKDROP_DATA_COMPACT_AFTER_BYTES".into(),
        COMPACT_AFTER_BYTES.into(),
    );
    let mut doomed_env = env.clone();
    doomed_env.insert("LINKDROP_FAILPOINT".into(), failpoint.into());
    let mut first = Process::start(&["all"], &doomed_env).await;
    let app = Arc::new(TestApp::external_embedded(&first.addr, &data_dir).await);
    let mut receiver = WebhookReceiver::start().await;
    let merchant = "m_compacting";
    app.subscribe(merchant, &receiver.url, &["order.created"])
        .await;
    let room_id = app.create_room(merchant).await;
    let drop_id = app.create_drop(&room_id, STOCK, 1).await;
    app.launch(&drop_id, 0).await;

    // As many shoppers as units: each one's order is taken unless the process is gone.
    let (rush, _) = rush::start(app.clone(), &drop_id, STOCK as usize, usize::MAX);
    first.killed_by_failpoint().await;
    let rush = rush.await.unwrap();
    assert!(
        !rush.acknowledged.is_empty() && !rush.unknown.is_empty(),
        "the process died in the middle of the rush: {} acknowledged, {} unanswered",
        rush.acknowledged.len(),
        rush.unknown.len()
    );

    let second = Process::start(&["all"], &env).await;
    assert_eq!(
        snapshot_files(&data_dir).len(),
        1,
        "the start removed the snapshot file the journal does not name"
    );
    let app = TestApp::external_embedded(&second.addr, &data_dir).await;
    for (i, order_id) in rush.acknowledged.iter().enumerate() {
        let again = app
            .order(&drop_id, &app.token(&format!("rusher-{i}")), "k", 1)
            .await;
        assert_eq!(again.body["order_id"], order_id.as_str(), "rusher-{i}");
    }
    let mut acknowledged = rush.acknowledged.clone();
    acknowledged.extend(rush::resolve_unknown(&app, &drop_id, &rush.unknown).await);
    sold_once(&app, &mut receiver, &drop_id, acknowledged, STOCK).await;
}

/// Every unit of the drop was sold once, to the orders `acknowledged`: each announced to
/// the merchant and in the records once, and the drop's stock adds up.
async fn sold_once(
    app: &TestApp,
    receiver: &mut WebhookReceiver,
    drop_id: &str,
    acknowledged: Vec<String>,
    stock: u32,
) {
    let acknowledged: BTreeSet<String> = acknowledged.into_iter().collect();
    assert_eq!(acknowledged.len(), stock as usize, "every unit sold, once");
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
        .count("SELECT count(*) FROM orders WHERE drop_id = $1", drop_id)
        .await;
    assert_eq!(
        settled,
        i64::from(stock),
        "each order is in the records once"
    );
    let drop = app.admin_get(&format!("/v1/drops/{drop_id}")).await;
    assert_eq!(
        (&drop.body["stock_left"], &drop.body["reserved"]),
        (&0.into(), &stock.into()),
        "{drop:?}"
    );
}

/// The engine's snapshot files in `data_dir`.
fn snapshot_files(data_dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(data_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".snapshot."))
        .collect()
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
