//! The one configuration of linkdrop.
//!
//! Layers, later ones winning: built-in defaults, then an optional `linkdrop.toml`, then
//! `LINKDROP_*` environment variables (`http_addr` in the file is `LINKDROP_HTTP_ADDR` in
//! the environment). Every value is parsed and checked here, at start; a bad one becomes a
//! [`ConfigError`] that names the key and says what is wrong, never the secret value itself.
//! Which backends a command needs is checked by the `require_*` methods, so `linkdrop token`
//! runs without a database while `linkdrop settle` refuses to start without one.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use linkdrop_domain::secret::Secret;
use linkdrop_domain::webhook_secrets::SealingKey;

/// Prefix of every environment variable that configures linkdrop.
pub const ENV_PREFIX: &str = "LINKDROP_";

/// The shortest accepted JWT secret: HS256 wants a key at least as long as its hash.
const MIN_JWT_SECRET_BYTES: usize = 32;
/// The shortest accepted admin key; anything shorter can be guessed.
const MIN_ADMIN_KEY_CHARS: usize = 16;

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

/// Where Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server (`redis://host:port`).
    Single(String),
    /// Some nodes of a Redis Cluster; the rest are learnt from them.
    Cluster(Vec<String>),
}

impl RedisTarget {
    /// The URLs of the nodes given, for what talks to one server at a time: pub/sub (a
    /// message published on any node of a cluster reaches subscribers on every node) and
    /// the persistence check.
    pub fn nodes(&self) -> &[String] {
        match self {
            Self::Single(url) => std::slice::from_ref(url),
            Self::Cluster(nodes) => nodes,
        }
    }
}

/// How much of Redis's recent writes survive a Redis crash, as configured on the Redis
/// side (`appendfsync`). linkdrop checks Redis agrees at start and adapts the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisDurability {
    /// `appendfsync everysec`: a crash loses up to about a second of acknowledged orders;
    /// the relay holds entries back that long so that nothing lost can have been settled.
    EverySec,
    /// `appendfsync always`: every acknowledged order is on disk before its answer.
    Always,
}

impl RedisDurability {
    /// How old an outbox entry must be before the relay may produce it.
    pub fn relay_lag_ms(&self) -> i64 {
        match self {
            Self::EverySec => 1500,
            Self::Always => 0,
        }
    }

