//! The test application: linkdrop with every role (or some) started in this process on
//! port 0, on the stack or the embedded backend, and more processes of the same
//! installation beside it; or a client of one running elsewhere.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use linkdrop::startup::{Application, Backends, Role};
use linkdrop_infra::backends::RedisConn;
use linkdrop_infra::config::Config;
use linkdrop_records::db::Db;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::fixtures::{
    embedded, embedded_env, fresh_data_dir, fresh_database, fresh_namespace, redis_target, test_env,
};

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

    /// Writes the analytics this process counted so far (instead of waiting for the next
    /// batch).
    pub async fn flush_analytics(&self) {
        self.backends
            .as_ref()
            .expect("an application of this process")
            .flush_analytics()
            .await;
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
