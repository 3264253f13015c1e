//! The contract in schemas/ checked against what linkdrop really sends, on the real stack.
//!
//! One first-come-first-served drop and one lottery drop go through the public API: API
//! keys, a room, drops, viewers' WebSockets with a clock ping, launch, orders with the
//! refusals of API.md, the draw, webhook deliveries. Every HTTP body, WebSocket frame and
//! webhook body seen is written as a sample named as schemas/README.md says, and
//! `schemas/check.py --strict` must accept them all: each against the OpenAPI response of
//! its route and status or the JSON Schema of its message, and nothing sent may still be
//! marked planned.

use linkdrop_testkit as support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use linkdrop_domain::events::{
    DropSoldOut, OrderAccepted, OrderDrawn, OrderEvent, OrderExpired, OrderPaid,
};
use linkdrop_domain::model::OrderStatus;
use reqwest::Method;
use serde_json::{Value, json};
use support::{ADMIN_KEY, Answer, TestApp, Viewer, WebhookReceiver, spawn_app_with, wait_until_ms};

/// Orders one shopper may send per second in this test: low enough to reach 429 in a few
/// requests, high enough for every other shopper here (none sends more than four).
const PER_USER_PER_S: &str = "5";

/// A directory of samples for `schemas/check.py`.
struct Samples {
    dir: PathBuf,
    written: usize,
}

impl Samples {
    fn new(purpose: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "linkdrop-{purpose}-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create the samples directory");
        Self { dir, written: 0 }
    }

    /// Writes `<name>.<n>.<suffix>`; `n` keeps names unique.
    fn write(&mut self, name: &str, suffix: &str, text: &str) {
        self.written += 1;
        let path = self
            .dir
            .join(format!("{name}.{:03}.{suffix}", self.written));
        std::fs::write(path, text).expect("write a sample");
    }

    /// Keeps the body of `answer` to `operation` (an operationId of openapi.yaml, or
    /// `problem` for an error of no operation) and checks what a body cannot show: its
    /// media type, and Retry-After where API.md promises it.
    fn http(&mut self, operation: &str, answer: Answer) -> Answer {
        let content_type = answer
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if answer.status >= 400 {
            assert_eq!(
                content_type, "application/problem+json",
                "{operation}: {answer:?}"
            );
        } else if !answer.body.is_null() {
            assert!(
                content_type.starts_with("application/json"),
                "{operation}: {answer:?}"
            );
        }
        if matches!(answer.status, 429 | 503) {
            assert!(
                answer.headers.contains_key("retry-after"),
                "{operation}: {answer:?}"
            );
        }
        if !answer.body.is_null() {
            let name = format!("http.{operation}.{}", answer.status);
            self.write(&name, "json", &answer.body.to_string());
        }
        answer
    }

    /// Keeps WebSocket frames, one a line; `direction` is `server` or `client`.
    fn frames(&mut self, direction: &str, label: &str, frames: &[Value]) {
        let text: String = frames.iter().map(|f| format!("{f}\n")).collect();
        self.write(&format!("ws.{direction}.{label}"), "jsonl", &text);
    }

    /// Keeps a webhook body exactly as delivered.
    fn webhook(&mut self, body: &str) {
        let event: Value = serde_json::from_str(body).expect("a JSON webhook body");
        let kind = event["type"].as_str().expect("a webhook type").to_string();
        self.write(&format!("webhook.{kind}"), "json", body);
    }

    /// Removes the samples once they passed, unless `LINKDROP_KEEP_SAMPLES` is set (then
    /// prints where they are and what the checker said).
    fn finish(self, printed: &str) {
        if std::env::var_os("LINKDROP_KEEP_SAMPLES").is_some() {
            println!("samples kept in {}:\n{printed}", self.dir.display());
        } else {
            std::fs::remove_dir_all(&self.dir).ok();
        }
    }

    /// Keeps an order event as the relay serializes it for Kafka.
    fn kafka(&mut self, event: &OrderEvent) {
        let text = serde_json::to_string(event).expect("order events serialize");
        self.write("kafka.order-event", "json", &text);
    }
}

/// Runs `schemas/check.py --strict` on `dir` with the test venv's Python: whether it
/// passed, and what it printed.
async fn check(dir: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/check.py");
    let python = support::test_python();
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .arg("--strict")
        .arg(dir)
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {python} (run ./scripts/setup): {e}"));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), printed)
}

