//! Test support: start linkdrop on the real stack (Redis, Kafka, PostgreSQL from
//! `scripts/stack`), isolated per test by a fresh database and a fresh namespace, and talk
//! to it through its public API only.
#![allow(dead_code)]

pub mod processes;
pub mod rush;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use linkdrop::startup::{Application, Backends, Role};
use linkdrop_infra::backends::RedisConn;
use linkdrop_infra::config::{Config, RedisTarget};
use linkdrop_records::db::Db;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// How long a test waits for something the system does asynchronously.
pub const PATIENCE: Duration = Duration::from_secs(30);

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdef0123";
/// Seals webhook secrets in tests (32 bytes as hex).
pub const WEBHOOK_SECRET_KEY: &str =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Where the local stack listens: `scripts/test` exports these; the defaults are the
/// ports of `scripts/stack`.
fn stack_env(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_string())
}

pub fn redis_url() -> String {
    stack_env("LINKDROP_REDIS_URL", "redis://127.0.0.1:16379")
}

/// Whether the tests run on a Redis Cluster (`LINKDROP_REDIS_CLUSTER=true` with the nodes in
/// `LINKDROP_REDIS_URL`): the whole suite can, though `scripts/test` runs it on one server.
fn redis_cluster() -> bool {
    stack_env("LINKDROP_REDIS_CLUSTER", "false") == "true"
}

/// Where the tests' Redis is, for tests that talk to it directly.
pub fn redis_target() -> RedisTarget {
    let url = redis_url();
    if redis_cluster() {
        RedisTarget::Cluster(url.split(',').map(str::to_string).collect())
    } else {
        RedisTarget::Single(url)
    }
}

pub fn kafka_brokers() -> String {
    stack_env("LINKDROP_KAFKA_BROKERS", "127.0.0.1:19092")
}

fn database_server() -> String {
    let url = stack_env(
        "LINKDROP_DATABASE_URL",
        "postgres://postgres@127.0.0.1:15432/linkdrop",
    );
    url.rsplit_once('/')
        .map(|(server, _)| server.to_string())
        .unwrap_or(url)
}

/// A fresh, empty database on the stack's PostgreSQL; its URL.
pub async fn fresh_database() -> String {
    fresh_database_on(&database_server()).await
}

/// A fresh, empty database on the PostgreSQL at `server` (`postgres://…:port`); its URL.
pub async fn fresh_database_on(server: &str) -> String {
    let admin = PgPool::connect(&format!("{server}/postgres"))
        .await
        .expect("the stack's PostgreSQL is up (run ./scripts/stack up)");
    let name = format!("test_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .expect("create the test database");
    admin.close().await;
    format!("{server}/{name}")
}

/// A namespace no other test uses: Redis keys, Kafka topic and group are all fresh.
/// A fresh PostgreSQL database and a fresh SQLite file, both migrated.
pub async fn both_record_stores() -> Vec<linkdrop_records::db::Db> {
    let pg = sqlx::PgPool::connect(&fresh_database().await)
        .await
        .unwrap();
    linkdrop_infra::backends::migrate(&pg).await.unwrap();
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}.db", linkdrop_domain::ids::new_id("records")));
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(true);
    let sqlite = sqlx::sqlite::SqlitePool::connect_with(options)
        .await
        .unwrap();
    linkdrop_records::db::migrate_sqlite(&sqlite).await.unwrap();
    vec![
        linkdrop_records::db::Db::Postgres(pg),
        linkdrop_records::db::Db::Sqlite(sqlite),
    ]
}

