//! `gateway`: the WebSocket gateway role.

use super::ConfigError;
use super::layers::{Layers, parse_in_range};

/// What a gateway node allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// WebSocket connections one client address may open per second; 0 = unlimited
    /// (`ws_connects_per_ip_per_s`).
    pub ws_connects_per_ip_per_s: u32,
}

impl GatewayConfig {
    pub(super) fn read(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(Self {
            ws_connects_per_ip_per_s: layers.value("ws_connects_per_ip_per_s", 200, |s| {
                parse_in_range(s, 0, 10_000_000)
            })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::load_env;

    #[test]
    fn connects_per_ip_default_to_200_and_0_is_allowed() {
        assert_eq!(load_env(&[]).unwrap().gateway.ws_connects_per_ip_per_s, 200);
        let gateway = load_env(&[("LINKDROP_WS_CONNECTS_PER_IP_PER_S", "0")])
            .unwrap()
            .gateway;
        assert_eq!(gateway.ws_connects_per_ip_per_s, 0);
    }
}
