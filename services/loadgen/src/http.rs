//! Plain HTTP/1.1 connections for the load generator (no client library in its hot loops),
//! and a single POST over a fresh one, enough for triggering an event.

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;

/// POSTs the JSON `body` to `url` (`http://host:port/path`) with one extra `header`;
/// the answer's status.
pub async fn post_json(url: &str, header: (&str, &str), body: &str) -> anyhow::Result<u16> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("only http:// URLs: {url}"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut sender = connect(authority).await?;
    let request = Request::post(format!("/{path}"))
        .header("host", authority)
        .header("content-type", "application/json")
        .header(header.0, header.1)
        .body(Full::new(Bytes::from(body.to_string())))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    Ok(status)
}

/// A kept-alive HTTP/1.1 connection to `authority` (`host:port`), Nagle off.
pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

pub async fn connect(authority: &str) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to {authority}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}
