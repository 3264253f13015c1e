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

/// A kept-alive HTTP/1.1 connection that sends ready-made requests and reads only what a
/// storm needs of the answer (its status), with nothing between the loop and the socket:
/// the load generator shares the machine with the system under test.
pub struct RawConnection {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl RawConnection {
    pub async fn open(authority: &str) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(authority)
            .await
            .with_context(|| format!("connecting to {authority}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    /// Writes `request` (a whole HTTP/1.1 request) and reads its answer; the status.
    pub async fn round_trip(&mut self, request: &[u8]) -> std::io::Result<u16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.stream.write_all(request).await?;
        loop {
            if let Some((status, length)) = answer_length(&self.buf)?
                && self.buf.len() >= length
            {
                self.buf.drain(..length);
                return Ok(status);
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The status and total length of the answer at the start of `buf`, once its head is in.
fn answer_length(buf: &[u8]) -> std::io::Result<Option<(u16, usize)>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad("answer head is not text"))?;
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status line"))?;
    let length = head
        .split("\r\n")
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .ok_or_else(|| bad("answer without content-length"))?;
    Ok(Some((status, end + 4 + length)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_complete_with_its_body() {
        let answer = b"HTTP/1.1 409 Conflict\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(answer_length(&answer[..20]).unwrap(), None);
        assert_eq!(answer_length(answer).unwrap(), Some((409, answer.len())));
        assert!(answer_length(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    }
}
