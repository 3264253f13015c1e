//! One viewer's WebSocket, as the audience and the storm open it: from a loopback source
//! address of its own, with small buffers, in once the server said `hello` (linkdrop) or
//! confirmed the subscription (Centrifugo).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::audience::{Common, Target};

pub type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Small buffers: a worker holds thousands of viewers.
fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
}

/// Opens one viewer's WebSocket from `source` and waits until it is in: the socket and the
/// `hello` (linkdrop; empty for Centrifugo). `since`: the last `seq` seen, to resume.
pub async fn connect(
    common: &Common,
    gateway: &str,
    source: Ipv4Addr,
    token: &str,
    since: Option<u64>,
) -> anyhow::Result<(Socket, String)> {
    let addr: SocketAddr = gateway.parse().context("gateway address")?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let url = match common.target {
        Target::Linkdrop => {
            let resume = since.map(|seq| format!("&since={seq}")).unwrap_or_default();
            format!(
                "ws://{gateway}/v1/rooms/{}/ws?token={token}{resume}",
                common.room
            )
        }
        Target::Centrifugo => format!("ws://{gateway}/connection/websocket"),
    };
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(client_config())).await?;
    match common.target {
        Target::Linkdrop => {
            // In once the server said hello.
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) if text.contains("\"type\":\"hello\"") => {
                        return Ok((ws, text.to_string()));
                    }
                    Some(Ok(_)) => continue,
                    other => bail!("no hello: {other:?}"),
                }
            }
        }
        Target::Centrifugo => {
            let connect = serde_json::json!({"id": 1, "connect": {"token": token}});
            ws.send(Message::text(connect.to_string())).await?;
            let subscribe = serde_json::json!({"id": 2, "subscribe": {"channel": common.room}});
            ws.send(Message::text(subscribe.to_string())).await?;
            // In once the subscription is confirmed (replies may share a frame).
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) if text.contains("\"error\"") => {
                        bail!("centrifugo: {text}")
                    }
                    Some(Ok(Message::Text(text)))
                        if text.lines().any(|l| l.contains("\"id\":2")) =>
                    {
                        return Ok((ws, String::new()));
                    }
                    Some(Ok(_)) => continue,
                    other => bail!("no subscription: {other:?}"),
                }
            }
        }
    }
}

/// Worker `index`'s loopback source address. Each address has its own ephemeral ports,
/// and the closed connections of one run linger in TIME_WAIT on them for a minute, so every
/// run takes its addresses from a /24 of 127.0.0.0/8 picked by the clock: back-to-back runs
/// of 100k viewers do not run out of ports.
pub fn source_address(index: usize) -> Ipv4Addr {
    static NET: std::sync::OnceLock<[u8; 2]> = std::sync::OnceLock::new();
    let [a, b] = *NET.get_or_init(|| {
        let nanos = now_us() / 7 % (250 * 256);
        [1 + (nanos / 256) as u8, (nanos % 256) as u8]
    });
    Ipv4Addr::new(127, a, b, 2 + (index % 250) as u8)
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}