pub fn fresh_namespace() -> String {
    format!("t{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
}

/// The configuration of a test application on the stack.
pub fn test_env(database_url: &str, namespace: &str) -> BTreeMap<String, String> {
    [
        ("LINKDROP_HTTP_ADDR", "127.0.0.1:0".to_string()),
        ("LINKDROP_ADMIN_KEY", ADMIN_KEY.to_string()),
        ("LINKDROP_JWT_SECRET", JWT_SECRET.to_string()),
        (
            "LINKDROP_WEBHOOK_SECRET_KEY",
            WEBHOOK_SECRET_KEY.to_string(),
        ),
        ("LINKDROP_REDIS_URL", redis_url()),
        ("LINKDROP_REDIS_CLUSTER", redis_cluster().to_string()),
        ("LINKDROP_DATABASE_URL", database_url.to_string()),
        ("LINKDROP_DATABASE_MAX_CONNECTIONS", "5".to_string()),
        ("LINKDROP_KAFKA_BROKERS", kafka_brokers()),
        ("LINKDROP_KAFKA_PARTITIONS", "2".to_string()),
        ("LINKDROP_NAMESPACE", namespace.to_string()),
        ("LINKDROP_WEBHOOK_ALLOW_NETS", "127.0.0.0/8".to_string()),
        ("LINKDROP_WEBHOOK_POLL_MS", "50".to_string()),
        ("LINKDROP_SETTLE_BATCH_WAIT_MS", "5".to_string()),
        ("LINKDROP_LOG", "warn".to_string()),
        // Every test client shares 127.0.0.1; tests of the limits set their own.
        ("LINKDROP_ORDERS_PER_IP_PER_S", "0".to_string()),
        ("LINKDROP_ORDERS_PER_USER_PER_S", "1000".to_string()),
        ("LINKDROP_EXPIRY_POLL_MS", "50".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Whether the tests run against the embedded backend (`LINKDROP_TEST_BACKEND=embedded`)
/// instead of the stack: `scripts/test` runs the conformance suite both ways.
pub fn embedded() -> bool {
    std::env::var("LINKDROP_TEST_BACKEND").is_ok_and(|b| b == "embedded")
}

/// The configuration of a test application on the embedded backend: no servers, its files
/// in `data_dir`.
pub fn embedded_env(data_dir: &std::path::Path, namespace: &str) -> BTreeMap<String, String> {
    let mut env = test_env("", namespace);
    for server in [
        "LINKDROP_REDIS_URL",
        "LINKDROP_REDIS_CLUSTER",
        "LINKDROP_DATABASE_URL",
        "LINKDROP_KAFKA_BROKERS",
    ] {
        env.remove(server);
    }
    env.insert(
        "LINKDROP_DATA_DIR".into(),
        data_dir.to_string_lossy().into_owned(),
    );
    env
}

/// A fresh directory for one embedded installation.
pub fn fresh_data_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("embedded")
        .join(linkdrop_domain::ids::new_id("data"))
}

/// A running linkdrop with every role, and a client for its API.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base_url: String,
    /// Its records (PostgreSQL on the stack, SQLite embedded).
    pub db: Db,
    /// Its live state (Redis on the stack, the engine embedded; none for an embedded
    /// process running elsewhere).
    redis: Option<RedisConn>,
    pub http: reqwest::Client,
    pub namespace: String,
    /// The settings it runs with, for more processes of the same installation.
    pub env: BTreeMap<String, String>,
    /// Its backends, when it runs in this process (for more processes beside it).
    backends: Option<Backends>,
    shutdown: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts linkdrop (`all`) on the stack with a fresh database and namespace.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Like [`spawn_app`], with some settings changed. On the embedded backend when the tests
/// run so ([`embedded`]).
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let namespace = fresh_namespace();
    let (mut env, database_url) = if embedded() {
        (embedded_env(&fresh_data_dir(), &namespace), String::new())
    } else {
        let database_url = fresh_database().await;
        (test_env(&database_url, &namespace), database_url)
    };
    for (key, value) in overrides {
        env.insert(key.to_string(), value.to_string());
    }
    start(env, &Role::ALL, &database_url, &namespace).await
}

/// Like [`spawn_app_with`], running only `roles`.
pub async fn spawn_roles(roles: &[Role], overrides: &[(&str, &str)]) -> TestApp {
    let database_url = fresh_database().await;
    let namespace = fresh_namespace();
    let mut env = test_env(&database_url, &namespace);
    for (key, value) in overrides {
        env.insert(key.to_string(), value.to_string());
    }
    start(env, roles, &database_url, &namespace).await
}

async fn start(
    env: BTreeMap<String, String>,
    roles: &[Role],
    database_url: &str,
    namespace: &str,
) -> TestApp {
    let config = Config::from_sources(None, &env).expect("the test configuration is valid");
    let data_dir = config.embedded.data_dir.clone();
    let app = Application::build(config, roles)
        .await
        .expect("linkdrop starts");
    let addr = app.local_addr();
    let shutdown = app.shutdown_token();
    let live_state = app.live_state();
    let backends = app.backends();
    tokio::spawn(app.run_until_stopped());
    let (db, redis) = if database_url.is_empty() {
        let records = linkdrop_records::db::open_sqlite(&data_dir.join("records.sqlite"))
            .await
            .expect("open the embedded records");
        let engine = live_state.expect("the embedded backend has an engine");
        (Db::Sqlite(records), engine)
    } else {
        (
            records_on(database_url).await,
            live_state_on_the_stack().await,
        )
    };
    TestApp {
        addr,
        base_url: format!("http://{addr}"),
        db,
        redis: Some(redis),
        http: reqwest::Client::new(),
        namespace: namespace.to_string(),
        env,
        backends: Some(backends),
        shutdown,
    }
}

async fn records_on(database_url: &str) -> Db {
    Db::Postgres(
        PgPool::connect(database_url)
            .await
            .expect("connect to the test database"),
    )
}

async fn live_state_on_the_stack() -> RedisConn {
    linkdrop_infra::backends::connect_redis(&redis_target())
        .await
        .expect("the stack's Redis is up")
}

impl TestApp {
    /// A client of an embedded linkdrop running elsewhere, with its files in `data_dir`.
    pub async fn external_embedded(addr: &str, data_dir: &std::path::Path) -> TestApp {
        let records = linkdrop_records::db::open_sqlite(&data_dir.join("records.sqlite"))
            .await
            .expect("open the embedded records");
        TestApp {
            addr: addr.parse().unwrap(),
            base_url: format!("http://{addr}"),
            db: Db::Sqlite(records),
            redis: None,
            http: reqwest::Client::new(),
            namespace: String::new(),
            env: BTreeMap::new(),
            backends: None,
            shutdown: CancellationToken::new(),
        }
    }

    /// Its live state: Redis, or the engine of this process.
    pub fn redis(&self) -> RedisConn {
        self.redis
            .clone()
            .expect("the live state of an embedded process elsewhere is out of reach")
    }

    /// One number from the records (`$1` is `arg`), on either backend.
    pub async fn count(&self, sql: &str, arg: &str) -> i64 {
        match &self.db {
            Db::Postgres(pool) => sqlx::query_scalar(sql).bind(arg).fetch_one(pool).await,
            Db::Sqlite(pool) => sqlx::query_scalar(sql).bind(arg).fetch_one(pool).await,
        }
        .expect("the query runs")
    }

    /// One text from the records (`$1` is `arg`), on either backend.
    pub async fn text(&self, sql: &str, arg: &str) -> String {
        match &self.db {
            Db::Postgres(pool) => sqlx::query_scalar(sql).bind(arg).fetch_one(pool).await,
            Db::Sqlite(pool) => sqlx::query_scalar(sql).bind(arg).fetch_one(pool).await,
        }
        .expect("the query runs")
    }

    /// The PostgreSQL pool of a test that only runs on the stack.
    pub fn postgres(&self) -> &PgPool {
        match &self.db {
            Db::Postgres(pool) => pool,
            Db::Sqlite(_) => panic!("this test runs on the stack only"),
        }
    }
}

impl TestApp {
    /// Another gateway node of the same installation (same Redis namespace and secrets).
    pub async fn another_gateway(&self) -> TestApp {
        self.another_process(Role::Gateway).await
    }

    /// Another orders process of the same installation.
    pub async fn another_orders(&self) -> TestApp {
        self.another_process(Role::Orders).await
    }

    /// Another process of the same installation running `role`: on the stack a process of
    /// its own (own connections), on the embedded backend one beside this one on its
    /// engine and records (the only way there to have two).
    async fn another_process(&self, role: Role) -> TestApp {
        if !embedded() {
            let database_url = self.env["LINKDROP_DATABASE_URL"].clone();
            return start(self.env.clone(), &[role], &database_url, &self.namespace).await;
        }
        let config =
            Config::from_sources(None, &self.env).expect("the test configuration is valid");
        let backends = self
            .backends
            .clone()
            .expect("an application of this process");
        let app = Application::build_beside(config, &[role], backends.clone())
            .await
            .unwrap_or_else(|e| panic!("another {} process starts: {e:#}", role.name()));
        let addr = app.local_addr();
        let shutdown = app.shutdown_token();
        tokio::spawn(app.run_until_stopped());
        TestApp {
            addr,
            base_url: format!("http://{addr}"),
            db: self.db.clone(),
            redis: self.redis.clone(),
            http: reqwest::Client::new(),
            namespace: self.namespace.clone(),
            env: self.env.clone(),
            backends: Some(backends),
            shutdown,
        }
    }

    /// Stops it as SIGTERM would.
    pub fn shut_down(&self) {
        self.shutdown.cancel();
    }
}

impl TestApp {
    /// A client of a linkdrop running elsewhere (a process of the crash tests).
    pub async fn external(addr: &str, database_url: &str, namespace: &str) -> TestApp {
        TestApp {
            addr: addr.parse().unwrap(),
            base_url: format!("http://{addr}"),
            db: records_on(database_url).await,
            redis: Some(live_state_on_the_stack().await),
            http: reqwest::Client::new(),
            namespace: namespace.to_string(),
            env: BTreeMap::new(),
            backends: None,
            shutdown: CancellationToken::new(),
        }
    }
}

/// An HTTP answer: status and JSON body (`Value::Null` when the body is empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestApp {
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        credential: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(credential);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("linkdrop answers");
        answer_of(response).await.expect("a body")
    }

    /// An order request whose answer may be lost (the process dies under it): `None` then.
    pub async fn try_order(&self, drop_id: &str, token: &str, key: &str) -> Option<Answer> {
        let response = self
            .http
            .post(format!("{}/v1/drops/{drop_id}/orders", self.base_url))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&json!({"qty": 1}))
            .send()
            .await
            .ok()?;
        answer_of(response).await.ok()
    }
}

