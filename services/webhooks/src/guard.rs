//! The SSRF guard: webhook URLs may only reach public addresses, unless configuration
//! allows a network explicitly (`LINKDROP_WEBHOOK_ALLOW_NETS`, e.g. `127.0.0.0/8` for a
//! local receiver). URLs are checked at registration and again at delivery, after DNS,
//! by a resolver that hands the HTTP client only permitted addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use linkdrop_infra::config::WebhooksConfig;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// What webhook URLs may reach.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allow: Arc<Vec<IpNet>>,
    https_only: bool,
}

impl Guard {
    pub fn new(allow: Vec<IpNet>, https_only: bool) -> Self {
        Self {
            allow: Arc::new(allow),
            https_only,
        }
    }

    /// The guard the configuration asks for (`LINKDROP_WEBHOOK_ALLOW_NETS`,
    /// `LINKDROP_WEBHOOK_HTTPS_ONLY`).
    pub fn from_config(config: &WebhooksConfig) -> Self {
        Self::new(config.allow_nets.clone(), config.https_only)
    }

    /// Whether deliveries may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allow.iter().any(|net| net.contains(&ip))
    }

    /// Parses `url` and checks its scheme and every address its host resolves to.
    pub async fn check_url(&self, url: &str) -> Result<Url, String> {
        let parsed = Url::parse(url).map_err(|_| "not a valid URL".to_string())?;
        match parsed.scheme() {
            "https" => {}
            "http" if !self.https_only => {}
            _ if self.https_only => return Err("must be an https:// URL".into()),
            _ => return Err("must be an http:// or https:// URL".into()),
        }
        let host = parsed.host_str().ok_or("has no host")?;
        let port = parsed.port_or_known_default().unwrap_or(443);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| format!("host {host} does not resolve"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("host {host} does not resolve"));
        }
        if let Some(refused) = addrs.iter().find(|a| !self.permits(a.ip())) {
            return Err(format!(
                "resolves to {}, which is not a public address (allow it with LINKDROP_WEBHOOK_ALLOW_NETS)",
                refused.ip()
            ));
        }
        Ok(parsed)
    }
}

/// True for globally routable unicast addresses.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking 198.18.0.0/15
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || (first == 0x0064 && ip.segments()[1] == 0xff9b)) // NAT64 may reach private v4
}

/// A DNS resolver for the delivery client that drops addresses the guard refuses, so a
/// name that resolved to a public address at registration cannot be re-pointed inside.
pub struct GuardedResolver(pub Guard);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| guard.permits(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no permitted address").into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(ip(s)), "{s}");
        }
        for s in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip(s)), "{s}");
        }
    }

    #[test]
    fn an_allowed_network_is_permitted() {
        let guard = Guard::new(vec!["127.0.0.0/8".parse().unwrap()], false);
        assert!(guard.permits(ip("127.0.0.1")));
        assert!(!guard.permits(ip("10.0.0.1")));
    }

    #[tokio::test]
    async fn loopback_urls_are_refused_unless_allowed() {
        let refused = Guard::default().check_url("http://127.0.0.1:9/hook").await;
        assert!(refused.unwrap_err().contains("not a public address"));
        let allowed = Guard::new(vec!["127.0.0.0/8".parse().unwrap()], false);
        assert!(allowed.check_url("http://127.0.0.1:9/hook").await.is_ok());
    }

    #[tokio::test]
    async fn https_only_refuses_plain_http() {
        let guard = Guard::new(vec!["127.0.0.0/8".parse().unwrap()], true);
        assert!(guard.check_url("http://127.0.0.1/hook").await.is_err());
        assert!(guard.check_url("ftp://127.0.0.1/hook").await.is_err());
    }
}
