//! `relay`: the role that carries each drop's outbox to Kafka (or, embedded, to the records).

use super::ConfigError;
use super::layers::{Layers, parse_in_range};

/// How the relay works through the outboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Most outbox entries moved in one round (`relay_batch_max`).
    pub batch_max: usize,
    /// How long a relay's hold on a drop lasts unrenewed: a dead relay's drops move to
    /// another relay within this (a live relay renews every second) (`relay_lease_ms`).
    pub lease_ms: u64,
}

impl RelayConfig {
    pub(super) fn read(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(Self {
            batch_max: layers.value("relay_batch_max", 500, |s| parse_in_range(s, 1, 100_000))?,
            lease_ms: layers.value("relay_lease_ms", 5_000, |s| {
                parse_in_range(s, 1_500, 600_000)
            })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::load_env;

    #[test]
    fn a_lease_shorter_than_a_renewal_is_refused() {
        let relay = load_env(&[]).unwrap().relay;
        assert_eq!((relay.batch_max, relay.lease_ms), (500, 5_000));
        let err = load_env(&[("LINKDROP_RELAY_LEASE_MS", "1000")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_RELAY_LEASE_MS");
    }
}