    /// The `appendfsync` values of Redis that give at least this durability.
    pub fn accepts(&self, appendfsync: &str) -> bool {
        match self {
            Self::EverySec => matches!(appendfsync, "everysec" | "always"),
            Self::Always => appendfsync == "always",
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The whole configuration. Built only by [`Config::load`] or [`Config::from_sources`].
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP listener binds (every route and the WebSocket in `all`).
    pub http_addr: SocketAddr,
    /// Base URL that clients use to reach linkdrop, used in links pushed to the room
    /// (`order_url`). When unset, the address the listener actually bound is used.
    pub public_url: Option<String>,
    /// The admin API key; may do everything. Required by roles that serve the control API.
    pub admin_key: Option<Secret>,
    /// HS256 secret of shopper tokens. Required by every role that checks or mints them.
    pub jwt_secret: Option<Secret>,
    /// Redis holding live drop state, the outbox and the room bus: one URL, or with
    /// `redis_cluster` the comma-separated URLs of some nodes of a Redis Cluster.
    pub redis_url: Option<String>,
    /// Whether `redis_url` names nodes of a Redis Cluster.
    pub redis_cluster: bool,
    /// What Redis's persistence guarantees (must match its `appendfsync`).
    pub redis_durability: RedisDurability,
    /// PostgreSQL, the system of record. A secret because URLs carry passwords.
    pub database_url: Option<Secret>,
    /// Upper bound of the PostgreSQL pool of one process.
    pub database_max_connections: u32,
    /// Kafka bootstrap servers, comma-separated `host:port`.
    pub kafka_brokers: Option<String>,
    /// Partitions of the orders topic when linkdrop creates it.
    pub kafka_partitions: i32,
    /// Replicas of each partition of the orders topic when linkdrop creates it (the
    /// brokers' `min.insync.replicas` decides how many must have an order before it counts).
    pub kafka_replication: i32,
    /// Where the embedded backend keeps its files (used only when no Redis, Kafka or
    /// PostgreSQL is configured).
    pub data_dir: PathBuf,
    /// Prefix of every Redis key, Kafka topic and consumer group, so that several
    /// installations (or test runs) can share one Redis and one Kafka.
    pub namespace: String,
    /// Networks that webhook URLs may resolve to although they are not public.
    pub webhook_allow_nets: Vec<IpNet>,
    /// Refuse webhook URLs that are not https://.
    pub webhook_https_only: bool,
    /// How often the webhook dispatcher looks for due deliveries.
    pub webhook_poll_ms: u64,
    /// Total time allowed for one webhook delivery attempt.
    pub webhook_timeout_ms: u64,
    /// Seals webhook signing secrets at rest. Required by the control and webhooks roles.
    pub webhook_secret_key: Option<SealingKey>,
    /// An endpoint whose every attempt failed for this long is disabled.
    pub webhook_disable_after_ms: i64,
    /// Delivery attempts are kept this long.
    pub webhook_attempts_retention_ms: i64,
    /// Orders one shopper may send per second (bursts of the same size); 0 = unlimited.
    pub orders_per_user_per_s: u32,
    /// Orders one client address may send per second; 0 = unlimited.
    pub orders_per_ip_per_s: u32,
    /// Order requests one process works on at once; more are shed with 503.
    pub orders_max_in_flight: usize,
    /// Whether each orders process refuses at the edge what it knows the admission script
    /// would refuse (sold out, closed, not open), without a call to the live state.
    pub orders_edge: bool,
    /// Requests closer than this to a drop's opening go to the script (which decides on the
    /// Redis clock) instead of being refused at the edge as not open.
    pub orders_edge_margin_ms: u64,
    /// What an orders process knows of a drop is read again once it is this old without news.
    pub orders_edge_max_age_ms: u64,
    /// Most waiting requests for one drop that go to the admission script in one call;
    /// 1 = every request its own call.
    pub orders_batch_max: usize,
    /// WebSocket connections one client address may open per second; 0 = unlimited.
    pub ws_connects_per_ip_per_s: u32,
    /// Bind the listener with SO_REUSEPORT, so several gateway processes share one port.
    pub reuse_port: bool,
    /// Threads of the async runtime; 0 = one per core.
    pub worker_threads: usize,
    /// How often unpaid orders past their deadline are looked for.
    pub expiry_poll_ms: u64,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Most outbox entries the relay moves to Kafka in one round.
    pub relay_batch_max: usize,
    /// How long a relay's hold on a drop lasts unrenewed: a dead relay's drops move to
    /// another relay within this (a live relay renews every second).
    pub relay_lease_ms: u64,
    /// How long the settlement group waits for a silent member (Kafka session timeout).
    pub settle_session_timeout_ms: u64,
    /// Most orders one settlement transaction takes.
    pub settle_batch_max: usize,
    /// How long settlement waits to fill a batch once it holds one order.
    pub settle_batch_wait_ms: u64,
    /// `tracing` filter, e.g. `info` or `linkdrop_orders=debug,info`.
    pub log_filter: String,
    pub log_format: LogFormat,
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
        let http_addr = layers.value("http_addr", default_addr(), parse_addr)?;
        let config = Config {
            http_addr,
            public_url: layers.optional("public_url", parse_http_url)?,
            admin_key: layers.optional("admin_key", parse_admin_key)?,
            jwt_secret: layers.optional("jwt_secret", parse_jwt_secret)?,
            redis_url: layers.optional("redis_url", parse_redis_urls)?,
            redis_cluster: layers.value("redis_cluster", false, parse_bool)?,
            redis_durability: layers.value(
                "redis_durability",
                RedisDurability::EverySec,
                parse_durability,
            )?,
            database_url: layers.optional("database_url", parse_database_url)?,
            database_max_connections: layers.value("database_max_connections", 20, |s| {
                parse_in_range(s, 1, 1000)
            })?,
            kafka_brokers: layers.optional("kafka_brokers", parse_brokers)?,
            kafka_partitions: layers
                .value("kafka_partitions", 4, |s| parse_in_range(s, 1, 1024))?,
            kafka_replication: layers
                .value("kafka_replication", 1, |s| parse_in_range(s, 1, 16))?,
            data_dir: layers.value("data_dir", PathBuf::from("linkdrop-data"), parse_path)?,
            namespace: layers.value("namespace", "ld".to_string(), parse_namespace)?,
            webhook_allow_nets: layers.value("webhook_allow_nets", Vec::new(), parse_nets)?,
            webhook_https_only: layers.value("webhook_https_only", false, parse_bool)?,
            webhook_poll_ms: layers
                .value("webhook_poll_ms", 500, |s| parse_in_range(s, 10, 60_000))?,
            webhook_secret_key: layers.optional("webhook_secret_key", SealingKey::parse)?,
            webhook_disable_after_ms: layers.value(
                "webhook_disable_after_ms",
                5 * 24 * 3_600_000,
                |s| parse_in_range(s, 60_000, 90 * 24 * 3_600_000),
            )?,
            webhook_attempts_retention_ms: layers.value(
                "webhook_attempts_retention_ms",
                30 * 24 * 3_600_000,
                |s| parse_in_range(s, 60_000, 3650 * 24 * 3_600_000),
            )?,
            webhook_timeout_ms: layers.value("webhook_timeout_ms", 10_000, |s| {
                parse_in_range(s, 100, 120_000)
            })?,
            orders_per_user_per_s: layers.value("orders_per_user_per_s", 5, |s| {
                parse_in_range(s, 0, 1_000_000)
            })?,
            orders_per_ip_per_s: layers.value("orders_per_ip_per_s", 1000, |s| {
                parse_in_range(s, 0, 10_000_000)
            })?,
            orders_max_in_flight: layers.value("orders_max_in_flight", 4096, |s| {
                parse_in_range(s, 1, 1_000_000)
            })?,
            orders_edge: layers.value("orders_edge", true, parse_bool)?,
            orders_edge_margin_ms: layers.value("orders_edge_margin_ms", 250, |s| {
                parse_in_range(s, 0, 60_000)
            })?,
            orders_edge_max_age_ms: layers.value("orders_edge_max_age_ms", 1000, |s| {
                parse_in_range(s, 10, 600_000)
            })?,
            orders_batch_max: layers
                .value("orders_batch_max", 128, |s| parse_in_range(s, 1, 1000))?,
            ws_connects_per_ip_per_s: layers.value("ws_connects_per_ip_per_s", 200, |s| {
                parse_in_range(s, 0, 10_000_000)
            })?,
            reuse_port: layers.value("reuse_port", false, parse_bool)?,
            worker_threads: layers.value("worker_threads", 0, |s| parse_in_range(s, 0, 256))?,
            expiry_poll_ms: layers
                .value("expiry_poll_ms", 1000, |s| parse_in_range(s, 10, 60_000))?,
            body_limit_bytes: layers.value("body_limit_bytes", 64 * 1024, |s| {
                parse_in_range(s, 1024, 16 * 1024 * 1024)
            })?,
            relay_batch_max: layers
                .value("relay_batch_max", 500, |s| parse_in_range(s, 1, 100_000))?,
            relay_lease_ms: layers.value("relay_lease_ms", 5_000, |s| {
                parse_in_range(s, 1_500, 600_000)
            })?,
            settle_session_timeout_ms: layers.value("settle_session_timeout_ms", 10_000, |s| {
                parse_in_range(s, 6_000, 300_000)
            })?,
            settle_batch_max: layers
                .value("settle_batch_max", 500, |s| parse_in_range(s, 1, 100_000))?,
            settle_batch_wait_ms: layers
                .value("settle_batch_wait_ms", 20, |s| parse_in_range(s, 0, 10_000))?,
            log_filter: layers.value("log", "info".to_string(), |s| Ok(s.to_string()))?,
            log_format: layers.value("log_format", LogFormat::Text, parse_log_format)?,
        };
        layers.reject_unknown_file_keys()?;
        config.check_redis_nodes(&layers)?;
        Ok(config)
    }

    /// The public base URL: the configured one, or `http://` plus the address bound
    /// (loopback when bound to every interface).
    pub fn public_url_for(&self, bound: SocketAddr) -> String {
        self.public_url.clone().unwrap_or_else(|| {
            let host = if bound.ip().is_unspecified() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                bound.ip()
            };
            format!("http://{}", SocketAddr::new(host, bound.port()))
        })
    }

