//! `webhooks`: deliveries to merchants' endpoints — the SSRF guard, the dispatcher's pace,
//! and how long failing endpoints and old attempts are kept. The key sealing signing
//! secrets is a secret (`secrets`).

use ipnet::IpNet;

use super::ConfigError;
use super::layers::{Layers, parse_bool, parse_in_range};

const DAY_MS: i64 = 24 * 3_600_000;

/// How webhooks are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhooksConfig {
    /// Networks that webhook URLs may resolve to although they are not public
    /// (`webhook_allow_nets`).
    pub allow_nets: Vec<IpNet>,
    /// Refuse webhook URLs that are not https:// (`webhook_https_only`).
    pub https_only: bool,
    /// How often the dispatcher looks for due deliveries (`webhook_poll_ms`).
    pub poll_ms: u64,
    /// Total time allowed for one delivery attempt (`webhook_timeout_ms`).
    pub timeout_ms: u64,
    /// An endpoint whose every attempt failed for this long is disabled
    /// (`webhook_disable_after_ms`).
    pub disable_after_ms: i64,
    /// Delivery attempts are kept this long (`webhook_attempts_retention_ms`).
    pub attempts_retention_ms: i64,
}

impl WebhooksConfig {
    pub(super) fn read(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(Self {
            allow_nets: layers.value("webhook_allow_nets", Vec::new(), parse_nets)?,
            https_only: layers.value("webhook_https_only", false, parse_bool)?,
            poll_ms: layers.value("webhook_poll_ms", 500, |s| parse_in_range(s, 10, 60_000))?,
            timeout_ms: layers.value("webhook_timeout_ms", 10_000, |s| {
                parse_in_range(s, 100, 120_000)
            })?,
            disable_after_ms: layers.value("webhook_disable_after_ms", 5 * DAY_MS, |s| {
                parse_in_range(s, 60_000, 90 * DAY_MS)
            })?,
            attempts_retention_ms: layers.value(
                "webhook_attempts_retention_ms",
                30 * DAY_MS,
                |s| parse_in_range(s, 60_000, 3650 * DAY_MS),
            )?,
        })
    }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use crate::config::Config;
    use crate::config::tests::load_env;

    #[test]
    fn allow_nets_parse_from_a_list_or_a_comma_separated_string() {
        let config = load_env(&[("LINKDROP_WEBHOOK_ALLOW_NETS", "127.0.0.0/8, ::1/128")]).unwrap();
        assert_eq!(config.webhooks.allow_nets.len(), 2);
        let path = Path::new("linkdrop.toml");
        let text = "webhook_allow_nets = [\"10.0.0.0/8\"]\n";
        let config = Config::from_sources(Some((path, text)), &BTreeMap::new()).unwrap();
        assert_eq!(config.webhooks.allow_nets[0].to_string(), "10.0.0.0/8");
        let err = load_env(&[("LINKDROP_WEBHOOK_ALLOW_NETS", "10.0.0.0/33")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_WEBHOOK_ALLOW_NETS");
    }

    #[test]
    fn failing_endpoints_are_disabled_after_five_days_and_attempts_kept_thirty() {
        let webhooks = load_env(&[]).unwrap().webhooks;
        assert_eq!(webhooks.disable_after_ms, 432_000_000);
        assert_eq!(webhooks.attempts_retention_ms, 2_592_000_000);
        assert_eq!((webhooks.poll_ms, webhooks.timeout_ms), (500, 10_000));
        assert!(!webhooks.https_only);
    }
}
