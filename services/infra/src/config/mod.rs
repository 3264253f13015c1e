//! The one configuration of linkdrop, in sections owned by what they configure.
//!
//! Layers, later ones winning: built-in defaults, then an optional `linkdrop.toml`, then
//! `LINKDROP_*` environment variables (`http_addr` in the file is `LINKDROP_HTTP_ADDR` in
//! the environment; [`layers`]). The keys are flat — `orders_batch_max`, not a table — as
//! the table in docs/configuration.md lists them; each section reads its own keys, with its
//! defaults and checks, in its own file:
//!
//! | section | keys | used by |
//! |---|---|---|
//! | [`http`](HttpConfig) | `http_addr`, `public_url`, `body_limit_bytes`, `reuse_port`, `worker_threads` | the listener, the runtime |
//! | [`secrets`](SecretsConfig) | `admin_key`, `jwt_secret`, `webhook_secret_key` | credentials, webhook secrets |
//! | [`tokens`](TokensConfig) | `jwt_*` but the secret | an identity provider's shopper tokens |
//! | [`redis`](RedisConfig) | `redis_url`, `redis_cluster`, `redis_durability` | the live state |
//! | [`database`](DatabaseConfig) | `database_url`, `database_max_connections` | the records |
//! | [`kafka`](KafkaConfig) | `kafka_brokers`, `kafka_partitions`, `kafka_replication` | relay, settlement |
//! | [`embedded`](EmbeddedConfig) | `data_dir` | the embedded backend |
//! | `namespace` | `namespace` | every key, topic and group |
//! | [`orders`](OrdersConfig) | `orders_*`, `expiry_poll_ms` | the orders role |
//! | [`gateway`](GatewayConfig) | `ws_connects_per_ip_per_s` | the gateway role |
//! | [`relay`](RelayConfig) | `relay_*` | the relay role |
//! | [`settle`](SettleConfig) | `settle_*` | the settlement role |
//! | [`webhooks`](WebhooksConfig) | `webhook_*` but the secret key | the webhooks role |
//! | [`analytics`](AnalyticsConfig) | `analytics`, `analytics_*` | the host's figures |
//! | [`telemetry`](TelemetryConfig) | `log`, `log_format`, `otlp_endpoint`, `trace_sample_ratio` | logs, traces |
//!
//! Every value is parsed and checked at start; a bad one becomes a [`ConfigError`] that
//! names the key and says what is wrong, never the secret value itself. Which backends a
//! command needs is checked by the sections' `require*` methods, so `linkdrop token` runs
//! without a database while `linkdrop settle` refuses to start without one.

mod analytics;
mod database;
mod embedded;
mod gateway;
mod http;
mod kafka;
mod layers;
mod orders;
mod redis;
mod relay;
mod secrets;
mod settle;
mod telemetry;
mod tokens;
mod webhooks;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use analytics::AnalyticsConfig;
pub use database::DatabaseConfig;
pub use embedded::EmbeddedConfig;
pub use gateway::GatewayConfig;
pub use http::HttpConfig;
pub use kafka::KafkaConfig;
pub use layers::{ENV_PREFIX, env_name};
pub use orders::OrdersConfig;
pub use redis::{RedisConfig, RedisDurability, RedisTarget};
pub use relay::RelayConfig;
pub use secrets::SecretsConfig;
pub use settle::SettleConfig;
pub use telemetry::{LogFormat, TelemetryConfig};
pub use tokens::TokensConfig;
pub use webhooks::WebhooksConfig;

use layers::Layers;

/// A configuration value that is missing or wrong. `Display` is the one line printed before
/// the process exits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {key}: {problem}")]
pub struct ConfigError {
    /// Where the value came from, e.g. `LINKDROP_HTTP_ADDR` or `http_addr in linkdrop.toml`.
    pub key: String,
    /// What is wrong with it, without repeating secret values.
    pub problem: String,
}