    /// Whether this installation runs on the embedded backend: none of Redis, Kafka and
    /// PostgreSQL is configured.
    pub fn embedded(&self) -> bool {
        self.redis_url.is_none() && self.database_url.is_none() && self.kafka_brokers.is_none()
    }

    /// Where Redis is, or an error naming the key for a command that needs Redis.
    pub fn require_redis(&self) -> Result<RedisTarget, ConfigError> {
        let url = self
            .redis_url
            .as_deref()
            .ok_or_else(|| missing("redis_url"))?;
        let nodes = url.split(',').map(|u| u.trim().to_string()).collect();
        Ok(if self.redis_cluster {
            RedisTarget::Cluster(nodes)
        } else {
            RedisTarget::Single(url.to_string())
        })
    }

    /// Several Redis URLs only make sense as the nodes of a cluster.
    fn check_redis_nodes(&self, layers: &Layers) -> Result<(), ConfigError> {
        match &self.redis_url {
            Some(url) if url.contains(',') && !self.redis_cluster => Err(ConfigError {
                key: layers.source_of("redis_url"),
                problem: "lists several Redis nodes: set LINKDROP_REDIS_CLUSTER=true for a Redis \
                          Cluster, or give one URL"
                    .into(),
            }),
            _ => Ok(()),
        }
    }

