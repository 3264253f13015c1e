//! linkdrop as a cluster on one machine: the launcher's cluster (what `scripts/cluster`
//! runs) starts a three-master Redis
//! Cluster, three Kafka brokers and several processes per role (three gateways, two orders
//! APIs, two settlement consumers, a relay, a dispatcher, a control API). One drop runs
//! across all of them; mid-drop one gateway and one Kafka broker are killed with SIGKILL.
//! Afterwards: every viewer saw the countdown and the sell-out (those of the dead gateway
//! after resuming on another, with no event missed), nothing was oversold, every order
//! answered 201 is settled exactly once and announced to the merchant.
//!
//! The cluster has its own directory (`target/cluster-test`) and ports (27101 and up), so it
//! never touches the stack of the other tests; `scripts/test` stops it at the end.

use linkdrop_testkit as support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use serde_json::Value;
use support::{
    ADMIN_KEY, JWT_SECRET, PATIENCE, TestApp, Viewer, WEBHOOK_SECRET_KEY, WebhookReceiver,
};

const STOCK: u32 = 300;
const VIEWERS_PER_GATEWAY: usize = 6;

/// The launcher's cluster with the test's directory, ports and settings.
struct Cluster {
    launcher: Arc<linkdrop_launch::Cluster>,
    /// What `scripts/cluster env` would export: where everything listens.
    exported: BTreeMap<String, String>,
}

