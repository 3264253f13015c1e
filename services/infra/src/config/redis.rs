//! `redis`: where the live state is (one server or the nodes of a Redis Cluster) and what
//! its persistence guarantees.

use super::ConfigError;
use super::layers::{Layers, missing, parse_bool};

/// Redis holding live drop state, the outbox and the room bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// One URL, or with `cluster` the comma-separated URLs of some nodes of a Redis
    /// Cluster (`redis_url`).
    pub url: Option<String>,
    /// Whether `url` names nodes of a Redis Cluster (`redis_cluster`).
    pub cluster: bool,
    /// What Redis's persistence guarantees; must match its `appendfsync`
    /// (`redis_durability`).
    pub durability: RedisDurability,
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

impl RedisConfig {
    pub(super) fn read(layers: &Layers) -> Result<Self, ConfigError> {
        let config = Self {
            url: layers.optional("redis_url", parse_redis_urls)?,
            cluster: layers.value("redis_cluster", false, parse_bool)?,
            durability: layers.value(
                "redis_durability",
                RedisDurability::EverySec,
                parse_durability,
            )?,
        };
        // Several Redis URLs only make sense as the nodes of a cluster.
        match &config.url {
            Some(url) if url.contains(',') && !config.cluster => Err(ConfigError {
                key: layers.source_of("redis_url"),
                problem: "lists several Redis nodes: set LINKDROP_REDIS_CLUSTER=true for a Redis \
                          Cluster, or give one URL"
                    .into(),
            }),
            _ => Ok(config),
        }
    }

    /// Where Redis is, or an error naming the key for a command that needs Redis.
    pub fn require(&self) -> Result<RedisTarget, ConfigError> {
        let url = self.url.as_deref().ok_or_else(|| missing("redis_url"))?;
        let nodes = url.split(',').map(|u| u.trim().to_string()).collect();
        Ok(if self.cluster {
            RedisTarget::Cluster(nodes)
        } else {
            RedisTarget::Single(url.to_string())
        })
    }
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

fn parse_durability(s: &str) -> Result<RedisDurability, String> {
    match s {
        "everysec" => Ok(RedisDurability::EverySec),
        "always" => Ok(RedisDurability::Always),
        _ => Err(format!(
            "expected everysec or always (Redis appendfsync), got {s:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::load_env;

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
            config.redis.require().unwrap(),
            RedisTarget::Cluster(vec![
                "redis://127.0.0.1:7001".into(),
                "redis://127.0.0.1:7002".into()
            ])
        );
        let single = load_env(&[("LINKDROP_REDIS_URL", "redis://r:6379")]).unwrap();
        assert_eq!(
            single.redis.require().unwrap(),
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
    fn durability_defaults_to_everysec_and_always_holds_nothing_back() {
        let redis = load_env(&[]).unwrap().redis;
        assert_eq!(redis.durability, RedisDurability::EverySec);
        assert_eq!(redis.require().unwrap_err().key, "LINKDROP_REDIS_URL");
        let always = load_env(&[("LINKDROP_REDIS_DURABILITY", "always")])
            .unwrap()
            .redis
            .durability;
        assert_eq!(always.relay_lag_ms(), 0);
        assert!(!always.accepts("everysec"));
        let err = load_env(&[("LINKDROP_REDIS_DURABILITY", "never")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_REDIS_DURABILITY");
    }
}