    /// The PostgreSQL URL, or an error naming the key.
    pub fn require_database(&self) -> Result<&Secret, ConfigError> {
        self.database_url
            .as_ref()
            .ok_or_else(|| missing("database_url"))
    }

    /// The Kafka bootstrap servers, or an error naming the key.
    pub fn require_kafka(&self) -> Result<&str, ConfigError> {
        self.kafka_brokers
            .as_deref()
            .ok_or_else(|| missing("kafka_brokers"))
    }

    /// The shopper-token secret, or an error naming the key.
    pub fn require_jwt_secret(&self) -> Result<&Secret, ConfigError> {
        self.jwt_secret
            .as_ref()
            .ok_or_else(|| missing("jwt_secret"))
    }

    /// The admin key, or an error naming the key.
    pub fn require_admin_key(&self) -> Result<&Secret, ConfigError> {
        self.admin_key.as_ref().ok_or_else(|| missing("admin_key"))
    }

    /// The key sealing webhook secrets, or an error naming it.
    pub fn require_webhook_secret_key(&self) -> Result<&SealingKey, ConfigError> {
        self.webhook_secret_key
            .as_ref()
            .ok_or_else(|| missing("webhook_secret_key"))
    }
}

/// The environment variable that sets a file key: `http_addr` → `LINKDROP_HTTP_ADDR`.
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

fn missing(key: &str) -> ConfigError {
    ConfigError {
        key: env_name(key),
        problem: format!("required by this command but not set (or set {key} in linkdrop.toml)"),
    }
}

/// Where a raw value came from, to name it in errors.
enum Origin<'a> {
    Env,
    File(&'a Path),
}

/// The raw layers, and the keys read so far (to spot unknown keys in the file).
struct Layers<'a> {
    file: BTreeMap<String, String>,
    file_path: Option<&'a Path>,
    env: &'a BTreeMap<String, String>,
    read: RefCell<BTreeSet<&'static str>>,
}

impl<'a> Layers<'a> {
    fn new(
        file: Option<(&'a Path, &str)>,
        env: &'a BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        if let Some((path, text)) = file {
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError {
                key: path.display().to_string(),
                problem: format!("not valid TOML: {}", e.message()),
            })?;
            for (key, value) in table {
                let raw = toml_scalar(&value).ok_or_else(|| ConfigError {
                    key: format!("{key} in {}", path.display()),
                    problem: "expected a string, number, boolean or list of strings".into(),
                })?;
                values.insert(key, raw);
            }
        }
        Ok(Self {
            file: values,
            file_path: file.map(|(p, _)| p),
            env,
            read: RefCell::new(BTreeSet::new()),
        })
    }

    fn raw(&self, key: &'static str) -> Option<(String, Origin<'a>)> {
        self.read.borrow_mut().insert(key);
        if let Some(v) = self.env.get(&env_name(key)).filter(|v| !v.is_empty()) {
            return Some((v.clone(), Origin::Env));
        }
        let path = self.file_path?;
        self.file.get(key).map(|v| (v.clone(), Origin::File(path)))
    }

    fn optional<T>(
        &self,
        key: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some((raw, origin)) = self.raw(key) else {
            return Ok(None);
        };
        parse(raw.trim()).map(Some).map_err(|problem| ConfigError {
            key: match origin {
                Origin::Env => env_name(key),
                Origin::File(path) => format!("{key} in {}", path.display()),
            },
            problem,
        })
    }

    /// Where `key`'s value came from, for an error about it.
    fn source_of(&self, key: &'static str) -> String {
        match self.raw(key) {
            Some((_, Origin::File(path))) => format!("{key} in {}", path.display()),
            _ => env_name(key),
        }
    }

    fn value<T>(
        &self,
        key: &'static str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        Ok(self.optional(key, parse)?.unwrap_or(default))
    }

    fn reject_unknown_file_keys(&self) -> Result<(), ConfigError> {
        let read = self.read.borrow();
        match (
            self.file.keys().find(|k| !read.contains(k.as_str())),
            self.file_path,
        ) {
            (Some(key), Some(path)) => Err(ConfigError {
                key: format!("{key} in {}", path.display()),
                problem: "unknown setting (see the configuration table in README.md)".into(),
            }),
            _ => Ok(()),
        }
    }
}