/// A viewer whose frames, in both directions, are all kept.
struct Watcher {
    label: String,
    viewer: Viewer,
    received: Vec<Value>,
    sent: Vec<Value>,
}

impl Watcher {
    /// Joins `room_id` as `user` and reads `hello`.
    async fn join(app: &TestApp, room_id: &str, user: &str) -> Self {
        let viewer = app.viewer(room_id, &app.token(user)).await;
        let mut watcher = Self {
            label: user.to_string(),
            viewer,
            received: Vec::new(),
            sent: Vec::new(),
        };
        let hello = watcher.next_json().await;
        assert_eq!(hello["type"], "hello", "{hello}");
        watcher
    }

    async fn next_json(&mut self) -> Value {
        let frame = self.viewer.next_json().await;
        self.received.push(frame.clone());
        frame
    }

    /// The next frame of type `kind`; the frames before it are kept too.
    async fn next_of_type(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next_json().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Reads frames until one received since joining satisfies `wanted`.
    async fn until(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            if let Some(frame) = self.received.iter().find(|f| wanted(f)) {
                return frame.clone();
            }
            self.next_json().await;
        }
    }

    /// Sends a clock ping and reads its pong.
    async fn ping(&mut self, t: i64) -> Value {
        let ping = json!({"type": "ping", "t": t});
        self.viewer.send_text(&ping.to_string()).await;
        self.sent.push(ping);
        self.next_of_type("pong").await
    }

    fn keep(&self, samples: &mut Samples) {
        samples.frames("server", &self.label, &self.received);
        if !self.sent.is_empty() {
            samples.frames("client", &self.label, &self.sent);
        }
    }
}