async fn answer_of(response: reqwest::Response) -> reqwest::Result<Answer> {
    {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

impl TestApp {
    /// POST as the admin.
    pub async fn admin_post(&self, path: &str, body: Value) -> Answer {
        self.request(reqwest::Method::POST, path, ADMIN_KEY, Some(body), &[])
            .await
    }

    /// GET as the admin.
    pub async fn admin_get(&self, path: &str) -> Answer {
        self.request(reqwest::Method::GET, path, ADMIN_KEY, None, &[])
            .await
    }

    /// A room of `merchant_id`; its id.
    pub async fn create_room(&self, merchant_id: &str) -> String {
        let answer = self
            .admin_post(
                "/v1/rooms",
                json!({"title": "Evening live", "merchant_id": merchant_id}),
            )
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["id"].as_str().unwrap().to_string()
    }

    /// A draft first-come-first-served drop with `stock` units in `room_id`; its id.
    pub async fn create_drop(&self, room_id: &str, stock: u32, max_per_user: u32) -> String {
        self.create_drop_with(room_id, stock, max_per_user, json!({"policy": "fcfs"}))
            .await
    }

    /// A draft first-come-first-served drop whose orders must be paid within
    /// `pay_within_s`; its id.
    pub async fn create_drop_paid_within(
        &self,
        room_id: &str,
        stock: u32,
        pay_within_s: u32,
    ) -> String {
        let answer = self
            .admin_post(
                &format!("/v1/rooms/{room_id}/drops"),
                json!({
                    "sku": "SKU-MUG", "title": "Mug",
                    "image_url": "https://img.example/mug.png",
                    "price_cents": 1900, "currency": "CNY",
                    "stock": stock, "max_per_user": 1, "pay_within_s": pay_within_s,
                }),
            )
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["id"].as_str().unwrap().to_string()
    }

    /// `POST /v1/orders/{order_id}/pay` as the shopper of `token`.
    pub async fn pay(&self, order_id: &str, token: &str, payment_ref: &str) -> Answer {
        self.request(
            reqwest::Method::POST,
            &format!("/v1/orders/{order_id}/pay"),
            token,
            Some(json!({"payment_ref": payment_ref})),
            &[],
        )
        .await
    }

    /// A merchant webhook endpoint of `merchant_id` for `events` at `url`.
    pub async fn subscribe(&self, merchant_id: &str, url: &str, events: &[&str]) -> String {
        let answer = self
            .admin_post(
                "/v1/webhook-endpoints",
                json!({"url": url, "events": events, "merchant_id": merchant_id}),
            )
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["secret"].as_str().unwrap().to_string()
    }

    /// A draft drop with the given `fairness`; its id.
    pub async fn create_drop_with(
        &self,
        room_id: &str,
        stock: u32,
        max_per_user: u32,
        fairness: Value,
    ) -> String {
        let answer = self
            .admin_post(
                &format!("/v1/rooms/{room_id}/drops"),
                json!({
                    "sku": "SKU-LAMP", "title": "Desk lamp",
                    "image_url": "https://img.example/lamp.png",
                    "price_cents": 9900, "currency": "CNY",
                    "stock": stock, "max_per_user": max_per_user,
                    "fairness": fairness,
                }),
            )
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["id"].as_str().unwrap().to_string()
    }

    /// Launches `drop_id`; its `opens_at_ms`.
    pub async fn launch(&self, drop_id: &str, countdown_ms: i64) -> i64 {
        let answer = self
            .admin_post(
                &format!("/v1/drops/{drop_id}/launch"),
                json!({"countdown_ms": countdown_ms}),
            )
            .await;
        assert_eq!(answer.status, 202, "{answer:?}");
        answer.body["opens_at_ms"].as_i64().unwrap()
    }

    /// A shopper token for `user_id`.
    pub fn token(&self, user_id: &str) -> String {
        let keys = linkdrop_domain::tokens::TokenKeys::new(&linkdrop_domain::secret::Secret::new(
            JWT_SECRET,
        ));
        keys.mint(user_id, 3600).unwrap()
    }

    /// `POST /v1/drops/{drop_id}/orders` as the shopper of `token`.
    pub async fn order(&self, drop_id: &str, token: &str, key: &str, qty: i64) -> Answer {
        self.request(
            reqwest::Method::POST,
            &format!("/v1/drops/{drop_id}/orders"),
            token,
            Some(json!({"qty": qty})),
            &[("Idempotency-Key", key)],
        )
        .await
    }

    /// A viewer's WebSocket in `room_id`.
    pub async fn viewer(&self, room_id: &str, token: &str) -> Viewer {
        let url = format!("ws://{}/v1/rooms/{room_id}/ws?token={token}", self.addr);
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the WebSocket opens");
        Viewer { socket }
    }

    /// A viewer reconnecting after having seen events up to `since`.
    pub async fn viewer_since(&self, room_id: &str, token: &str, since: u64) -> Viewer {
        let url = format!(
            "ws://{}/v1/rooms/{room_id}/ws?token={token}&since={since}",
            self.addr
        );
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the WebSocket opens");
        Viewer { socket }
    }

    /// A raw connection that completes the WebSocket handshake and then reads nothing
    /// more until asked: the stuck client of the slow-consumer test.
    pub async fn stuck_viewer(&self, room_id: &str, token: &str) -> TcpStream {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&self.addr.into()).unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut stream = TcpStream::from_std(std::net::TcpStream::from(socket)).unwrap();
        let request = format!(
            "GET /v1/rooms/{room_id}/ws?token={token} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            self.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        // Read the 101 answer byte by byte, so that nothing after it is consumed.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        stream
    }
}

/// A WebSocket client in a room.
pub struct Viewer {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Viewer {
    /// A viewer on a connection whose WebSocket handshake is already done.
    pub async fn from_raw(stream: TcpStream) -> Viewer {
        let socket = WebSocketStream::from_raw_socket(
            MaybeTlsStream::Plain(stream),
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            None,
        )
        .await;
        Viewer { socket }
    }

    /// The next JSON text frame; panics after [`PATIENCE`].
    pub async fn next_json(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("a frame arrives in time")
                .expect("the connection is open")
                .expect("a valid frame");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next frame of type `kind`, skipping others (e.g. `room.viewers`).
    pub async fn next_of_type(&mut self, kind: &str) -> Value {
        loop {
            let frame = self.next_json().await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Reads until the server closes; its close code and reason.
    pub async fn next_close(&mut self) -> (u16, String) {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("the server closes in time");
            match message {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (frame.code.into(), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) | None => return (1005, String::new()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("the connection broke instead of closing: {e}"),
            }
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.expect("send");
    }
}

/// One webhook delivery as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// A local HTTP receiver for webhooks that answers 200 and hands every delivery to the
/// test.
pub struct WebhookReceiver {
    pub url: String,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
}

impl WebhookReceiver {
    pub async fn start() -> Self {
        let (tx, deliveries) = mpsc::unbounded_channel();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let tx = tx.clone();
                async move {
                    let headers = headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                        .collect();
                    let _ = tx.send(Delivery { headers, body });
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, deliveries }
    }

    /// The next delivery; panics after [`PATIENCE`].
    pub async fn next(&mut self) -> Delivery {
        self.next_within(PATIENCE).await
    }

    /// The next delivery; panics after `patience`.
    pub async fn next_within(&mut self, patience: Duration) -> Delivery {
        tokio::time::timeout(patience, self.deliveries.recv())
            .await
            .expect("a webhook arrives in time")
            .expect("the receiver is running")
    }
}

/// The Python of the test venv that `scripts/setup` installs (standardwebhooks and the
/// schema checker's libraries): `LINKDROP_TEST_PYTHON`, else the default venv.
pub fn test_python() -> String {
    std::env::var("LINKDROP_TEST_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/linkdrop/venv/bin/python")
    })
}

/// Verifies a delivery with the Standard Webhooks reference library (Python, installed in
/// the test venv by `scripts/setup`), independently of linkdrop's own signing code.
pub async fn verify_with_reference_library(
    secret: &str,
    delivery: &Delivery,
) -> Result<(), String> {
    let python = test_python();
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
given = json.load(sys.stdin)
Webhook(given["secret"]).verify(given["body"], given["headers"])
"#;
    let mut child = tokio::process::Command::new(&python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {python} (run ./scripts/setup): {e}"))?;
    let input = json!({"secret": secret, "headers": delivery.headers, "body": delivery.body});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .await
        .unwrap();
    let output = child.wait_with_output().await.unwrap();
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Waits until the wall clock passes `at_ms`: for tests of behaviour that is defined by a
/// time the server announced (`opens_at_ms`), not for synchronizing with the system.
pub async fn wait_until_ms(at_ms: i64) {
    let now = linkdrop_domain::clock::now_ms();
    if at_ms > now {
        tokio::time::sleep(Duration::from_millis((at_ms - now) as u64)).await;
    }
}
