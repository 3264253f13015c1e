//! `orders`: the orders role — its rate limits and load shedding, edge answers, batched
//! admission and the expiry of unpaid orders (docs/rush.md).

use super::ConfigError;
use super::layers::{Layers, parse_bool, parse_in_range};

/// How an orders process protects itself and the drop's live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrdersConfig {
    /// Orders one shopper may send per second (bursts of the same size); 0 = unlimited
    /// (`orders_per_user_per_s`).
    pub per_user_per_s: u32,
    /// Orders one client address may send per second; 0 = unlimited (`orders_per_ip_per_s`).
    pub per_ip_per_s: u32,
    /// Order requests one process works on at once; more are shed with 503
    /// (`orders_max_in_flight`).
    pub max_in_flight: usize,
    /// Whether each orders process refuses at the edge what it knows the admission script
    /// would refuse (sold out, closed, not open), without a call to the live state
    /// (`orders_edge`).
    pub edge: bool,
    /// Requests closer than this to a drop's opening go to the script (which decides on the
    /// Redis clock) instead of being refused at the edge as not open
    /// (`orders_edge_margin_ms`).
    pub edge_margin_ms: u64,
    /// What an orders process knows of a drop is read again once it is this old without
    /// news (`orders_edge_max_age_ms`).
    pub edge_max_age_ms: u64,
    /// Most waiting requests for one drop that go to the admission script in one call;
    /// 1 = every request its own call (`orders_batch_max`).
    pub batch_max: usize,
    /// How often unpaid orders past their deadline are looked for (`expiry_poll_ms`).
    pub expiry_poll_ms: u64,
}

impl OrdersConfig {
    pub(super) fn read(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(Self {
            per_user_per_s: layers.value("orders_per_user_per_s", 5, |s| {
                parse_in_range(s, 0, 1_000_000)
            })?,
            per_ip_per_s: layers.value("orders_per_ip_per_s", 1000, |s| {
                parse_in_range(s, 0, 10_000_000)
            })?,
            max_in_flight: layers.value("orders_max_in_flight", 4096, |s| {
                parse_in_range(s, 1, 1_000_000)
            })?,
            edge: layers.value("orders_edge", true, parse_bool)?,
            edge_margin_ms: layers.value("orders_edge_margin_ms", 250, |s| {
                parse_in_range(s, 0, 60_000)
            })?,
            edge_max_age_ms: layers.value("orders_edge_max_age_ms", 1000, |s| {
                parse_in_range(s, 10, 600_000)
            })?,
            batch_max: layers.value("orders_batch_max", 128, |s| parse_in_range(s, 1, 1000))?,
            expiry_poll_ms: layers
                .value("expiry_poll_ms", 1000, |s| parse_in_range(s, 10, 60_000))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::load_env;

    #[test]
    fn the_orders_defaults_are_the_documented_ones() {
        assert_eq!(
            load_env(&[]).unwrap().orders,
            OrdersConfig {
                per_user_per_s: 5,
                per_ip_per_s: 1000,
                max_in_flight: 4096,
                edge: true,
                edge_margin_ms: 250,
                edge_max_age_ms: 1000,
                batch_max: 128,
                expiry_poll_ms: 1000,
            }
        );
    }

    #[test]
    fn every_orders_key_keeps_its_name() {
        let orders = load_env(&[
            ("LINKDROP_ORDERS_PER_USER_PER_S", "0"),
            ("LINKDROP_ORDERS_PER_IP_PER_S", "7"),
            ("LINKDROP_ORDERS_MAX_IN_FLIGHT", "8"),
            ("LINKDROP_ORDERS_EDGE", "false"),
            ("LINKDROP_ORDERS_EDGE_MARGIN_MS", "9"),
            ("LINKDROP_ORDERS_EDGE_MAX_AGE_MS", "10"),
            ("LINKDROP_ORDERS_BATCH_MAX", "1"),
            ("LINKDROP_EXPIRY_POLL_MS", "11"),
        ])
        .unwrap()
        .orders;
        assert_eq!(
            orders,
            OrdersConfig {
                per_user_per_s: 0,
                per_ip_per_s: 7,
                max_in_flight: 8,
                edge: false,
                edge_margin_ms: 9,
                edge_max_age_ms: 10,
                batch_max: 1,
                expiry_poll_ms: 11,
            }
        );
        let err = load_env(&[("LINKDROP_ORDERS_BATCH_MAX", "0")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_ORDERS_BATCH_MAX");
        assert!(err.problem.contains("between 1 and 1000"), "{err}");
    }
}
