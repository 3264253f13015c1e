//! Nothing acknowledged is lost, whatever dies: real processes on the real stack, one of
//! them killed with SIGKILL at a chosen moment and started again. After each run, every
//! order answered 201 is in PostgreSQL exactly once, announced to the merchant once, and
//! reserved + paid + stock_left = stock.
//!
//! Relay and settlement deaths use failpoints (`LINKDROP_FAILPOINT`), so the process dies
//! at exactly the named moment. Kafka and Redis deaths use a stack of the tests' own
//! (`target/crash-stack`), so the shared stack of the other tests is never touched.

use linkdrop_testkit as support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt;
use serde_json::Value;
use support::processes::{PrivateStack, Process};
use support::rush;
use support::{
    TestApp, WebhookReceiver, fresh_database, fresh_database_on, fresh_namespace, test_env,
};
use tokio::sync::Mutex;

/// Tests that kill a component of the private stack take turns.
static PRIVATE_STACK: Mutex<()> = Mutex::const_new(());

/// Roles that stay up in every test; the victim runs on its own.
const FRONT: &[&str] = &["roles", "gateway,orders,control,webhooks"];

/// Settings for the processes of one test: fast lease and group hand-over.
fn crash_env(database_url: &str, namespace: &str) -> BTreeMap<String, String> {
    let mut env = test_env(database_url, namespace);
    env.insert("LINKDROP_RELAY_LEASE_MS".into(), "2000".into());
    env.insert("LINKDROP_SETTLE_SESSION_TIMEOUT_MS".into(), "6000".into());
    env
}

fn with(env: &BTreeMap<String, String>, key: &str, value: &str) -> BTreeMap<String, String> {
    let mut env = env.clone();
    env.insert(key.into(), value.into());
    env
}

/// A drop on sale with a merchant listening for `order.created`.
struct Sale {
    app: Arc<TestApp>,
    receiver: WebhookReceiver,
    drop_id: String,
    stock: u32,
}

async fn open_sale(front: &Process, database_url: &str, namespace: &str, stock: u32) -> Sale {
    let app = Arc::new(TestApp::external(&front.addr, database_url, namespace).await);
    let receiver = WebhookReceiver::start().await;
    let merchant = "m_crash";
    app.subscribe(merchant, &receiver.url, &["order.created"])
        .await;
    let room_id = app.create_room(merchant).await;
    let drop_id = app.create_drop(&room_id, stock, 1).await;
    app.launch(&drop_id, 0).await;
    Sale {
        app,
        receiver,
        drop_id,
        stock,
    }
}

/// Orders `count` units, one per new shopper, `concurrency` at a time; the ids answered 201.
async fn buy(sale: &Sale, first: usize, count: usize, concurrency: usize) -> Vec<String> {
    futures::stream::iter(first..first + count)
        .map(|i| {
            let app = sale.app.clone();
            let drop_id = sale.drop_id.clone();
            async move {
                let answer = app
                    .order(&drop_id, &app.token(&format!("buyer-{i}")), "k", 1)
                    .await;
                (answer.status == 201)
                    .then(|| answer.body["order_id"].as_str().unwrap().to_string())
            }
        })
        .buffer_unordered(concurrency)
        .filter_map(|id| async move { id })
        .collect()
        .await
}

/// Waits until the merchant heard of every order in `acknowledged`.
async fn wait_announced(sale: &mut Sale, acknowledged: &[String]) {
    let wanted: BTreeSet<&str> = acknowledged.iter().map(String::as_str).collect();
    let mut heard = BTreeSet::new();
    while !wanted.iter().all(|id| heard.contains(*id)) {
        let delivery = sale.receiver.next().await;
        let event: Value = serde_json::from_str(&delivery.body).unwrap();
        heard.insert(event["data"]["order_id"].as_str().unwrap().to_string());
    }
}

/// Every acknowledged order once in PostgreSQL and once in the webhook outbox, no other
/// order, and the drop's figures add up.
async fn assert_settled_exactly_once(sale: &Sale, acknowledged: &[String]) {
    let mut settled: Vec<String> =
        sqlx::query_scalar("SELECT order_id FROM orders WHERE drop_id = $1")
            .bind(&sale.drop_id)
            .fetch_all(sale.app.postgres())
            .await
            .unwrap();
    settled.sort();
    let mut expected = acknowledged.to_vec();
    expected.sort();
    assert_eq!(
        settled, expected,
        "PostgreSQL holds exactly the acknowledged orders"
    );
    let announced: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM webhook_messages WHERE event_type = 'order.created'",
    )
    .fetch_one(sale.app.postgres())
    .await
    .unwrap();
    assert_eq!(
        announced as usize,
        acknowledged.len(),
        "one order.created per order"
    );
    let drop = sale
        .app
        .admin_get(&format!("/v1/drops/{}", sale.drop_id))
        .await;
    let figure = |name: &str| drop.body[name].as_i64().unwrap();
    assert_eq!(
        figure("reserved") + figure("paid") + figure("stock_left"),
        i64::from(sale.stock)
    );
    assert_eq!(
        figure("stock") - figure("stock_left"),
        acknowledged.len() as i64
    );
}