/// The whole configuration. Built only by [`Config::load`] or [`Config::from_sources`].
#[derive(Debug, Clone)]
pub struct Config {
    pub http: HttpConfig,
    pub secrets: SecretsConfig,
    pub tokens: TokensConfig,
    pub redis: RedisConfig,
    pub database: DatabaseConfig,
    pub kafka: KafkaConfig,
    pub embedded: EmbeddedConfig,
    /// Prefix of every Redis key, Kafka topic and consumer group, so that several
    /// installations (or test runs) can share one Redis and one Kafka (`namespace`).
    pub namespace: String,
    pub orders: OrdersConfig,
    pub gateway: GatewayConfig,
    pub relay: RelayConfig,
    pub settle: SettleConfig,
    pub webhooks: WebhooksConfig,
    pub telemetry: TelemetryConfig,
    pub analytics: AnalyticsConfig,
}

impl Config {
    /// Loads the configuration from `file` (when given, it must exist), otherwise from
    /// `./linkdrop.toml` when present, then from the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        let explicit = file
            .map(Path::to_path_buf)
            .or_else(|| env.get("LINKDROP_CONFIG").map(PathBuf::from));
        let (path, required) = match explicit {
            Some(path) => (path, true),
            None => (PathBuf::from("linkdrop.toml"), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => None,
            Err(e) => {
                return Err(ConfigError {
                    key: "LINKDROP_CONFIG".into(),
                    problem: format!("cannot read {}: {e}", path.display()),
                });
            }
        };
        let file = text.map(|t| (path, t));
        Self::from_sources(file.as_ref().map(|(p, t)| (p.as_path(), t.as_str())), &env)
    }

    /// Builds the configuration from a file's text and a set of `LINKDROP_*` variables.
    pub fn from_sources(
        file: Option<(&Path, &str)>,
        env: &BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let layers = Layers::new(file, env)?;
        let config = Config {
            http: HttpConfig::read(&layers)?,
            secrets: SecretsConfig::read(&layers)?,
            tokens: TokensConfig::read(&layers)?,
            redis: RedisConfig::read(&layers)?,
            database: DatabaseConfig::read(&layers)?,
            kafka: KafkaConfig::read(&layers)?,
            embedded: EmbeddedConfig::read(&layers)?,
            namespace: layers.value("namespace", "ld".to_string(), parse_namespace)?,
            orders: OrdersConfig::read(&layers)?,
            gateway: GatewayConfig::read(&layers)?,
            relay: RelayConfig::read(&layers)?,
            settle: SettleConfig::read(&layers)?,
            webhooks: WebhooksConfig::read(&layers)?,
            telemetry: TelemetryConfig::read(&layers)?,
            analytics: AnalyticsConfig::read(&layers)?,
        };
        layers.reject_unknown_file_keys()?;
        Ok(config)
    }

    /// Whether this installation runs on the embedded backend: none of Redis, Kafka and
    /// PostgreSQL is configured.
    pub fn embedded(&self) -> bool {
        self.redis.url.is_none() && self.database.url.is_none() && self.kafka.brokers.is_none()
    }
}

