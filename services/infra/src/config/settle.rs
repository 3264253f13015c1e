//! `settle`: the settlement consumers that write orders from Kafka to the records.

use super::ConfigError;
use super::layers::{Layers, parse_in_range};

/// How settlement batches its transactions and keeps its group membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettleConfig {
    /// How long the settlement group waits for a silent member (Kafka session timeout,
    /// `settle_session_timeout_ms`).
    pub session_timeout_ms: u64,
    /// Most orders one settlement transaction takes (`settle_batch_max`).
    pub batch_max: usize,
    /// How long settlement waits to fill a batch once it holds one order
    /// (`settle_batch_wait_ms`).
    pub batch_wait_ms: u64,
}

impl SettleConfig {
    pub(super) fn read(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(Self {
            session_timeout_ms: layers.value("settle_session_timeout_ms", 10_000, |s| {
                parse_in_range(s, 6_000, 300_000)
            })?,
            batch_max: layers.value("settle_batch_max", 500, |s| parse_in_range(s, 1, 100_000))?,
            batch_wait_ms: layers
                .value("settle_batch_wait_ms", 20, |s| parse_in_range(s, 0, 10_000))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::load_env;

    #[test]
    fn settlement_defaults_and_bounds() {
        let settle = load_env(&[]).unwrap().settle;
        assert_eq!(
            (
                settle.session_timeout_ms,
                settle.batch_max,
                settle.batch_wait_ms
            ),
            (10_000, 500, 20)
        );
        let err = load_env(&[("LINKDROP_SETTLE_SESSION_TIMEOUT_MS", "100")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_SETTLE_SESSION_TIMEOUT_MS");
    }
}