fn toml_scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.join(",")),
        _ => None,
    }
}

fn default_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("expected host:port such as 127.0.0.1:8080, got {s:?}"))
}

fn parse_in_range<T>(s: &str, min: T, max: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let n: T = s
        .parse()
        .map_err(|_| format!("expected a whole number, got {s:?}"))?;
    if n < min || n > max {
        return Err(format!("must be between {min} and {max}, got {n}"));
    }
    Ok(n)
}

fn parse_http_url(s: &str) -> Result<String, String> {
    if !(s.starts_with("http://") || s.starts_with("https://")) {
        return Err(format!("expected an http:// or https:// URL, got {s:?}"));
    }
    Ok(s.trim_end_matches('/').to_string())
}

fn parse_admin_key(s: &str) -> Result<Secret, String> {
    if s.chars().count() < MIN_ADMIN_KEY_CHARS {
        return Err(format!(
            "must be at least {MIN_ADMIN_KEY_CHARS} characters (the value is not shown)"
        ));
    }
    Ok(Secret::new(s))
}

fn parse_jwt_secret(s: &str) -> Result<Secret, String> {
    if s.len() < MIN_JWT_SECRET_BYTES {
        return Err(format!(
            "must be at least {MIN_JWT_SECRET_BYTES} bytes (the value is not shown)"
        ));
    }
    Ok(Secret::new(s))
}

fn parse_path(s: &str) -> Result<PathBuf, String> {
    if s.trim().is_empty() {
        return Err("must be a directory path".into());
    }
    Ok(PathBuf::from(s))
}

fn parse_redis_urls(s: &str) -> Result<String, String> {
    for url in s.split(',').map(str::trim) {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(format!(
                "expected a redis:// URL (or, for a cluster, several separated by commas), got {s:?}"
            ));
        }
    }
    Ok(s.to_string())
}

fn parse_database_url(s: &str) -> Result<Secret, String> {
    if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
        // The URL may hold a password: say what is expected, not what was given.
        return Err("expected a postgres:// URL (the value is not shown)".into());
    }
    Ok(Secret::new(s))
}

fn parse_brokers(s: &str) -> Result<String, String> {
    for broker in s.split(',') {
        let broker = broker.trim();
        let valid = broker
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !valid {
            return Err(format!("expected host:port[,host:port...], got {s:?}"));
        }
    }
    Ok(s.to_string())
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

fn parse_nets(s: &str) -> Result<Vec<IpNet>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| {
            n.parse::<IpNet>()
                .map_err(|_| format!("expected CIDRs such as 127.0.0.0/8, got {n:?}"))
        })
        .collect()
}