fn parse_namespace(s: &str) -> Result<String, String> {
    let valid = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid {
        return Err(format!(
            "expected 1 to 32 characters of a-z, 0-9, '_' or '-', got {s:?}"
        ));
    }
    Ok(s.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The configuration of these variables alone (no file).
    pub(crate) fn load_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_sources(None, &env(pairs))
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = load_env(&[]).unwrap();
        assert_eq!(config.http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.http.public_url, None);
        assert_eq!(config.http.body_limit_bytes, 65536);
        assert_eq!(config.namespace, "ld");
        assert!(config.redis.url.is_none());
    }

    #[test]
    fn no_server_configured_means_the_embedded_backend() {
        let config = load_env(&[]).unwrap();
        assert!(config.embedded());
        assert_eq!(config.embedded.data_dir, PathBuf::from("linkdrop-data"));
        for server in [
            ("LINKDROP_REDIS_URL", "redis://127.0.0.1:6379"),
            ("LINKDROP_DATABASE_URL", "postgres://db/linkdrop"),
            ("LINKDROP_KAFKA_BROKERS", "127.0.0.1:9092"),
        ] {
            assert!(!load_env(&[server]).unwrap().embedded(), "{server:?}");
        }
        let config = load_env(&[("LINKDROP_DATA_DIR", "/var/lib/linkdrop")]).unwrap();
        assert_eq!(config.embedded.data_dir, PathBuf::from("/var/lib/linkdrop"));
    }

    #[test]
    fn the_journal_sync_is_normal_unless_set_to_full() {
        use linkdrop_engine::DataSync;
        assert_eq!(load_env(&[]).unwrap().embedded.data_sync, DataSync::Normal);
        let full = load_env(&[("LINKDROP_DATA_SYNC", "full")]).unwrap();
        assert_eq!(full.embedded.data_sync, DataSync::Full);
        let err = load_env(&[("LINKDROP_DATA_SYNC", "always")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_DATA_SYNC");
        assert!(err.problem.contains("normal or full"), "{err}");
    }

    #[test]
    fn the_journal_compacts_after_64_mib_unless_told_otherwise() {
        let config = load_env(&[]).unwrap();
        assert_eq!(config.embedded.data_compact_after_bytes, 64 << 20);
        let small = load_env(&[("LINKDROP_DATA_COMPACT_AFTER_BYTES", "4096")]).unwrap();
        assert_eq!(small.embedded.data_compact_after_bytes, 4096);
        let err = load_env(&[("LINKDROP_DATA_COMPACT_AFTER_BYTES", "12")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_DATA_COMPACT_AFTER_BYTES");
        assert!(err.problem.contains("between 1024"), "{err}");
    }

    #[test]
    fn a_bad_environment_value_names_its_variable() {
        let err = load_env(&[("LINKDROP_HTTP_ADDR", "not-an-address")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_HTTP_ADDR");
        assert!(err.problem.contains("host:port"), "{err}");
        assert!(
            err.to_string()
                .starts_with("configuration error: LINKDROP_HTTP_ADDR:")
        );
    }

    #[test]
    fn a_bad_file_value_names_its_key_and_file() {
        let path = Path::new("/etc/linkdrop.toml");
        let err =
            Config::from_sources(Some((path, "kafka_partitions = 0\n")), &env(&[])).unwrap_err();
        assert_eq!(err.key, "kafka_partitions in /etc/linkdrop.toml");
        assert!(err.problem.contains("between 1 and 1024"), "{err}");
    }

    #[test]
    fn an_unknown_file_key_is_refused_by_name() {
        let path = Path::new("linkdrop.toml");
        let err = Config::from_sources(Some((path, "htp_addr = \"x\"\n")), &env(&[])).unwrap_err();
        assert_eq!(err.key, "htp_addr in linkdrop.toml");
    }

    #[test]
    fn environment_overrides_file_which_overrides_defaults() {
        let path = Path::new("linkdrop.toml");
        let text = "namespace = \"fromfile\"\nkafka_partitions = 8\n";
        let config = Config::from_sources(
            Some((path, text)),
            &env(&[("LINKDROP_NAMESPACE", "fromenv")]),
        )
        .unwrap();
        assert_eq!(config.namespace, "fromenv");
        assert_eq!(config.kafka.partitions, 8);
    }

    /// Every key in the table of docs/configuration.md is read by some section: set alone
    /// in a file it is parsed (accepted, or refused for its value), never refused as an
    /// unknown setting. A key renamed or lost in a section fails here.
    #[test]
    fn every_documented_key_is_read_by_a_section() {
        let reference = include_str!("../../../../docs/configuration.md");
        let keys: Vec<String> = reference
            .lines()
            .filter_map(|line| line.strip_prefix("| `LINKDROP_"))
            .filter_map(|rest| rest.split_once('`'))
            .map(|(name, _)| name.to_ascii_lowercase())
            .collect();
        assert!(keys.len() >= 40, "docs/configuration.md's table: {keys:?}");
        let path = Path::new("linkdrop.toml");
        for key in &keys {
            let file = format!("{key} = \"\"\n");
            if let Err(err) = Config::from_sources(Some((path, &file)), &env(&[])) {
                assert_eq!(err.key, format!("{key} in linkdrop.toml"));
                assert!(!err.problem.starts_with("unknown setting"), "{err}");
            }
        }
    }

    #[test]
    fn a_namespace_is_short_lowercase_text() {
        assert!(load_env(&[("LINKDROP_NAMESPACE", "t-1_x")]).is_ok());
        let err = load_env(&[("LINKDROP_NAMESPACE", "Upper")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_NAMESPACE");
    }
}
