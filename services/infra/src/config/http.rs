//! `http`: the listener and the process around it — where it binds, the URL clients use,
//! the largest body, SO_REUSEPORT, the runtime's threads.

use std::net::{IpAddr, SocketAddr};

use super::ConfigError;
use super::layers::{Layers, parse_bool, parse_in_range};

/// The listener of a process (every route and the WebSocket in `all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Where the listener binds (`http_addr`).
    pub addr: SocketAddr,
    /// Base URL that clients use to reach linkdrop, used in links pushed to the room
    /// (`order_url`). When unset, the address the listener actually bound is used.
    pub public_url: Option<String>,
    /// Largest accepted request body (`body_limit_bytes`).
    pub body_limit_bytes: usize,
    /// Bind the listener with SO_REUSEPORT, so several gateway processes share one port.
    pub reuse_port: bool,
    /// Threads of the async runtime; 0 = one per core.
    pub worker_threads: usize,
}

impl HttpConfig {
    pub(super) fn read(layers: &Layers) -> Result<Self, ConfigError> {
        Ok(Self {
            addr: layers.value("http_addr", default_addr(), parse_addr)?,
            public_url: layers.optional("public_url", parse_http_url)?,
            body_limit_bytes: layers.value("body_limit_bytes", 64 * 1024, |s| {
                parse_in_range(s, 1024, 16 * 1024 * 1024)
            })?,
            reuse_port: layers.value("reuse_port", false, parse_bool)?,
            worker_threads: layers.value("worker_threads", 0, |s| parse_in_range(s, 0, 256))?,
        })
    }

    /// The public base URL: the configured one, or `http://` plus the address bound
    /// (loopback when bound to every interface).
    pub fn public_url_for(&self, bound: SocketAddr) -> String {
        self.public_url.clone().unwrap_or_else(|| {
            let host = if bound.ip().is_unspecified() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                bound.ip()
            };
            format!("http://{}", SocketAddr::new(host, bound.port()))
        })
    }
}

fn default_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("expected host:port such as 127.0.0.1:8080, got {s:?}"))
}

fn parse_http_url(s: &str) -> Result<String, String> {
    if !(s.starts_with("http://") || s.starts_with("https://")) {
        return Err(format!("expected an http:// or https:// URL, got {s:?}"));
    }
    Ok(s.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use crate::config::tests::load_env;

    #[test]
    fn the_listener_defaults_to_loopback_8080_with_a_64_kib_body_limit() {
        let http = load_env(&[]).unwrap().http;
        assert_eq!(http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(http.public_url, None);
        assert_eq!(http.body_limit_bytes, 65536);
        assert!(!http.reuse_port);
        assert_eq!(http.worker_threads, 0);
    }

    #[test]
    fn the_public_url_defaults_to_the_bound_address() {
        let config = load_env(&[("LINKDROP_HTTP_ADDR", "0.0.0.0:0")]).unwrap();
        assert_eq!(
            config.http.public_url_for("0.0.0.0:4321".parse().unwrap()),
            "http://127.0.0.1:4321"
        );
        let config = load_env(&[("LINKDROP_PUBLIC_URL", "https://live.example/")]).unwrap();
        assert_eq!(
            config.http.public_url_for("0.0.0.0:4321".parse().unwrap()),
            "https://live.example"
        );
    }

    #[test]
    fn a_public_url_must_be_http() {
        let err = load_env(&[("LINKDROP_PUBLIC_URL", "ftp://x")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_PUBLIC_URL");
        let err = load_env(&[("LINKDROP_BODY_LIMIT_BYTES", "10")]).unwrap_err();
        assert_eq!(err.key, "LINKDROP_BODY_LIMIT_BYTES");
    }
}