fn parse_durability(s: &str) -> Result<RedisDurability, String> {
    match s {
        "everysec" => Ok(RedisDurability::EverySec),
        "always" => Ok(RedisDurability::Always),
        _ => Err(format!(
            "expected everysec or always (Redis appendfsync), got {s:?}"
        )),
    }
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("expected true or false, got {s:?}")),
    }
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("expected text or json, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_env(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_sources(None, &env(pairs))
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = load_env(&[]).unwrap();
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.public_url, None);
        assert_eq!(config.body_limit_bytes, 65536);
        assert_eq!(config.namespace, "ld");
        assert!(config.redis_url.is_none());
    }

    #[test]
    fn no_server_configured_means_the_embedded_backend() {
        let config = load_env(&[]).unwrap();
        assert!(config.embedded());
        assert_eq!(config.data_dir, std::path::PathBuf::from("linkdrop-data"));
        for server in [
            ("LINKDROP_REDIS_URL", "redis://127.0.0.1:6379"),
            ("LINKDROP_DATABASE_URL", "postgres://db/linkdrop"),
            ("LINKDROP_KAFKA_BROKERS", "127.0.0.1:9092"),
        ] {
            assert!(!load_env(&[server]).unwrap().embedded(), "{server:?}");
        }
        let config = load_env(&[("LINKDROP_DATA_DIR", "/var/lib/linkdrop")]).unwrap();
        assert_eq!(
            config.data_dir,
            std::path::PathBuf::from("/var/lib/linkdrop")
        );
    }

    #[test]
    fn the_public_url_defaults_to_the_bound_address() {
        let config = load_env(&[("LINKDROP_HTTP_ADDR", "0.0.0.0:0")]).unwrap();
        assert_eq!(
            config.public_url_for("0.0.0.0:4321".parse().unwrap()),
            "http://127.0.0.1:4321"
        );
        let config = load_env(&[("LINKDROP_PUBLIC_URL", "https://live.example/")]).unwrap();
        assert_eq!(
            config.public_url_for("0.0.0.0:4321".parse().unwrap()),
            "https://live.example"
        );
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
        assert_eq!(config.kafka_partitions, 8);
    }

    #[test]
    fn a_short_secret_is_refused_without_printing_it() {
        let err = load_env(&[("LINKDROP_JWT_SECRET", "tooshort-secret")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_JWT_SECRET");
        assert!(!err.to_string().contains("tooshort-secret"), "{err}");
    }

    #[test]
    fn a_database_url_with_a_password_is_never_echoed() {
        let err = load_env(&[("LINKDROP_DATABASE_URL", "mysql://u:pw-123@h/db")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_DATABASE_URL");
        assert!(!err.to_string().contains("pw-123"), "{err}");
    }

    #[test]
    fn a_missing_backend_names_the_variable_to_set() {
        let config = load_env(&[]).unwrap();
        let err = config.require_kafka().unwrap_err();
        assert_eq!(err.key, "LINKDROP_KAFKA_BROKERS");
    }

    #[test]
    fn allow_nets_parse_from_a_list_or_a_comma_separated_string() {
        let config = load_env(&[("LINKDROP_WEBHOOK_ALLOW_NETS", "127.0.0.0/8, ::1/128")]).unwrap();
        assert_eq!(config.webhook_allow_nets.len(), 2);
        let path = Path::new("linkdrop.toml");
        let text = "webhook_allow_nets = [\"10.0.0.0/8\"]\n";
        let config = Config::from_sources(Some((path, text)), &env(&[])).unwrap();
        assert_eq!(config.webhook_allow_nets[0].to_string(), "10.0.0.0/8");
        let err = load_env(&[("LINKDROP_WEBHOOK_ALLOW_NETS", "10.0.0.0/33")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_WEBHOOK_ALLOW_NETS");
    }

    #[test]
    fn brokers_must_be_host_port_pairs() {
        assert!(load_env(&[("LINKDROP_KAFKA_BROKERS", "a:1,b:2")]).is_ok());
        let err = load_env(&[("LINKDROP_KAFKA_BROKERS", "a:1,b")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_KAFKA_BROKERS");
    }

    #[test]
    fn several_redis_nodes_make_a_cluster_only_when_asked() {
        let nodes = "redis://127.0.0.1:7001, redis://127.0.0.1:7002";
        let err = load_env(&[("LINKDROP_REDIS_URL", nodes)]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_REDIS_URL");
        assert!(err.problem.contains("LINKDROP_REDIS_CLUSTER"), "{err}");

        let config = load_env(&[
            ("LINKDROP_REDIS_URL", nodes),
            ("LINKDROP_REDIS_CLUSTER", "true"),
        ])
        .unwrap();
        assert_eq!(
            config.require_redis().unwrap(),
            RedisTarget::Cluster(vec![
                "redis://127.0.0.1:7001".into(),
                "redis://127.0.0.1:7002".into()
            ])
        );
        let single = load_env(&[("LINKDROP_REDIS_URL", "redis://r:6379")]).unwrap();
        assert_eq!(
            single.require_redis().unwrap(),
            RedisTarget::Single("redis://r:6379".into())
        );
    }

    #[test]
    fn every_redis_node_must_be_a_redis_url() {
        let err = load_env(&[
            ("LINKDROP_REDIS_URL", "redis://a:1,http://b:2"),
            ("LINKDROP_REDIS_CLUSTER", "true"),
        ])
        .unwrap_err();
        assert_eq!(err.key, "LINKDROP_REDIS_URL");
    }

    #[test]
    fn kafka_replication_is_bounded() {
        assert_eq!(load_env(&[]).unwrap().kafka_replication, 1);
        let err = load_env(&[("LINKDROP_KAFKA_REPLICATION", "0")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_KAFKA_REPLICATION");
    }
}
