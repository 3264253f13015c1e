//! `analytics`: the host's figures (docs/hosts.md, "Analytics"): whether they are collected,
//! how often each process writes what it counted, and how long they are kept.

use super::ConfigError;
use super::layers::{Layers, parse_bool, parse_in_range};

/// The collection of the host's analytics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyticsConfig {
    /// Whether gateways, orders processes and the control role count viewers, taps and
    /// countdown reach (`analytics`).
    pub enabled: bool,
    /// How often each process adds what it counted to the records, in one transaction
    /// (`analytics_flush_ms`).
    pub flush_ms: u64,
    /// Figures older than this many days are deleted (`analytics_retention_days`).
    pub retention_days: u32,
}

impl AnalyticsConfig {
    pub(super) fn read(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(Self {
            enabled: layers.value("analytics", true, parse_bool)?,
            flush_ms: layers.value("analytics_flush_ms", 2000, |s| {
                parse_in_range(s, 100, 600_000)
            })?,
            retention_days: layers.value("analytics_retention_days", 90, |s| {
                parse_in_range(s, 1, 36_500)
            })?,
        })
    }
}
