//! Connections to the shared state: Redis, PostgreSQL and Kafka, and their readiness probes.
//!
//! Connecting fails fast with an error that names the backend; a connection lost later is
//! retried by the clients themselves (Redis `ConnectionManager` or cluster connection, the
//! sqlx pool, librdkafka).

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::config::RedisTarget;
use linkdrop_domain::secret::Secret;
use linkdrop_records::db::Db;

/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A backend that could not be reached or set up.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("postgres migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// Longest wait for Redis to accept a connection or answer a command.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to Redis, one server or a Redis Cluster, that reconnects by itself. Cheap
/// to clone: clones share the connection (requests are pipelined over it).
///
/// Every command and script of linkdrop touches the keys of one hash tag (one drop, one
/// room), so each goes to one cluster node; commands over several tags are only sent one
/// tag at a time (see the relay's outbox reads).
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    /// The embedded backend's in-process engine: same commands, same scripts, no server.
    Embedded(linkdrop_engine::Engine),
}

impl RedisConn {
    /// Whether this is a Redis Cluster (several tags in one command fail with CROSSSLOT).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
            Self::Embedded(engine) => engine.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Embedded(engine) => engine.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
            Self::Embedded(engine) => engine.get_db(),
        }
    }
}

/// A Redis connection that reconnects by itself, after checking that Redis answers.
pub async fn connect_redis(target: &RedisTarget) -> Result<RedisConn, BackendError> {
    let mut conn = match target {
        RedisTarget::Single(url) => RedisConn::Single(connect_single(url).await?),
        RedisTarget::Cluster(seeds) => RedisConn::Cluster(connect_cluster(seeds).await?),
    };
    let _: String = redis::cmd("PING").query_async(&mut conn).await?;
    Ok(conn)
}

async fn connect_single(url: &str) -> Result<ConnectionManager, BackendError> {
    let client = redis::Client::open(url)?;
    // Reconnection backs off from one second, doubling, to at most two: redis-rs's default
    // factor (100, meant as milliseconds) multiplies its one-second base delay instead, so a
    // request waiting on a reconnection could hang for minutes after a Redis restart.
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(REDIS_TIMEOUT)
        .set_response_timeout(REDIS_TIMEOUT)
        .set_factor(2)
        .set_max_delay(2_000);
    Ok(ConnectionManager::new_with_config(client, config).await?)
}

/// A connection to the cluster that `seeds` belong to: it learns the slot map from them,
/// follows MOVED/ASK redirections and refreshes the map when a node goes away.
async fn connect_cluster(seeds: &[String]) -> Result<ClusterConnection, BackendError> {
    let client = redis::cluster::ClusterClientBuilder::new(seeds.to_vec())
        .connection_timeout(REDIS_TIMEOUT)
        .response_timeout(REDIS_TIMEOUT)
        .build()?;
    Ok(client.get_async_connection().await?)
}

/// A PostgreSQL pool, after one successful connection.
pub async fn connect_db(url: &Secret, max_connections: u32) -> Result<PgPool, BackendError> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url.expose())
        .await?;
    Ok(pool)
}

/// Applies the migrations in schemas/migrations that the database lacks.
pub async fn migrate(pool: &PgPool) -> Result<(), BackendError> {
    sqlx::migrate!("../../schemas/migrations").run(pool).await?;
    Ok(())
}

/// The librdkafka settings every linkdrop client starts from.
pub fn kafka_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("socket.timeout.ms", "10000")
        .set("broker.address.family", "v4");
    config
}

/// How a topic that linkdrop creates is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicLayout {
    pub partitions: i32,
    /// Copies of each partition, on as many brokers.
    pub replication: i32,
}

/// Creates `topic` as `layout` says unless it exists.
pub async fn ensure_topic(
    brokers: &str,
    topic: &str,
    layout: TopicLayout,
) -> Result<(), BackendError> {
    let admin: AdminClient<DefaultClientContext> = kafka_config(brokers).create()?;
    let replication = TopicReplication::Fixed(layout.replication);
    let new_topic = NewTopic::new(topic, layout.partitions, replication);
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics([&new_topic], &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(rdkafka::error::KafkaError::AdminOp(code).into()),
        }
    }
    Ok(())
}

/// A backend that `/readyz` checks.
#[derive(Clone)]
pub enum Probe {
    Redis(RedisConn),
    Records(Db),
    Kafka(String),
}

impl Probe {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Redis(RedisConn::Embedded(_)) => "engine",
            Self::Redis(_) => "redis",
            Self::Records(Db::Postgres(_)) => "postgres",
            Self::Records(Db::Sqlite(_)) => "sqlite",
            Self::Kafka(_) => "kafka",
        }
    }

    /// `Ok` when the backend answers within the probe timeout.
    pub async fn check(&self) -> Result<(), String> {
        let check = async {
            match self {
                Self::Redis(conn) => redis::cmd("PING")
                    .query_async::<String>(&mut conn.clone())
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                Self::Records(Db::Postgres(pool)) => sqlx::query("SELECT 1")
                    .execute(pool)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                Self::Records(Db::Sqlite(pool)) => sqlx::query("SELECT 1")
                    .execute(pool)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                Self::Kafka(brokers) => kafka_metadata(brokers.clone()).await,
            }
        };
        tokio::time::timeout(PROBE_TIMEOUT, check)
            .await
            .unwrap_or_else(|_| Err("no answer within the probe timeout".into()))
    }
}

async fn kafka_metadata(brokers: String) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = kafka_config(&brokers).create().map_err(|e| e.to_string())?;
        consumer
            .fetch_metadata(None, PROBE_TIMEOUT)
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}
