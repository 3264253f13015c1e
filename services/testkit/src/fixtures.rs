//! Where the tests' servers are (the local stack of `scripts/stack`, or none on the embedded
//! backend), and fresh, isolated places on them: a database, a namespace, a data directory,
//! and the configuration of a test application there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use linkdrop_infra::config::RedisTarget;
use sqlx::PgPool;

use crate::{ADMIN_KEY, JWT_SECRET, WEBHOOK_SECRET_KEY};

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

/// A fresh PostgreSQL database and a fresh SQLite file, both migrated.
pub async fn both_record_stores() -> Vec<linkdrop_records::db::Db> {
    let pg = sqlx::PgPool::connect(&fresh_database().await)
        .await
        .unwrap();
    linkdrop_infra::backends::migrate(&pg).await.unwrap();
    let file = target_tmpdir().join(format!("{}.db", linkdrop_domain::ids::new_id("records")));
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

/// A namespace no other test uses: Redis keys, Kafka topic and group are all fresh.
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
pub fn embedded_env(data_dir: &Path, namespace: &str) -> BTreeMap<String, String> {
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
pub fn fresh_data_dir() -> PathBuf {
    target_tmpdir()
        .join("embedded")
        .join(linkdrop_domain::ids::new_id("data"))
}

/// Cargo's scratch directory for tests (`target/tmp`, which `CARGO_TARGET_TMPDIR` names when
/// an integration test is built): from the environment when cargo runs the test, else found
/// from the test binary, which lives in `target/<profile>/deps/`.
pub fn target_tmpdir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_TMPDIR") {
        return dir.into();
    }
    let binary = std::env::current_exe().expect("the test binary's path");
    binary
        .ancestors()
        .nth(3)
        .expect("the test binary runs from target/<profile>/deps")
        .join("tmp")
}
