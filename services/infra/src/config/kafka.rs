//! `kafka`: the brokers, and the layout of the orders topic when linkdrop creates it.

use super::ConfigError;
use super::layers::{Layers, missing, parse_in_range};
use crate::backends::TopicLayout;

/// Kafka, which carries accepted orders from the relay to settlement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated `host:port` (`kafka_brokers`).
    pub brokers: Option<String>,
    /// Partitions of the orders topic when linkdrop creates it (`kafka_partitions`).
    pub partitions: i32,
    /// Replicas of each partition of the orders topic when linkdrop creates it (the
    /// brokers' `min.insync.replicas` decides how many must have an order before it
    /// counts) (`kafka_replication`).
    pub replication: i32,
}

impl KafkaConfig {
    pub(super) fn read(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(Self {
            brokers: layers.optional("kafka_brokers", parse_brokers)?,
            partitions: layers.value("kafka_partitions", 4, |s| parse_in_range(s, 1, 1024))?,
            replication: layers.value("kafka_replication", 1, |s| parse_in_range(s, 1, 16))?,
        })
    }

    /// The bootstrap servers, or an error naming the key.
    pub fn require(&self) -> Result<&str, ConfigError> {
        self.brokers
            .as_deref()
            .ok_or_else(|| missing("kafka_brokers"))
    }

    /// How the orders topic is laid out when linkdrop creates it.
    pub fn orders_topic(&self) -> TopicLayout {
        TopicLayout {
            partitions: self.partitions,
            replication: self.replication,
        }
    }
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

#[cfg(test)]
mod tests {
    use crate::config::tests::load_env;

    #[test]
    fn a_missing_backend_names_the_variable_to_set() {
        let config = load_env(&[]).unwrap();
        let err = config.kafka.require().unwrap_err();
        assert_eq!(err.key, "LINKDROP_KAFKA_BROKERS");
    }

    #[test]
    fn brokers_must_be_host_port_pairs() {
        assert!(load_env(&[("LINKDROP_KAFKA_BROKERS", "a:1,b:2")]).is_ok());
        let err = load_env(&[("LINKDROP_KAFKA_BROKERS", "a:1,b")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_KAFKA_BROKERS");
    }

    #[test]
    fn kafka_replication_is_bounded() {
        let kafka = load_env(&[]).unwrap().kafka;
        assert_eq!((kafka.partitions, kafka.replication), (4, 1));
        let err = load_env(&[("LINKDROP_KAFKA_REPLICATION", "0")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_KAFKA_REPLICATION");
    }
}
