//! The WebSocket handshake, keeping the TCP stream: the gateway writes viewers' frames to
//! their sockets itself ([`crate::fanout`]), so a session gets the stream the request came
//! on, not a stream wrapped for it. That needs the connection to be served by linkdrop's
//! HTTP/1 server (`linkdrop::serve`), which hands hyper the TCP stream as it is.

use std::future::Future;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use linkdrop_infra::ApiError;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// A checked WebSocket upgrade request.
pub struct Upgrade {
    accept: String,
    on_upgrade: OnUpgrade,
}

/// Why a request is not a WebSocket upgrade.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NotUpgrade {
    #[error("the method must be GET")]
    Method,
    #[error("the `{0}` header must name `{1}`")]
    Header(HeaderName, &'static str),
    #[error("`Sec-WebSocket-Version` must be 13")]
    Version,
    #[error("`Sec-WebSocket-Key` is missing")]
    Key,
    #[error("the connection cannot be upgraded")]
    Connection,
}

impl From<NotUpgrade> for ApiError {
    fn from(e: NotUpgrade) -> ApiError {
        ApiError::BadRequest(format!("expected a WebSocket upgrade: {e}"))
    }
}

impl IntoResponse for NotUpgrade {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = NotUpgrade;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, NotUpgrade> {
        if parts.method != Method::GET {
            return Err(NotUpgrade::Method);
        }
        names(&parts.headers, CONNECTION, "upgrade")?;
        names(&parts.headers, UPGRADE, "websocket")?;
        if parts
            .headers
            .get(SEC_WEBSOCKET_VERSION)
            .map(|v| v.as_bytes())
            != Some(b"13")
        {
            return Err(NotUpgrade::Version);
        }
        let key = parts
            .headers
            .get(SEC_WEBSOCKET_KEY)
            .ok_or(NotUpgrade::Key)?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(NotUpgrade::Connection)?;
        Ok(Upgrade {
            accept: derive_accept_key(key.as_bytes()),
            on_upgrade,
        })
    }
}

/// Whether `header` lists `token` (comma-separated, any case).
fn names(headers: &HeaderMap, header: HeaderName, token: &'static str) -> Result<(), NotUpgrade> {
    let listed = headers.get_all(&header).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value
                .split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    });
    listed
        .then_some(())
        .ok_or(NotUpgrade::Header(header, token))
}

impl Upgrade {
    /// Answers `101 Switching Protocols` and, once the connection has switched, runs
    /// `session` on its TCP stream, with the bytes the client sent after its request.
    pub fn on_upgrade<F, Fut>(self, session: F) -> Response
    where
        F: FnOnce(TcpStream, Bytes) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => {
                    tracing::debug!(error = %e, "the WebSocket upgrade did not complete");
                    return;
                }
            };
            match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(parts) => session(parts.io.into_inner(), parts.read_buf).await,
                Err(_) => tracing::error!(
                    "a WebSocket on a connection not served by linkdrop's HTTP/1 server: closed"
                ),
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(CONNECTION, "upgrade")
            .header(UPGRADE, "websocket")
            .header(SEC_WEBSOCKET_ACCEPT, self.accept)
            .body(Body::empty())
            .expect("a valid response")
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    async fn check(request: Request<()>) -> Result<(), NotUpgrade> {
        let (mut parts, ()) = request.into_parts();
        Upgrade::from_request_parts(&mut parts, &())
            .await
            .map(|_| ())
    }

    fn upgrade_request(version: &str) -> axum::http::request::Builder {
        Request::get("/v1/rooms/r/ws")
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "WebSocket")
            .header("sec-websocket-version", version)
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    }

    #[tokio::test]
    async fn each_missing_part_of_a_handshake_is_named() {
        let plain = Request::get("/v1/rooms/r/ws").body(()).unwrap();
        assert_eq!(
            check(plain).await,
            Err(NotUpgrade::Header(CONNECTION, "upgrade"))
        );
        let old = upgrade_request("8").body(()).unwrap();
        assert_eq!(check(old).await, Err(NotUpgrade::Version));
        let post = upgrade_request("13").method(Method::POST).body(()).unwrap();
        assert_eq!(check(post).await, Err(NotUpgrade::Method));
        // Everything a handshake needs, on a request no server connection stands behind.
        let detached = upgrade_request("13").body(()).unwrap();
        assert_eq!(check(detached).await, Err(NotUpgrade::Connection));
    }
}