impl Cluster {
    fn settings() -> BTreeMap<String, String> {
        let root = repo_root();
        [
            (
                "LINKDROP_CLUSTER_DIR",
                root.join("target/cluster-test").to_str().unwrap(),
            ),
            ("LINKDROP_CLUSTER_PORT_BASE", "21100"),
            ("LINKDROP_BIN", env!("CARGO_BIN_EXE_linkdrop")),
            ("LINKDROP_ADMIN_KEY", ADMIN_KEY),
            ("LINKDROP_JWT_SECRET", JWT_SECRET),
            ("LINKDROP_WEBHOOK_SECRET_KEY", WEBHOOK_SECRET_KEY),
            ("LINKDROP_WEBHOOK_ALLOW_NETS", "127.0.0.0/8"),
            ("LINKDROP_WEBHOOK_POLL_MS", "50"),
            ("LINKDROP_SETTLE_BATCH_WAIT_MS", "5"),
            ("LINKDROP_ORDERS_PER_IP_PER_S", "0"),
            ("LINKDROP_ORDERS_PER_USER_PER_S", "1000"),
            ("LINKDROP_RELAY_LEASE_MS", "2000"),
            ("LINKDROP_SETTLE_SESSION_TIMEOUT_MS", "6000"),
            ("LINKDROP_DATABASE_MAX_CONNECTIONS", "5"),
            ("LINKDROP_LOG", "info"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Stops what an earlier run left (processes of an older build), then starts it all.
    async fn up() -> Cluster {
        // Only what the launcher needs, so a shell's stack settings cannot leak in.
        let env = std::env::vars()
            .filter(|(k, _)| {
                matches!(
                    k.as_str(),
                    "PATH" | "HOME" | "LINKDROP_CACHE_DIR" | "CARGO_TARGET_DIR"
                )
            })
            .chain(Self::settings())
            .collect();
        let launcher = Arc::new(
            linkdrop_launch::Cluster::from_env(&env)
                .unwrap_or_else(|f| panic!("{}", f.render("cluster"))),
        );
        launch(&launcher, |c| c.down(false)).await;
        launch(&launcher, |c| c.up()).await;
        let exported = launch(&launcher, |c| c.exports())
            .await
            .into_iter()
            .collect();
        Cluster { launcher, exported }
    }

    fn addresses(&self, name: &str) -> Vec<String> {
        self.exported[name].split(',').map(str::to_string).collect()
    }

    fn database_url(&self) -> &str {
        &self.exported["LINKDROP_DATABASE_URL"]
    }

    /// Kills one component with SIGKILL, as a crash would.
    async fn kill(&self, name: &'static str) {
        launch(&self.launcher, move |c| c.kill(name)).await;
    }

    async fn down(&self) {
        launch(&self.launcher, |c| c.down(false)).await;
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a launcher command off the test's runtime; fails the test if it fails.
async fn launch<T: Send + 'static>(
    cluster: &Arc<linkdrop_launch::Cluster>,
    command: impl FnOnce(&linkdrop_launch::Cluster) -> linkdrop_launch::Result<T> + Send + 'static,
) -> T {
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || command(&cluster))
        .await
        .unwrap()
        .unwrap_or_else(|failure| panic!("{}", failure.render("cluster")))
}

/// A viewer and what it has seen.
struct Watcher {
    viewer: Viewer,
    token: String,
    /// The highest room event `seq` seen.
    seq: u64,
}

impl Watcher {
    async fn join(gateway: &TestApp, room_id: &str, user: &str) -> Watcher {
        let token = gateway.token(user);
        let mut viewer = gateway.viewer(room_id, &token).await;
        let hello = viewer.next_of_type("hello").await;
        let seq = hello["seq"].as_u64().unwrap();
        Watcher { viewer, token, seq }
    }

    /// The next room event of `kind`; every room event before it must follow the last one
    /// seen without a gap.
    async fn next_event(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.viewer.next_json().await;
            if let Some(seq) = frame["seq"].as_u64() {
                assert_eq!(
                    seq,
                    self.seq + 1,
                    "room events arrive without a gap: {frame}"
                );
                self.seq = seq;
            }
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Reads until the connection ends (its gateway died).
    async fn until_gone(&mut self) {
        let gone = async { while let Some(Ok(_)) = self.viewer.socket.next().await {} };
        tokio::time::timeout(PATIENCE, gone)
            .await
            .expect("the dead gateway's connections end");
    }

    /// Reconnects on `gateway` from the last event seen.
    async fn resume(&mut self, gateway: &TestApp, room_id: &str) {
        self.viewer = gateway.viewer_since(room_id, &self.token, self.seq).await;
        self.viewer.next_of_type("hello").await;
    }
}

/// Orders one unit for each shopper in `shoppers`, alternating between the orders APIs;
/// the ids answered 201. Any other answer but 409 sold_out fails the test.
async fn buy(
    apis: &[Arc<TestApp>],
    drop_id: &str,
    shoppers: std::ops::Range<usize>,
) -> Vec<String> {
    futures::stream::iter(shoppers)
        .map(|i| {
            let api = apis[i % apis.len()].clone();
            let drop_id = drop_id.to_string();
            async move {
                let token = api.token(&format!("shopper-{i}"));
                let answer = api.order(&drop_id, &token, &format!("k-{i}"), 1).await;
                match answer.status {
                    201 => Some(answer.body["order_id"].as_str().unwrap().to_string()),
                    409 => {
                        assert_eq!(answer.body["code"], "sold_out", "{answer:?}");
                        None
                    }
                    _ => panic!("shopper-{i}: {answer:?}"),
                }
            }
        })
        .buffer_unordered(16)
        .filter_map(|id| async move { id })
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drop_runs_across_the_cluster_through_a_gateway_and_a_kafka_broker_dying() {
    let cluster = Cluster::up().await;
    let db = cluster.database_url().to_string();
    let connect = |addr: String| {
        let db = db.clone();
        async move { Arc::new(TestApp::external(&addr, &db, "ld").await) }
    };
    let control = connect(cluster.addresses("LINKDROP_CLUSTER_CONTROL")[0].clone()).await;
    let mut gateways = Vec::new();
    for addr in cluster.addresses("LINKDROP_CLUSTER_GATEWAYS") {
        gateways.push(connect(addr).await);
    }
    let mut orders = Vec::new();
    for addr in cluster.addresses("LINKDROP_CLUSTER_ORDERS") {
        orders.push(connect(addr).await);
    }
    assert_eq!((gateways.len(), orders.len()), (3, 2));
    let ready = control.admin_get("/readyz").await;
    assert_eq!(
        ready.body["backend"], "redis-cluster+kafka+postgres",
        "{ready:?}"
    );

    let mut receiver = WebhookReceiver::start().await;
    let merchant = format!("m_{}", uuid::Uuid::now_v7().simple());
    control
        .subscribe(&merchant, &receiver.url, &["order.created"])
        .await;
    let room_id = control.create_room(&merchant).await;
    let drop_id = control.create_drop(&room_id, STOCK, 1).await;
    // A second drop, never launched: with two outboxes on a Redis Cluster the relay reads
    // each drop's on its own node.
    control.create_drop(&room_id, 10, 1).await;

    // Viewers spread over the three gateways.
    let mut watchers = Vec::new();
    for (g, gateway) in gateways.iter().enumerate() {
        for v in 0..VIEWERS_PER_GATEWAY {
            watchers.push((
                g,
                Watcher::join(gateway, &room_id, &format!("viewer-{g}-{v}")).await,
            ));
        }
    }
    let opens_at_ms = control.launch(&drop_id, 0).await;
    for (_, watcher) in &mut watchers {
        let countdown = watcher.next_event("drop.countdown").await;
        assert_eq!(countdown["drop"]["id"], drop_id.as_str());
        assert_eq!(countdown["opens_at_ms"], opens_at_ms);
    }

    let mut acknowledged = buy(&orders, &drop_id, 0..120).await;
    assert_eq!(acknowledged.len(), 120);

    // Mid-drop: the third gateway and the second Kafka broker die.
    cluster.kill("gateway-3").await;
    cluster.kill("kafka-2").await;
    let orphans = watchers.iter_mut().filter(|(g, _)| *g == 2);
    for (i, (g, watcher)) in orphans.enumerate() {
        watcher.until_gone().await;
        *g = i % 2;
        watcher.resume(&gateways[*g], &room_id).await;
    }

    acknowledged.extend(buy(&orders, &drop_id, 120..450).await);
    assert_eq!(
        acknowledged.len(),
        STOCK as usize,
        "every unit sold, none twice"
    );
    for (_, watcher) in &mut watchers {
        let sold_out = watcher.next_event("drop.sold_out").await;
        assert_eq!(sold_out["drop_id"], drop_id.as_str());
    }

    // Every acknowledged order announced to the merchant...
    let wanted: BTreeSet<&str> = acknowledged.iter().map(String::as_str).collect();
    let mut heard = BTreeSet::new();
    while !wanted.iter().all(|id| heard.contains(*id)) {
        let delivery = receiver.next().await;
        let event: Value = serde_json::from_str(&delivery.body).unwrap();
        heard.insert(event["data"]["order_id"].as_str().unwrap().to_string());
    }
    assert!(heard.iter().all(|id| wanted.contains(id.as_str())));
    // ...settled exactly once, and the drop's figures add up.
    let mut settled: Vec<String> =
        sqlx::query_scalar("SELECT order_id FROM orders WHERE drop_id = $1")
            .bind(&drop_id)
            .fetch_all(control.postgres())
            .await
            .unwrap();
    settled.sort();
    acknowledged.sort();
    assert_eq!(
        settled, acknowledged,
        "PostgreSQL holds exactly the acknowledged orders"
    );
    let drop = control.admin_get(&format!("/v1/drops/{drop_id}")).await;
    assert_eq!(drop.body["stock_left"], 0);
    assert_eq!(drop.body["reserved"], STOCK);

    cluster.down().await;
}