/// The victim (`relay` or `settle`) dies at `failpoint` while orders flow; it is started
/// again without it; nothing is lost or doubled.
async fn orders_survive(victim: &str, failpoint: &str) {
    let database_url = fresh_database().await;
    let namespace = fresh_namespace();
    let env = crash_env(&database_url, &namespace);
    let front = Process::start(FRONT, &env).await;
    let others: Vec<&str> = ["relay", "settle"]
        .into_iter()
        .filter(|r| *r != victim)
        .collect();
    let _other = Process::start(&others, &env).await;
    let mut doomed = Process::start(&[victim], &with(&env, "LINKDROP_FAILPOINT", failpoint)).await;
    let mut sale = open_sale(&front, &database_url, &namespace, 200).await;

    let acknowledged = buy(&sale, 0, 200, 32).await;
    assert_eq!(acknowledged.len(), 200);
    doomed.killed_by_failpoint().await;
    let _revived = Process::start(&[victim], &env).await;

    wait_announced(&mut sale, &acknowledged).await;
    assert_settled_exactly_once(&sale, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_survive_a_relay_crash_between_outbox_append_and_produce() {
    orders_survive("relay", "relay.before_produce").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_survive_a_relay_crash_between_produce_and_ack() {
    orders_survive("relay", "relay.before_ack").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_survive_a_settlement_crash_before_its_commit() {
    orders_survive("settle", "settle.before_commit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_survive_a_settlement_crash_after_its_commit() {
    orders_survive("settle", "settle.before_offset_commit").await;
}

/// A webhook dispatcher that dies after attempting a delivery and before recording the
/// attempt leaves its claim locked only for the attempt timeout and a margin (30 s): the
/// next dispatcher sends it again then, not five minutes later. (scripts/chaos found it: a
/// killed dispatcher, or PostgreSQL restarting under one, held its round's deliveries —
/// failed first attempts included, due again after 5 s — for five minutes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_crash_before_recording_its_attempts_holds_them_only_for_its_lock() {
    let database_url = fresh_database().await;
    let namespace = fresh_namespace();
    let env = with(
        &crash_env(&database_url, &namespace),
        "LINKDROP_WEBHOOK_TIMEOUT_MS",
        "1000",
    );
    let front = Process::start(&["roles", "gateway,orders,control"], &env).await;
    let _pipeline = Process::start(&["roles", "relay,settle"], &env).await;
    let mut doomed = Process::start(
        &["webhooks"],
        &with(&env, "LINKDROP_FAILPOINT", "webhooks.before_record"),
    )
    .await;
    let mut sale = open_sale(&front, &database_url, &namespace, 10).await;
    assert_eq!(buy(&sale, 0, 1, 1).await.len(), 1);

    let first = sale.receiver.next().await;
    doomed.killed_by_failpoint().await;
    let died = std::time::Instant::now();
    let _revived = Process::start(&["webhooks"], &env).await;
    let again = sale
        .receiver
        .next_within(std::time::Duration::from_secs(60))
        .await;
    assert_eq!(again.headers["webhook-id"], first.headers["webhook-id"]);
    assert!(
        died.elapsed() < std::time::Duration::from_secs(45),
        "sent again {:?} after the crash",
        died.elapsed()
    );
}

/// Processes of one test on the private stack.
async fn private_pipeline(stack: &PrivateStack, extra: &[(&str, &str)]) -> (Vec<Process>, Sale) {
    let database_url = fresh_database_on(&stack.database_server()).await;
    let namespace = fresh_namespace();
    let mut env = crash_env(&database_url, &namespace);
    env.insert("LINKDROP_REDIS_URL".into(), stack.redis_url());
    env.insert("LINKDROP_KAFKA_BROKERS".into(), stack.kafka_brokers());
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let front = Process::start(FRONT, &env).await;
    let relay = Process::start(&["relay"], &env).await;
    let settle = Process::start(&["settle"], &env).await;
    let sale = open_sale(&front, &database_url, &namespace, 400).await;
    (vec![front, relay, settle], sale)
}

async fn restart(stack: &PrivateStack) {
    let dir = stack.dir.clone();
    let env = stack.env.clone();
    tokio::task::spawn_blocking(move || PrivateStack { dir, env }.restart_stopped())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_survive_a_kafka_broker_crash_mid_stream() {
    let _turn = PRIVATE_STACK.lock().await;
    let stack = tokio::task::spawn_blocking(PrivateStack::up).await.unwrap();
    let (_processes, mut sale) = private_pipeline(&stack, &[]).await;

    let mut acknowledged = buy(&sale, 0, 150, 16).await;
    stack.kill("kafka");
    // Orders keep being admitted while the broker is down; they wait in the outbox.
    acknowledged.extend(buy(&sale, 150, 100, 16).await);
    restart(&stack).await;
    acknowledged.extend(buy(&sale, 250, 100, 16).await);

    assert_eq!(acknowledged.len(), 350);
    wait_announced(&mut sale, &acknowledged).await;
    assert_settled_exactly_once(&sale, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_orders_survive_a_redis_crash_with_appendfsync_always() {
    let _turn = PRIVATE_STACK.lock().await;
    let stack = tokio::task::spawn_blocking(PrivateStack::up).await.unwrap();
    set_appendfsync(&stack, "always").await;
    let (_processes, mut sale) =
        private_pipeline(&stack, &[("LINKDROP_REDIS_DURABILITY", "always")]).await;

    // A rush in flight when Redis dies: some requests fail (no answer or 503), and only
    // those answered 201 count as acknowledged.
    let (rush, midway) = rush::start(sale.app.clone(), &sale.drop_id, 300, 100);
    midway.notified().await;
    stack.kill("redis");
    restart(&stack).await;
    set_appendfsync(&stack, "always").await;
    let rush = rush.await.unwrap();
    let mut acknowledged = rush.acknowledged;
    acknowledged.extend(rush::resolve_unknown(&sale.app, &sale.drop_id, &rush.unknown).await);
    acknowledged.extend(buy(&sale, 1000, 20, 8).await);

    wait_announced(&mut sale, &acknowledged).await;
    assert_settled_exactly_once(&sale, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_crash_with_appendfsync_everysec_never_oversells() {
    let _turn = PRIVATE_STACK.lock().await;
    let stack = tokio::task::spawn_blocking(PrivateStack::up).await.unwrap();
    set_appendfsync(&stack, "everysec").await;
    let (_processes, mut sale) = private_pipeline(&stack, &[]).await;

    let (rush, midway) = rush::start(sale.app.clone(), &sale.drop_id, 300, 100);
    midway.notified().await;
    stack.kill("redis");
    restart(&stack).await;
    let rush = rush.await.unwrap();
    let mut before_crash = rush.acknowledged;
    before_crash.extend(rush::resolve_unknown(&sale.app, &sale.drop_id, &rush.unknown).await);
    let after = buy(&sale, 1000, 20, 8).await;
    // The orders admitted after the restart come after anything that survived: once they
    // are announced, every surviving order is too.
    wait_announced(&mut sale, &after).await;

    let settled: BTreeSet<String> =
        sqlx::query_scalar("SELECT order_id FROM orders WHERE drop_id = $1")
            .bind(&sale.drop_id)
            .fetch_all(sale.app.postgres())
            .await
            .unwrap()
            .into_iter()
            .collect();
    let acknowledged: BTreeSet<String> = before_crash.iter().chain(&after).cloned().collect();
    assert!(
        settled.is_subset(&acknowledged),
        "only acknowledged orders are settled"
    );
    assert!(after.iter().all(|id| settled.contains(id)));
    let lost = acknowledged.len() - settled.len();
    println!(
        "appendfsync everysec: {lost} of {} acknowledged orders lost in the Redis crash",
        before_crash.len()
    );
    // Whatever Redis lost, it lost in full: stock, shopper's count and outbox together,
    // so what was settled and what Redis holds agree — no unit sold twice.
    let drop = sale
        .app
        .admin_get(&format!("/v1/drops/{}", sale.drop_id))
        .await;
    let figure = |name: &str| drop.body[name].as_i64().unwrap();
    assert_eq!(figure("stock") - figure("stock_left"), settled.len() as i64);
    assert_eq!(
        figure("reserved") + figure("paid") + figure("stock_left"),
        i64::from(sale.stock)
    );
}

async fn set_appendfsync(stack: &PrivateStack, value: &str) {
    let client = redis::Client::open(stack.redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendfsync")
        .arg(value)
        .query_async(&mut conn)
        .await
        .unwrap();
}
