//! The backends one process connects to — Redis, PostgreSQL and Kafka on the stack, or the
//! embedded engine and SQLite — chosen from the configuration and the roles it runs, with
//! the checks made before a role may start on them (Redis durability), and the collector of
//! the host's analytics that goes with them.

use anyhow::Context;
use linkdrop_engine::{Engine, JournalOptions};
use linkdrop_infra::analytics::Analytics;
use linkdrop_infra::backends::{self, Probe, RedisConn};
use linkdrop_infra::bus_listener::BusSource;
use linkdrop_infra::config::{Config, RedisDurability, RedisTarget};
use linkdrop_records::db::{self, Db};

use crate::startup::Role;

/// The backends one process connected to: the stack's servers, or the embedded ones.
/// Cheap to clone: clones share the connections.
#[derive(Clone)]
pub struct Backends {
    pub(crate) redis_target: Option<RedisTarget>,
    pub(crate) redis: Option<RedisConn>,
    /// The embedded engine, when there is no Redis (it is also `redis`).
    pub(crate) engine: Option<Engine>,
    pub(crate) db: Option<Db>,
    pub(crate) kafka: Option<String>,
    /// This process's collector of the host's figures (off without records), and where it
    /// writes them: the records, or for a gateway alone a connection of their own (not one
    /// of its readiness probes: a gateway serves viewers without PostgreSQL).
    pub(crate) analytics: Analytics,
    pub(crate) analytics_db: Option<Db>,
}

impl Backends {
    pub(crate) async fn connect(config: &Config, roles: &[Role]) -> anyhow::Result<Self> {
        if config.embedded() {
            return Self::open_embedded(config, roles).await;
        }
        let mut backends = Backends {
            redis_target: None,
            redis: None,
            engine: None,
            db: None,
            kafka: None,
            analytics: Analytics::off(),
            analytics_db: None,
        };
        if roles.iter().any(Role::needs_redis) {
            let target = config.redis.require()?;
            let redis = backends::connect_redis(&target)
                .await
                .context("connecting to Redis")?;
            check_redis_durability(&target, config.redis.durability).await?;
            backends.redis = Some(redis);
            backends.redis_target = Some(target);
        }
        if roles.iter().any(Role::needs_database) {
            let db =
                backends::connect_db(config.database.require()?, config.database.max_connections)
                    .await
                    .context("connecting to PostgreSQL")?;
            backends::migrate(&db)
                .await
                .context("migrating PostgreSQL")?;
            backends.db = Some(Db::Postgres(db));
        }
        if roles.iter().any(Role::needs_kafka) {
            backends.kafka = Some(config.kafka.require()?.to_string());
        }
        backends.analytics_db = match &backends.db {
            Some(db) => Some(db.clone()),
            None if roles.iter().any(Role::counts_analytics) && config.analytics.enabled => {
                analytics_records(config).await?
            }
            None => None,
        };
        backends.analytics = collector(config, roles, &backends.analytics_db);
        Ok(backends)
    }

    /// The embedded backend: the engine (live state) and SQLite (records), both files in
    /// `LINKDROP_DATA_DIR`. Every role must run in this process: they share the engine.
    pub(crate) async fn open_embedded(config: &Config, roles: &[Role]) -> anyhow::Result<Self> {
        if roles.len() != Role::ALL.len() {
            anyhow::bail!(
                "configuration error: LINKDROP_REDIS_URL, LINKDROP_KAFKA_BROKERS and LINKDROP_DATABASE_URL are not set, so linkdrop runs on its embedded backend, which serves every role from one process: run `linkdrop all`, or configure the three servers to run roles apart"
            );
        }
        let dir = &config.embedded.data_dir;
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "configuration error: LINKDROP_DATA_DIR: cannot create {}",
                dir.display()
            )
        })?;
        // The crash tests' failpoints reach into the engine's journal too.
        linkdrop_engine::set_failpoint(linkdrop_infra::failpoint::hit);
        let engine = Engine::open(
            &dir.join(ENGINE_FILE),
            JournalOptions {
                sync: config.embedded.data_sync,
                compact_after_bytes: config.embedded.data_compact_after_bytes,
            },
        )
        .await
        .context("opening the embedded engine")?;
        let records = db::open_sqlite(&dir.join(RECORDS_FILE))
            .await
            .context("opening the embedded records (SQLite)")?;
        tracing::info!(dir = %dir.display(), "embedded backend: engine and records in this directory");
        Ok(Backends {
            redis_target: None,
            redis: Some(RedisConn::Embedded(engine.clone())),
            engine: Some(engine),
            analytics: collector(config, roles, &Some(Db::Sqlite(records.clone()))),
            analytics_db: Some(Db::Sqlite(records.clone())),
            db: Some(Db::Sqlite(records)),
            kafka: None,
        })
    }

    /// What `/readyz` reports as the backend: the stores of this installation.
    pub(crate) fn kind(&self) -> &'static str {
        match (&self.engine, &self.redis_target) {
            (Some(_), _) => "embedded",
            (None, Some(RedisTarget::Cluster(_))) => "redis-cluster+kafka+postgres",
            (None, _) => "redis+kafka+postgres",
        }
    }

    pub(crate) fn probes(&self) -> Vec<Probe> {
        let mut probes = Vec::new();
        if let Some(redis) = &self.redis {
            probes.push(Probe::Redis(redis.clone()));
        }
        if let Some(db) = &self.db {
            probes.push(Probe::Records(db.clone()));
        }
        if let Some(brokers) = &self.kafka {
            probes.push(Probe::Kafka(brokers.clone()));
        }
        probes
    }

    /// Writes what this process counted for the analytics now, rather than at the next
    /// batch (tests, which must not wait for a timer).
    pub async fn flush_analytics(&self) {
        if let Some(db) = &self.analytics_db {
            self.analytics.flush(db).await;
        }
    }

    pub(crate) fn redis(&self) -> RedisConn {
        self.redis
            .clone()
            .expect("connected for roles that need Redis")
    }

    /// Where the gateway's room events come from: the engine, or a subscription to each
    /// Redis node given.
    pub(crate) fn bus_source(&self) -> redis::RedisResult<BusSource> {
        if let Some(engine) = &self.engine {
            return Ok(BusSource::Embedded(engine.clone()));
        }
        let target = self
            .redis_target
            .as_ref()
            .expect("connected for roles that need Redis");
        let nodes = target
            .nodes()
            .iter()
            .map(|url| redis::Client::open(url.as_str()))
            .collect::<redis::RedisResult<_>>()?;
        Ok(BusSource::Redis(nodes))
    }

    pub(crate) fn db(&self) -> Db {
        self.db
            .clone()
            .expect("connected for roles that need the records")
    }

    /// Where the relay delivers: Kafka, or settlement in this process.
    pub(crate) fn relay_sink(&self, config: &Config) -> linkdrop_relay::SinkConfig {
        match &self.engine {
            Some(_) => linkdrop_relay::SinkConfig::Settle(self.db()),
            None => linkdrop_relay::SinkConfig::Kafka {
                brokers: self.kafka(),
                topic: config.kafka.orders_topic(),
            },
        }
    }

    pub(crate) fn kafka(&self) -> String {
        self.kafka
            .clone()
            .expect("configured for roles that need Kafka")
    }
}

