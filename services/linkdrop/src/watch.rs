//! `linkdrop watch`: a viewer on the command line. Joins a room's WebSocket, prints every
//! frame as it arrives, and pings every few seconds so the `pong`s show the clock offset.

use std::time::Duration;

use anyhow::Context;
use futures::{SinkExt, StreamExt};
use linkdrop_domain::clock::now_ms;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// How often the watcher sends a clock ping.
const PING_EVERY: Duration = Duration::from_secs(5);

/// Watches `room_id` at `base_url` (http:// or https://) with a shopper `token`.
pub async fn watch(base_url: &str, room_id: &str, token: &str) -> anyhow::Result<()> {
    let ws_base = base_url
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    let url = format!("{ws_base}/v1/rooms/{room_id}/ws?token={token}");
    let (socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .with_context(|| format!("connecting to {ws_base}/v1/rooms/{room_id}/ws"))?;
    let (mut sink, mut stream) = socket.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            _ = ping.tick() => {
                let frame = json!({"type": "ping", "t": now_ms()}).to_string();
                sink.send(Message::text(frame)).await?;
            }
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => println!("{text}"),
                Some(Ok(Message::Close(frame))) => {
                    println!("closed: {frame:?}");
                    return Ok(());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Ok(()),
            },
        }
    }
}