/// A request with full control over credentials, body bytes and headers.
async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    credential: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = app.http.request(method, format!("{}{path}", app.base_url));
    if let Some(credential) = credential {
        request = request.bearer_auth(credential);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("linkdrop answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// Asserts the status and, for a problem, its code.
#[track_caller]
fn expect(answer: &Answer, status: u16, code: Option<&str>) {
    assert_eq!(answer.status, status, "{answer:?}");
    if let Some(code) = code {
        assert_eq!(answer.body["code"], code, "{answer:?}");
    }
}

fn id_of(answer: &Answer) -> String {
    answer.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("an id in {answer:?}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_linkdrop_sends_matches_the_schemas() {
    let app = spawn_app_with(&[("LINKDROP_ORDERS_PER_USER_PER_S", PER_USER_PER_S)]).await;
    let mut samples = Samples::new("contract");
    let mut receiver = WebhookReceiver::start().await;
    let merchant = "m_contract";
    let get = Method::GET;
    let post = Method::POST;

    // Operations and credentials.
    let healthz = raw(&app, get.clone(), "/healthz", None, None, &[]).await;
    expect(&samples.http("healthz", healthz), 200, None);
    let readyz = raw(&app, get.clone(), "/readyz", None, None, &[]).await;
    expect(&samples.http("readyz", readyz), 200, None);
    let mut keys = BTreeMap::new();
    for (name, role, owner) in [
        ("host", "host", merchant),
        ("merchant", "merchant", merchant),
        ("other_host", "host", "m_other"),
        ("other_merchant", "merchant", "m_other"),
    ] {
        let created = app
            .admin_post("/v1/api-keys", json!({"role": role, "merchant_id": owner}))
            .await;
        let created = samples.http("createApiKey", created);
        expect(&created, 201, None);
        keys.insert(name, created.body["key"].as_str().unwrap().to_string());
    }
    let (host, merchant_key) = (keys["host"].as_str(), keys["merchant"].as_str());
    let bad_role = app
        .admin_post(
            "/v1/api-keys",
            json!({"role": "admin", "merchant_id": merchant}),
        )
        .await;
    expect(
        &samples.http("createApiKey", bad_role),
        422,
        Some("invalid"),
    );
    let by_host = app
        .request(
            post.clone(),
            "/v1/api-keys",
            host,
            Some(json!({"role": "host", "merchant_id": merchant})),
            &[],
        )
        .await;
    expect(
        &samples.http("createApiKey", by_host),
        403,
        Some("forbidden"),
    );

    // A room.
    let room = app
        .request(
            post.clone(),
            "/v1/rooms",
            host,
            Some(json!({"title": "Contract live"})),
            &[],
        )
        .await;
    let room = samples.http("createRoom", room);
    expect(&room, 201, None);
    let room_id = id_of(&room);
    let shopper_on_host_route = app
        .request(
            post.clone(),
            "/v1/rooms",
            &app.token("nosy"),
            Some(json!({"title": "x"})),
            &[],
        )
        .await;
    expect(
        &samples.http("createRoom", shopper_on_host_route),
        403,
        Some("forbidden"),
    );
    let no_credentials = raw(&app, post.clone(), "/v1/rooms", None, Some("{}"), &[]).await;
    expect(
        &samples.http("createRoom", no_credentials),
        401,
        Some("unauthorized"),
    );
    let malformed = raw(
        &app,
        post.clone(),
        "/v1/rooms",
        Some(host),
        Some("{\"title\": "),
        &[],
    )
    .await;
    expect(
        &samples.http("createRoom", malformed),
        400,
        Some("bad_request"),
    );
    let rooms = app.request(get.clone(), "/v1/rooms", host, None, &[]).await;
    expect(&samples.http("listRooms", rooms), 200, None);
    let read_room = app.admin_get(&format!("/v1/rooms/{room_id}")).await;
    expect(&samples.http("getRoom", read_room), 200, None);
    let unknown_room = app.admin_get("/v1/rooms/room_unknown").await;
    expect(
        &samples.http("getRoom", unknown_room),
        404,
        Some("not_found"),
    );
    let other_host = app
        .request(
            get.clone(),
            &format!("/v1/rooms/{room_id}"),
            &keys["other_host"],
            None,
            &[],
        )
        .await;
    expect(&samples.http("getRoom", other_host), 403, Some("forbidden"));

    // The merchant's webhook endpoint.
    let endpoint = app
        .request(
            post.clone(),
            "/v1/webhook-endpoints",
            merchant_key,
            Some(json!({"url": receiver.url, "events": ["order.created"]})),
            &[],
        )
        .await;
    let endpoint = samples.http("createWebhookEndpoint", endpoint);
    expect(&endpoint, 201, None);
    let endpoint_id = id_of(&endpoint);
    let bad_url = app
        .request(
            post.clone(),
            "/v1/webhook-endpoints",
            merchant_key,
            Some(json!({"url": "ftp://example.com/hook", "events": ["order.created"]})),
            &[],
        )
        .await;
    expect(
        &samples.http("createWebhookEndpoint", bad_url),
        422,
        Some("invalid"),
    );
    let host_endpoint = app
        .request(
            post.clone(),
            "/v1/webhook-endpoints",
            host,
            Some(json!({"url": receiver.url, "events": ["order.created"]})),
            &[],
        )
        .await;
    expect(
        &samples.http("createWebhookEndpoint", host_endpoint),
        403,
        Some("forbidden"),
    );
    let endpoints = app
        .request(
            get.clone(),
            "/v1/webhook-endpoints",
            merchant_key,
            None,
            &[],
        )
        .await;
    expect(&samples.http("listWebhookEndpoints", endpoints), 200, None);

    // Drops: one first come, first served, one lottery.
    let drop_body = |stock: i64, fairness: Value| {
        json!({
            "sku": "SKU-MUG", "title": "Contract mug",
            "image_url": "https://img.example/mug.png",
            "price_cents": 4900, "currency": "CNY",
            "stock": stock, "max_per_user": 1, "fairness": fairness,
        })
    };
    let drops_path = format!("/v1/rooms/{room_id}/drops");
    let fcfs = app
        .request(
            post.clone(),
            &drops_path,
            host,
            Some(drop_body(2, json!({"policy": "fcfs"}))),
            &[],
        )
        .await;
    let fcfs = samples.http("createDrop", fcfs);
    expect(&fcfs, 201, None);
    let fcfs_id = id_of(&fcfs);
    let lottery = app
        .request(
            post.clone(),
            &drops_path,
            host,
            Some(drop_body(
                1,
                json!({"policy": "lottery", "window_ms": 3000}),
            )),
            &[],
        )
        .await;
    let lottery = samples.http("createDrop", lottery);
    expect(&lottery, 201, None);
    let lottery_id = id_of(&lottery);
    let invalid_drop = app
        .request(
            post.clone(),
            &drops_path,
            host,
            Some(json!({
                "sku": "", "title": "x", "image_url": "mug.png", "price_cents": -1,
                "currency": "cny", "stock": 0,
            })),
            &[],
        )
        .await;
    let invalid_drop = samples.http("createDrop", invalid_drop);
    expect(&invalid_drop, 422, Some("invalid"));
    assert!(invalid_drop.body["errors"].as_array().unwrap().len() >= 5);
    let wrong_type = app
        .request(
            post.clone(),
            &drops_path,
            host,
            Some(json!({"sku": 5})),
            &[],
        )
        .await;
    let wrong_type = samples.http("createDrop", wrong_type);
    expect(&wrong_type, 422, Some("invalid"));
    // The field at fault is named.
    assert_eq!(
        wrong_type.body["errors"][0]["field"], "sku",
        "{wrong_type:?}"
    );
    let listed = app.request(get.clone(), &drops_path, host, None, &[]).await;
    expect(&samples.http("listDrops", listed), 200, None);
    let draft = app.admin_get(&format!("/v1/drops/{fcfs_id}")).await;
    let draft = samples.http("getDrop", draft);
    assert_eq!(draft.body["state"], "draft");
    let no_draw = app.admin_get(&format!("/v1/drops/{fcfs_id}/draw")).await;
    expect(&samples.http("getDraw", no_draw), 404, Some("not_found"));
    let draw_before_launch = app.admin_get(&format!("/v1/drops/{lottery_id}/draw")).await;
    expect(&samples.http("getDraw", draw_before_launch), 200, None);

    // The WebSocket: refusals before the upgrade, then a viewer.
    let ws_path = format!("/v1/rooms/{room_id}/ws");
    let bad_token = raw(
        &app,
        get.clone(),
        &format!("{ws_path}?token=not-a-token"),
        None,
        None,
        &[],
    )
    .await;
    expect(
        &samples.http("connectRoom", bad_token),
        401,
        Some("unauthorized"),
    );
    let token = app.token("viewer-a");
    let no_room = raw(
        &app,
        get.clone(),
        &format!("/v1/rooms/room_unknown/ws?token={token}"),
        None,
        None,
        &[],
    )
    .await;
    expect(
        &samples.http("connectRoom", no_room),
        404,
        Some("not_found"),
    );
    let no_upgrade = raw(
        &app,
        get.clone(),
        &format!("{ws_path}?token={token}"),
        None,
        None,
        &[],
    )
    .await;
    expect(
        &samples.http("connectRoom", no_upgrade),
        400,
        Some("bad_request"),
    );
    let mut watcher = Watcher::join(&app, &room_id, "viewer-a").await;
    let pong = watcher.ping(1_234_567).await;
    assert_eq!(pong["t"], 1_234_567);

    // The first-come-first-served drop.
    let before_launch = app.order(&fcfs_id, &app.token("too-early"), "k", 1).await;
    let before_launch = samples.http("placeOrder", before_launch);
    expect(&before_launch, 425, Some("not_open"));
    assert_eq!(before_launch.body["opens_at_ms"], Value::Null);
    let launch_path = format!("/v1/drops/{fcfs_id}/launch");
    let launched = app
        .request(
            post.clone(),
            &launch_path,
            host,
            Some(json!({"countdown_ms": 1500})),
            &[],
        )
        .await;
    let launched = samples.http("launchDrop", launched);
    expect(&launched, 202, None);
    assert!(launched.body.get("seed_hash").is_none(), "{launched:?}");
    let opens_at_ms = launched.body["opens_at_ms"].as_i64().unwrap();
    let twice = app
        .request(post.clone(), &launch_path, host, Some(json!({})), &[])
        .await;
    expect(
        &samples.http("launchDrop", twice),
        409,
        Some("already_launched"),
    );
    let countdown = watcher.next_of_type("drop.countdown").await;
    assert_eq!(countdown["drop"]["id"], fcfs_id.as_str());
    let early = app.order(&fcfs_id, &app.token("early"), "k", 1).await;
    let early = samples.http("placeOrder", early);
    expect(&early, 425, Some("not_open"));
    assert_eq!(early.body["opens_at_ms"], opens_at_ms);
    let counting_down = app.admin_get(&format!("/v1/drops/{fcfs_id}")).await;
    samples.http("getDrop", counting_down);
    wait_until_ms(opens_at_ms).await;

    let buyer_a = app.token("buyer-a");
    let first = samples.http("placeOrder", app.order(&fcfs_id, &buyer_a, "a1", 1).await);
    expect(&first, 201, None);
    let order_a = first.body["order_id"].as_str().unwrap().to_string();
    let replay = samples.http("placeOrder", app.order(&fcfs_id, &buyer_a, "a1", 1).await);
    expect(&replay, 201, None);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(replay.body, first.body);
    let limit = samples.http("placeOrder", app.order(&fcfs_id, &buyer_a, "a2", 1).await);
    expect(&limit, 409, Some("limit_reached"));
    let conflict = samples.http("placeOrder", app.order(&fcfs_id, &buyer_a, "a1", 2).await);
    expect(&conflict, 409, Some("idempotency_conflict"));

    let careless = app.token("careless");
    let zero = samples.http("placeOrder", app.order(&fcfs_id, &careless, "z", 0).await);
    expect(&zero, 422, Some("invalid"));
    let over_max = samples.http("placeOrder", app.order(&fcfs_id, &careless, "z", 2).await);
    expect(&over_max, 422, Some("invalid"));
    let orders_path = format!("/v1/drops/{fcfs_id}/orders");
    let sloppy = app.token("sloppy");
    let no_key = raw(
        &app,
        post.clone(),
        &orders_path,
        Some(&sloppy),
        Some("{\"qty\": 1}"),
        &[],
    )
    .await;
    expect(
        &samples.http("placeOrder", no_key),
        400,
        Some("bad_request"),
    );
    let qty_text = raw(
        &app,
        post.clone(),
        &orders_path,
        Some(&sloppy),
        Some("{\"qty\": \"one\"}"),
        &[("Idempotency-Key", "s")],
    )
    .await;
    let qty_text = samples.http("placeOrder", qty_text);
    expect(&qty_text, 422, Some("invalid"));
    assert_eq!(qty_text.body["errors"][0]["field"], "qty");
    let anonymous = raw(
        &app,
        post.clone(),
        &orders_path,
        None,
        Some("{\"qty\": 1}"),
        &[("Idempotency-Key", "n")],
    )
    .await;
    expect(
        &samples.http("placeOrder", anonymous),
        401,
        Some("unauthorized"),
    );
    let forged = app
        .order(&fcfs_id, &format!("{}x", app.token("forger")), "f", 1)
        .await;
    expect(
        &samples.http("placeOrder", forged),
        401,
        Some("unauthorized"),
    );
    let api_key_as_shopper = app.order(&fcfs_id, host, "h", 1).await;
    expect(
        &samples.http("placeOrder", api_key_as_shopper),
        401,
        Some("unauthorized"),
    );
    let unknown_drop = app.order("drp_unknown", &app.token("lost"), "u", 1).await;
    expect(
        &samples.http("placeOrder", unknown_drop),
        404,
        Some("not_found"),
    );
    let huge = format!("{{\"qty\": 1, \"pad\": \"{}\"}}", "x".repeat(70 * 1024));
    let too_large = raw(
        &app,
        post.clone(),
        &orders_path,
        Some(&app.token("verbose")),
        Some(&huge),
        &[("Idempotency-Key", "v")],
    )
    .await;
    expect(
        &samples.http("placeOrder", too_large),
        413,
        Some("payload_too_large"),
    );

    let second = app.order(&fcfs_id, &app.token("buyer-b"), "b1", 1).await;
    let second = samples.http("placeOrder", second);
    expect(&second, 201, None);
    let order_b = second.body["order_id"].as_str().unwrap().to_string();
    let buyer_c = app.token("buyer-c");
    let sold_out = samples.http("placeOrder", app.order(&fcfs_id, &buyer_c, "c1", 1).await);
    expect(&sold_out, 409, Some("sold_out"));
    let sold_out_again = samples.http("placeOrder", app.order(&fcfs_id, &buyer_c, "c1", 1).await);
    expect(&sold_out_again, 409, Some("sold_out"));
    // Sold out is not final, so it is not recorded under the key: not a replay.
    assert!(!sold_out_again.headers.contains_key("idempotent-replayed"));
    watcher
        .until(|f| f["type"] == "drop.sold_out" && f["drop_id"] == fcfs_id.as_str())
        .await;
    watcher
        .until(|f| {
            f["type"] == "drop.stock" && f["drop_id"] == fcfs_id.as_str() && f["stock_left"] == 0
        })
        .await;

    // Over the per-user rate: bounded, since the limit allows a handful a second.
    let eager = app.token("eager");
    let mut limited = None;
    for i in 0..50 {
        let answer = app.order(&fcfs_id, &eager, &format!("e{i}"), 1).await;
        if answer.status == 429 {
            limited = Some(answer);
            break;
        }
        expect(&answer, 409, Some("sold_out"));
    }
    let limited = samples.http("placeOrder", limited.expect("a 429 within 50 requests"));
    expect(&limited, 429, Some("rate_limited"));

    // Settled orders: each order.created delivery means its order is in PostgreSQL.
    let mut announced = BTreeSet::new();
    while !(announced.contains(&order_a) && announced.contains(&order_b)) {
        let delivery = receiver.next().await;
        samples.webhook(&delivery.body);
        let event: Value = serde_json::from_str(&delivery.body).unwrap();
        announced.insert(event["data"]["order_id"].as_str().unwrap().to_string());
    }
    let order_path = format!("/v1/orders/{order_a}");
    let own = samples.http(
        "getOrder",
        app.request(get.clone(), &order_path, &buyer_a, None, &[])
            .await,
    );
    expect(&own, 200, None);
    assert_eq!(own.body["status"], "reserved");
    let by_merchant = app
        .request(get.clone(), &order_path, merchant_key, None, &[])
        .await;
    expect(&samples.http("getOrder", by_merchant), 200, None);
    let someone_else = app
        .request(get.clone(), &order_path, &buyer_c, None, &[])
        .await;
    expect(
        &samples.http("getOrder", someone_else),
        404,
        Some("not_found"),
    );
    let orders = app
        .request(
            get.clone(),
            &format!("/v1/orders?drop_id={fcfs_id}&limit=1"),
            merchant_key,
            None,
            &[],
        )
        .await;
    let orders = samples.http("listOrders", orders);
    expect(&orders, 200, None);
    assert!(orders.body["next_cursor"].is_string(), "{orders:?}");
    for (credential, query, status, code) in [
        (host, "", 403, "forbidden"),
        (buyer_a.as_str(), "", 403, "forbidden"),
        (merchant_key, "?limit=abc", 400, "bad_request"),
        (merchant_key, "?limit=0", 422, "invalid"),
    ] {
        let answer = app
            .request(
                get.clone(),
                &format!("/v1/orders{query}"),
                credential,
                None,
                &[],
            )
            .await;
        expect(&samples.http("listOrders", answer), status, Some(code));
    }
    let attempts_path = format!("/v1/webhook-endpoints/{endpoint_id}/attempts");
    let attempts = app
        .request(get.clone(), &attempts_path, merchant_key, None, &[])
        .await;
    expect(&samples.http("listWebhookAttempts", attempts), 200, None);
    let foreign = app
        .request(
            get.clone(),
            &attempts_path,
            &keys["other_merchant"],
            None,
            &[],
        )
        .await;
    expect(
        &samples.http("listWebhookAttempts", foreign),
        403,
        Some("forbidden"),
    );
    let no_endpoint = app
        .request(
            get.clone(),
            "/v1/webhook-endpoints/ep_unknown/attempts",
            merchant_key,
            None,
            &[],
        )
        .await;
    expect(
        &samples.http("listWebhookAttempts", no_endpoint),
        404,
        Some("not_found"),
    );

    let closed = app
        .request(
            post.clone(),
            &format!("/v1/drops/{fcfs_id}/close"),
            host,
            None,
            &[],
        )
        .await;
    let closed = samples.http("closeDrop", closed);
    expect(&closed, 200, None);
    assert_eq!(closed.body["state"], "closed");
    watcher.next_of_type("drop.closed").await;
    let late = app.order(&fcfs_id, &app.token("late"), "l", 1).await;
    expect(&samples.http("placeOrder", late), 410, Some("closed"));

    // The lottery drop: two entries for one unit.
    let mut fans = Vec::new();
    for fan in ["fan-1", "fan-2"] {
        fans.push(Watcher::join(&app, &room_id, fan).await);
    }
    let launched = app
        .request(
            post.clone(),
            &format!("/v1/drops/{lottery_id}/launch"),
            host,
            Some(json!({"countdown_ms": 0})),
            &[],
        )
        .await;
    let launched = samples.http("launchDrop", launched);
    expect(&launched, 202, None);
    let seed_hash = launched.body["seed_hash"].as_str().unwrap().to_string();
    let countdown = watcher.next_of_type("drop.countdown").await;
    assert_eq!(countdown["seed_hash"], seed_hash.as_str());
    let mut entries = BTreeMap::new();
    for (fan, idempotency_keys) in [("fan-1", &["e1", "e1", "e2"][..]), ("fan-2", &["e1"][..])] {
        for key in idempotency_keys {
            let entry = app.order(&lottery_id, &app.token(fan), key, 1).await;
            let entry = samples.http("placeOrder", entry);
            expect(&entry, 202, None);
            assert_eq!(entry.body["status"], "entered");
            let order_id = entry.body["order_id"].as_str().unwrap().to_string();
            assert_eq!(entries.entry(fan).or_insert(order_id.clone()), &order_id);
        }
    }
    let pending = app.admin_get(&format!("/v1/drops/{lottery_id}/draw")).await;
    expect(&samples.http("getDraw", pending), 200, None);
    let drawn = watcher.next_of_type("drop.draw").await;
    assert_eq!(drawn["winners"], 1);
    let mut results = BTreeMap::new();
    for fan in &mut fans {
        fan.next_of_type("drop.countdown").await;
        let result = fan.next_of_type("order.result").await;
        assert_eq!(result["order_id"], entries[fan.label.as_str()].as_str());
        results.insert(fan.label.clone(), result);
    }
    // The draw's announcement ends with the lottery's stock figures.
    watcher
        .until(|f| f["type"] == "drop.sold_out" && f["drop_id"] == lottery_id.as_str())
        .await;
    let draw = app.admin_get(&format!("/v1/drops/{lottery_id}/draw")).await;
    let draw = samples.http("getDraw", draw);
    expect(&draw, 200, None);
    assert_eq!(draw.body["seed"], drawn["seed"]);
    let (winner, won) = results
        .iter()
        .find(|(_, r)| r["status"] == "reserved")
        .expect("one entry wins");
    let (loser, lost) = results
        .iter()
        .find(|(_, r)| r["status"] == "lost")
        .expect("one entry loses");
    let winning_order = won["order_id"].as_str().unwrap().to_string();
    while !announced.contains(&winning_order) {
        let delivery = receiver.next().await;
        samples.webhook(&delivery.body);
        let event: Value = serde_json::from_str(&delivery.body).unwrap();
        announced.insert(event["data"]["order_id"].as_str().unwrap().to_string());
    }
    let winners_order = app
        .request(
            get.clone(),
            &format!("/v1/orders/{winning_order}"),
            &app.token(winner),
            None,
            &[],
        )
        .await;
    let winners_order = samples.http("getOrder", winners_order);
    expect(&winners_order, 200, None);
    assert_eq!(winners_order.body["status"], "reserved");
    assert_eq!(winners_order.body["pay_by_ms"], won["pay_by_ms"]);
    // Settled before the winner's outcome, which came later on the same partition.
    let losers_order = app
        .request(
            get.clone(),
            &format!("/v1/orders/{}", lost["order_id"].as_str().unwrap()),
            &app.token(loser),
            None,
            &[],
        )
        .await;
    let losers_order = samples.http("getOrder", losers_order);
    expect(&losers_order, 200, None);
    let after_draw = app.order(&lottery_id, &app.token("fan-3"), "k", 1).await;
    expect(
        &samples.http("placeOrder", after_draw),
        409,
        Some("sold_out"),
    );
    let lottery_drop = app.admin_get(&format!("/v1/drops/{lottery_id}")).await;
    let lottery_drop = samples.http("getDrop", lottery_drop);
    assert_eq!(lottery_drop.body["seed_hash"], seed_hash.as_str());

    // The Kafka messages of these orders, as the relay serializes them.
    let admitted = |order: &Answer| order.body["admitted_at_ms"].as_i64().unwrap();
    let drawn_at_ms = draw.body["drawn_at_ms"].as_i64().unwrap();
    for event in [
        OrderEvent::Accepted(OrderAccepted {
            order_id: order_a.clone(),
            drop_id: fcfs_id.clone(),
            user_id: "buyer-a".into(),
            qty: 1,
            status: OrderStatus::Reserved,
            admitted_at_ms: admitted(&own),
            pay_by_ms: own.body["pay_by_ms"].as_i64(),
            idempotency_key: "a1".into(),
        }),
        OrderEvent::Accepted(OrderAccepted {
            order_id: winning_order.clone(),
            drop_id: lottery_id.clone(),
            user_id: winner.clone(),
            qty: 1,
            status: OrderStatus::Entered,
            admitted_at_ms: admitted(&winners_order),
            pay_by_ms: None,
            idempotency_key: "e1".into(),
        }),
        OrderEvent::Drawn(OrderDrawn {
            order_id: winning_order.clone(),
            drop_id: lottery_id.clone(),
            user_id: winner.clone(),
            status: OrderStatus::Reserved,
            drawn_at_ms,
            pay_by_ms: won["pay_by_ms"].as_i64(),
        }),
        OrderEvent::Drawn(OrderDrawn {
            order_id: lost["order_id"].as_str().unwrap().to_string(),
            drop_id: lottery_id.clone(),
            user_id: loser.clone(),
            status: OrderStatus::Lost,
            drawn_at_ms,
            pay_by_ms: None,
        }),
        OrderEvent::Paid(OrderPaid {
            order_id: order_a.clone(),
            drop_id: fcfs_id.clone(),
            user_id: "buyer-a".into(),
            paid_at_ms: admitted(&own) + 1_000,
            payment_ref: "pay-1".into(),
        }),
        OrderEvent::Expired(OrderExpired {
            order_id: winning_order.clone(),
            drop_id: lottery_id.clone(),
            user_id: winner.clone(),
            qty: 1,
            expired_at_ms: drawn_at_ms + 600_000,
        }),
        OrderEvent::SoldOut(DropSoldOut {
            drop_id: fcfs_id.clone(),
            sold_out_at_ms: admitted(&own),
        }),
    ] {
        samples.kafka(&event);
    }

    // Errors of no operation, and the last webhook routes.
    let no_route = app.admin_get("/v1/nothing-here").await;
    expect(&samples.http("problem", no_route), 404, Some("not_found"));
    let wrong_method = app
        .request(Method::DELETE, "/v1/rooms", ADMIN_KEY, None, &[])
        .await;
    expect(
        &samples.http("problem", wrong_method),
        405,
        Some("method_not_allowed"),
    );
    let endpoint_path = format!("/v1/webhook-endpoints/{endpoint_id}");
    let rotated = app
        .request(
            Method::POST,
            &format!("{endpoint_path}/rotate-secret"),
            merchant_key,
            None,
            &[],
        )
        .await;
    expect(&samples.http("rotateWebhookSecret", rotated), 200, None);
    let enabled = app
        .request(
            Method::POST,
            &format!("{endpoint_path}/enable"),
            merchant_key,
            None,
            &[],
        )
        .await;
    expect(&samples.http("enableWebhookEndpoint", enabled), 200, None);
    let dead = app
        .request(
            Method::GET,
            &format!("{endpoint_path}/deliveries?state=dead"),
            merchant_key,
            None,
            &[],
        )
        .await;
    expect(&samples.http("listWebhookDeliveries", dead), 200, None);
    let bad_state = app
        .request(
            Method::GET,
            &format!("{endpoint_path}/deliveries?state=lost"),
            merchant_key,
            None,
            &[],
        )
        .await;
    expect(
        &samples.http("listWebhookDeliveries", bad_state),
        422,
        Some("invalid"),
    );
    let unknown_replay = app
        .request(
            Method::POST,
            "/v1/webhook-messages/msg_unknown/replay",
            merchant_key,
            None,
            &[],
        )
        .await;
    expect(
        &samples.http("replayWebhookMessage", unknown_replay),
        404,
        Some("not_found"),
    );
    let foreign_delete = app
        .request(
            Method::DELETE,
            &endpoint_path,
            &keys["other_merchant"],
            None,
            &[],
        )
        .await;
    expect(
        &samples.http("deleteWebhookEndpoint", foreign_delete),
        403,
        Some("forbidden"),
    );
    let deleted = app
        .request(Method::DELETE, &endpoint_path, merchant_key, None, &[])
        .await;
    expect(&samples.http("deleteWebhookEndpoint", deleted), 204, None);

    watcher.keep(&mut samples);
    for fan in &fans {
        fan.keep(&mut samples);
    }
    let (passed, printed) = check(&samples.dir).await;
    assert!(
        passed,
        "schemas/check.py rejected samples in {}:\n{printed}",
        samples.dir.display()
    );
    samples.finish(&printed);
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