/// The records for a gateway's analytics, which needs no records otherwise: connected when
/// `LINKDROP_DATABASE_URL` is set (the control role migrates them), else None and the
/// gateway counts nothing.
async fn analytics_records(config: &Config) -> anyhow::Result<Option<Db>> {
    let Some(url) = config.database.url.as_ref() else {
        tracing::info!(
            "no LINKDROP_DATABASE_URL: this gateway does not write the host's analytics"
        );
        return Ok(None);
    };
    let pool = backends::connect_db(url, config.database.max_connections)
        .await
        .context("connecting to PostgreSQL (for the analytics)")?;
    Ok(Some(Db::Postgres(pool)))
}

/// A collector that counts when the analytics are on, a role counts them, and there are
/// records to write them to.
fn collector(config: &Config, roles: &[Role], db: &Option<Db>) -> Analytics {
    if config.analytics.enabled && db.is_some() && roles.iter().any(Role::counts_analytics) {
        Analytics::on()
    } else {
        Analytics::off()
    }
}

/// The embedded backend's files in `LINKDROP_DATA_DIR`.
const ENGINE_FILE: &str = "engine.sqlite";
const RECORDS_FILE: &str = "records.sqlite";

/// Refuses to start when a Redis node given persists less than `LINKDROP_REDIS_DURABILITY`
/// promises; warns when a node does not say (managed services may disable `CONFIG`). In a
/// cluster each node given is asked, so operators list every master.
async fn check_redis_durability(
    target: &RedisTarget,
    durability: RedisDurability,
) -> anyhow::Result<()> {
    for url in target.nodes() {
        let client = redis::Client::open(url.as_str())?;
        // host:port only: the URL may carry a password.
        let node = client.get_connection_info().addr.to_string();
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("connecting to Redis node {node}"))?;
        let settings: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("append*")
            .query_async(&mut conn)
            .await;
        match settings {
            Ok(settings) => check_persistence(&node, &settings, durability)?,
            Err(_) => tracing::warn!(
                %node,
                "Redis does not tell its persistence settings (CONFIG); trusting LINKDROP_REDIS_DURABILITY"
            ),
        }
    }
    Ok(())
}

/// Checks one node's `CONFIG GET append*` answer against `durability`.
fn check_persistence(
    node: &str,
    settings: &[String],
    durability: RedisDurability,
) -> anyhow::Result<()> {
    let value = |name: &str| {
        settings
            .chunks(2)
            .find(|pair| pair[0] == name)
            .and_then(|pair| pair.get(1).cloned())
            .unwrap_or_default()
    };
    if value("appendonly") != "yes" {
        tracing::warn!(
            %node,
            "Redis runs without its append-only file: acknowledged orders live only in memory until settled"
        );
    }
    let appendfsync = value("appendfsync");
    if !durability.accepts(&appendfsync) {
        anyhow::bail!(
            "configuration error: LINKDROP_REDIS_DURABILITY: {durability:?} needs Redis appendfsync {}, but Redis at {node} has {appendfsync:?}",
            if durability == RedisDurability::Always {
                "always"
            } else {
                "everysec or always"
            }
        );
    }
    Ok(())
}
